"""Softmax over the last axis, forward and backward by hand.

Shapes: any (..., K); each row of K numbers becomes a probability vector.

Forward, for one row x:
    1. m   = max(x)                        only for stability: softmax(x - m) = softmax(x)
    2. e   = exp(x - m)                    -inf entries give exactly 0
    3. y   = e / sum(e)

Backward, given g = dL/dy. The Jacobian is dy_i/dx_j = y_i (delta_ij - y_j), so
    3-1. dx = y * (g - sum(g * y))

A row with every entry -inf has no softmax (0/0); the causal mask never makes
one because each position may always attend to itself.
"""
from __future__ import annotations

import numpy as np


def softmax_forward(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x: (..., K). Returns y (..., K), rows summing to 1, and the cache (y itself)."""
    y = x - x.max(axis=-1, keepdims=True)                       # 1.
    np.exp(y, out=y)                                            # 2. in place: one array, not three
    y /= y.sum(axis=-1, keepdims=True)                          # 3.
    return y, y


def softmax_backward(dy: np.ndarray, cache: np.ndarray) -> np.ndarray:
    """dy: (..., K), dL/dy. Returns dx (..., K)."""
    y = cache
    dx = dy - (dy * y).sum(axis=-1, keepdims=True)              # 3-1. dx = y * (dy - sum(dy * y))
    dx *= y
    return dx
