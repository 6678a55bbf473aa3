"""Inverted dropout, forward and backward by hand.

Shapes: any. p is the probability of dropping an element.

Forward (training), with a boolean keep-mask m drawn as P(m = 1) = 1 - p:
    1. out = x * m / (1 - p)              scaling keeps E[out] = x
Backward:
    1. dx = g * m / (1 - p)
In evaluation, or when p == 0, dropout is the identity and dx = g.

The mask can be passed in, so a test can hand torch the very same mask.
"""
from __future__ import annotations

import numpy as np


def dropout_mask(shape: tuple, p: float, rng: np.random.Generator) -> np.ndarray:
    """A boolean keep-mask: each element True with probability 1 - p."""
    return rng.random(shape) >= p


def dropout_forward(x: np.ndarray, p: float, mask: np.ndarray | None = None,
                    rng: np.random.Generator | None = None, training: bool = True
                    ) -> tuple[np.ndarray, tuple | None]:
    """x: any shape; 0 <= p < 1; mask: boolean, x's shape, or None to draw one from rng."""
    if not training or p == 0.0:
        return x, None
    if mask is None:
        mask = dropout_mask(x.shape, p, rng if rng is not None else np.random.default_rng())
    scale = x.dtype.type(1.0 / (1.0 - p))
    return x * mask * scale, (mask, scale)                      # 1.


def dropout_backward(dout: np.ndarray, cache: tuple | None) -> np.ndarray:
    if cache is None:
        return dout
    mask, scale = cache
    return dout * mask * scale                                  # 1.
