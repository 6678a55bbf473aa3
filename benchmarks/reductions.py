"""Row sums and row maxima of short rows: NumPy's reductions against numpy_gpt.reductions.

    python -m benchmarks.reductions [--rows 2048] [--repeats 200]

numpy_gpt reduces many short rows (softmax rows, layer-norm rows, bias-gradient
columns). This times, at one thread and in float32, for rows of several lengths:
    a.sum(axis=-1)  against  a @ ones(K)           (reductions.row_sums)
    a.max(axis=-1)  against  np.fmax.reduce(a, -1)  (reductions.row_max)
    a.sum(axis=0)   against  ones(N) @ a           (reductions.col_sums)
Microseconds per call, best of --repeats samples of 3 calls.
"""
from __future__ import annotations

import argparse

import numpy as np

from numpy_gpt.reductions import col_sums, row_max, row_sums

from .timing import best_of, thread_limit


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=2048)
    ap.add_argument("--repeats", type=int, default=200)
    a = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    print(f"float32, 1 thread, {a.rows} rows: microseconds per call, best of {a.repeats} x 3 calls\n")
    print("| row length | .sum(axis=-1) | row_sums | .max(axis=-1) | row_max | .sum(axis=0) | col_sums |")
    print("|---|---|---|---|---|---|---|")
    with thread_limit(1):
        for k in (32, 64, 65, 128, 256, 1024):
            x = rng.standard_normal((a.rows, k), dtype=np.float32)
            fns = {"sum": lambda: x.sum(axis=-1, keepdims=True), "row_sums": lambda: row_sums(x),
                   "max": lambda: x.max(axis=-1, keepdims=True), "row_max": lambda: row_max(x),
                   "sum0": lambda: x.sum(axis=0), "col_sums": lambda: col_sums(x)}
            times = [1e6 * t for t in best_of(fns, a.repeats).values()]
            print(f"| {k} | " + " | ".join(f"{t:.0f}" for t in times) + " |", flush=True)


if __name__ == "__main__":
    main()
