"""Check a hand-written backward against central finite differences.

No torch needed: this is the second, independent oracle. For a forward
f(x1, x2, ...) -> out and an upstream gradient G shaped like out, the
scalar L = sum(out * G) has dL/dxi = backward(G)[i]. Each entry of that is
estimated by nudging one input entry by +-h:

    dL/dx[j] ~= (L(x[j] + h) - L(x[j] - h)) / (2h)     error O(h^2)

Use float64: in float32 the rounding error of L swamps the difference.
Compare with rel_error, the largest absolute difference over the largest
magnitude, so entries that happen to be near zero do not blow it up.

Finite differences have a noise floor of their own: L is computed with a
rounding error of about eps * sum|out * G|, and dividing by 2h magnifies
it. A gradient that is truly tiny (say layer norm over two channels, whose
output hardly depends on x) sits inside that noise, so the error reported
is the part of the difference above NOISE_FACTOR times the noise, over the
gradient's scale.

When the forward itself rounds much worse than eps * |out| (a cancellation
inside it, such as 1 + tanh(u) deep in GELU's tail), no single step is right
for every input; check_backward then tries each step in `steps` and keeps the
best agreement. A correct backward agrees at some step; a wrong one at none.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np


def rel_error(a: np.ndarray, b: np.ndarray, floor: float = 0.0) -> float:
    """max|a - b| / max(max|a|, max|b|, floor), and 0 when a equals b.

    floor keeps a tensor that is truly zero (say dq when a query sees one key)
    from being judged by its rounding noise alone.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = max(np.abs(a).max(initial=0.0), np.abs(b).max(initial=0.0), floor)
    diff = np.abs(a - b).max(initial=0.0)
    return 0.0 if diff == 0.0 else float(diff / max(scale, 1e-300))


def numerical_gradient(f: Callable[[], np.ndarray], x: np.ndarray, dout: np.ndarray,
                       h: float = 1e-6) -> np.ndarray:
    """d sum(f() * dout) / dx by central differences; f reads x, which is nudged in place."""
    grad = np.zeros_like(x, dtype=np.float64)
    flat = x.reshape(-1)                      # a view: writing to it nudges x
    if not np.shares_memory(flat, x):
        raise ValueError("numerical_gradient needs a contiguous x (reshape copied it, so nudges would be lost)")
    for j in range(flat.size):
        old = flat[j]
        flat[j] = old + h
        plus = np.sum(f() * dout, dtype=np.float64)
        flat[j] = old - h
        minus = np.sum(f() * dout, dtype=np.float64)
        flat[j] = old
        grad.reshape(-1)[j] = (plus - minus) / (2.0 * h)
    return grad


NOISE_FACTOR = 100.0


def gradient_problem(grads: Sequence, names: Sequence[str], inputs: Sequence[str],
                     shapes: Sequence[tuple | None]) -> str | None:
    """What is wrong with the gradients a backward returned, or None if nothing is.

    There must be one per name, gradient names[i] of input inputs[i], shaped
    shapes[i]; a shape of None means that input is absent (a layer built without
    a bias), and then its gradient must be None too. A missing or misshapen
    gradient is a wrong backward, not one to compare by broadcasting. Every
    checker here (check_backward, `numpy-gpt check`, the parity tests) asks this.
    """
    if len(grads) != len(names):
        return f"returned {len(grads)} gradient(s); expected {len(names)}, one per input: {', '.join(names)}"
    for name, inp, g, shape in zip(names, inputs, grads, shapes):
        if shape is None:
            if g is not None:
                return f"{name} should be None: {inp} is None here"
        elif g is None:
            return f"{name} is None; expected an array of shape {tuple(shape)}, the shape of {inp}"
        elif np.shape(g) != tuple(shape):
            return f"{name} has shape {np.shape(g)}; expected {tuple(shape)}, the shape of {inp}"
    return None


@dataclass
class GradCheckResult:
    name: str
    rel_error: float        # (max|analytic - numeric| - NOISE_FACTOR * noise)+ / scale
    max_abs_diff: float
    noise: float            # eps * sum|out * dout| / h, the finite differences' own noise
    worst_index: tuple

    def ok(self, tol: float = 1e-6) -> bool:
        return self.rel_error <= tol


def check_backward(forward: Callable, backward: Callable, args: Sequence,
                   wrt: Sequence[int], names: Sequence[str] | None = None,
                   dout: np.ndarray | None = None, h: float = 1e-6,
                   seed: int = 0, steps: Sequence[float] = (1e-4, 1e-5), tol: float = 1e-6,
                   **kwargs) -> list[GradCheckResult]:
    """Compare backward's gradients with finite differences, input by input.

    forward(*args, **kwargs) -> (out, cache); backward(dout, cache) -> the
    gradient of each input listed in wrt (positions in args), in that order,
    as one array or a tuple. Returns one GradCheckResult per input checked.
    Where step h misses tol, each of `steps` is tried too and the best result kept.

    The inputs in wrt must be float64 arrays (TypeError otherwise), and backward
    must return one gradient per input in wrt, each shaped like its input
    (ValueError otherwise): a missing or misshapen gradient is a wrong backward,
    not one to compare by broadcasting.

    Example, a layer-norm backward of your own (x (B, T, C), w and b (C,)):
        results = check_backward(layernorm_forward, my_layernorm_backward, [x, w, b],
                                 wrt=[0, 1, 2], names=["dx", "dw", "db"])
        assert all(r.ok() for r in results), results
    """
    wrt = list(wrt)
    names = list(names) if names is not None else [f"arg{i}" for i in wrt]
    if len(names) != len(wrt):
        raise ValueError(f"names has {len(names)} entries for {len(wrt)} inputs in wrt")
    for name, i in zip(names, wrt):
        a = args[i]
        if not isinstance(a, np.ndarray) or a.dtype != np.float64:
            what = f"a {a.dtype} array" if isinstance(a, np.ndarray) else type(a).__name__
            raise TypeError(f"input {i} ({name}) is {what}; finite differences "
                            f"need float64 arrays (in float32, rounding swamps the difference)")
    for i, a in enumerate(args):
        if isinstance(a, np.ndarray) and a.dtype.kind == "f" and a.dtype != np.float64:
            raise TypeError(f"input {i} is a {a.dtype} array; the forward must run in float64 "
                            f"for finite differences to resolve the gradient")
    args = [np.array(a, copy=True) if isinstance(a, np.ndarray) else a for a in args]
    out, cache = forward(*args, **kwargs)
    if dout is None:
        dout = np.random.default_rng(seed).standard_normal(np.shape(out)).astype(np.float64)
    grads = backward(dout, cache)
    if not isinstance(grads, tuple):
        grads = (grads,)
    problem = gradient_problem(grads, names, [f"input {i}" for i in wrt], [np.shape(args[i]) for i in wrt])
    if problem:
        raise ValueError(f"backward {problem}")
    noise = float(np.finfo(np.float64).eps * np.abs(np.asarray(out) * dout).sum() / h)
    results = []
    for name, i, analytic in zip(names, wrt, grads):
        analytic = np.asarray(analytic, dtype=np.float64)
        best = None
        for step in (h, *steps):
            numeric = numerical_gradient(lambda: forward(*args, **kwargs)[0], args[i], dout, step)
            step_noise = noise * h / step
            diff = np.abs(analytic - numeric)
            max_diff = float(diff.max(initial=0.0))
            scale = max(np.abs(analytic).max(initial=0.0), np.abs(numeric).max(initial=0.0), 1e-300)
            err = float(max(max_diff - NOISE_FACTOR * step_noise, 0.0) / scale)
            worst = np.unravel_index(int(diff.argmax()), diff.shape) if diff.size else ()
            result = GradCheckResult(name, err, max_diff, step_noise, tuple(int(w) for w in worst))
            if best is None or result.rel_error < best.rel_error:
                best = result
            if best.rel_error <= tol:
                break
        results.append(best)
    return results
