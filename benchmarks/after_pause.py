"""How long a training step takes in the first calls after a pause: why the suite rewarms.

    python -m benchmarks.after_pause [--impl numpy] [--config tiny] [--threads 2] [--pause 0.15]

The suite pauses before each sample at more than one thread (run.py's --cooldown), so that
the other library's spinning worker threads go to sleep. This times single calls of one
implementation's step right after such a pause, three ways, each repeated --rounds times:
    sleep   time.sleep(pause), as the suite's cooldown does;
    busy    a busy loop of the same length on this thread (the processor kept awake);
    none    no pause: the calls run back to back, as in a training loop.
It prints the median time of each of the first --calls calls after the pause. Where the
first few "sleep" calls are slower than the "none" ones, a sample that starts right after
the pause includes them; run.py's --rewarm runs that many seconds of untimed calls first.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from .timing import thread_limit
from .workloads import CONFIGS, IMPLS, PROCS, make_step

WAYS = ("sleep", "busy", "none")


def _pause(way: str, seconds: float) -> None:
    if way == "sleep":
        time.sleep(seconds)
    elif way == "busy":
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            pass


def call_times(step, way: str, pause: float, calls: int, rounds: int) -> list[float]:
    """Median seconds of the i-th call after a pause of the given way, for i < calls."""
    per_call: list[list[float]] = [[] for _ in range(calls)]
    for _ in range(rounds):
        _pause(way, pause)
        for times in per_call:
            t0 = time.perf_counter()
            step()
            times.append(time.perf_counter() - t0)
    return [statistics.median(t) for t in per_call]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--impl", default="numpy", choices=(*IMPLS, PROCS))
    p.add_argument("--config", default="tiny", choices=list(CONFIGS))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--pause", type=float, default=0.15, help="seconds (the suite's --cooldown)")
    p.add_argument("--calls", type=int, default=10, help="calls timed after each pause")
    p.add_argument("--rounds", type=int, default=10, help="pauses of each way")
    a = p.parse_args(argv)
    with thread_limit(a.threads):
        step, _ = make_step(a.impl, CONFIGS[a.config], np.dtype("float32"))
        try:
            for _ in range(5):                       # warm-up (compiles, for --impl compile)
                step()
            print(f"{a.impl}, {a.config}, {a.threads} thread(s): median ms of each call after a "
                  f"{a.pause} s pause ({a.rounds} pauses of each way)")
            for way in WAYS:
                ms = call_times(step, way, a.pause, a.calls, a.rounds)
                print(f"  {way:5s} " + " ".join(f"{1e3 * t:6.1f}" for t in ms))
        finally:
            step.close()


if __name__ == "__main__":
    main()
