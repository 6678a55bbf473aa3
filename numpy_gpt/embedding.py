"""Token embedding: a table lookup, forward and backward by hand.

Shapes: B = batch, T = time, V = vocabulary size, C = channels.

Forward:
    1. out[b, t] = wte[idx[b, t]]          (B, T) ints -> (B, T, C)

Backward, given g = dL/dout: row v of the table was copied into every position
holding token v, so its gradient is the sum of g over those positions:
    1. dwte[v] = sum of g[b, t] over all (b, t) with idx[b, t] == v

The trap: `dwte[idx] += g` looks right but NumPy's fancy assignment writes
each repeated index once, silently dropping all but one contribution.
np.add.at accumulates; so does the sort-and-reduceat path used for speed.
"""
from __future__ import annotations

import numpy as np


def embedding_forward(idx: np.ndarray, wte: np.ndarray) -> tuple[np.ndarray, tuple]:
    """idx: (B, T) integer token ids in [0, V); wte: (V, C).

    Returns out (B, T, C) and the cache for embedding_backward.
    """
    out = wte[idx]                                              # 1. (B, T, C)
    return out, (idx, wte.shape)


def embedding_backward(dout: np.ndarray, cache: tuple) -> np.ndarray:
    """dout: (B, T, C). Returns dwte (V, C), with repeated ids accumulated."""
    idx, (V, C) = cache
    dwte = np.zeros((V, C), dtype=dout.dtype)
    scatter_add_rows(dwte, idx.reshape(-1), dout.reshape(-1, C))   # 1.
    return dwte


def scatter_add_rows(table: np.ndarray, rows: np.ndarray, values: np.ndarray) -> None:
    """table[rows[i]] += values[i] for every i, repeats accumulated, in place.

    Equivalent to np.add.at(table, rows, values) but much faster: sort the rows
    so equal ids sit together, sum each run with np.add.reduceat, then write
    each distinct row once.
    """
    if rows.size == 0:
        return
    order = np.argsort(rows, kind="stable")
    sorted_rows = rows[order]
    starts = np.flatnonzero(np.r_[True, sorted_rows[1:] != sorted_rows[:-1]])
    table[sorted_rows[starts]] += np.add.reduceat(values[order], starts, axis=0)
