"""Memory bandwidth from one core and from all cores: how far elementwise work can scale.

    python -m benchmarks.bandwidth [--mb 256] [--repeats 3]

Each thread streams its own array through NumPy passes in place (a += 1: one read and
one write per float, with no separate output to fetch before writing it), far larger
than the caches, so the passes run at the speed of memory. The threads start together
(a barrier) and GB/s counts every thread's bytes over the wall time of the slowest.
Where n threads move little more than one, a pass that misses the caches gains little
from the other cores: that caps the elementwise part of a training step (layer norms,
GELU, softmax rows, AdamW) at more than one thread.
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
    arrays = [np.ones(n, np.float32) for _ in range(threads)]      # np.ones touches every page
    start = threading.Barrier(threads + 1)

    def work(i):
        a = arrays[i]
        start.wait()
        for _ in range(passes):
            np.add(a, 1.0, out=a)

    best = float("inf")
    for _ in range(repeats):
        ts = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
        for t in ts:
            t.start()
        start.wait()                                    # every thread is ready: go
        t0 = time.perf_counter()
        for t in ts:
            t.join()
        best = min(best, time.perf_counter() - t0)
    return threads * passes * 2 * n * 4 / best / 1e9


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=256, help="MiB per thread's array")
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args(argv)
    print(f"float32 a += 1 over a {a.mb} MiB array per thread, best of {a.repeats}\n")
    print("| threads | GB/s (read + write), all threads |")
    print("|---|---|")
    for th in range(1, available_cores() + 1):
        print(f"| {th} | {stream_gbps(th, a.mb, a.repeats):.1f} |", flush=True)


if __name__ == "__main__":
    main()
