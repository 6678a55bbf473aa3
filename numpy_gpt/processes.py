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

How. Each worker is a fresh Python interpreter that imports this numpy_gpt
(subprocess, not multiprocessing, whose "spawn" re-imports the user's __main__
and would run an unguarded training script again). It keeps a GPT of the same
config and dtype whose parameters are this process's own: at start the model's
parameters move into memory shared with the workers (a Linux memfd), so the
workers read them where the optimizer updates them, with no copy per step.
At every forward:
  - this process sends each worker its rows (and their dropout masks) down a
    pipe and runs the first shard itself, meanwhile;
  - each worker runs GPT._forward on its rows, keeps the cache, and sends back
    its logits and loss.
At backward, each worker runs GPT._backward, which writes each gradient, as it
is made, into a block shared with this process (no private copy of them all);
this process adds them to its own, in shard order, as the threads do. So the results are bit for bit those of the threaded
step.

Moving the parameters. ShardProcesses(model) copies each array of model.params
into the shared block and puts the copy in the dict in its place; close() moves
them back into one block of this process's own memory (numpy_gpt.model.
packed_params). An optimizer, a checkpoint or a loop that takes
model.params[name] when it needs it follows both moves. An array taken out of
the dict before a move is left behind: it is made read-only, so that an update
of it, which the model would no longer see, fails instead of being lost. An
array that code puts into model.params while the workers run is copied into the
shared block at every forward; so, for such an array only, a change made in
place between forward and backward (which no optimizer does) reaches the
threads' backward but not the workers'. While the workers run, the parameters
are in shared memory, which a fork() shares with the child instead of copying:
a child forked then (multiprocessing's "fork" start method) that changes them
changes this process's model too.

What runs where: every forward cut into shards goes to the workers (training
steps, evaluation, generation without the KV cache on several rows). Forwards
of one shard (one thread, a batch of one) and KV-cache decoding stay here.

Failures. A worker's exception comes back as a ShardProcessError naming it; a
worker that dies raises ShardProcessError with its exit code. Any failure or
interruption (Ctrl-C) in the middle of a step kills the workers, because a
half-finished exchange would leave their replies out of step with the
requests; the model then goes back to threads, and new ShardProcesses can be
started. close() (or leaving the with block, or the garbage collection of the
model) stops the workers.
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


def _move(params: dict, into: dict) -> None:
    """Copy params[k] into into[k] and put into[k] in params in its place, for each k of into;
    the arrays left behind become read-only (see "Moving the parameters" above)."""
    for name, dest in into.items():
        old = params[name]
        np.copyto(dest, old)
        params[name] = dest
        old.flags.writeable = False


def _views(buf, layout: dict, dtype) -> dict:
    return {name: np.ndarray(shape, dtype, buffer=buf, offset=off) for name, (off, shape) in layout.items()}


def _shared(size: int) -> tuple[int, mmap.mmap]:
    """An anonymous shared file of `size` bytes (a memfd) and a mapping of it."""
    fd = os.memfd_create("numpy_gpt_shard", 0)
    os.ftruncate(fd, size)
    return fd, mmap.mmap(fd, size)


# The worker's first lines: replies go out on a copy of the stdout pipe, and fd 1 becomes stderr,
# so that nothing printed (by Python or by C code) can corrupt them; and this numpy_gpt comes
# first on sys.path, where "python -m" would put the working directory.
_BOOT = ("import os, sys\n"
         "replies = os.dup(1)\n"
         "os.dup2(2, 1)\n"
         "sys.path[0] = {parent!r}\n"
         "from numpy_gpt.processes import _worker_main\n"
         "_worker_main(replies)\n")


class _Worker:
    """One worker process and its pipes."""

    def __init__(self, init: dict, fds: tuple[int, int]):
        env = dict(os.environ, NUMPY_GPT_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
                   OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        # A session of its own: Ctrl-C in a terminal reaches this process alone, which can then
        # finish its step and save (numpy-gpt train) while the worker serves on.
        self.grads = None
        self.proc = subprocess.Popen([sys.executable, "-c", _BOOT.format(parent=_PACKAGE_PARENT)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, pass_fds=fds, env=env,
                                     start_new_session=True)
        try:
            self.send(("init", init))
            self.recv()                               # "ready", or the worker's start-up error
        except BaseException:
            self.kill()
            raise

    def send(self, msg) -> None:
        """msg = (kind, args); the worker also gets this thread's np.errstate, to run under it
        ("call" and "log" become "warn": their handler stays in this process)."""
        errstate = {k: "warn" if v in ("call", "log") else v for k, v in np.geterr().items()}
        try:
            pickle.dump((*msg, errstate), self.proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
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
        """Ask the worker to exit; kill it if it has not within 2 s."""
        if self.proc.poll() is None:
            try:
                self.proc.stdout.close()              # a worker blocked writing a reply gets EPIPE and exits
                pickle.dump(("exit", None), self.proc.stdin)
                self.proc.stdin.close()
                self.proc.wait(timeout=2)
            except (OSError, subprocess.TimeoutExpired):
                self.kill()
        self._close_pipes()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._close_pipes()

    def _close_pipes(self) -> None:
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except OSError:
                pass


def _stop_all(workers: list, kill: bool = False) -> None:
    """Stop (or kill) the workers. Their shared blocks are not closed here: an array made on an
    mmap does not stop mmap.close(), and would be left pointing at unmapped memory. Each block is
    unmapped when the last array on it goes (the arrays hold their mmap as their base)."""
    for w in workers:
        w.grads = None
        w.kill() if kill else w.stop()
    workers.clear()


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
            raise ShardProcessError(f"shard processes need at least one worker, got {n} (use 2 threads or "
                                    "more: NUMPY_GPT_NUM_THREADS or numpy_gpt.parallel.set_num_threads)")
        if getattr(model, "shard_processes", None) is not None:
            raise ShardProcessError("this model already has shard processes; close() them first")
        self.model = model
        shapes = param_shapes(model.config)
        if model.params.keys() != shapes.keys():
            raise ShardProcessError(f"model.params' names are not those of its config: "
                                    f"missing {sorted(shapes.keys() - model.params.keys())}, "
                                    f"unexpected {sorted(model.params.keys() - shapes.keys())}")
        for name, p in model.params.items():
            if tuple(np.shape(p)) != tuple(shapes[name]) or np.asarray(p).dtype != model.dtype:
                raise ShardProcessError(f"model.params[{name!r}] is {np.asarray(p).dtype}{tuple(np.shape(p))}; "
                                        f"the model's config and dtype need {model.dtype}{tuple(shapes[name])}")
        self.layout, size = _layout(shapes, model.dtype)
        self.workers: list[_Worker] = []
        self._token = None                            # names the forward whose caches the workers hold
        self._finalizer = weakref.finalize(self, _stop_all, self.workers)
        try:
            pfd, pmap = _shared(size)                 # the parameters, one block for every worker
            try:
                self.params = _views(pmap, self.layout, model.dtype)
                for _ in range(n):
                    gfd, gmap = _shared(size)         # a worker's gradients
                    init = {"config": model.config, "dtype": model.dtype.str, "layout": self.layout,
                            "size": size, "param_fd": pfd, "grad_fd": gfd}
                    try:
                        self.workers.append(_Worker(init, (pfd, gfd)))
                    finally:
                        os.close(gfd)                 # the mappings (ours, the worker's) keep the memory
                    self.workers[-1].grads = _views(gmap, self.layout, model.dtype)
            finally:
                os.close(pfd)
            _move(model.params, self.params)          # once every worker is up: a failed start moves nothing
        except BaseException:
            self.close()
            raise
        model.shard_processes = self

    def close(self) -> None:
        """Stop the workers and free the shared memory (idempotent)."""
        if getattr(self.model, "shard_processes", None) is self:
            self.model.shard_processes = None
        try:
            self._move_params_back()
        finally:
            self.params = {}                          # so that the shared block can be unmapped
            self._finalizer()

    def _move_params_back(self) -> None:
        """The model's parameters that are still ours, moved into this process's own memory.

        The heap's free memory goes back to the kernel first: the training steps' freed
        arrays, which malloc keeps (parallel.keep_freed_memory), would otherwise stay resident
        beside the new block, which then made the run's peak (medium config: 598 MB against
        517 in its steps)."""
        from .model import packed_params
        from .parallel import trim_freed_memory
        params = self.model.params
        ours = [k for k, v in getattr(self, "params", {}).items() if params.get(k) is v]
        if ours:
            trim_freed_memory()
            _move(params, packed_params({k: params[k] for k in ours}))

    def __enter__(self) -> "ShardProcesses":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _abort(self) -> None:
        """Kill the workers after a failed or interrupted exchange; the model goes back to threads."""
        _stop_all(self.workers, kill=True)
        self.close()

    def _check(self, model) -> None:
        if model is not self.model:
            raise ShardProcessError("these shard processes serve another model (a copy shares them; "
                                    "give the copy its own, or set its shard_processes to None)")
        if not self.workers:
            raise ShardProcessError("these shard processes are closed")

    # ------------------------------------------------ called by GPT.forward / GPT.backward
    def forward(self, model, shard_args: list, logits_out: list) -> list:
        """[model._forward(*args, logits_out=out) for args, out in zip(shard_args, logits_out)],
        shards after the first in the workers, whose logits come back down the pipe and are
        copied into their out.

        For a remote shard the cache in the result is ("remote", worker index, kept targets, token)."""
        self._check(model)
        if len(shard_args) - 1 > len(self.workers):
            raise ShardProcessError(f"{len(shard_args)} shards for {len(self.workers)} workers and this process")
        remote = list(zip(self.workers, shard_args[1:]))
        for name, p in model.params.items():
            if p is not self.params[name]:            # an array put in place of ours: copied as it is now
                np.copyto(self.params[name], p)
        self._token = token = object()
        try:
            for w, args in remote:
                w.send(("forward", args))
            with one_thread():
                first = model._forward(*shard_args[0], logits_out=logits_out[0])
            outs = [first]
            for i, (w, _) in enumerate(remote):       # one reply's logits at a time
                logits, loss, kept = w.recv()
                logits_out[i + 1][...] = logits
                outs.append((logits_out[i + 1], loss, ("remote", i, kept, token)))
                del logits
        except BaseException:                         # a reply may be unread: start afresh
            self._abort()
            raise
        return outs

    def backward(self, model, first: tuple, remote: list) -> list:
        """Gradients of each shard: first = (cache, dloss, dlogits) runs here, remote =
        [(remote cache, dloss, dlogits)] in the workers. Returns the gradient dicts in shard
        order; the workers' are views into shared memory, valid until the next call."""
        self._check(model)
        if any(c[3] is not self._token for c, _, _ in remote):
            raise ShardProcessError("backward() of a forward that other or earlier shard processes ran")
        self._token = None                            # one backward per forward
        try:
            for c, dloss, dlogits in remote:
                self.workers[c[1]].send(("backward", (dloss, dlogits)))
            with one_thread():
                grads = [model._backward(*first)]
            for c, _, _ in remote:
                self.workers[c[1]].recv()
        except BaseException:
            self._abort()
            raise
        return grads + [self.workers[c[1]].grads for c, _, _ in remote]


# ---------------------------------------------------------------- the worker's side
def _serve(inp, out) -> None:
    from .model import GPT
    from .parallel import keep_freed_memory, set_num_threads
    set_num_threads(1)
    keep_freed_memory()
    model = cache = None
    while True:
        kind, args, *errstate = pickle.load(inp)
        try:
            with np.errstate(**(errstate[0] if errstate else {})):    # warn (or not) as the parent does
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
                    cache = None                      # the last forward's, if no backward freed it
                    logits, loss, cache = model._forward(*args)
                    reply = (logits, loss, cache["n_kept"])
                    del logits
                elif kind == "backward":
                    if cache is None:
                        raise RuntimeError("backward before forward")
                    c, cache = cache, None
                    model._backward(c, *args, out=grads)
                    del c
                    reply = None
                else:
                    raise RuntimeError(f"unknown request {kind!r}")
                msg = ("ok", reply)
        except Exception as exc:                      # reported to the parent, which raises it
            traceback.print_exc(file=sys.stderr)
            msg = ("error", f"{type(exc).__name__}: {exc}")
        pickle.dump(msg, out, protocol=pickle.HIGHEST_PROTOCOL)
        out.flush()
        msg = reply = None                            # the logits sent: not kept through the next request


def _worker_main(reply_fd: int) -> None:
    """The worker's loop (see _BOOT): requests on stdin, replies on reply_fd, until "exit" or EOF."""
    import signal
    signal.signal(signal.SIGINT, signal.SIG_IGN)      # the parent decides when to stop
    try:
        # The worker is one shard from start to exit: BLAS on one thread, kernels inline. Set
        # here once, with threadpoolctl's import, rather than around every request.
        with os.fdopen(reply_fd, "wb") as out, one_thread():
            _serve(sys.stdin.buffer, out)
    except (EOFError, BrokenPipeError):               # the parent went away
        pass
