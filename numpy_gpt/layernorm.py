"""Layer normalization, forward and backward by hand.

Shapes: B = batch, T = time (sequence position), C = channels (n_embd).
Any leading dimensions work; normalization is over the last axis, C.

Forward, for one row x of C numbers (w, b are learned, eps is small):

    1. mu    = mean(x)
    2. xc    = x - mu
    3. var   = mean(xc**2)                 biased, as torch does
    4. rstd  = 1 / sqrt(var + eps)
    5. xhat  = xc * rstd
    6. out   = xhat * w + b

Backward, given g_out = dL/dout (walk the steps in reverse):

    6.  db = sum over rows of g_out        dw = sum over rows of g_out * xhat
        g  = g_out * w                     (= dL/dxhat)
    5-1. dx = rstd * (g - mean(g) - xhat * mean(g * xhat))

The last line folds steps 5 to 1 together. Why it holds: xhat depends on x
directly, through mu and through rstd; the mu path subtracts the row mean
of g, and the rstd path subtracts xhat times the mean of g * xhat. See
docs/layernorm.md for the derivation line by line.

A fact a test can check: dx sums to zero over C (shifting a row by a
constant does not change xhat). dx is also orthogonal to xhat when eps = 0;
with eps > 0 their dot product is rstd * sum(g * xhat) * eps / (var + eps).
"""
from __future__ import annotations

import numpy as np


def layernorm_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray | None,
                      eps: float = 1e-5) -> tuple[np.ndarray, tuple]:
    """Normalize x over its last axis, then scale by w and shift by b.

    x: (..., C); w: (C,); b: (C,) or None (no bias).
    Returns out (..., C) in x's dtype, and the cache for layernorm_backward.
    """
    mu = x.mean(axis=-1, keepdims=True)                         # 1. (..., 1)
    xc = x - mu                                                 # 2. (..., C)
    var = (xc * xc).mean(axis=-1, keepdims=True)                # 3. (..., 1)
    rstd = 1.0 / np.sqrt(var + x.dtype.type(eps))               # 4. (..., 1)
    xhat = xc * rstd                                            # 5. (..., C)
    out = xhat * w                                              # 6. (..., C)
    if b is not None:
        out += b
    cache = (xhat, rstd, w, b is not None)
    return out, cache


def layernorm_backward(dout: np.ndarray, cache: tuple
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Gradients of layernorm_forward.

    dout: (..., C), the upstream gradient dL/dout.
    Returns (dx (..., C), dw (C,), db (C,) or None).
    """
    xhat, rstd, w, has_bias = cache
    C = xhat.shape[-1]
    g_rows = dout.reshape(-1, C)
    # 6. out = xhat * w + b
    db = g_rows.sum(axis=0) if has_bias else None
    dw = (g_rows * xhat.reshape(-1, C)).sum(axis=0)
    g = dout * w                                                # dL/dxhat
    # 5-1. xhat = (x - mean(x)) * rstd(x)
    g_mean = g.mean(axis=-1, keepdims=True)
    gx_mean = (g * xhat).mean(axis=-1, keepdims=True)
    dx = rstd * (g - g_mean - xhat * gx_mean)
    return dx, dw, db
