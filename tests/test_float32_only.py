"""A float32 model computes in float32 inside every NumPy operation, not just in what it returns.

A float64 scalar or array that meets a float32 array in an in-place operation
(`s *= np.float64(c)`, `np.add(x, y64, out=x)`) leaves every result float32 and every
number within a rounding of what it was: the dtype tests and the parity suite cannot
see it. But NumPy runs that pass in float64, casting each element there and back, up
to 6.5x as slowly (a mutation of this kind survived the sixth mutation review, and the
issue asks for "float32 constants that do not upcast").

Here the parameters are F32Only: an ndarray subclass whose __array_ufunc__ is called
for each ufunc (arithmetic, exp, matmul, reductions) that one of its arrays takes part
in, and which fails on a float64 operand (or dtype=) beside a float32 one. Ufunc
results are F32Only too, so the guard follows everything computed from the parameters. Python floats are NumPy's weak scalars and take the array's
dtype, so `x *= 0.5` passes; so does work done wholly in float64 on purpose (the
sharded loss's sum, the trainer's gradient norms). numpy_gpt's own allocations (np.empty,
np.zeros_like, ...) are made F32Only by handing its modules a `np` whose allocating
functions view their float32 results as F32Only; each test then checks that the
arrays it can reach (cache, logits, gradients, parameters, optimizer state) are
F32Only, so the guard saw the run and not a part of it. Not seen: a float32 array made
from another dtype with .astype (the sinusoidal position table is made in float64)
until it meets a guarded one, and operations that are not ufuncs. gelu_exact is left
out: it computes erf in float64 on purpose.
"""
import importlib
import pkgutil
import types

import numpy as np
import pytest

import numpy_gpt
from numpy_gpt import GPTConfig
from numpy_gpt.optim import SGD, Adam, AdamW, clip_grad_norm
from numpy_gpt.train import TrainConfig, Trainer
from tests.model_strategies import randomized


class F32Only(np.ndarray):
    """An ndarray that fails any ufunc where a float64 operand meets a float32 one."""

    calls: dict = {}                    # "exp.__call__" -> how many ufunc calls the guard saw

    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
        operands = inputs + (out or ())
        dtypes = {a.dtype for a in operands if isinstance(a, (np.ndarray, np.generic))}
        if kwargs.get("dtype") is not None:
            dtypes.add(np.dtype(kwargs["dtype"]))
        if np.dtype(np.float32) in dtypes and any(d.kind in "fc" and d.itemsize >= 8 for d in dtypes):
            raise AssertionError(f"np.{ufunc.__name__}.{method} computes a float32 array in a wider dtype: "
                                 f"operands {[_describe(a) for a in operands]}, dtype={kwargs.get('dtype')}")
        key = f"{ufunc.__name__}.{method}"
        F32Only.calls[key] = F32Only.calls.get(key, 0) + 1
        plain = [a.view(np.ndarray) if isinstance(a, F32Only) else a for a in inputs]
        if out:
            kwargs["out"] = tuple(o.view(np.ndarray) if isinstance(o, F32Only) else o for o in out)
        result = getattr(ufunc, method)(*plain, **kwargs)
        if out:
            return out[0] if len(out) == 1 else out
        return tuple(map(_guard, result)) if isinstance(result, tuple) else _guard(result)


def _describe(a) -> str:
    if isinstance(a, np.ndarray):
        return f"{a.dtype} array {a.shape}"
    return f"{type(a).__name__} {a!r}"


def _guard(a):
    """a viewed as F32Only if it is a float32 array, else a as it is."""
    if isinstance(a, np.ndarray) and a.dtype == np.float32 and not isinstance(a, F32Only):
        return a.view(F32Only)
    return a


ALLOCATING = ("empty", "zeros", "ones", "full", "empty_like", "zeros_like", "ones_like", "full_like",
              "array", "asarray", "ascontiguousarray", "frombuffer", "concatenate", "stack", "where")


class _GuardedNumPy(types.ModuleType):
    """numpy, but its allocating functions return F32Only for float32 results."""

    def __getattr__(self, name):
        f = getattr(np, name)
        if name not in ALLOCATING:
            return f
        return lambda *args, **kwargs: _guard(f(*args, **kwargs))


def _clear_caches():
    """numpy_gpt's caches of arrays: made during a guarded test they would be F32Only, and would
    carry the guard into the tests that run after it."""
    from numpy_gpt import attention, reductions
    reductions.ones.cache_clear()
    attention._MASK_BIAS.clear()


@pytest.fixture
def guarded(monkeypatch, threads):
    """Every numpy_gpt module computes with _GuardedNumPy; returns a function that guards a model."""
    _clear_caches()                                    # so that the guarded run makes its own
    fake = _GuardedNumPy("numpy")
    for info in pkgutil.iter_modules(numpy_gpt.__path__):
        if info.name == "__main__":                    # importing it runs the command line
            continue
        module = importlib.import_module(f"numpy_gpt.{info.name}")
        if getattr(module, "np", None) is np:
            monkeypatch.setattr(module, "np", fake)
    F32Only.calls = {}
    threads(2)

    def guard(model):
        for k in model.params:
            model.params[k] = model.params[k].view(F32Only)
        return model
    yield guard
    _clear_caches()


def unguarded(obj, path="", seen=None) -> list[str]:
    """Paths of the float32 arrays inside obj (dicts, lists, tuples, objects' attributes) that are not F32Only."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return []
    seen.add(id(obj))
    if isinstance(obj, np.ndarray):
        return [f"{path}: {obj.shape}"] if obj.dtype == np.float32 and not isinstance(obj, F32Only) else []
    if isinstance(obj, dict):
        items = obj.items()
    elif isinstance(obj, (tuple, list)):
        items = enumerate(obj)
    elif hasattr(obj, "__dict__") and not isinstance(obj, (type, types.ModuleType, np.random.Generator)):
        items = vars(obj).items()
    else:
        return []
    return [p for k, v in items for p in unguarded(v, f"{path}[{k!r}]", seen)]


def test_the_guard_fails_float64_beside_float32_and_nothing_else():
    a = np.ones(4, np.float32).view(F32Only)
    for wrong in (lambda: a.__imul__(np.float64(0.5)),                    # a *= np.float64(0.5)
                  lambda: np.add(a, np.ones(4), out=a),
                  lambda: a * np.sqrt(np.float64(2.0)),
                  lambda: np.multiply(a, a, dtype=np.float64),
                  lambda: np.add.reduce(a, dtype=np.float64),
                  lambda: np.float64(3.0) - a):
        with pytest.raises(AssertionError, match="in a wider dtype"):
            wrong()
    a *= 0.5                                                              # a Python float: weak, float32
    b = a.astype(np.float64) * np.float64(2.0)                           # float64 on purpose
    assert a.dtype == np.float32 and b.dtype == np.float64
    assert isinstance(np.exp(a), F32Only) and isinstance(a @ a.reshape(4, 1), F32Only)
    assert F32Only.calls["multiply.__call__"] >= 1


@pytest.mark.parametrize("options", [{}, dict(activation="relu", dropout=0.1), dict(norm="post"),
                                     dict(norm="none", mlp=False),
                                     dict(pos_encoding="sinusoidal", bias=False, tie_weights=False)],
                         ids=["gelu", "relu-dropout", "post-LN", "no-norm-no-mlp", "sinusoidal-no-bias-untied"])
@pytest.mark.parametrize("T", [80, 16], ids=["blocked", "short"])
def test_a_float32_training_step_computes_in_float32(guarded, monkeypatch, options, T):
    # T = 80 takes attention's query blocks, T = 16 its reference path; 3 rows make 2 shards.
    from numpy_gpt import block
    monkeypatch.setattr(block, "RECOMPUTE_MIN_BYTES", 0)                # the MLP's recompute path too
    cfg = GPTConfig(vocab_size=11, block_size=T, n_layer=2, n_head=2, n_embd=8, **options)
    model = guarded(randomized(cfg, 5, np.float32))
    r = np.random.default_rng(5)
    idx, targets = r.integers(0, 11, (3, T)), r.integers(0, 11, (3, T))
    targets[0, :3] = -100                                                 # ignored positions
    optimizers = [SGD(model.params, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
                  Adam(model.params, weight_decay=0.01), AdamW(model.params, weight_decay=0.1)]
    for opt in (opt for opt in optimizers for _ in range(2)):          # a second step reads the state
        logits, loss = model.forward(idx, targets)
        assert unguarded((logits, loss, model._cache)) == []
        grads = model.backward()
        assert unguarded(grads) == []
        clip_grad_norm(grads, 1e-3)                                       # small enough to scale them
        opt.step(grads)
        assert unguarded((model.params, opt.__dict__)) == []
    assert {"exp.__call__", "matmul.__call__", "sqrt.__call__"} <= set(F32Only.calls)


def test_one_sequence_with_products_shared_computes_in_float32(guarded):
    # One row on 2 threads: products cut in two and attention's heads shared out (share_products).
    from numpy_gpt import parallel
    cfg = GPTConfig(vocab_size=50, block_size=128, n_layer=1, n_head=4, n_embd=64)
    model = guarded(randomized(cfg, 1, np.float32))
    r = np.random.default_rng(1)
    idx, targets = r.integers(0, 50, (1, 128)), r.integers(0, 50, (1, 128))
    with parallel.share_products(128):
        logits, loss = model.forward(idx, targets)
        assert unguarded((logits, loss, model._cache)) == []
        assert unguarded(model.backward()) == []


@pytest.mark.parametrize("kwargs", [dict(), dict(temperature=0.7, top_k=3), dict(top_p=0.9),
                                    dict(use_cache=False), dict(beam_width=2),
                                    dict(beam_width=2, use_cache=False)],
                         ids=["kv-cache", "top-k", "top-p", "no-cache", "beam", "beam-no-cache"])
def test_float32_generation_computes_in_float32(guarded, kwargs):
    cfg = GPTConfig(vocab_size=11, block_size=16, n_layer=2, n_head=2, n_embd=8)
    model = guarded(randomized(cfg, 3, np.float32))
    out = model.generate(np.array([[1, 2, 3], [4, 4, 4]]), 8, rng=np.random.default_rng(0), **kwargs)
    assert out.shape == (2, 11)
    assert "matmul.__call__" in F32Only.calls


def test_a_float32_trainer_run_computes_in_float32(guarded):
    cfg = GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8, dropout=0.1)
    model = guarded(randomized(cfg, 2, np.float32))
    data = np.random.default_rng(2).integers(0, 11, 400)
    trainer = Trainer(model, data[:300], data[300:],
                      TrainConfig(steps=4, batch_size=3, warmup_steps=1, grad_clip=1e-3, eval_interval=2,
                                  eval_batches=2))
    history = trainer.run()
    assert len(history.loss) == 4
    assert unguarded((model.params, trainer.optimizer.__dict__)) == []
