"""numpy_gpt.optim against torch.optim, clip_grad_norm_ and torch's lr schedulers.

Parameters are GPT-shaped dicts of random sizes; every step draws fresh random
gradients. Both sides take the same steps and must end with the same
parameters and the same optimizer state (m, v, momentum buffers), within the
parity tolerance of the dtype (float32 judged against a float64 torch run when
float32 itself cannot resolve the answer; see tests/parity.py).
"""
from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from hypothesis import given, strategies as st

from numpy_gpt import optim
from numpy_gpt.optim import (OPTIMIZERS, SGD, Adam, AdamW, clip_grad_norm, cosine_lr, decay_mask,
                             is_decayed)
from tests import strategies as S
from tests.parity import assert_close
from tests.tolerances import parity_tol, scale_floor
from torch_gpt import optim as T

KINDS = st.sampled_from(sorted(OPTIMIZERS))


def draw_model(data, r, dtype, s=1.0):
    """GPT-2-named parameters of random sizes, and the names that must decay, listed by hand."""
    C = data.draw(st.integers(1, 6), label="C")
    V = data.draw(st.integers(1, 8), label="V")
    block = data.draw(st.integers(1, 5), label="block_size")
    spec = [("wte.weight", (V, C), False), ("wpe.weight", (block, C), False)]
    for i in range(data.draw(st.integers(0, 2), label="n_layer")):
        h = f"h.{i}."
        spec += [(h + "ln_1.weight", (C,), False), (h + "ln_1.bias", (C,), False),
                 (h + "attn.c_attn.weight", (C, 3 * C), True), (h + "attn.c_attn.bias", (3 * C,), False),
                 (h + "attn.c_proj.weight", (C, C), True), (h + "attn.c_proj.bias", (C,), False),
                 (h + "ln_2.weight", (C,), False), (h + "ln_2.bias", (C,), False),
                 (h + "mlp.c_fc.weight", (C, 4 * C), True), (h + "mlp.c_fc.bias", (4 * C,), False),
                 (h + "mlp.c_proj.weight", (4 * C, C), True), (h + "mlp.c_proj.bias", (C,), False)]
    spec += [("ln_f.weight", (C,), False), ("ln_f.bias", (C,), False)]
    if data.draw(st.booleans(), label="untied lm_head"):
        spec.append(("lm_head.weight", (V, C), True))
    params = {name: S.normal(r, shape, dtype, s) for name, shape, _ in spec}
    return params, {name for name, _, decayed in spec if decayed}


def draw_hparams(data, kind, names):
    """Keyword arguments shared by both sides' constructors, zeros (feature off) included."""
    if kind == "sgd":
        momentum = data.draw(st.sampled_from([0.0, 0.5, 0.9]), label="momentum")
        nesterov = momentum > 0 and data.draw(st.booleans(), label="nesterov")
        dampening = 0.0 if nesterov else data.draw(st.sampled_from([0.0, 0.3]), label="dampening")
        return dict(momentum=momentum, dampening=dampening, nesterov=nesterov,
                    weight_decay=data.draw(st.sampled_from([0.0, 0.01, 0.5]), label="weight_decay"))
    hp = dict(betas=(data.draw(st.sampled_from([0.0, 0.5, 0.9]), label="beta1"),
                     data.draw(st.sampled_from([0.9, 0.99, 0.999]), label="beta2")),
              # eps = 1e-3 is comparable to sqrt(v) for small gradients: it tests where eps sits.
              eps=data.draw(st.sampled_from([1e-8, 1e-3]), label="eps"),
              weight_decay=data.draw(st.sampled_from([0.0, 0.01, 0.5]), label="weight_decay"))
    if kind == "adamw" and data.draw(st.booleans(), label="explicit no_decay"):
        hp["no_decay"] = sorted(data.draw(st.sets(st.sampled_from(sorted(names))), label="no_decay"))
    return hp


def draw_lrs(data, r, n):
    """The lr for each of n steps: constant, random, or cosine_lr (torch: its own scheduler)."""
    max_lr = data.draw(st.sampled_from([1e-3, 1e-2, 0.1]), label="lr")
    mode = data.draw(st.sampled_from(["constant", "random", "cosine"]), label="lr mode")
    if mode == "constant":
        return max_lr, [max_lr] * n, None
    if mode == "random":
        return max_lr, [float(x) for x in r.uniform(0.0, max_lr, n)], None
    W = data.draw(st.integers(0, n), label="warmup_steps")
    schedule = (W, data.draw(st.integers(W, n + 2), label="max_steps"), 0.1 * max_lr)
    return max_lr, [cosine_lr(i, max_lr, *schedule) for i in range(n)], schedule


def run_numpy(kind, init, hp, max_lr, lrs, grads_seq):
    params = {k: v.copy() for k, v in init.items()}
    opt = OPTIMIZERS[kind](params, lr=max_lr, **hp)
    for lr, grads in zip(lrs, grads_seq):
        opt.lr = lr
        opt.step(grads)
    return params, opt


def run_torch(kind, init, hp, max_lr, lrs, grads_seq, dtype, schedule=None):
    """The same steps with torch.optim in dtype; returns the parameters and state as numpy."""
    params = {k: torch.nn.Parameter(torch.tensor(v.astype(dtype))) for k, v in init.items()}
    opt = T.make_optimizer(kind, params, max_lr, **hp)
    scheduler = T.make_scheduler(opt, *schedule) if schedule else None
    for lr, grads in zip(lrs, grads_seq):
        if scheduler is None:
            T.set_lr(opt, lr)
        for k, p in params.items():
            p.grad = torch.tensor(grads[k].astype(dtype))
        opt.step()
        if scheduler is not None:
            scheduler.step()
    return {k: p.detach().numpy() for k, p in params.items()}, T.state_by_name(opt, params)


def compare(layer, tensor, ours, theirs, tol, truth=None):
    """assert_close for every name, naming the parameter when one fails. Each is judged at the
    scale of the largest of its kind (tolerances.SCALE_FLOOR): a bias whose exp_avg cancels to
    1/2000 of the others' carries float32 rounding of the terms that cancelled, in numpy's
    b1 m + (1 - b1) g as in any code without torch's fused lerp."""
    assert ours.keys() == theirs.keys(), f"{layer} {tensor}: names {sorted(ours)} != {sorted(theirs)}"
    floor = max((scale_floor(v.dtype) * np.abs(v).max(initial=0.0) for v in theirs.values()), default=0.0)
    for name in ours:
        try:
            assert_close(layer, tensor, ours[name], theirs[name], tol,
                         truth=None if truth is None else truth[name], floor=floor)
        except AssertionError as e:
            raise AssertionError(f"[{name}] {e}") from None


def check_against_torch(data, dtype, kind):
    r = S.rng(data)
    init, _ = draw_model(data, r, dtype)
    hp = draw_hparams(data, kind, init)
    n = data.draw(st.integers(1, 20), label="steps")
    max_lr, lrs, schedule = draw_lrs(data, r, n)
    s = S.scale(data)
    grads_seq = [{k: S.normal(r, v.shape, dtype, s) for k, v in init.items()} for _ in range(n)]

    ours, opt = run_numpy(kind, init, hp, max_lr, lrs, grads_seq)
    theirs, t_state = run_torch(kind, init, hp, max_lr, lrs, grads_seq, dtype, schedule)
    truth, truth_state = (run_torch(kind, init, hp, max_lr, lrs, grads_seq, np.float64, schedule)
                          if dtype != np.float64 else (None, {}))

    tol = parity_tol(dtype)
    compare(kind, "p", ours, theirs, tol, truth)
    state = opt.state_dict()
    for buf in opt.buffers:                  # torch's state keys: exp_avg, exp_avg_sq, momentum_buffer
        compare(kind, buf.replace("buffer", "buf"), state[buf], t_state.get(buf, {}), tol,
                truth_state.get(buf))
    if kind != "sgd":                        # torch's SGD keeps no step count
        assert state["step"] == t_state["step"] == n


@given(data=st.data(), dtype=S.DTYPES)
def test_sgd_matches_torch(data, dtype):
    check_against_torch(data, dtype, "sgd")


@given(data=st.data(), dtype=S.DTYPES)
def test_adam_matches_torch(data, dtype):
    check_against_torch(data, dtype, "adam")


@given(data=st.data(), dtype=S.DTYPES)
def test_adamw_matches_torch(data, dtype):
    check_against_torch(data, dtype, "adamw")


@pytest.mark.parametrize("kind", sorted(OPTIMIZERS))
def test_default_settings_match_torch_gpt_s(kind):
    # The drawn tests above pass every setting; here none is, so the two sides' defaults (betas,
    # eps, weight decay and what it spares, momentum) must agree too.
    r = np.random.default_rng(0)
    shapes = {"wte.weight": (5, 4), "h.0.ln_1.weight": (4,), "h.0.attn.c_attn.weight": (4, 12),
              "h.0.attn.c_attn.bias": (12,)}
    init = {k: r.standard_normal(v) for k, v in shapes.items()}
    grads_seq = [{k: r.standard_normal(v) for k, v in shapes.items()} for _ in range(5)]
    ours, _ = run_numpy(kind, init, {}, 0.1, [0.1] * 5, grads_seq)
    theirs, _ = run_torch(kind, init, {}, 0.1, [0.1] * 5, grads_seq, np.float64)
    for k in init:
        np.testing.assert_allclose(ours[k], theirs[k], rtol=1e-12, atol=1e-15, err_msg=k)
        assert not np.array_equal(ours[k], init[k]), k


@given(data=st.data(), dtype=S.DTYPES, kind=KINDS)
def test_updates_in_place_keeps_dtype_and_leaves_grads_alone(data, dtype, kind):
    r = S.rng(data)
    params, _ = draw_model(data, r, dtype)
    arrays = dict(params)                                   # the model's array objects
    before = {k: v.copy() for k, v in params.items()}
    hp = dict(momentum=0.9, weight_decay=0.1) if kind == "sgd" else dict(weight_decay=0.1)
    opt = OPTIMIZERS[kind](params, lr=0.01, **hp)
    for _ in range(3):
        grads = {k: S.normal(r, v.shape, dtype) for k, v in params.items()}
        grads_before = {k: g.copy() for k, g in grads.items()}
        opt.step(grads)
        for k, g in grads.items():
            assert np.array_equal(g, grads_before[k]), f"step modified grad {k}"
    for k, p in params.items():
        assert p is arrays[k], f"{k} was replaced, not updated in place"
        assert p.dtype == dtype, f"{k}: {p.dtype} != {dtype}"
        assert not np.array_equal(p, before[k]), f"{k} did not move"
    for buf in opt.buffers:
        for k, a in opt.state_dict()[buf].items():
            assert a.dtype == dtype, f"{buf}[{k}]: {a.dtype} != {dtype}"


@given(data=st.data(), dtype=S.DTYPES, kind=KINDS)
def test_state_dict_round_trip_resumes_exactly(data, dtype, kind):
    r = S.rng(data)
    init, _ = draw_model(data, r, dtype)
    hp = draw_hparams(data, kind, init)
    k = data.draw(st.integers(0, 5), label="steps before saving")
    n = data.draw(st.integers(1, 5), label="steps after")
    lr = data.draw(st.sampled_from([1e-3, 0.1]), label="lr")
    grads_seq = [{name: S.normal(r, v.shape, dtype) for name, v in init.items()} for _ in range(k + n)]

    params = {name: v.copy() for name, v in init.items()}
    opt = OPTIMIZERS[kind](params, lr=lr, **hp)
    for grads in grads_seq[:k]:
        opt.step(grads)
    saved = opt.state_dict()
    frozen = copy.deepcopy(saved)
    snapshot = {name: v.copy() for name, v in params.items()}
    for grads in grads_seq[k:]:
        opt.step(grads)

    # Plain data: an int, a float and NumPy arrays, none shared with the live optimizer.
    assert type(saved["step"]) is int and saved["step"] == k and type(saved["lr"]) is float
    for buf in opt.buffers:
        for name, a in saved[buf].items():
            assert isinstance(a, np.ndarray) and np.array_equal(a, frozen[buf][name]), f"{buf}[{name}] changed"

    # A new optimizer, built with another lr, restored from the state, takes the same steps.
    resumed = OPTIMIZERS[kind](snapshot, lr=7 * lr, **hp)
    resumed.load_state_dict(saved)
    for grads in grads_seq[k:]:
        resumed.step(grads)
    for name in params:
        assert np.array_equal(snapshot[name], params[name]), f"{name} differs after resuming"
    assert resumed.t == opt.t == k + n


@given(data=st.data(), dtype=S.DTYPES, kind=st.sampled_from(["adam", "adamw"]))
def test_packed_small_parameters_update_exactly_as_alone(data, dtype, kind):
    """Adam packs parameters of at most PACK_SIZE entries into one flat array per dtype and
    decay group: bit for bit the same steps and state as updating each alone, the
    model's arrays still updated in place, and a state loaded mid-run lands in the packs."""
    r = S.rng(data)
    init, _ = draw_model(data, r, dtype)
    hp = draw_hparams(data, kind, init)
    pack_size = data.draw(st.sampled_from([0, 4, 12, 1 << 16]), label="PACK_SIZE")   # 0: none packed
    n = data.draw(st.integers(2, 5), label="steps")
    grads_seq = [{name: S.normal(r, v.shape, dtype) for name, v in init.items()} for _ in range(n)]

    def run(size, resume_from=None):
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(optim, "PACK_SIZE", size)
            params = {name: v.copy() for name, v in init.items()}
            arrays = dict(params)
            opt = OPTIMIZERS[kind](params, lr=0.01, **hp)
            for i, grads in enumerate(grads_seq):
                opt.step(grads)
                if i == 0 and resume_from is not None:      # into the packs made at the first step
                    opt.load_state_dict(resume_from)
                    for name, a in resume_from["params"].items():
                        params[name][...] = a
        assert all(params[k] is arrays[k] for k in params), "a parameter was replaced"
        return params, opt

    alone_params, alone = run(0)
    packed_params, packed = run(pack_size)
    for name in init:
        assert np.array_equal(packed_params[name], alone_params[name]), f"{name}: packed != alone"
        for buf in packed.buffers:
            assert np.array_equal(packed.state_dict()[buf][name], alone.state_dict()[buf][name]), \
                f"{buf}[{name}]: packed != alone"

    # Resume: after one step, load the state (and parameters) of a run that took a different
    # first step; the rest of the run must then equal that run's.
    other = {name: v.copy() for name, v in init.items()}
    ref = OPTIMIZERS[kind](other, lr=0.01, **hp)
    ref.step({name: 2 * g for name, g in grads_seq[0].items()})
    state = {**ref.state_dict(), "params": {k: v.copy() for k, v in other.items()}}
    for grads in grads_seq[1:]:
        ref.step(grads)
    resumed_params, _ = run(pack_size, resume_from=state)
    for name in init:
        assert np.array_equal(resumed_params[name], other[name]), f"{name} differs after loading mid-run"


@pytest.mark.parametrize("kind", ["adam", "adamw"])
def test_adam_keeps_only_m_and_v_between_steps(kind):
    """Between steps Adam holds m and v and nothing the size of the parameters besides: the packs'
    gathered p and g are made anew at each step, so they add nothing to the backward's peak.

    Counted: what is still held of the memory allocated with numpy_gpt/optim.py on the stack. The
    process's whole traced memory also counts other threads' allocations (a fresh clone's run once
    read 128 KiB more, allocated somewhere else while the step ran)."""
    import gc
    import tracemalloc

    from numpy_gpt import optim
    r = np.random.default_rng(0)
    params = {f"p{i}": r.standard_normal(n) for i, n in enumerate([3, 100, 5000, 70000])}   # packed and not
    grads = {k: r.standard_normal(p.shape) for k, p in params.items()}
    nbytes = sum(p.nbytes for p in params.values())
    only_optim = [tracemalloc.Filter(True, optim.__file__, all_frames=True)]
    tracemalloc.start(8)
    try:
        opt = OPTIMIZERS[kind](params, lr=0.01, weight_decay=0.1)
        for _ in range(2):
            opt.step(grads)
            gc.collect()
            snapshot = tracemalloc.take_snapshot().filter_traces(only_optim)
            held = sum(t.size for t in snapshot.traces)
            assert 2 * nbytes <= held < 2 * nbytes + 16384, f"{held} bytes held for {2 * nbytes} of m and v"
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("kind", ["adam", "adamw"])
def test_an_update_cut_short_by_an_error_keeps_packed_parameters_in_step_with_m_and_v(kind, threads, monkeypatch):
    """The packs update gathered copies of p; when a block raises, the entries already updated
    must still reach the model's arrays, or a retried step would apply their m and v twice.
    So: after the error, a parameter entry has moved exactly where its m has (every gradient
    entry is nonzero, so every updated m is too)."""
    threads(1)                                                  # the blocks in order, on this thread
    r = np.random.default_rng(3)
    params = {f"p{i}": r.standard_normal(n) for i, n in enumerate([7, 40, 90])}       # all in one pack
    before = {k: v.copy() for k, v in params.items()}
    grads = {k: r.uniform(0.5, 1.0, v.shape) * r.choice([-1, 1], v.shape) for k, v in params.items()}
    opt = OPTIMIZERS[kind](params, lr=0.01, weight_decay=0.1)
    calls, adam = [], Adam._adam

    def third_block_raises(*a):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("interrupted")
        return adam(*a)
    monkeypatch.setattr(Adam, "_adam", third_block_raises)
    with pytest.raises(RuntimeError, match="interrupted"):
        opt.step(grads)
    moved = {k: params[k] != before[k] for k in params}
    has_m = {k: opt.state_dict()["exp_avg"][k] != 0 for k in params}
    assert any(m.any() for m in has_m.values()) and not all(m.all() for m in has_m.values())   # cut midway
    for k in params:
        np.testing.assert_array_equal(moved[k], has_m[k], err_msg=k)


@given(data=st.data(), dtype=S.DTYPES)
def test_clip_grad_norm_matches_torch(data, dtype):
    r = S.rng(data)
    grads, _ = draw_model(data, r, dtype, S.scale(data))
    norm = math.sqrt(sum(float(np.sum(g.astype(np.float64) ** 2)) for g in grads.values()))
    # Below (0.01, 0.5), at (1.0: clipped, by the 1e-6) and above the norm (2, 100: untouched).
    factor = data.draw(st.sampled_from([0.01, 0.5, 1.0, 2.0, 100.0]), label="max_norm / norm")
    max_norm = factor * norm
    before = {k: g.copy() for k, g in grads.items()}
    arrays = dict(grads)
    tensors = {k: torch.nn.Parameter(torch.tensor(g)) for k, g in grads.items()}
    for k, p in tensors.items():
        p.grad = torch.tensor(before[k])

    ours = clip_grad_norm(grads, max_norm)
    theirs = T.clip_grad_norm(tensors.values(), max_norm)

    tol = parity_tol(dtype)
    assert type(ours) is float
    assert abs(ours - theirs) <= tol * theirs, f"norm {ours} != torch {theirs}"
    assert abs(ours - norm) <= tol * norm, f"norm {ours} != {norm} (float64, by the test)"
    compare("clip_grad_norm", "grads", grads, {k: p.grad.numpy() for k, p in tensors.items()}, tol)
    for k, g in grads.items():
        assert g is arrays[k] and g.dtype == dtype
        if factor > 1:
            assert np.array_equal(g, before[k]), f"{k} changed though the norm was below max_norm"
    if factor < 1:
        # The new norm is max_norm * norm / (norm + 1e-6): a hair below max_norm.
        clipped = math.sqrt(sum(float(np.sum(g.astype(np.float64) ** 2)) for g in grads.values()))
        target = max_norm * norm / (norm + 1e-6)
        assert abs(clipped - target) <= 10 * tol * target, f"clipped norm {clipped} != {target}"


@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
def test_clip_grad_norm_leaves_gradients_alone_when_the_norm_is_not_finite(bad):
    # An overflow upstream: the norm is returned as it is and the gradients are untouched (torch
    # would scale them by 0 for an inf norm, turning inf entries into NaN, and by NaN for a NaN).
    grads = {"a": np.array([[3.0, bad], [1.0, -2.0]], np.float32), "b": np.array([0.5, 4.0], np.float32)}
    before = {k: g.copy() for k, g in grads.items()}
    with np.errstate(over="ignore", invalid="ignore"):
        norm = clip_grad_norm(grads, 1.0)
    assert np.isnan(norm) if np.isnan(bad) else norm == np.inf
    for k in grads:
        np.testing.assert_array_equal(grads[k], before[k], err_msg=k)       # NaN where NaN was, bit for bit


def test_state_dict_is_a_snapshot_unless_asked_for_the_buffers_themselves():
    params = {"w": np.ones((2, 3)), "b": np.zeros(3)}
    opt = AdamW(params, lr=0.1)
    opt.step({k: np.full_like(v, 0.5) for k, v in params.items()})
    snapshot, live = opt.state_dict(), opt.state_dict(copy=False)
    for buf in ("exp_avg", "exp_avg_sq"):
        for k in params:
            assert live[buf][k] is getattr(opt, buf)[k]
            assert not np.shares_memory(snapshot[buf][k], getattr(opt, buf)[k])
            np.testing.assert_array_equal(snapshot[buf][k], live[buf][k])
    t_params = {k: torch.nn.Parameter(torch.tensor(v)) for k, v in params.items()}
    t_opt = torch.optim.AdamW(t_params.values(), lr=0.1)
    for p in t_params.values():
        p.grad = torch.full_like(p, 0.5)
    t_opt.step()
    t_live, t_snapshot = T.state_by_name(t_opt, t_params, copy=False), T.state_by_name(t_opt, t_params)
    for k, p in t_params.items():
        state = t_opt.state[p]["exp_avg"].numpy()
        assert np.shares_memory(t_live["exp_avg"][k], state) and not np.shares_memory(t_snapshot["exp_avg"][k], state)


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_clip_grad_norm_takes_a_norm_it_is_given(dtype):
    # The Trainer hands over the norm it summed in float64; clip_grad_norm must use that one
    # (here 10 for gradients whose own norm is 5) and return it in the gradients' dtype.
    grads = {"a": np.array([[3.0, 0.0]], dtype), "b": np.array([4.0], dtype)}     # norm 5
    assert clip_grad_norm(grads, 1.0, norm=10.0) == float(dtype(10.0))
    coef = dtype(1.0) / (dtype(10.0) + dtype(1e-6))
    np.testing.assert_array_equal(grads["a"], np.array([[dtype(3.0) * coef, 0.0]], dtype))
    np.testing.assert_array_equal(grads["b"], np.array([dtype(4.0) * coef], dtype))
    before = {k: g.copy() for k, g in grads.items()}
    assert clip_grad_norm(grads, 1.0, norm=1e300) == (np.inf if dtype == np.float32 else 1e300)
    if dtype == np.float32:                                  # past float32's range: inf, grads untouched
        assert all(np.array_equal(grads[k], before[k]) for k in grads)


@pytest.mark.filterwarnings("error")
@given(data=st.data())
def test_schedule_matches_torch_schedulers(data):
    W = data.draw(st.integers(0, 10), label="warmup_steps")
    M = data.draw(st.integers(W, W + 40), label="max_steps")
    max_lr = data.draw(st.sampled_from([6e-4, 1e-3, 0.1, 1.0]), label="max_lr")
    min_lr = max_lr * data.draw(st.sampled_from([0.0, 0.1, 1.0]), label="min_lr / max_lr")
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=max_lr)
    scheduler = T.make_scheduler(opt, W, M, min_lr)
    for step in range(M + 4):
        ours, theirs = cosine_lr(step, max_lr, W, M, min_lr), opt.param_groups[0]["lr"]
        assert abs(ours - theirs) <= parity_tol(np.float64) * max_lr, f"step {step}: {ours} != torch {theirs}"
        opt.step()
        scheduler.step()


def test_schedule_boundaries():
    # Values chosen to be exact in binary: max 0.5, min 0.125, W = 3, M = 11.
    lr = [cosine_lr(s, 0.5, 3, 11, 0.125) for s in range(20)]
    assert lr[:4] == [0.125, 0.25, 0.375, 0.5]                 # max_lr (s + 1) / (W + 1), then max_lr at W
    assert lr[7] == pytest.approx(0.3125, abs=1e-16)           # half-way between max and min at (W + M) / 2
    assert lr[11:] == [0.125] * 9                              # min_lr from M on
    assert all(a >= b for a, b in zip(lr[3:], lr[4:]))         # never rises after warmup
    assert cosine_lr(0, 0.5, 0, 11, 0.125) == 0.5              # no warmup: start at max_lr
    assert cosine_lr(3, 0.5, 3, 3, 0.125) == 0.125             # no decay: straight to min_lr
    for bad in [(-1, 0.5, 3, 11), (0, 0.5, -1, 11), (0, 0.5, 5, 4)]:
        with pytest.raises(ValueError):
            cosine_lr(*bad)


@given(data=st.data())
def test_decay_mask_selects_the_linear_weights(data):
    r = S.rng(data)
    params, decayed = draw_model(data, r, np.float32)
    mask = decay_mask(params)
    assert {k for k, v in mask.items() if v} == decayed
    assert AdamW(params).decay == mask
    # torch's groups hold the same tensors: the decayed ones with weight decay, the rest without.
    tensors = {k: torch.nn.Parameter(torch.tensor(v)) for k, v in params.items()}
    opt = T.make_optimizer("adamw", tensors, 1e-3, weight_decay=0.1)
    in_group = {id(p): g["weight_decay"] for g in opt.param_groups for p in g["params"]}
    assert {k for k, p in tensors.items() if in_group[id(p)] == 0.1} == decayed
    assert {k for k, p in tensors.items() if in_group[id(p)] == 0.0} == params.keys() - decayed


def test_decay_rule_by_name():
    assert is_decayed("h.0.attn.c_attn.weight", 2) and is_decayed("lm_head.weight", 2)
    assert is_decayed("transformer.h.3.mlp.c_fc.weight", 2)
    assert not is_decayed("h.0.attn.c_attn.bias", 1)
    assert not is_decayed("h.0.ln_1.weight", 1) and not is_decayed("ln_f.weight", 1)
    assert not is_decayed("wte.weight", 2) and not is_decayed("transformer.wpe.weight", 2)
    assert not is_decayed("h.0.attn.bias", 4)                  # a 4-D buffer-like name that is not a weight
    params = {"wte.weight": np.zeros((3, 2)), "h.0.mlp.c_fc.weight": np.zeros((2, 8)),
              "h.0.mlp.c_fc.bias": np.zeros(8)}
    assert AdamW(params, no_decay=["h.0.mlp.c_fc.weight"]).decay == {
        "wte.weight": True, "h.0.mlp.c_fc.weight": False, "h.0.mlp.c_fc.bias": True}
    with pytest.raises(KeyError):
        AdamW(params, no_decay=["nope"])


@given(data=st.data())
def test_adamw_with_zero_gradients_only_shrinks_decayed_weights(data):
    # g = 0 keeps m = v = 0, so the Adam step is 0 / (0 + eps) = 0 and only the decay acts:
    # a decayed p becomes p (1 - lr wd)^n, every other p stays exactly as it was.
    r = S.rng(data)
    params, decayed = draw_model(data, r, np.float64)
    before = {k: v.copy() for k, v in params.items()}
    lr, wd, n = 0.1, 0.5, data.draw(st.integers(1, 10), label="steps")
    opt = AdamW(params, lr=lr, weight_decay=wd)
    for _ in range(n):
        opt.step({k: np.zeros_like(v) for k, v in params.items()})
    for k, p in params.items():
        if k in decayed:
            assert_close("adamw", "decay only", p, before[k] * (1 - lr * wd) ** n, parity_tol(np.float64),
                         oracle="closed form")
        else:
            assert np.array_equal(p, before[k]), f"{k} must not decay"


@given(data=st.data(), dtype=S.DTYPES)
def test_first_adam_step_moves_every_weight_by_lr(data, dtype):
    # At t = 1 the bias corrections make mhat = g and vhat = g**2 exactly, so the step is
    # lr * g / (|g| + eps) = lr * sign(g) up to eps / |g|: the size of the gradient drops out.
    r = S.rng(data)
    params, _ = draw_model(data, r, dtype)
    before = {k: v.astype(np.float64) for k, v in params.items()}
    grads = {k: S.normal(r, v.shape, dtype, S.scale(data)) for k, v in params.items()}
    lr = 0.01
    Adam(params, lr=lr, eps=1e-8).step(grads)
    for k, p in params.items():
        g = grads[k].astype(np.float64)
        expected = (before[k] - lr * g / (np.abs(g) + 1e-8)).astype(dtype)
        assert_close("adam", "first step", p, expected, parity_tol(dtype), oracle="closed form")


def test_sgd_momentum_by_hand():
    # g = 1 each step, mu = 0.5, dampening = 0.25, lr = 0.5 (exact in binary):
    # b1 = g = 1 (the first buffer is undamped);  b2 = 0.5 * 1 + 0.75 * 1 = 1.25
    # p: 0 -> -0.5 -> -0.5 - 0.5 * 1.25 = -1.125
    p = {"w.weight": np.zeros((1, 1))}
    opt = SGD(p, lr=0.5, momentum=0.5, dampening=0.25)
    opt.step({"w.weight": np.ones((1, 1))})
    assert p["w.weight"][0, 0] == -0.5
    opt.step({"w.weight": np.ones((1, 1))})
    assert p["w.weight"][0, 0] == -1.125


def test_rejects_bad_arguments_as_torch_does():
    p = {"w.weight": np.zeros((2, 2))}
    for make in (lambda: SGD(p, lr=0.1, nesterov=True),                     # Nesterov needs momentum
                 lambda: SGD(p, lr=0.1, momentum=0.9, dampening=0.1, nesterov=True),
                 lambda: SGD(p, lr=-1.0), lambda: Adam(p, betas=(1.0, 0.999)),
                 lambda: AdamW(p, eps=-1.0)):
        with pytest.raises(ValueError):
            make()
    t = {"w.weight": torch.nn.Parameter(torch.zeros(2, 2))}
    with pytest.raises(ValueError):
        T.make_optimizer("sgd", t, 0.1, nesterov=True)
    w = np.zeros((2, 2))
    with pytest.raises(ValueError):                           # tied weights must be one key
        AdamW({"wte.weight": w, "lm_head.weight": w})
    opt = SGD(p, lr=0.1)
    with pytest.raises(KeyError):
        opt.step({})
    with pytest.raises(ValueError):
        opt.step({"w.weight": np.zeros((2, 2), np.float32)})  # a float64 parameter, a float32 grad


@pytest.mark.parametrize("dtype", S.DTYPE_LIST)
def test_fused_torch_adamw_the_benchmarks_use_takes_numpy_gpts_steps(dtype):
    # benchmarks time torch with make_optimizer(..., fused=True); it must be the same update,
    # equal to numpy_gpt's AdamW to rounding, over steps with random gradients.
    r = np.random.default_rng(5)
    params = {"h.0.mlp.c_fc.weight": r.standard_normal((6, 8)).astype(dtype),
              "h.0.mlp.c_fc.bias": r.standard_normal(8).astype(dtype),
              "wte.weight": r.standard_normal((5, 6)).astype(dtype)}
    tensors = {k: torch.nn.Parameter(torch.tensor(v)) for k, v in params.items()}
    ours = AdamW({k: v.copy() for k, v in params.items()}, lr=0.01, weight_decay=0.1)
    fused = T.make_optimizer("adamw", tensors, 0.01, fused=True, weight_decay=0.1)
    assert all(g["fused"] for g in fused.param_groups)
    for _ in range(5):
        grads = {k: r.standard_normal(v.shape).astype(dtype) for k, v in params.items()}
        ours.step(grads)
        for k, p in tensors.items():
            p.grad = torch.tensor(grads[k])
        fused.step()
    for k, p in tensors.items():
        assert_close("adamw fused", k, ours.params[k], p.detach().numpy(), parity_tol(dtype))
    with pytest.raises(ValueError, match="fused=True is for adam and adamw, not 'sgd'"):
        T.make_optimizer("sgd", tensors, 0.1, fused=True)


@pytest.mark.parametrize("kind", ["adam", "adamw"])
def test_adam_blocks_shared_among_threads_update_as_on_one_thread(kind, threads, monkeypatch):
    """Adam's update is elementwise, so its blocks may go to any thread: bit for bit the same
    steps on 2 threads as on 1. An update of fewer than SHARE_MIN_BYTES stays on the calling
    thread (conftest sets it to 0 and the blocks to 256 bytes, so this model's is shared)."""
    import threading
    r = np.random.default_rng(7)
    init = {"h.0.mlp.c_fc.weight": r.standard_normal((24, 96)), "h.0.mlp.c_fc.bias": r.standard_normal(96),
            "wte.weight": r.standard_normal((40, 24))}
    grads_seq = [{k: r.standard_normal(v.shape) for k, v in init.items()} for _ in range(3)]
    where = set()
    adam = Adam._adam
    monkeypatch.setattr(Adam, "_adam", lambda *a: where.add(threading.get_ident()) or adam(*a))

    def run(n, share_min_bytes=0):
        threads(n)
        where.clear()
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(optim, "SHARE_MIN_BYTES", share_min_bytes)
            params = {k: v.copy() for k, v in init.items()}
            opt = OPTIMIZERS[kind](params, lr=0.01, weight_decay=0.1)
            for grads in grads_seq:
                opt.step(grads)
        return params, opt.state_dict(), len(where)

    one, one_state, _ = run(1)
    two, two_state, used = run(2)
    assert used == 2
    for k in init:
        assert np.array_equal(one[k], two[k]), k
        assert all(np.array_equal(one_state[b][k], two_state[b][k]) for b in ("exp_avg", "exp_avg_sq")), k
    *_, used = run(2, share_min_bytes=1 << 20)
    assert used == 1
