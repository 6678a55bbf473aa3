"""`numpy-gpt parity`: numpy_gpt against torch_gpt (autograd) on one batch, tensor by tensor.

Both models get the same parameters, the same batch and, with dropout, the same masks.
numpy_gpt's intermediate activations come from numpy_gpt.parity_report.numpy_activations
(the layer functions called in the model's order); torch_gpt's from forward hooks on its
modules (h.{i}, h.{i}.ln_1, .attn, .ln_2, .mlp, ln_f) and a pre-hook on h.0 for the
embeddings. Then every parameter's gradient, by name. The thresholds are the test suite's
(numpy_gpt.parity_report.PARITY_TOL, a copy of tests/tolerances.py MODEL_PARITY).
"""
from __future__ import annotations

import numpy as np
import torch

from numpy_gpt.config import GPTConfig
from numpy_gpt.model import GPT as NumpyGPT
from numpy_gpt.parallel import batch_shards
from numpy_gpt.parity_report import (FREE, PARITY_TOL, SCALE_FLOOR, TRAJECTORY_TOL, Row, StepRow, compare,
                                     numpy_activations, step_row)
from numpy_gpt.train import TrainConfig, Trainer as NumpyTrainer

from .model import GPT, from_numpy
from .train import Trainer

_TORCH = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}


def torch_run(cfg: GPTConfig, params: dict[str, np.ndarray], idx: np.ndarray, targets: np.ndarray,
              masks: dict[str, np.ndarray] | None = None) -> tuple[dict, dict]:
    """torch_gpt's activations (by numpy_activations' names) and gradients (by parameter name)."""
    dtype = _TORCH[np.dtype(next(iter(params.values())).dtype)]
    model = GPT(cfg).to(dtype)
    model.load_state_dict(from_numpy(params))
    model.train(bool(masks))
    acts: dict[str, np.ndarray] = {}

    def keep(name):
        def hook(module, inputs, output):
            acts[name] = output.detach().numpy().copy()
        return hook

    handles = [model.h[0].register_forward_pre_hook(
        lambda module, inputs: acts.__setitem__("emb", inputs[0].detach().numpy().copy()))]
    for i, block in enumerate(model.h):
        for sub in ("ln_1", "attn", "ln_2", "mlp"):
            if hasattr(block, sub):
                handles.append(getattr(block, sub).register_forward_hook(keep(f"h.{i}.{sub}")))
        handles.append(block.register_forward_hook(keep(f"h.{i}")))
    if hasattr(model, "ln_f"):
        handles.append(model.ln_f.register_forward_hook(keep("ln_f")))
    try:
        t_masks = {k: torch.from_numpy(np.asarray(v)) for k, v in (masks or {}).items()}
        logits, loss = model(torch.from_numpy(idx), torch.from_numpy(targets), masks=t_masks)
        loss.backward()
    finally:
        for h in handles:
            h.remove()
    acts["logits"] = logits.detach().numpy()
    acts["loss"] = loss.detach().numpy()
    grads = {k: (p.grad.numpy() if p.grad is not None else np.zeros(tuple(p.shape), p.detach().numpy().dtype))
             for k, p in model.named_parameters()}
    return acts, grads


def run_parity(cfg: GPTConfig, params: dict[str, np.ndarray], batch_size: int = 2, seq_len: int | None = None,
               seed: int = 0) -> tuple[list[Row], dict]:
    """Rows for every activation and every gradient, and what was run (for the report's header).

    params: numpy arrays in the dtype to compare in (float64 or float32).
    """
    dtype = np.dtype(next(iter(params.values())).dtype)
    tol = PARITY_TOL[dtype]
    T = cfg.block_size if seq_len is None else seq_len
    rng = np.random.default_rng(seed)
    model = NumpyGPT(cfg, seed=seed, dtype=dtype, params={k: v.copy() for k, v in params.items()})
    idx = rng.integers(0, cfg.vocab_size, (batch_size, T))
    targets = rng.integers(0, cfg.vocab_size, (batch_size, T))
    model.training = cfg.dropout > 0                     # with dropout, both sides share numpy's masks
    logits, loss = model.forward(idx, targets)
    grads = model.backward()
    masks = dict(model.masks) if model.training else {}
    acts = numpy_activations(model, idx, targets, masks)
    # The trace runs the whole batch at once; model.forward on several threads runs a shard per
    # thread, whose products round differently: then the two agree within rounding, not bitwise.
    trace = [compare(k, "activation", acts[k], v, tol) for k, v in (("logits", logits), ("loss", loss))]
    acts["logits"], acts["loss"] = logits, loss          # the model's own, whatever the trace says
    t_acts, t_grads = torch_run(cfg, params, idx, targets, masks)

    rows = [compare(name, "activation", a, t_acts.get(name), tol) for name, a in acts.items()]
    floor = SCALE_FLOOR[np.dtype(dtype)] * max(np.abs(g).max(initial=0.0) for g in t_grads.values())
    rows += [compare(name, "gradient", g, t_grads.get(name), tol, floor) for name, g in grads.items()]
    status = {r.status for r in trace}
    info = dict(dtype=dtype.name, tol=tol, batch=(batch_size, T), dropout=bool(masks),
                trace=next(s for s in ("FAIL", "close", "exact") if s in status),
                trace_rel=max(r.rel for r in trace), shards=len(batch_shards(batch_size)))
    return rows, info


def run_trajectory(cfg: GPTConfig, params: dict[str, np.ndarray], tcfg: TrainConfig, data: np.ndarray
                   ) -> tuple[list[StepRow], list[Row], dict]:
    """numpy_gpt's Trainer against torch_gpt's (autograd and torch.optim) for tcfg.steps steps,
    from the same float64 weights on the same batches (drawn from data with tcfg.seed), without
    dropout (each side would draw its own masks). Returns a row per step (losses and gradient
    norms), a row per parameter and per optimizer buffer after the last step, and what was run.
    The tolerance is the test suite's for such runs (tests/test_train.py, TRAJECTORY): each
    step's rounding differences pass through the optimizer into the next step."""
    dtype = np.dtype(next(iter(params.values())).dtype)
    model = NumpyGPT(cfg, dtype=dtype, params={k: v.copy() for k, v in params.items()})
    tmodel = GPT(cfg).to(_TORCH[dtype])
    tmodel.load_state_dict(from_numpy(params))
    ours, theirs = NumpyTrainer(model, data, None, tcfg), Trainer(tmodel, data, None, tcfg)
    h, th = ours.run(progress=False), theirs.run(progress=False)
    tol = TRAJECTORY_TOL
    steps = [step_row(i + 1, *pair, tol) for i, pair in
             enumerate(zip(h.loss, th.loss, h.grad_norm, th.grad_norm))]
    t_params = dict(tmodel.named_parameters())
    rows = [r for k, v in model.params.items()
            for r in _judged(k, "parameter", v, t_params[k].detach().numpy(), tol, cfg.n_embd)]
    for buf in ours.optimizer.buffers:                   # SGD without momentum keeps none
        mine = getattr(ours.optimizer, buf)
        for k in (k for k in model.params if k in mine):
            t_buf = theirs.optimizer.state[t_params[k]].get(buf)
            rows += _judged(f"{buf}.{k}", "optimizer state", mine[k],
                            None if t_buf is None else t_buf.detach().numpy(), tol, cfg.n_embd)
    return steps, rows, dict(dtype=dtype.name, tol=tol, steps=tcfg.steps, batch=(tcfg.batch_size, cfg.block_size))


def _judged(name: str, kind: str, ours, theirs, tol: float, C: int) -> list[Row]:
    """compare()'s row; for an attention's c_attn.bias that fails in its key part alone, a row for
    the query and value parts and one for the key part, marked FREE rather than FAIL.

    The key bias adds the same number to every score of a query's row, which softmax ignores: the
    loss does not depend on it, and its gradient is zero but for rounding. An optimizer can still
    move it by that rounding, differently on each side (Adam's L2 weight decay, from a key bias
    that is not zero, turns each step's rounding into a step of about lr), with no effect on any
    output; the other tensors show whether the runs agree."""
    row = compare(name, kind, ours, theirs, tol)
    if row.status != "FAIL" or not name.endswith("attn.c_attn.bias") or theirs is None or np.shape(ours) != (3 * C,):
        return [row]
    q_v = compare(f"{name}[query, value]", kind, np.concatenate([ours[:C], ours[2 * C:]]),
                  np.concatenate([theirs[:C], theirs[2 * C:]]), tol)
    key = compare(f"{name}[key]", kind, ours[C:2 * C], theirs[C:2 * C], tol)
    if q_v.status == "FAIL":
        return [row]
    key.status = FREE if key.status == "FAIL" else key.status
    return [q_v, key]
