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

from .reductions import col_sums, row_dots, row_sums

EPS = 1e-5                          # torch.nn.LayerNorm's default, as GPT-2's


def _row_means(a2: np.ndarray) -> np.ndarray:
    """(N, C) -> (N, 1): the mean of each row.

    The sum is a2 @ ones(C) in BLAS (reductions.row_sums), several times faster
    than a.mean(axis=-1) on rows this short; only the order of the additions differs.
    """
    return row_sums(a2) * a2.dtype.type(1.0 / a2.shape[-1])


def layernorm_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray | None,
                      eps: float = EPS) -> tuple[np.ndarray, tuple]:
    """Normalize x over its last axis, then scale by w and shift by b.

    x: (..., C); w: (C,); b: (C,) or None (no bias).
    Returns out (..., C) in x's dtype, and the cache for layernorm_backward.
    """
    C = x.shape[-1]
    x2 = x.reshape(-1, C)                                       # rows of C numbers
    mu = _row_means(x2)                                         # 1. (N, 1)
    xc = x2 - mu                                                # 2. (N, C)
    var = row_dots(xc, xc) * x.dtype.type(1.0 / C)              # 3. (N, 1), mean(xc * xc)
    rstd = 1.0 / np.sqrt(var + x.dtype.type(eps))               # 4. (N, 1)
    xhat = np.multiply(xc, rstd, out=xc)                        # 5. (N, C), in xc's memory
    out = _scale_shift(xhat, w, b)                              # 6. (N, C)
    lead = x.shape[:-1]
    cache = (xhat.reshape(x.shape), rstd.reshape(*lead, 1), w, b is not None)
    return out.reshape(x.shape), cache


def _scale_shift(xhat: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    out = xhat * w                                              # 6. out = xhat * w + b
    if b is not None:
        out += b
    return out


def layernorm_output(cache: tuple, b: np.ndarray | None) -> np.ndarray:
    """layernorm_forward's out again, from its cache and the bias b it was given: step 6
    once more, the very same numbers. The model keeps a linear.Rebuild of this in the next
    layer's cache rather than out itself (numpy_gpt/linear.py, Memory)."""
    xhat, _, w, has_bias = cache
    if (b is not None) != has_bias:
        raise ValueError(f"this layer norm was run {'with' if has_bias else 'without'} a bias; "
                         f"layernorm_output got {'none' if b is None else 'one'}")
    return _scale_shift(xhat, w, b)


def layernorm_backward(dout: np.ndarray, cache: tuple
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Gradients of layernorm_forward.

    dout: (..., C), the upstream gradient dL/dout.
    Returns (dx (..., C), dw (C,), db (C,) or None).
    """
    xhat, rstd, w, has_bias = cache
    C = xhat.shape[-1]
    g_out, xhat = dout.reshape(-1, C), xhat.reshape(-1, C)      # rows of C numbers, as in the forward
    # 6. out = xhat * w + b; column sums are ones(N) @ (N, C) in BLAS
    db = col_sums(g_out) if has_bias else None
    g_out_xhat = g_out * xhat
    dw = col_sums(g_out_xhat)
    g = g_out * w                                               # dL/dxhat
    # 5-1. xhat = (x - mean(x)) * rstd(x)
    g_mean = _row_means(g)                                      # mean(g)
    gx_mean = row_dots(g, xhat) * g.dtype.type(1.0 / C)         # mean(g * xhat)
    # dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), term by term in memory already held:
    # xhat * mean(g * xhat) goes where g_out * xhat was (dw has been taken from it), and dx
    # is built in g's own memory (g is not needed after this line).
    xhat_gx_mean = np.multiply(xhat, gx_mean, out=g_out_xhat)
    dx = np.subtract(g, xhat_gx_mean, out=g)
    dx -= g_mean
    dx *= rstd.reshape(-1, 1)
    return dx.reshape(dout.shape), dw, db
