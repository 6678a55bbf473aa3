"""Two shard threads against two processes: what Python's lock costs a training step.

    python -m benchmarks.process_shards [--config tiny] [--rounds 3] [--seconds 3]

numpy_gpt runs a step on two threads by giving each thread half of the batch
(numpy_gpt.parallel). NumPy lets go of the GIL inside each call and takes it back
afterwards, so the two threads hand the lock to each other at every call; when
the calls are short, the hand-overs are a large part of their time. This
experiment measures that, in alternating rounds, on one benchmark config:

  - "1 thread":  the whole batch on one thread;
  - "2 threads": numpy_gpt as it is, one shard per thread;
  - "2 processes": the second shard in a process of its own. The parameters live
    in shared memory; the worker writes its shard's gradients into shared memory;
    the main process runs the first shard, adds the two and takes the AdamW step.

It then times a loop of two small ufuncs alone, in two threads and in two
processes. The process version is an experiment, not part of numpy_gpt (README,
"What limits the training step", says why it is not built).
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import threading
import time
from multiprocessing import shared_memory

import numpy as np

from numpy_gpt.parallel import keep_freed_memory

from .timing import thread_limit
from .workloads import CONFIGS, _numpy_adamw, fixed_batch, make_step, numpy_model


def _shared_views(shm: shared_memory.SharedMemory, like: dict, dtype) -> dict:
    """Arrays shaped like `like`'s values, one after another in shm's buffer."""
    views, offset = {}, 0
    for name, a in like.items():
        views[name] = np.ndarray(a.shape, dtype, buffer=shm.buf, offset=offset)
        offset += a.size * np.dtype(dtype).itemsize
    return views


def _worker(conn, config: str, dtype: str, param_shm: str, grad_shm: str, x, y) -> None:
    """The second shard: forward and backward on (x, y) whenever the main process asks."""
    with thread_limit(1):
        model = numpy_model(CONFIGS[config], np.dtype(dtype))
        shms = [shared_memory.SharedMemory(name=param_shm), shared_memory.SharedMemory(name=grad_shm)]
        try:
            params, grads = (_shared_views(s, model.params, model.dtype) for s in shms)
            model.params.update(params)                  # the main process's parameters, not copies
            conn.send("ready")
            while conn.recv():
                _, loss = model.forward(x, y)
                for name, g in model.backward().items():
                    grads[name][...] = g
                conn.send(float(loss))
            del params, grads, model                     # no views left on the buffers
        finally:
            for s in shms:
                s.close()


class ProcessShards:
    """A model and AdamW whose step runs the batch's second half in a worker process."""

    def __init__(self, config: str, dtype=np.float32):
        w = CONFIGS[config]
        self.model = numpy_model(w, dtype)
        x, y = fixed_batch(w)
        h = x.shape[0] // 2
        self.halves = [(x[:h], y[:h]), (x[h:], y[h:])]
        self.weights = [h / x.shape[0], 1 - h / x.shape[0]]      # each half's share of the mean loss
        nbytes = sum(p.nbytes for p in self.model.params.values())
        self.shms = [shared_memory.SharedMemory(create=True, size=nbytes) for _ in range(2)]
        params = _shared_views(self.shms[0], self.model.params, self.model.dtype)
        for name, p in params.items():
            p[...] = self.model.params[name]
        self.model.params.update(params)                 # AdamW updates them in place
        self.grads = _shared_views(self.shms[1], self.model.params, self.model.dtype)
        self.opt, _ = _numpy_adamw(self.model.params)
        self.conn, child = mp.Pipe()
        self.proc = mp.get_context("spawn").Process(
            target=_worker, args=(child, config, self.model.dtype.str, self.shms[0].name,
                                  self.shms[1].name, *self.halves[1]), daemon=True)
        self.proc.start()
        if self.conn.recv() != "ready":
            raise RuntimeError("the worker process did not start")

    def gradients(self) -> tuple[float, dict]:
        """Mean loss and gradients over the whole batch, half here and half in the worker."""
        self.conn.send(True)
        _, loss = self.model.forward(*self.halves[0])
        grads = self.model.backward()
        other_loss = self.conn.recv()
        f = self.model.dtype.type
        w0, w1 = (f(w) for w in self.weights)
        for name, g in grads.items():
            g *= w0
            g += w1 * self.grads[name]
        return float(w0 * loss + w1 * other_loss), grads

    def step(self) -> float:
        loss, grads = self.gradients()
        self.opt.step(grads)
        return loss

    def close(self) -> None:
        try:
            if self.proc.is_alive():
                self.conn.send(False)
            self.proc.join(timeout=10)
        finally:
            self.grads = self.opt = self.model = None    # drop the views before closing the buffers
            for s in self.shms:
                s.close()
                s.unlink()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


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
    with ProcessShards(a.config) as procs:
        variants = [("1 thread", 1, threaded), ("2 threads", 2, threaded), ("2 processes", 1, procs.step)]
        print(f"training step, {a.config}, float32, ms per step (median over {a.seconds:g} s per round)\n")
        print("| round | " + " | ".join(v[0] for v in variants) + " | 2 threads / 2 processes |")
        print("|---" * (len(variants) + 2) + "|")
        for r in range(a.rounds):
            ms = []
            for _, n, fn in variants:
                with thread_limit(n):
                    ms.append(_ms_per_call(fn, a.seconds))
            print(f"| {r + 1} | " + " | ".join(f"{t:.2f}" for t in ms) + f" | {ms[1] / ms[2]:.2f} |", flush=True)
    print("\nA loop of np.multiply and np.add over the same floats, ms per loop:\n")
    print("\n".join(ufunc_table()))


if __name__ == "__main__":
    main()
