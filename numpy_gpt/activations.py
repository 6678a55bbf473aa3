"""Elementwise activations, forward and backward by hand.

Each forward returns (out, cache); each backward takes (dout, cache) and
returns dx = dout * f'(x), the local derivative written beside it.

ReLU:        f(x) = max(x, 0)                         f'(x) = 1 if x > 0 else 0
GELU (exact, erf):
             f(x) = x * Phi(x),  Phi(x) = (1 + erf(x / sqrt 2)) / 2
             f'(x) = Phi(x) + x * phi(x),  phi(x) = exp(-x^2 / 2) / sqrt(2 pi)
GELU (tanh approximation, GPT-2's "gelu_new"):
             u = sqrt(2/pi) * (x + 0.044715 x^3),  f(x) = x * (1 + tanh u) / 2
             f'(x) = (1 + tanh u) / 2 + x/2 * (1 - tanh^2 u) * sqrt(2/pi) * (1 + 3 * 0.044715 x^2)

(Hendrycks and Gimpel, "Gaussian Error Linear Units", 2016.)
NumPy has no vectorized erf, so gelu_exact applies Python's math.erf element
by element in float64: exact, but slower than the tanh form GPT-2 uses.
"""
from __future__ import annotations

import math

import numpy as np

_erf = np.frompyfunc(math.erf, 1, 1)
_GELU_C = math.sqrt(2.0 / math.pi)
_GELU_K = 0.044715


def relu_forward(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    positive = x > 0
    return x * positive, positive


def relu_backward(dout: np.ndarray, cache: np.ndarray) -> np.ndarray:
    positive = cache
    return dout * positive


def gelu_exact_forward(x: np.ndarray) -> tuple[np.ndarray, tuple]:
    x64 = x.astype(np.float64)
    cdf = 0.5 * (1.0 + _erf(x64 / math.sqrt(2.0)).astype(np.float64))  # Phi(x)
    return (x64 * cdf).astype(x.dtype), (x64, cdf)


def gelu_exact_backward(dout: np.ndarray, cache: tuple) -> np.ndarray:
    x64, cdf = cache
    pdf = np.exp(-0.5 * x64 * x64) / math.sqrt(2.0 * math.pi)        # phi(x)
    return (dout * (cdf + x64 * pdf)).astype(dout.dtype)


def gelu_forward(x: np.ndarray) -> tuple[np.ndarray, tuple]:
    """The tanh approximation, computed in x's dtype."""
    c, k = x.dtype.type(_GELU_C), x.dtype.type(_GELU_K)
    t = np.tanh(c * (x + k * x * x * x))
    return 0.5 * x * (1.0 + t), (x, t)


def gelu_backward(dout: np.ndarray, cache: tuple) -> np.ndarray:
    x, t = cache
    c, k = x.dtype.type(_GELU_C), x.dtype.type(_GELU_K)
    du_dx = c * (1.0 + 3.0 * k * x * x)
    return dout * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du_dx)


ACTIVATIONS = {
    "relu": (relu_forward, relu_backward),
    "gelu": (gelu_forward, gelu_backward),
    "gelu_exact": (gelu_exact_forward, gelu_exact_backward),
}
