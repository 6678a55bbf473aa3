"""Token embedding: a table lookup, forward and backward by hand.

Shapes: B = batch, T = time, V = vocabulary size, C = channels.

Forward:
    1. out[b, t] = wte[idx[b, t]]          (B, T) ints -> (B, T, C)

Backward, given g = dL/dout: row v of the table was copied into every position
holding token v, so its gradient is the sum of g over those positions:
    1. dwte[v] = sum of g[b, t] over all (b, t) with idx[b, t] == v

The trap: `dwte[idx] += g` looks right but NumPy's fancy assignment writes
each repeated index once, silently dropping all but one contribution.
np.add.at accumulates; so does the faster, sort-based scatter_add_rows used here
(its rounds or its reduceat path, whichever fits the ids).
"""
from __future__ import annotations

import numpy as np


def embedding_forward(idx: np.ndarray, wte: np.ndarray) -> tuple[np.ndarray, tuple]:
    """idx: (B, T) integer token ids in [0, V); wte: (V, C).

    Returns out (B, T, C) and the cache for embedding_backward.
    """
    out = wte[idx]                                              # 1. (B, T, C)
    return out, (idx, wte.shape)


def embedding_backward(dout: np.ndarray, cache: tuple, out: np.ndarray | None = None) -> np.ndarray:
    """dout: (B, T, C). Returns dwte (V, C), with repeated ids accumulated.

    out: a (V, C) array to add dwte into, in place, and return (a tied LM head's
    gradient of the same table); by default dwte starts from zeros.
    """
    idx, (V, C) = cache
    dwte = np.zeros((V, C), dtype=dout.dtype) if out is None else out
    scatter_add_rows(dwte, idx.reshape(-1), dout.reshape(-1, C))   # 1.
    return dwte


RANK_ROUNDS = 8     # scatter_add_rows adds in rounds when no id occurs more often than this


def scatter_add_rows(table: np.ndarray, rows: np.ndarray, values: np.ndarray) -> None:
    """table[rows[i]] += values[i] for every i, repeats accumulated, in place.

    rows: (N,) ids in [0, len(table)); values: (N, C) in table's dtype.
    For such input it does what np.add.at(table, rows, values) does (the tests
    compare the two), but faster. Sort the ids so that equal ids sit together.
    When no id occurs more than RANK_ROUNDS times (a large vocabulary), add in
    rounds: the first occurrence of every id, then every second occurrence,
    and so on. No id repeats within a round, so each round is one safe
    fancy-indexed +=. Otherwise (a small vocabulary, ids repeated many times),
    ids seen once are added with one fancy-indexed +=, and each run of a
    repeated id is summed with np.add.reduceat and added once; reduceat pays
    for every run and every column, which is why it only gets those.
    """
    if rows.size == 0:
        return
    order = np.argsort(rows, kind="stable")
    ids = rows[order]                                            # equal ids now sit together
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])   # where each run of an id begins
    counts = np.diff(np.r_[starts, ids.size])                    # how long each run is
    most = int(counts.max())                                     # the most times any id occurs
    if most <= RANK_ROUNDS:
        rank = np.arange(ids.size) - np.repeat(starts, counts)   # 0 at an id's first occurrence, 1 at its second, ...
        for j in range(most):
            sel = np.flatnonzero(rank == j)                      # distinct ids: += is safe
            table[ids[sel]] += values[order[sel]]
        return
    alone = starts[counts == 1]                                  # ids seen once, all distinct:
    table[ids[alone]] += values[order[alone]]                    # one fancy-indexed write
    repeated = counts > 1
    if not repeated.any():
        return
    in_repeated_run = np.repeat(repeated, counts)                # (N,) bool, in sorted order
    run_starts = np.r_[0, np.cumsum(counts[repeated][:-1])]      # runs' starts among those rows
    table[ids[starts[repeated]]] += np.add.reduceat(values[order[in_repeated_run]], run_starts, axis=0)
