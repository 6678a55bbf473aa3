"""Cross-entropy over logits with mean reduction and ignore_index, by hand.

Shapes: N = positions (B*T), V = vocabulary size. logits (..., V), targets (...).

Forward, for the M positions whose target is not ignore_index:
    1. logZ_n   = m_n + log(sum_v exp(z_nv - m_n)),   m_n = max_v z_nv
    2. loss     = -(1/M) * sum_n (z_n,y_n - logZ_n)

Backward (softmax and cross-entropy fused), given the scalar upstream g:
    2-1. dz_nv = g * (softmax(z_n)_v - [v == y_n]) / M    for kept positions
         dz_nv = 0                                         for ignored ones
Fusing avoids the softmax Jacobian entirely and is exact.
If every target is ignored, M = 0 and the loss is NaN, as in torch.
"""
from __future__ import annotations

import numpy as np

IGNORE_INDEX = -100


def cross_entropy_forward(logits: np.ndarray, targets: np.ndarray,
                          ignore_index: int = IGNORE_INDEX) -> tuple[np.ndarray, tuple]:
    """logits: (..., V) float; targets: (...) ints in [0, V) or ignore_index.

    Returns the mean loss (a 0-d array in logits' dtype) and the cache.
    """
    V = logits.shape[-1]
    z = logits.reshape(-1, V)                                   # (N, V)
    y = targets.reshape(-1)                                     # (N,)
    keep = y != ignore_index
    m = z.max(axis=-1, keepdims=True)
    e = np.exp(z - m)
    sum_e = e.sum(axis=-1, keepdims=True)
    log_z = m + np.log(sum_e)                                   # 1. (N, 1)
    rows = np.flatnonzero(keep)
    n_kept = rows.size
    picked = z[rows, y[rows]] - log_z[rows, 0]                  # log p of each target
    with np.errstate(invalid="ignore", divide="ignore"):
        loss = -picked.sum() / z.dtype.type(n_kept)             # 2.
    probs = e / sum_e                                           # softmax, kept for backward
    return np.asarray(loss, dtype=logits.dtype), (probs, y, rows, n_kept, logits.shape)


def cross_entropy_backward(dloss, cache: tuple) -> np.ndarray:
    """dloss: scalar upstream gradient. Returns dlogits shaped like logits."""
    probs, y, rows, n_kept, shape = cache
    dz = np.zeros_like(probs)
    if n_kept:
        dz[rows] = probs[rows]
        dz[rows, y[rows]] -= 1.0                                # softmax - onehot
        dz *= probs.dtype.type(np.asarray(dloss) / n_kept)      # 2-1.
    return dz.reshape(shape)
