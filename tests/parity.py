"""Helpers that check a numpy_gpt forward/backward pair against two oracles.

- against_torch: the same computation in torch_gpt, differentiated by torch
  autograd with the same random upstream gradient.
- against_finite_differences: central differences in float64, no torch at all.

Both record the worst error seen per (layer, tensor, dtype, oracle) in WORST, with
the limit it was held to, which conftest.py prints as a table at the end of the run.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from numpy_gpt.gradcheck import check_backward, gradient_problem, rel_error
from tests import tolerances

# (layer, tensor, dtype, oracle) -> (error, limit) of the draw closest to its limit (the largest
# error where there is no limit: "torch vs float64 truth" is torch's own error, for comparison).
WORST: dict[tuple[str, str, str, str], tuple[float, float | None]] = {}


def record(layer: str, tensor: str, dtype, oracle: str, err: float, limit: float | None = None) -> None:
    """Keep err if it is the closest yet to its limit (the largest yet, without a limit)."""
    key = (layer, tensor, np.dtype(dtype).name, oracle)
    def share(e, lim):
        return e / lim if lim else e
    if key not in WORST or share(err, limit) > share(*WORST[key]):
        WORST[key] = (err, limit)


def assert_close(layer: str, tensor: str, actual: np.ndarray, expected: np.ndarray,
                 tol: float, oracle: str = "torch", truth: np.ndarray | None = None,
                 floor: float = 0.0) -> None:
    """Assert rel_error(actual, expected) <= tol with a message that locates the worst entry.

    truth: the same tensor computed by the oracle in float64. When given, a miss
    of tol is forgiven if actual is as close to the truth as expected is, and within
    tolerances.TRUTH_CAP of it (see tolerances.AS_ACCURATE_AS_TORCH). floor: see
    tolerances.SCALE_FLOOR.
    """
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"{layer} {tensor}: shape {actual.shape} != {expected.shape}"
    assert np.isfinite(actual).all() == np.isfinite(expected).all(), (
        f"{layer} {tensor}: non-finite values differ")
    err = rel_error(actual, expected, floor)
    if err > tol and truth is not None:
        ours, theirs = rel_error(actual, truth, floor), rel_error(expected, truth, floor)
        if ours <= tolerances.AS_ACCURATE_AS_TORCH * theirs and ours <= tolerances.TRUTH_CAP:
            record(layer, tensor, expected.dtype, "float64 truth", ours,
                   min(tolerances.AS_ACCURATE_AS_TORCH * theirs, tolerances.TRUTH_CAP))
            record(layer, tensor, expected.dtype, "torch vs float64 truth", theirs)
            return
        err = max(err, ours)
    record(layer, tensor, expected.dtype, oracle, err, tol)
    if not err <= tol:
        diff = np.abs(actual.astype(np.float64) - expected.astype(np.float64))
        where = np.unravel_index(int(np.nanargmax(diff)), diff.shape) if diff.size else ()
        raise AssertionError(
            f"{layer} {tensor} vs {oracle}: rel error {err:.3e} > tol {tol:.0e}; "
            f"worst at {tuple(int(i) for i in where)}: numpy {actual[where]!r} vs {oracle} {expected[where]!r}")


def _as_tuple(grads) -> tuple:
    return grads if isinstance(grads, tuple) else (grads,)


def against_torch(layer: str, np_forward: Callable, np_backward: Callable, torch_forward: Callable,
                  args: dict[str, object], wrt: Sequence[str], rng: np.random.Generator,
                  kwargs: dict | None = None, dout: np.ndarray | None = None,
                  inputs_in_scale: bool = True, out_in_grad_scale: bool = True) -> dict[str, np.ndarray]:
    """Run both sides on the same inputs and a random upstream gradient; compare everything.

    args: every positional argument of the forward, by name, in order (arrays or other values).
    wrt: the names of the differentiable ones, in the order np_backward returns their gradients.
    inputs_in_scale=False leaves the inputs out of the problem's scale (tolerances.SCALE_FLOOR),
    a stricter check for where their size says nothing of the results' (softmax of logits
    around 1e3 gives weights of at most 1). out_in_grad_scale=False judges the gradients at
    their own scale and the upstream gradient's, without the output's: a cross-entropy loss near
    1e4 (logits of 1e4) says nothing of its gradient, softmax - onehot, whose entries are at most 1.
    Returns numpy_gpt's gradients by name.
    """
    kwargs = kwargs or {}
    dtype = next(a.dtype for a in args.values() if isinstance(a, np.ndarray) and a.dtype.kind == "f")
    tol = tolerances.parity_tol(dtype)
    before = {k: v.copy() for k, v in args.items() if isinstance(v, np.ndarray)}

    out, cache = np_forward(*args.values(), **kwargs)
    if dout is None:
        dout = rng.standard_normal(np.shape(out)).astype(dtype)
    grads = _named_grads(layer, wrt, _as_tuple(np_backward(dout, cache)), args)

    for k, v in before.items():
        assert np.array_equal(args[k], v, equal_nan=True), f"{layer}: the forward or backward modified {k}"
    assert np.asarray(out).dtype == dtype, f"{layer}: output dtype {np.asarray(out).dtype} != {dtype}"
    for k, g in grads.items():
        assert g.dtype == dtype, f"{layer}: d{k} dtype {g.dtype} != {dtype}"

    t_out, t_grads = _torch_run(torch_forward, args, wrt, dout, kwargs, dtype)
    truth_out, truth_grads = (_torch_run(torch_forward, args, wrt, dout, kwargs, np.float64)
                              if dtype != np.float64 else (None, {}))

    scale_of = [t_out, *t_grads.values(), np.asarray(dout),
                *(v for v in args.values() if inputs_in_scale and isinstance(v, np.ndarray) and v.dtype.kind == "f")]
    def floor_of(tensors):
        return tolerances.scale_floor(dtype) * max(np.abs(np.asarray(t, np.float64)).max(initial=0.0) for t in tensors)
    floor = floor_of(scale_of)
    grad_floor = floor if out_in_grad_scale else floor_of(scale_of[1:])
    assert_close(layer, "out", out, t_out, tol, truth=truth_out, floor=floor)
    for k in wrt:
        assert_close(layer, f"d{k}", grads[k], t_grads[k], tol, truth=truth_grads.get(k), floor=grad_floor)
    return grads


def _named_grads(layer: str, wrt: Sequence[str], grads: tuple, args: dict[str, object]) -> dict[str, np.ndarray]:
    """The backward's gradients by name: exactly one per name in wrt, each shaped like its input
    (zip would drop extra ones, and a missing one would surface as a bare KeyError)."""
    problem = gradient_problem(grads, [f"d{k}" for k in wrt], wrt, [np.shape(args[k]) for k in wrt])
    assert problem is None, f"{layer}: backward {problem}"
    return dict(zip(wrt, grads))


def _torch_run(torch_forward, args, wrt, dout, kwargs, dtype):
    """torch_forward on args cast to dtype, backward with dout; returns out and grads as numpy."""
    def leaf(k, v):
        if not isinstance(v, np.ndarray):
            return v
        if v.dtype.kind == "f":
            v = v.astype(dtype)
        return torch.tensor(v, requires_grad=k in wrt)
    t_args = {k: leaf(k, v) for k, v in args.items()}
    t_out = torch_forward(*t_args.values(), **kwargs)
    (t_out * torch.from_numpy(np.asarray(dout, dtype=dtype))).sum().backward()
    grads = {k: (np.zeros(args[k].shape, dtype) if t_args[k].grad is None else t_args[k].grad.numpy())
             for k in wrt}
    return t_out.detach().numpy(), grads


def against_finite_differences(layer: str, np_forward: Callable, np_backward: Callable,
                               args: dict[str, object], wrt: Sequence[str],
                               rng: np.random.Generator, kwargs: dict | None = None) -> None:
    """Check np_backward against central differences of np_forward, in float64."""
    names = list(args)
    out, _ = np_forward(*args.values(), **(kwargs or {}))
    dout = rng.standard_normal(np.shape(out))
    results = check_backward(np_forward, np_backward, list(args.values()),
                             wrt=[names.index(k) for k in wrt], names=[f"d{k}" for k in wrt],
                             dout=dout, h=tolerances.FD_STEP, steps=tolerances.FD_FALLBACK_STEPS,
                             tol=tolerances.FD, **(kwargs or {}))
    for r in results:
        record(layer, r.name, np.float64, "finite diff", r.rel_error, tolerances.FD)
        assert r.ok(tolerances.FD), (
            f"{layer} {r.name} vs finite differences: rel error {r.rel_error:.3e} > {tolerances.FD:.0e}, "
            f"worst at {r.worst_index} (abs diff {r.max_abs_diff:.3e})")
