"""Two shard threads against two processes: what Python's lock costs a training step.

    python -m benchmarks.process_shards [--config tiny] [--rounds 3] [--seconds 3]

numpy_gpt runs a step on two threads by giving each thread half of the batch
(numpy_gpt.parallel). NumPy lets go of the GIL inside each call and takes it back
afterwards, so the two threads hand the lock to each other at every call; when
the calls are short, the hand-overs are a large part of their time. This
experiment measures that, in alternating rounds, on one benchmark config:

  - "1 thread":  the whole batch on one thread;
  - "2 threads": numpy_gpt's default, one shard per thread;
  - "2 processes": numpy_gpt with its opt-in shard processes
    (numpy_gpt.processes.ShardProcesses), the second shard in a worker process.

It then times a loop of two small ufuncs alone, in two threads and in two
processes. The suite (benchmarks/run.py) times the process version too, beside
torch, in its own table.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import threading
import time

import numpy as np

from numpy_gpt.parallel import keep_freed_memory

from .timing import thread_limit
from .workloads import CONFIGS, PROCS, make_step


def _ms_per_call(fn, seconds: float) -> float:
    """Median wall time of fn over `seconds` of back-to-back calls, after two warm-up calls."""
    fn(), fn()
    times, end = [], time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1e3 * float(np.median(times))


def _ufunc_loop(n: int, calls: int, out=None) -> float:
    a = np.random.default_rng(0).random(n, dtype=np.float32)
    b = np.empty_like(a)
    t = time.perf_counter()
    for _ in range(calls):
        np.multiply(a, 1.0001, out=b)
        np.add(b, a, out=b)
    dt = time.perf_counter() - t
    if out is not None:
        out.put(dt)
    return dt


def ufunc_table(sizes=(8192, 32768, 131072), floats: float = 4e8) -> list[str]:
    """The same ufunc loop alone, in each of two threads and in each of two processes (ms)."""
    import queue
    lines = ["| floats per call | alone | each of 2 threads | each of 2 processes |", "|---|---|---|---|"]
    ctx = mp.get_context("spawn")
    for n in sizes:
        calls = int(floats / n)
        alone = _ufunc_loop(n, calls)
        q = queue.Queue()
        threads = [threading.Thread(target=_ufunc_loop, args=(n, calls, q)) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        in_threads = [q.get() for _ in threads]
        pq = ctx.Queue()
        procs = [ctx.Process(target=_ufunc_loop, args=(n, calls, pq)) for _ in range(2)]
        for p in procs:
            p.start()
        in_procs = [pq.get() for _ in procs]
        for p in procs:
            p.join()
        lines.append(f"| {n} | {1e3 * alone:.0f} | {' / '.join(f'{1e3 * t:.0f}' for t in in_threads)} | "
                     f"{' / '.join(f'{1e3 * t:.0f}' for t in in_procs)} |")
    return lines


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="tiny", choices=sorted(CONFIGS))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=3.0, help="timed seconds per variant and round")
    a = ap.parse_args(argv)
    keep_freed_memory()                       # as in the benchmark suite (benchmarks/README.md)
    threaded, _ = make_step("numpy", CONFIGS[a.config], np.float32)   # numpy_gpt as the suite times it
    with thread_limit(2):
        in_procs, _ = make_step(PROCS, CONFIGS[a.config], np.float32)
    try:
        variants = [("1 thread", 1, threaded), ("2 threads", 2, threaded), ("2 processes", 2, in_procs)]
        print(f"training step, {a.config}, float32, ms per step (median over {a.seconds:g} s per round)\n")
        print("| round | " + " | ".join(v[0] for v in variants) + " | 2 threads / 2 processes |")
        print("|---" * (len(variants) + 2) + "|")
        for r in range(a.rounds):
            ms = []
            for _, n, fn in variants:
                with thread_limit(n):
                    ms.append(_ms_per_call(fn, a.seconds))
            print(f"| {r + 1} | " + " | ".join(f"{t:.2f}" for t in ms) + f" | {ms[1] / ms[2]:.2f} |", flush=True)
    finally:
        in_procs.close()
    print("\nA loop of np.multiply and np.add over the same floats, ms per loop:\n")
    print("\n".join(ufunc_table()))


if __name__ == "__main__":
    main()
