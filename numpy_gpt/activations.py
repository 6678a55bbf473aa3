"""Elementwise activations, forward and backward by hand.

Each forward returns (out, cache); each backward takes (dout, cache) and
returns dx = dout * f'(x), the local derivative written beside it. A
backward's optional out= is where dx goes: the FFN passes dout itself, so
with ReLU and tanh GELU the hidden layer's gradient takes no second
(B, T, 4C) array (gelu_exact works in float64 and copies its result in).

ReLU:        f(x) = max(x, 0)                         f'(x) = 1 if x > 0 else 0
GELU (exact, erf):
             f(x) = x * Phi(x),  Phi(x) = (1 + erf(x / sqrt 2)) / 2
             f'(x) = Phi(x) + x * phi(x),  phi(x) = exp(-x^2 / 2) / sqrt(2 pi)
GELU (tanh approximation, GPT-2's "gelu_new"):
             u = sqrt(2/pi) * (x + 0.044715 x^3),  f(x) = x * (1 + tanh u) / 2
             f'(x) = (1 + tanh u) / 2 + x/2 * (1 - tanh^2 u) * sqrt(2/pi) * (1 + 3 * 0.044715 x^2)
             or, with s = (1 + tanh u) / 2 = sigmoid(2u),  f(x) = x s  and
             f'(x) = s + 2 x s (1 - s) * sqrt(2/pi) * (1 + 3 * 0.044715 x^2)

(Hendrycks and Gimpel, "Gaussian Error Linear Units", 2016.)
Deep in the negative tail (x < -5) the formula as written computes 1 + tanh(u)
by cancellation, so float64 keeps only ~9 digits there at x = -5 and ~5 at
x = -6, and torch's GELU loses those digits. gelu_forward and gelu_backward
compute the same function and derivative in the sigmoid form, which keeps
full precision there and needs one exp instead of a tanh.
NumPy has no vectorized erf, so gelu_exact applies Python's math.erf element
by element in float64: exact, but slower than the tanh form GPT-2 uses.
"""
from __future__ import annotations

import math

import numpy as np

from .parallel import for_row_blocks

_erf = np.frompyfunc(math.erf, 1, 1)
_GELU_C = math.sqrt(2.0 / math.pi)
_GELU_K = 0.044715


def relu_forward(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.maximum(x, 0), x > 0


def relu_backward(dout: np.ndarray, cache: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    mask = cache                                                # x > 0, from relu_forward
    return np.multiply(dout, mask, out=out)


def gelu_exact_forward(x: np.ndarray) -> tuple[np.ndarray, tuple]:
    x64 = x.astype(np.float64)
    cdf = 0.5 * (1.0 + _erf(x64 / math.sqrt(2.0)).astype(np.float64))  # Phi(x)
    return (x64 * cdf).astype(x.dtype), (x64, cdf)


def gelu_exact_backward(dout: np.ndarray, cache: tuple, out: np.ndarray | None = None) -> np.ndarray:
    x64, cdf = cache
    pdf = np.exp(-0.5 * x64 * x64) / math.sqrt(2.0 * math.pi)        # phi(x)
    dx = (dout * (cdf + x64 * pdf)).astype(dout.dtype)
    if out is None:
        return dx
    out[...] = dx
    return out


def gelu_forward(x: np.ndarray) -> tuple[np.ndarray, tuple]:
    """The tanh approximation, computed in x's dtype: out = x (1 + tanh u) / 2 = x * s.

    s = sigmoid(2u) = (1 + tanh u) / 2 (see _gelu_kernel), cached for the
    backward with x. This runs on the (B, T, 4C) hidden layer, the largest
    activation in the model, so the work is done in place, block by block, on
    a few threads (numpy_gpt.parallel).
    """
    out, s = np.empty_like(x), np.empty_like(x)
    x2, out2, s2 = (a.reshape(-1, x.shape[-1]) for a in (x, out, s))
    for_row_blocks(lambda lo, hi: _gelu_kernel(x2[lo:hi], out2[lo:hi], s2[lo:hi]),
                   x2.shape[0], x2[:1].nbytes)
    return out, (x, s)


def _gelu_kernel(x: np.ndarray, out: np.ndarray, s: np.ndarray) -> None:
    """out = x (1 + tanh u) / 2 and s = (1 + tanh u) / 2, by way of one exp.

    (1 + tanh u) / 2 is the logistic sigmoid of 2u, s = 1 / (1 + exp(-2u)).
    x * s has no cancellation deep in the negative tail, where 1 + tanh u does.
    (Speed does not decide it: NumPy's exp ran about twice as fast as its
    tanh where this was first written; on the Zen 4 host float32 exp took
    0.47 ns per value and tanh 0.37.)
    1 / s is a division, not np.reciprocal: the same correctly rounded
    quotient, and 0.12 against 0.21 ns per float32 on the Zen 4 host.
    """
    f = x.dtype.type                     # s's memory holds the steps to s, and s only at the end:
    np.multiply(x, x, out=s)             # x^2
    s *= f(-2.0 * _GELU_C * _GELU_K)
    s += f(-2.0 * _GELU_C)
    s *= x                               # -2u = -2c (x + k x^3)
    with np.errstate(over="ignore"):     # exp(-2u) = inf for x << 0 gives s = 0: the limit
        np.exp(s, out=s)
    s += f(1.0)
    np.divide(f(1.0), s, out=s)          # s = 1 / (1 + exp(-2u)) = (1 + tanh u) / 2
    np.multiply(x, s, out=out)           # out = x s


def gelu_backward(dout: np.ndarray, cache: tuple, out: np.ndarray | None = None) -> np.ndarray:
    """dx = dout * (s + 2 x s (1 - s) du/dx), blockwise as the forward.

    With s = (1 + t) / 2, t = tanh u, the textbook derivative
        (1 + t) / 2 + x / 2 * (1 - t^2) * du/dx,       du/dx = c (1 + 3k x^2)
    is the same expression, as 1 - t^2 = (1 - t)(1 + t) = 4 s (1 - s). Written
    with s it needs no 1 + t, which loses its digits for x << 0. s (1 - s) is
    taken first: it is exactly 0 far out in both tails, and multiplying it by
    2 du/dx and then by x keeps it 0 there, where x du/dx itself overflows
    (|x| > 1e13 in float32) and 0 times it would be NaN.
    """
    x, s = cache
    dx = np.empty_like(dout) if out is None else out
    C = x.shape[-1]
    x2, s2, g2, dx2 = (a.reshape(-1, C) for a in (x, s, dout, dx))
    for_row_blocks(lambda lo, hi: _gelu_backward_kernel(x2[lo:hi], s2[lo:hi], g2[lo:hi], dx2[lo:hi]),
                   x2.shape[0], x2[:1].nbytes)
    return dx


def _gelu_backward_kernel(x, s, g, dx) -> None:
    """One block of rows; dx may be g itself (the block's factor is made apart, then g times it)."""
    f = x.dtype.type
    two_du_dx = x * x
    two_du_dx *= f(6.0 * _GELU_K * _GELU_C)
    two_du_dx += f(2.0 * _GELU_C)        # 2 du/dx = 2c (1 + 3k x^2)
    fprime = np.subtract(f(1.0), s)      # built up in place into gelu'(x):
    fprime *= s                          # s (1 - s), 0 far out in both tails
    fprime *= two_du_dx
    fprime *= x                          # 2 x s (1 - s) du/dx
    fprime += s                          # gelu'(x) = s + 2 x s (1 - s) du/dx
    np.multiply(fprime, g, out=dx)


def gelu_output(cache: tuple) -> np.ndarray:
    """gelu_forward's out again from its cache (x, s): out = x * s, the very product it made."""
    x, s = cache
    return x * s


ACTIVATIONS = {
    "relu": (relu_forward, relu_backward),
    "gelu": (gelu_forward, gelu_backward),
    "gelu_exact": (gelu_exact_forward, gelu_exact_backward),
}

# Forwards whose out can be had again from their own cache in one pass (ffn_forward's
# rebuild=True), keyed by the forward function itself, so the rebuild always matches the
# cache it reads. ReLU's cache is a mask of bools, which does not give out back; the exact
# GELU's would, but it is float64 and seldom used, so that is left out.
OUTPUTS = {gelu_forward: gelu_output}
