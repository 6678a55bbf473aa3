"""Cross-entropy over logits with mean reduction and ignore_index, by hand.

Shapes: N = positions (B*T), V = vocabulary size. logits (..., V), targets (...).

Forward, for the M positions whose target is not ignore_index:
    1. logZ_n   = m_n + log(s_n),   s_n = sum_v exp(z_nv - m_n),   m_n = max_v z_nv
    2. loss     = -(1/M) * sum_n ((z_n,y_n - m_n) - log(s_n))
Step 2 subtracts m_n from the target's logit first, not logZ_n as a whole: when the model is
confident, z_n,y_n is m_n or close to it, that difference is exact, and the small loss keeps its
digits. logZ_n itself would round at the scale of m_n (about 1e-6 for logits near 20 in float32,
a relative error of 1e-2 on a loss of 1e-4).

Backward (softmax and cross-entropy fused), given the scalar upstream g:
    2-1. dz_nv = g * (softmax(z_n)_v - [v == y_n]) / M    for kept positions
         dz_nv = 0                                         for ignored ones
Fusing avoids the softmax Jacobian entirely and is exact.
If every target is ignored, M = 0 and the loss is NaN, as in torch.
"""
from __future__ import annotations

import numpy as np

from .parallel import for_row_blocks
from .reductions import row_max, row_sums

IGNORE_INDEX = -100


def cross_entropy_forward(logits: np.ndarray, targets: np.ndarray,
                          ignore_index: int = IGNORE_INDEX) -> tuple[np.ndarray, tuple]:
    """logits: (..., V) float; targets: (...) ints in [0, V) or ignore_index.

    Returns the mean loss (a 0-d array in logits' dtype) and the cache.
    """
    V = logits.shape[-1]
    z = logits.reshape(-1, V)                                   # (N, V)
    y = targets.reshape(-1)                                     # (N,)
    probs = np.empty_like(z)                                    # softmax, kept for backward
    m = np.empty((z.shape[0], 1), dtype=z.dtype)
    log_s = np.empty((z.shape[0], 1), dtype=z.dtype)

    def step_1(lo, hi):                                         # a block of rows at a time
        zb, e = z[lo:hi], probs[lo:hi]
        m[lo:hi] = row_max(zb)
        np.subtract(zb, m[lo:hi], out=e)
        np.exp(e, out=e)
        s = row_sums(e)
        e /= s
        log_s[lo:hi] = np.log(s)                                # 1. logZ = m + log_s, (rows, 1)
    for_row_blocks(step_1, z.shape[0], z[:1].nbytes)
    rows = np.flatnonzero(y != ignore_index)
    n_kept = rows.size
    picked = (z[rows, y[rows]] - m[rows, 0]) - log_s[rows, 0]   # log p of each target
    with np.errstate(invalid="ignore", divide="ignore"):
        loss = -picked.sum() / z.dtype.type(n_kept)             # 2.
    return np.asarray(loss, dtype=logits.dtype), (probs, y, rows, n_kept, logits.shape)


def cross_entropy_backward(dloss, cache: tuple, consume: bool = False) -> np.ndarray:
    """dloss: scalar upstream gradient. Returns dlogits shaped like logits.

    consume=True writes dlogits over the cached probabilities instead of into a new
    (N, V) array, the widest of a language model's step: for a caller that lets go of
    the cache afterwards (the model does). The cache must not be used again."""
    probs, y, rows, n_kept, shape = cache
    if not n_kept:
        return np.zeros(shape, dtype=probs.dtype)
    scale = probs.dtype.type(np.asarray(dloss) / n_kept)
    dz = np.multiply(probs, scale, out=probs if consume else None)   # 2-1. g * softmax / M ...
    dz[rows, y[rows]] -= scale                                  #      ... - g * onehot / M
    if n_kept < len(y):                                         # ignored positions: no gradient
        ignored = np.ones(len(y), dtype=bool)
        ignored[rows] = False
        dz[ignored] = 0.0
    return dz.reshape(shape)
