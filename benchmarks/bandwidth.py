"""Memory bandwidth from one core and from all cores: how far elementwise work can scale.

    python -m benchmarks.bandwidth [--mb 128] [--repeats 3]

Each thread streams its own arrays through one NumPy pass (b = a + 1: one read and one
write per float), far larger than the caches, so the pass runs at the speed of memory.
With n threads started together, GB/s counts every thread's bytes over the wall time of
the slowest. Where n threads move little more than one, a pass that misses the caches
gains nothing from a second core: that caps the elementwise part of a training step
(layer norms, GELU, softmax rows, AdamW) at more than one thread.
"""
from __future__ import annotations

import argparse
import threading
import time

import numpy as np

from .machine import available_cores


def stream_gbps(threads: int, mb: int, repeats: int, passes: int = 5) -> float:
    """Best-of-`repeats` GB/s (bytes read + written) of `threads` threads each running `passes` passes."""
    n = (mb << 20) // 4
    arrays = [(np.ones(n, np.float32), np.empty(n, np.float32)) for _ in range(threads)]
    for a, b in arrays:
        np.add(a, 1.0, out=b)                           # touch every page before timing

    def work(i):
        a, b = arrays[i]
        for _ in range(passes):
            np.add(a, 1.0, out=b)

    best = float("inf")
    for _ in range(repeats):
        ts = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
        t0 = time.perf_counter()
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        best = min(best, time.perf_counter() - t0)
    return threads * passes * 2 * n * 4 / best / 1e9


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=128, help="MB per array (two arrays per thread)")
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args(argv)
    print(f"float32 b = a + 1 over {a.mb} MB arrays, one pair per thread, best of {a.repeats}\n")
    print("| threads | GB/s (read + write), all threads |")
    print("|---|---|")
    for th in range(1, available_cores() + 1):
        print(f"| {th} | {stream_gbps(th, a.mb, a.repeats):.1f} |", flush=True)


if __name__ == "__main__":
    main()
