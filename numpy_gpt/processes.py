"""Shard processes: data parallelism across processes instead of threads (opt-in, Linux).

    from numpy_gpt.processes import ShardProcesses
    with ShardProcesses(model):            # or procs = ShardProcesses(model) ... procs.close()
        logits, loss = model.forward(x, y)
        grads = model.backward()

Why. numpy_gpt.parallel runs a training step on several threads, one shard of
the batch each. NumPy lets go of Python's lock (the GIL) inside each call and
takes it back after, so the threads hand the lock to each other at every call.
When the calls are short, as in a small model, the hand-overs cost more than
the second core gives: tiny's step (benchmarks/README.md) is hardly faster on
two threads than on one. A process has a lock of its own. Here every shard
after the first runs in a worker process, and the first stays on the calling
thread; `python -m benchmarks.process_shards` measures the difference.

How. Each worker is `python -m numpy_gpt.processes`, started with its own
interpreter (not multiprocessing, whose "spawn" re-imports the user's __main__
and would run an unguarded training script again). It keeps a GPT of the same
config and dtype whose parameters are views into memory shared with this
process (a Linux memfd passed at start). At every forward:
  - this process copies model.params into the shared memory (so an optimizer
    that updates the arrays in place, or code that replaces them, is seen);
  - it sends each worker its rows (and their dropout masks) down a pipe and runs
    the first shard itself, meanwhile;
  - each worker runs GPT._forward on its rows, keeps the cache, and sends back
    its logits and loss.
At backward, each worker runs GPT._backward and writes its gradients into a
second shared block; this process adds them to its own, in shard order, as
the threads do. So the results are bit for bit those of the threaded step.

Only the sharded path goes to the workers: one shard (one thread, a batch of
one), KV-cache decoding and generation run in this process as before.

A worker's exception comes back as a ShardProcessError naming it; a worker
that dies raises ShardProcessError with its exit code. close() (or leaving
the with block, or the model's garbage collection) stops the workers.
"""
from __future__ import annotations

import mmap
import os
import pickle
import subprocess
import sys
import traceback
import weakref

import numpy as np

from .errors import NumpyGPTError
from .parallel import one_thread

_ALIGN = 64
_PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class ShardProcessError(NumpyGPTError, RuntimeError):
    """A shard worker process failed or exited."""


def _layout(shapes: dict, dtype) -> tuple[dict, int]:
    """name -> (offset, shape) of each array laid out one after another, 64-byte aligned; total size."""
    out, offset = {}, 0
    for name, shape in shapes.items():
        out[name] = (offset, tuple(shape))
        offset += -(-int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize // _ALIGN) * _ALIGN
    return out, max(offset, _ALIGN)


def _views(buf, layout: dict, dtype) -> dict:
    return {name: np.ndarray(shape, dtype, buffer=buf, offset=off) for name, (off, shape) in layout.items()}


def _shared(size: int) -> tuple[int, mmap.mmap]:
    """An anonymous shared file of `size` bytes (a memfd) and a mapping of it."""
    fd = os.memfd_create("numpy_gpt_shard", 0)
    os.ftruncate(fd, size)
    return fd, mmap.mmap(fd, size)


class _Worker:
    """One worker process and its pipes."""

    def __init__(self, init: dict, fds: tuple[int, int]):
        env = dict(os.environ, NUMPY_GPT_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
                   OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        # The worker imports this very numpy_gpt, even where only the parent's sys.path finds it.
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [_PACKAGE_PARENT, os.environ.get("PYTHONPATH")]))
        # A session of its own: Ctrl-C in a terminal reaches this process alone, which can then
        # finish its step and save (numpy-gpt train) while the worker serves on.
        self.proc = subprocess.Popen([sys.executable, "-m", "numpy_gpt.processes"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, pass_fds=fds, env=env, start_new_session=True)
        try:
            self.send(("init", init))
            self.recv()                               # "ready", or the worker's start-up error
        except BaseException:
            self.stop()
            raise

    def send(self, msg) -> None:
        try:
            pickle.dump(msg, self.proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            self._died()

    def recv(self):
        try:
            kind, value = pickle.load(self.proc.stdout)
        except (EOFError, OSError, pickle.UnpicklingError):
            self._died()
        if kind == "error":
            raise ShardProcessError(f"shard worker (pid {self.proc.pid}) failed: {value}")
        return value

    def _died(self):
        try:
            code = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:             # the pipe broke but the process hangs on
            self.proc.kill()
            code = self.proc.wait()
        raise ShardProcessError(f"shard worker (pid {self.proc.pid}) exited with code {code}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                pickle.dump(("exit", None), self.proc.stdin)
                self.proc.stdin.close()
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except OSError:
                pass


def _stop_all(workers: list, maps: list) -> None:
    for w in workers:
        w.params = w.grads = None                     # views into the mappings closed below
        w.stop()
    workers.clear()
    for m in maps:
        try:
            m.close()
        except BufferError:                           # someone still holds a view: the GC frees it later
            pass
    maps.clear()


class ShardProcesses:
    """Run `model`'s shards after the first in worker processes (see the module docstring).

    n_workers: how many workers; by default one less than numpy_gpt's thread
    count (numpy_gpt.parallel), which also sets how many shards a batch is cut into.
    """

    def __init__(self, model, n_workers: int | None = None):
        from .model import param_shapes
        from .parallel import _blas_controller, get_num_threads
        if not hasattr(os, "memfd_create"):
            raise ShardProcessError("shard processes need Linux (os.memfd_create)")
        if _blas_controller() is None:
            raise ShardProcessError("shard processes need threadpoolctl, to give BLAS one thread per shard")
        n = get_num_threads() - 1 if n_workers is None else n_workers
        if n < 1:
            raise ShardProcessError(f"shard processes need at least one worker, got {n} "
                                    "(set numpy_gpt.parallel.set_num_threads(2) or more)")
        if getattr(model, "shard_processes", None) is not None:
            raise ShardProcessError("this model already has shard processes; close() them first")
        self.model = model
        shapes = param_shapes(model.config)
        self.layout, size = _layout(shapes, model.dtype)
        self.workers: list[_Worker] = []
        self._maps: list = []
        self._finalizer = weakref.finalize(self, _stop_all, self.workers, self._maps)
        try:
            for _ in range(n):
                (pfd, pmap), (gfd, gmap) = _shared(size), _shared(size)
                self._maps += [pmap, gmap]
                init = {"config": model.config, "dtype": model.dtype.str, "layout": self.layout,
                        "size": size, "param_fd": pfd, "grad_fd": gfd}
                try:
                    self.workers.append(_Worker(init, (pfd, gfd)))
                finally:
                    os.close(pfd)                     # the mappings (and the worker's) keep the memory
                    os.close(gfd)
                self.workers[-1].params = _views(pmap, self.layout, model.dtype)
                self.workers[-1].grads = _views(gmap, self.layout, model.dtype)
        except BaseException:
            self.close()
            raise
        model.shard_processes = self

    def close(self) -> None:
        """Stop the workers and free the shared memory (idempotent)."""
        if getattr(self.model, "shard_processes", None) is self:
            self.model.shard_processes = None
        self._finalizer()

    def __enter__(self) -> "ShardProcesses":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------ called by GPT.forward / GPT.backward
    def forward(self, shard_args: list) -> list:
        """[model._forward(*args) for args in shard_args], shards after the first in the workers.

        For a remote shard the cache in the result is ("remote", worker index, kept targets)."""
        if len(shard_args) - 1 > len(self.workers):
            raise ShardProcessError(f"{len(shard_args)} shards for {len(self.workers)} workers and this process")
        if not self.workers:
            raise ShardProcessError("these shard processes are closed")
        remote = list(zip(self.workers, shard_args[1:]))
        for w, _ in remote:
            for name, p in self.model.params.items():
                np.copyto(w.params[name], p)          # the parameters as they are now
        for w, args in remote:
            w.send(("forward", args))
        try:
            with one_thread():
                first = self.model._forward(*shard_args[0])
        finally:
            results = [w.recv() for w, _ in remote]   # never leave a worker's reply unread
        outs = [first]
        for i, (logits, loss, kept) in enumerate(results):
            outs.append((logits, loss, ("remote", i, kept)))
        return outs

    def backward(self, first: tuple, remote: list) -> list:
        """Gradients of each shard: first = (cache, dloss, dlogits) runs here, remote =
        [(worker index, dloss, dlogits)] in the workers. Returns the gradient dicts in
        shard order; the workers' are views into shared memory, valid until the next call."""
        for i, dloss, dlogits in remote:
            self.workers[i].send(("backward", (dloss, dlogits)))
        try:
            with one_thread():
                grads = [self.model._backward(*first)]
        finally:
            for i, _, _ in remote:
                self.workers[i].recv()
        return grads + [self.workers[i].grads for i, _, _ in remote]


# ---------------------------------------------------------------- the worker's side
def _serve(inp, out) -> None:
    from .model import GPT
    from .parallel import keep_freed_memory, one_thread, set_num_threads
    set_num_threads(1)
    keep_freed_memory()
    model = cache = None
    while True:
        kind, args = pickle.load(inp)
        try:
            if kind == "exit":
                return
            if kind == "init":
                maps = [mmap.mmap(args[k], args["size"]) for k in ("param_fd", "grad_fd")]
                for k in ("param_fd", "grad_fd"):
                    os.close(args[k])
                params, grads = (_views(m, args["layout"], np.dtype(args["dtype"])) for m in maps)
                model = GPT(args["config"], dtype=np.dtype(args["dtype"]), params=params)
                reply = "ready"
            elif kind == "forward":
                with one_thread():
                    logits, loss, cache = model._forward(*args)
                reply = (logits, loss, cache["loss"][3] if "loss" in cache else 0)
            elif kind == "backward":
                if cache is None:
                    raise RuntimeError("backward before forward")
                c, cache = cache, None
                with one_thread():
                    g = model._backward(c, *args)
                for name, value in g.items():
                    grads[name][...] = value
                reply = None
            else:
                raise RuntimeError(f"unknown request {kind!r}")
            msg = ("ok", reply)
        except Exception as exc:                      # reported to the parent, which raises it
            traceback.print_exc(file=sys.stderr)
            msg = ("error", f"{type(exc).__name__}: {exc}")
        pickle.dump(msg, out, protocol=pickle.HIGHEST_PROTOCOL)
        out.flush()


if __name__ == "__main__":
    import signal
    signal.signal(signal.SIGINT, signal.SIG_IGN)      # the parent decides when to stop (it closes our stdin)
    _inp, _out = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr                           # the pipe to the parent carries pickles only
    try:
        _serve(_inp, _out)
    except EOFError:                                  # the parent went away
        pass
