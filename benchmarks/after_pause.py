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

    python -m benchmarks.after_pause --compare [--config tiny] [--threads 2] [--pairs 3]

measures what that does to the suite's ratios instead: numpy_gpt (with threads, and with shard
processes at more than one thread) and torch eager timed as the suite times them (interleaved,
0.25 s samples after the pause), in --pairs pairs of measurements without and with the rewarm,
alternating which comes first.

    python -m benchmarks.after_pause --steady [--config tiny] [--threads 2] [--pairs 3] [--block 3]

checks the suite's protocol against a training loop's: each implementation runs in steady blocks
of --block seconds of back-to-back calls (after the same pause and a 0.5 s untimed run-in, so
neither library's threads are asleep or still spinning from the other's last call), and the
blocks' ratio, paired block by block, is printed beside the suite's interleaved ratio measured
in the same process, --pairs times each, alternating which comes first.
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import statistics
import time

import numpy as np

from .timing import ForeignLoad, Measurement, fmt_threads, interleaved, paired_ratio, thread_limit
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


@contextlib.contextmanager
def _steps(config: str, impls: list[str]):
    """{impl: its training step on config}, every one built closed again on leaving (shard workers stop)."""
    steps = {}
    try:
        for impl in impls:
            steps[impl] = make_step(impl, CONFIGS[config], np.dtype("float32"))[0]
        yield steps
    finally:
        for step in steps.values():
            step.close()


def _ratio_line(m: Measurement, impls: list[str], spread: bool = False) -> str:
    """Each implementation's median ms, then torch eager's time over each other's, paired per round
    (median, and [min-max] with spread)."""
    line = " ".join(f"{i} {1e3 * m.median(i):.2f} ms" for i in impls)
    for impl in (i for i in impls if i != "torch"):
        ratio = paired_ratio(m, "torch", impl)
        if ratio is None:
            line += f" | eager/{impl} n/a"
        else:
            line += f" | eager/{impl} {ratio['median']:.3f}" + (
                f" [{ratio['min']:.3f}-{ratio['max']:.3f}]" if spread else "")
    return line


def compare_rewarm(config: str, threads: int, pairs: int, pause: float, rewarm: float = 0.1,
                   repeats: int = 11) -> None:
    """Print torch eager's time over numpy_gpt's, paired per round, without and with the rewarm."""
    impls = ["numpy", "torch"] + ([PROCS] if threads > 1 else [])
    with thread_limit(threads), _steps(config, impls) as steps:
        for k in range(pairs):
            for r in (0.0, rewarm) if k % 2 == 0 else (rewarm, 0.0):
                m = interleaved(steps, repeats, warmup=2, min_time=0.25, cooldown=pause, rewarm=r)
                print(f"rewarm {r:4.2f} s: {_ratio_line(m, impls)}", flush=True)


def steady_blocks(steps: dict, blocks: int, seconds: float, pause: float = 0.15, run_in: float = 0.5
                  ) -> dict[str, list[float]]:
    """Seconds per call of each implementation in `blocks` timed blocks of back-to-back calls.

    Block k takes the implementations in an order rotated by k. Before each implementation's
    block: a `pause` (the other library's spinning threads go to sleep) and `run_in` seconds of
    untimed calls (its own threads and the processor back at speed), then calls until at least
    `seconds` have passed: a training loop's pace, which the suite's 0.25 s samples stand for.
    """
    names = list(steps)
    per_call: dict[str, list[float]] = {name: [] for name in names}
    gc.collect()                                  # as the suite's samples: collected once, then off
    for k in range(blocks):
        for name in names[k % len(names):] + names[:k % len(names)]:
            fn = steps[name]
            if pause:
                time.sleep(pause)
            t0 = time.perf_counter()
            while time.perf_counter() - t0 < run_in:
                fn()
            calls = 0
            gc.disable()
            try:
                t0 = time.perf_counter()
                while True:
                    fn()
                    calls += 1
                    elapsed = time.perf_counter() - t0
                    if elapsed >= seconds:
                        break
            finally:
                gc.enable()
            per_call[name].append(elapsed / calls)
    return per_call


def compare_steady(config: str, threads: int, pairs: int, block: float, pause: float = 0.15,
                   rewarm: float = 0.1, repeats: int = 7) -> None:
    """Print torch eager's time over numpy_gpt's from steady blocks and from the suite's protocol
    (run.py's: the pause before each sample at more than one thread only; the suite's step rounds
    also time a square matmul, which this leaves out)."""
    impls = ["numpy", "torch"] + ([PROCS] if threads > 1 else [])
    pause = pause if threads > 1 else 0.0
    with thread_limit(threads), _steps(config, impls) as steps:
        for fn in steps.values():                    # warm-up, as the suite's
            fn(), fn()
        for k in range(pairs):
            for way in ("steady", "suite") if k % 2 == 0 else ("suite", "steady"):
                if way == "steady":
                    load = ForeignLoad()
                    m = Measurement(samples=steady_blocks(steps, repeats, block, pause))
                    m.foreign_load = load.share()
                else:
                    m = interleaved(steps, repeats, warmup=0, min_time=0.25, cooldown=pause, rewarm=rewarm)
                other = "n/a" if m.foreign_load is None else f"{100 * m.foreign_load:.0f}%"
                print(f"{way:6s} {_ratio_line(m, impls, spread=True)} | other load {other}", flush=True)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--impl", default="numpy", choices=(*IMPLS, PROCS))
    p.add_argument("--config", default="tiny", choices=list(CONFIGS))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--pause", type=float, default=0.15, help="seconds (the suite's --cooldown)")
    p.add_argument("--calls", type=int, default=10, help="calls timed after each pause")
    p.add_argument("--rounds", type=int, default=10, help="pauses of each way")
    p.add_argument("--compare", action="store_true",
                   help="time the suite's ratios without and with the rewarm instead (--impl is not used)")
    p.add_argument("--steady", action="store_true",
                   help="set the suite's ratios beside steady blocks' instead (--impl is not used)")
    p.add_argument("--pairs", type=int, default=3, help="with --compare or --steady: pairs of measurements")
    p.add_argument("--block", type=float, default=3.0, help="with --steady: seconds of each timed block")
    a = p.parse_args(argv)
    if a.compare or a.steady or a.impl in ("torch", "compile"):
        import torch  # noqa: F401 - before thread_limit, which sets torch's threads only once it is loaded
    if a.compare:
        compare_rewarm(a.config, a.threads, a.pairs, a.pause)
        return
    if a.steady:
        compare_steady(a.config, a.threads, a.pairs, a.block, a.pause)
        return
    with thread_limit(a.threads):
        step, _ = make_step(a.impl, CONFIGS[a.config], np.dtype("float32"))
        try:
            for _ in range(5):                       # warm-up (compiles, for --impl compile)
                step()
            print(f"{a.impl}, {a.config}, {fmt_threads(a.threads)}: median ms of each call after a "
                  f"{a.pause} s pause ({a.rounds} pauses of each way)")
            for way in WAYS:
                ms = call_times(step, way, a.pause, a.calls, a.rounds)
                print(f"  {way:5s} " + " ".join(f"{1e3 * t:6.1f}" for t in ms))
        finally:
            step.close()


if __name__ == "__main__":
    main()
