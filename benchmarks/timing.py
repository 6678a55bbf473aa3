"""Interleaved timing, thread limits and the statistics every table uses.

Method (the same for every measurement in the suite):
    1. warm-up: each implementation runs `warmup` times untimed (allocator, caches, lazy init);
    2. calibrate: each implementation gets an inner loop count `number` so that one timed
       sample lasts at least `min_time` seconds (perf_counter resolution, timer overhead);
    3. repeats: A B C A B C ... for `repeats` rounds, so drift of the machine (frequency,
       other processes) hits every implementation alike; a sample is seconds per call;
    4. ratios are taken pair by pair, t_other[i] / t_numpy[i] within round i, and reported
       as the median with min-max and interquartile range over the rounds.
The garbage collector is paused inside a sample, as timeit does, and runs in full once
before the rounds (not before each sample: with torch and inductor loaded a full collection
takes about half a second).
"""
from __future__ import annotations

import contextlib
import gc
import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Measurement:
    """Raw samples (seconds per call) of several implementations timed in one interleaved run."""
    samples: dict[str, list[float]] = field(default_factory=dict)
    number: dict[str, int] = field(default_factory=dict)       # calls per timed sample
    errors: dict[str, str] = field(default_factory=dict)       # implementation -> why it is n/a
    warmup: int = 0
    loadavg: tuple[float, float] = (0.0, 0.0)                  # 1-minute load before, after
    foreign_load: float | None = None                          # share of all cores other processes used
    attempts: list[float] = field(default_factory=list)        # foreign load of each attempt (run.py retries)

    def median(self, name: str) -> float:
        """Median seconds per call, NaN when the implementation is n/a."""
        s = self.samples.get(name)
        return float(np.median(s)) if s else math.nan

    def to_json(self) -> dict:
        return {"samples_s": self.samples, "number": self.number, "errors": self.errors,
                "warmup": self.warmup, "loadavg_before_after": list(self.loadavg),
                "foreign_load": self.foreign_load, "attempts_foreign_load": self.attempts,
                "stats": {k: summarize(v) for k, v in self.samples.items() if v}}


def summarize(values: list[float]) -> dict[str, float]:
    """Median, min, max and interquartile range of a list of numbers."""
    a = np.asarray(values, dtype=np.float64)
    q1, med, q3 = np.percentile(a, [25, 50, 75])
    return {"median": float(med), "min": float(a.min()), "max": float(a.max()),
            "q1": float(q1), "q3": float(q3), "n": int(a.size)}


def error_text(exc: BaseException) -> str:
    """An exception as one line for a report: its type and the first line of its message."""
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


def paired_ratio(m: Measurement, numerator: str, denominator: str) -> dict[str, float] | None:
    """Statistics of m[numerator][i] / m[denominator][i] over the rounds i (None if either is n/a).

    With numerator = a torch implementation and denominator = "numpy", this is numpy's
    speedup: > 1 means numpy_gpt is faster.
    """
    return ratio_stats(m.samples.get(numerator), m.samples.get(denominator))


def ratio_stats(a: list[float] | None, b: list[float] | None) -> dict[str, float] | None:
    """Statistics of a[i] / b[i] over the rounds i, with each round's ratio (None if either is n/a)."""
    if not a or not b:
        return None
    ratios = [x / y for x, y in zip(a, b)]
    return {**summarize(ratios), "rounds": ratios}          # each round's, for how many reach a target


def paired_rate_ratio(m: Measurement, name: str, work: float, ref: str | tuple[str, ...], ref_work: float
                      ) -> dict[str, float] | None:
    """Statistics over rounds i of 100 x (work / m[name][i]) / (ref_work / m[ref][i]), in percent.

    The rate (work per second) of `name` as a share of the rate of `ref` timed in the
    same round: with ref = a square matmul, each round's % of peak is taken against
    the matmul rate the machine gave in that round, rather than one peak read at
    another time. ref may name several entries doing the same work (the matmul in
    NumPy's BLAS and in torch's): each round then takes the fastest of them. None if
    name or every ref is n/a.
    """
    a = m.samples.get(name)
    refs = [m.samples[r] for r in ((ref,) if isinstance(ref, str) else ref) if m.samples.get(r)]
    if not a or not refs:
        return None
    b = best_per_round(refs)
    n = min(len(a), len(b))
    return summarize([100.0 * (work / a[i]) / (ref_work / b[i]) for i in range(n)])


def best_per_round(samples: list[list[float]]) -> list[float]:
    """The shortest time of each round among entries timed in the same rounds."""
    return [min(times) for times in zip(*samples)]


def child_pids() -> list[str]:
    """The pids of this process's running children (numpy_gpt's shard workers among them),
    from /proc; empty where /proc does not list children."""
    pids: set[str] = set()
    try:
        for task in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{task}/children") as f:
                pids.update(f.read().split())
    except OSError:
        return []
    return sorted(pids)


def _children_cpu(hz: int) -> float:
    """CPU seconds used so far by this process's running children (numpy_gpt's shard workers),
    which are part of the measured work, not other load."""
    total = 0.0
    for pid in child_pids():
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()     # after the command name: state, ppid, ...
            total += (int(fields[11]) + int(fields[12])) / hz    # utime, stime (fields 14 and 15)
        except (OSError, ValueError, IndexError):
            pass                                                 # it exited meanwhile
    return total


class ForeignLoad:
    """How much CPU other processes used while we measured, from /proc/stat (Linux).

    foreign = (busy ticks of the whole machine - this process's and its running children's CPU
    time) / (wall time x cores),
    0 on a quiet machine, 0.5 when another process kept one of two cores busy. A measurement
    taken while other work ran is slower and noisier; the tables flag it.
    """

    def __init__(self) -> None:
        self.start = self._snapshot()

    @staticmethod
    def _snapshot() -> tuple[float, float, float] | None:
        from numpy_gpt.parallel import machine_busy_seconds
        busy = machine_busy_seconds()
        if busy is None:
            return None
        hz = os.sysconf("SC_CLK_TCK")
        t = os.times()
        # ours: this process, its children that have exited (reaped) and those still running
        own = t.user + t.system + t.children_user + t.children_system + _children_cpu(hz)
        return busy, own, time.perf_counter()

    def share(self) -> float | None:
        end = self._snapshot()
        if self.start is None or end is None:
            return None
        wall = end[2] - self.start[2]
        if wall <= 0:
            return None
        foreign = (end[0] - self.start[0]) - (end[1] - self.start[1])
        return max(0.0, foreign / (wall * (os.cpu_count() or 1)))


def _calibrate(fn: Callable[[], object], min_time: float, max_number: int = 10_000) -> int:
    """Calls per sample so that one sample lasts at least min_time seconds."""
    t0 = time.perf_counter()
    fn()
    once = time.perf_counter() - t0
    if once >= min_time:
        return 1
    return int(min(max_number, math.ceil(min_time / max(once, 1e-7))))


def _run_for(fn: Callable[[], object], seconds: float) -> None:
    """Call fn back to back, untimed, until `seconds` have passed (no call for seconds <= 0)."""
    if seconds <= 0:
        return
    t0 = time.perf_counter()
    while True:
        fn()
        if time.perf_counter() - t0 >= seconds:
            return


def interleaved(fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 2,
                min_time: float = 0.02, cooldown: float = 0.0, rewarm: float = 0.0) -> Measurement:
    """Time several implementations of the same work, interleaved round by round.

    fns: name -> a zero-argument callable doing one unit of work. An implementation that
    raises during warm-up or timing is reported in .errors and dropped from later rounds.
    Each round takes the implementations in a rotated order (round r starts at the r-th), so
    none of them always runs first, or always right after the same other one.
    cooldown: seconds slept before each sample, to let the other library's worker threads
    stop spinning. OpenBLAS's workers busy-wait after every parallel call (measured here:
    ~0.11 s of a core; torch's OpenMP workers ~0.01 s); without the pause, torch timed right
    after NumPy ran up to 2x slower at 2 threads on 2 cores.
    rewarm: seconds of untimed calls of the implementation about to be timed, after the
    cooldown and before its sample. The pause costs the next calls more than waking threads:
    on the project's 2-core VM, tiny's step after a 0.15 s sleep ran ~20 ms a call for three
    calls where it otherwise took 13 (numpy_gpt with threads; torch eager's four calls after
    it 2-4 ms slow), so a sample of 0.25 s started by the pause read ~8% slow (3% for torch).
    After a 0.15 s busy loop instead of the sleep the first call was 2 ms slow and the next
    at speed. A sample is meant to time calls as a training loop makes them, back to back.
    """
    m = Measurement(warmup=warmup)
    m.loadavg = (os.getloadavg()[0], 0.0)
    load = ForeignLoad()
    live = dict(fns)
    for name, fn in list(live.items()):
        try:
            for _ in range(warmup):
                fn()
            m.number[name] = _calibrate(fn, min_time)
            m.samples[name] = []
        except Exception as exc:                      # noqa: BLE001 - reported, not hidden
            m.errors[name] = error_text(exc)
            del live[name]
    gc.collect()                 # once per measurement: with torch loaded a full collection takes ~0.5 s
    for r in range(repeats):
        names = list(live)
        k = r % len(names) if names else 0
        for name in names[k:] + names[:k]:
            fn, n = live[name], m.number[name]
            try:
                if cooldown:
                    time.sleep(cooldown)
                    _run_for(fn, rewarm)
                gc.disable()
                t0 = time.perf_counter()
                for _ in range(n):
                    fn()
                elapsed = time.perf_counter() - t0
            except Exception as exc:                  # noqa: BLE001
                m.errors[name] = f"{type(exc).__name__}: {exc}"
                m.samples[name] = []
                del live[name]
                continue
            finally:
                gc.enable()
            m.samples[name].append(elapsed / n)
    m.loadavg = (m.loadavg[0], os.getloadavg()[0])
    m.foreign_load = load.share()
    return m


def best_of(fns: dict[str, Callable[[], object]], repeats: int, calls: int = 3) -> dict[str, float]:
    """Seconds per call of each fn: the best of `repeats` samples of `calls` back-to-back calls.

    Each fn is called once first, untimed; then the fns alternate sample by sample. A quick
    look at one shape (benchmarks.gemm_shapes, benchmarks.reductions), not the suite's method.
    """
    best = dict.fromkeys(fns, float("inf"))
    for fn in fns.values():
        fn()                                               # warm up
    for _ in range(repeats):
        for name, fn in fns.items():
            t = time.perf_counter()
            for _ in range(calls):
                fn()
            best[name] = min(best[name], (time.perf_counter() - t) / calls)
    return best


@contextlib.contextmanager
def thread_limit(n: int) -> Iterator[None]:
    """Give NumPy's BLAS, numpy_gpt's elementwise pool and torch the same number of threads.

    threadpoolctl limits the BLAS NumPy links (OpenBLAS here) and any OpenMP runtime
    loaded in the process; numpy_gpt.parallel.set_num_threads sizes the pool that runs
    numpy_gpt's elementwise kernels (GELU, softmax, optimizer) on row blocks;
    torch.set_num_threads sets torch's intra-op pool (which also drives MKL/oneDNN inside
    torch). torch is touched only if something imported it before: import torch first, or a
    torch imported inside the block runs on all its threads (a review's script timed a
    "1-thread" torch cell on 2). It is not imported here, so that numpy_gpt's memory
    measurements (benchmarks.memory) keep torch out of their processes: the runs at 4657380
    and 6796432, whose thread_limit imported it, counted torch's import in numpy_gpt's figures
    above the imports and its whole-process peaks (not in those above a warmed-up runtime).
    """
    from threadpoolctl import threadpool_limits

    from numpy_gpt import parallel
    torch = sys.modules.get("torch")
    old = torch.get_num_threads() if torch is not None else None
    old_np = parallel.get_num_threads()
    with threadpool_limits(limits=n):
        parallel.set_num_threads(n)
        if torch is not None:
            torch.set_num_threads(n)
        try:
            yield
        finally:
            parallel.set_num_threads(old_np)
            if torch is not None:
                torch.set_num_threads(old)


def fmt_ms(seconds: float) -> str:
    """Milliseconds with 3 significant figures, or n/a."""
    if not math.isfinite(seconds):
        return "n/a"
    ms = seconds * 1e3
    return f"{ms:.3g}" if ms < 100 else f"{ms:.0f}"


def fmt_threads(n: int) -> str:
    """'1 thread' or '2 threads'."""
    return f"{n} thread" if n == 1 else f"{n} threads"


def fmt_ratio(stats: dict[str, float] | None) -> str:
    """'0.42 [0.40-0.45]': median [min-max] of a paired ratio, or n/a."""
    if not stats:
        return "n/a"
    return f"{stats['median']:.2f} [{stats['min']:.2f}-{stats['max']:.2f}]"
