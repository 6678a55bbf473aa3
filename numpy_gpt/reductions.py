"""Sums and maxima over short rows, on NumPy's fast paths.

A training step reduces many short rows: softmax rows of 32 to 256
attention scores, cross-entropy rows of V logits, layer-norm rows of C
channels, and the columns of a bias gradient. On rows this short NumPy's
`.sum(axis=-1)` and `.max(axis=-1)` spend most of their time starting each
row, not adding or comparing numbers. Measured (NumPy 2.4, float32, one
thread, 2048 rows of 64; `python -m benchmarks.reductions` times them):

    a.sum(axis=-1)           47 us      a @ ones(64)               8 us
    a.max(axis=-1)          168 us      np.fmax.reduce(a, -1)    116 us

So sums are matrix-vector products with a vector of ones, which BLAS runs as
one streaming pass; only the order of the additions differs from `.sum`. A sum
of products, sum(a * b, axis=-1), is np.vecdot(a, b): one pass, and no a * b
array (18 us against 65 for (a * b) @ ones on 1024 rows of 256).
Maxima use `fmax`, which skips NaN where `max` returns it. That changes
nothing for a softmax or a log-sum-exp: a row holding a NaN still gives NaN
everywhere (its NaN entry stays NaN through the exp and makes the row's
sum NaN), and a row of -inf gives -inf from both.
"""
from __future__ import annotations

import functools

import numpy as np


@functools.lru_cache(maxsize=64)
def ones(n: int, dtype) -> np.ndarray:
    """A read-only vector of n ones, cached per (n, dtype)."""
    v = np.ones(n, dtype)
    v.flags.writeable = False
    return v


def row_sums(a: np.ndarray) -> np.ndarray:
    """a (..., K) -> (..., 1): the sum of each row over the last axis, as a BLAS product."""
    K = a.shape[-1]
    return (a.reshape(-1, K) @ ones(K, a.dtype)).reshape(*a.shape[:-1], 1)


def col_sums(a2: np.ndarray) -> np.ndarray:
    """a2 (N, K) -> (K,): the sum of each column, as ones(N) @ a2 in BLAS."""
    return ones(a2.shape[0], a2.dtype) @ a2


def row_dots(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a, b (..., K) -> (..., 1): sum(a * b) over the last axis, without the product array."""
    return np.vecdot(a, b)[..., None]                  # one fused loop (NumPy >= 2.0)


def row_max(a: np.ndarray) -> np.ndarray:
    """a (..., K) -> (..., 1): the largest entry of each row over the last axis (NaN skipped)."""
    return np.fmax.reduce(a, axis=-1, keepdims=True)


SQUARES_BLOCK = 1 << 16             # values per block in sum_of_squares: 512 KB of float64


def sum_of_squares(a: np.ndarray) -> float:
    """sum(a**2) over every entry of a, in float64, as a Python float.

    Each block of SQUARES_BLOCK values is copied into one small float64 buffer,
    squared there and summed (NumPy's pairwise sum); a float64 copy of the
    whole array is never made. The trainer takes its gradient norms with it:
    when it made float64 copies of all the gradients first, a Trainer step at
    the medium config peaked 568-578 MB above the imports, against 481-487
    now (2 threads, Zen 3 host, 2026-12-05; `python -m benchmarks.trainer_memory`
    at this change and before it). No BLAS: a dot product of each
    block is a little faster alone, but OpenBLAS shares it among its threads,
    which then spin beside the next step's shards; a Trainer step at the small
    config took 1.18x as long with it (6 alternating rounds of Trainer steps
    with a dot-product version and this one, 2 threads).
    """
    flat = a.reshape(-1)
    buf = np.empty(min(SQUARES_BLOCK, flat.size), np.float64)
    total = 0.0
    for lo in range(0, flat.size, SQUARES_BLOCK):
        b = buf[:min(SQUARES_BLOCK, flat.size - lo)]
        b[...] = flat[lo:lo + SQUARES_BLOCK]
        np.multiply(b, b, out=b)
        total += float(b.sum())
    return total
