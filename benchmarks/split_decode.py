"""Two processes for one KV-cache decoding step: an experiment, not numpy_gpt's path.

    python -m benchmarks.split_decode [--config small] [--steps 64] [--rounds 20] [--dtype float32]

numpy_gpt decodes a batch of one on one core when the model's weights stay in the cache, as
small's do (docs/decoding.md, "What a step costs"): a step reads every weight once, and each read
is a matrix-vector product that one core runs about as fast as BLAS can feed it. Would a second
core help? This script cuts each step across two
processes the way Megatron-LM cuts a transformer layer (Shoeybi et al., 2019, section 3): each
process takes half the heads (their columns of c_attn, their keys and values, their softmax, the
same rows of c_proj), half the MLP's hidden units (columns of c_fc, rows of its c_proj) and half
the vocabulary of the head. Each then holds a partial sum of every sublayer's output; adding the
two gives the output (y @ W = y[:, a] @ W[a] + y[:, b] @ W[b]). So each process reads half the
weights, and a step makes one exchange per sublayer and one for the logits.

An exchange is a few microseconds of work on each side, less than a pipe's round trip, so the
two processes meet in shared memory: this one writes the rows and then bumps a counter, the
worker spins until it sees the counter move, and answers the same way. That relies on stores
reaching the other core in the order they were made, which x86-64 guarantees (its memory model,
TSO); this script runs on Linux on x86-64 only.

It times runs of --steps decoding steps from an empty cache (the same fixed tokens each run),
the one-process step (numpy_gpt.decode.DecodeStep) and the two-process one alternating run by
run, on one BLAS thread per process (the worker parked, blocked on a pipe rather than spinning,
while the one-process step runs), and prints each one's median time per step and their ratio
paired run by run; and how far the two-process logits are from the one-process ones (the sums
are cut in two, so they differ by rounding). Measured on the project's Zen 3 host, small config:
not reliably faster (0.91-1.21x over eight runs; 1.29-1.33x at medium, where a second BLAS thread
in one process gives about as much: docs/decoding.md); the numbers may differ on a machine with
more memory bandwidth per core, which is what this script is for.
"""
from __future__ import annotations

import argparse
import mmap
import os
import platform
import statistics
import subprocess
import sys
import time
import weakref
from pathlib import Path

import numpy as np

from numpy_gpt.activations import ACTIVATIONS, _gelu_kernel
from numpy_gpt.attention import _softmax_rows
from numpy_gpt.decode import DecodeStep, _linear
from numpy_gpt.parallel import matmul, one_thread
from numpy_gpt.processes import _layout, _shared, _views

from .workloads import CONFIGS, numpy_model

ROOT = Path(__file__).resolve().parent.parent
ATTN, MLP, HEAD, PING, EXIT, PARK = range(6)  # what the worker is asked for
SEQ, KIND, LAYER, POS = range(4)              # the request's fields in the control counters, and
DONE = 8                                      # the worker's answer, in the next 64-byte cache line


def can_run() -> str | None:
    """None where this experiment runs, else why not."""
    if not sys.platform.startswith("linux") or not hasattr(os, "memfd_create"):
        return "needs Linux (os.memfd_create)"
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return f"needs x86-64 (spinning on shared memory relies on its store order), not {platform.machine()}"
    return None


def model_for(config: str, dtype, jitter: float = 0.0):
    """The benchmark's model for config (seeded: the worker builds the same one), with every
    parameter moved by jitter times a fixed standard normal draw: its biases start at zero, which
    a check of the sums would not see."""
    model = numpy_model(CONFIGS[config], dtype)
    if jitter:
        rng = np.random.default_rng(12345)
        for p in model.params.values():
            p += (jitter * rng.standard_normal(p.shape)).astype(p.dtype)
    return model


def _half(n: int, rank: int) -> slice:
    """Rank 0's or rank 1's part of range(n): the first ceil(n / 2), or the rest (maybe none)."""
    mid = -(-n // 2)
    return slice(0, mid) if rank == 0 else slice(mid, n)


class Share:
    """One process's half of a decoding step, with its own copy of the weights it reads (in
    this process's memory, as contiguous arrays) and its own KV caches for its heads."""

    def __init__(self, step: DecodeStep, rank: int):
        cfg = step.config
        C, hs = cfg.n_embd, cfg.head_size
        self.step = step
        self.heads = _half(cfg.n_head, rank)
        cols = slice(self.heads.start * hs, self.heads.stop * hs)
        hidden = _half(cfg.mlp_width, rank)
        self.vocab = _half(step.head.shape[1], rank)
        qkv = np.r_[cols, C + cols.start:C + cols.stop, 2 * C + cols.start:2 * C + cols.stop]   # of c_attn's 3C
        mine = lambda a, at: None if a is None else np.ascontiguousarray(a[at])                  # a copy
        self.blocks = []
        for p in step.blocks:
            (W, b), block = p["attn.c_attn"], {}
            block["qkv"] = (mine(W, (slice(None), qkv)), mine(b, qkv))      # (C, 3c): q's, k's, v's columns
            block["attn_proj"] = mine(p["attn.c_proj"][0], cols)           # (c, C)
            W, b = p["mlp.c_fc"]
            block["fc"] = (mine(W, (slice(None), hidden)), mine(b, hidden))
            block["mlp_proj"] = mine(p["mlp.c_proj"][0], hidden)
            self.blocks.append(block)
        self.head = mine(step.head.T, self.vocab).T                         # (C, v), a view as step.head is
        n = self.heads.stop - self.heads.start
        self.k = np.empty((cfg.n_layer, n, cfg.block_size, hs), step.wte.dtype)   # this share's caches
        self.v = np.empty_like(self.k)
        self.has_hidden = hidden.stop > hidden.start

    def attn(self, x: np.ndarray, layer: int, pos: int) -> np.ndarray | None:
        """This share's partial sum (1, C) of the attention's output at pos, before c_proj's
        bias, from the block's input x (1, C); None for a share without heads."""
        if self.heads.stop == self.heads.start:
            return None
        step, block = self.step, self.blocks[layer]
        h = step._layernorm(x, *step.blocks[layer]["ln_1"])
        q, k, v = _linear(h, *block["qkv"]).reshape(3, -1, 1, step.hs)     # (nh', 1, hs) each
        self.k[layer, :, pos] = k[:, 0]
        self.v[layer, :, pos] = v[:, 0]
        s = q @ self.k[layer, :, :pos + 1].swapaxes(-1, -2)                 # (nh', 1, L)
        _softmax_rows(s, step.scale, None)
        return matmul((s @ self.v[layer, :, :pos + 1]).reshape(1, -1), block["attn_proj"])

    def mlp(self, x: np.ndarray, layer: int) -> np.ndarray | None:
        """This share's partial sum (1, C) of the MLP's output, before c_proj's bias."""
        if not self.has_hidden:
            return None
        step, block = self.step, self.blocks[layer]
        h = step._layernorm(x, *step.blocks[layer]["ln_2"])
        a = _linear(h, *block["fc"])
        if step.gelu:
            _gelu_kernel(a, a, np.empty_like(a))
        else:
            a, _ = ACTIVATIONS[step.config.activation][0](a)
        return matmul(a, block["mlp_proj"])

    def logits(self, x: np.ndarray, out: np.ndarray) -> None:
        """This share's columns of the logits (1, V), written into out."""
        if self.vocab.stop > self.vocab.start:
            h = self.step._layernorm(x, *self.step.ln_f)
            matmul(h, self.head, out=out[:, self.vocab])


class Block:
    """The shared memory the two processes meet in, laid out as numpy_gpt.processes lays out its
    blocks (each array 64-byte aligned): 16 int64 counters (the request's in the first cache line,
    the worker's answer in the next), the rows, the worker's partial sum, the logits."""

    def __init__(self, buf, cfg, dtype):
        dtype = np.dtype(dtype)
        v = _views(buf, Block.layout(cfg, dtype)[0], dtype)
        self.ctl = v["ctl"].view(np.int64)
        self.x, self.part, self.logits = v["x"], v["part"], v["logits"]

    @staticmethod
    def layout(cfg, dtype) -> tuple[dict, int]:
        dtype = np.dtype(dtype)
        return _layout({"ctl": (16 * 8 // dtype.itemsize,), "x": (1, cfg.n_embd), "part": (1, cfg.n_embd),
                        "logits": (1, cfg.vocab_size)}, dtype)


def _kill(proc) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait()


class TwoProcessStep:
    """A decoding step of one row, cut across this process and a worker process (see the
    module docstring). step(token, pos) -> logits (1, V) for the token at pos, after steps at
    positions 0 to pos - 1 (a run starts again at 0: each step writes its position's keys and
    values before reading positions 0 to pos). park() blocks the worker until the next step
    (it spins otherwise, a core busy). For the benchmark's configs (GPT-2 style: pre-LN, an MLP).
    Use it in a with block, or close() it: the worker is killed at the latest when this object
    is collected."""

    def __init__(self, config: str, dtype, jitter: float = 0.0):
        self.model = model_for(config, dtype, jitter)
        self.step = DecodeStep(self.model)
        cfg = self.model.config
        if cfg.norm != "pre" or not cfg.mlp:
            raise ValueError(f"split_decode runs pre-LN blocks with an MLP, not norm={cfg.norm!r}, mlp={cfg.mlp}")
        fd, buf = _shared(Block.layout(cfg, dtype)[1])
        try:
            self.shm = Block(buf, cfg, dtype)
            env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
                       NUMPY_GPT_NUM_THREADS="1")
            self.proc = subprocess.Popen(
                [sys.executable, "-c", f"import sys; sys.path.insert(0, {str(ROOT)!r}); "
                 f"from benchmarks.split_decode import serve; "
                 f"serve({fd}, {config!r}, {np.dtype(dtype).str!r}, {float(jitter)!r})"],
                pass_fds=(fd,), env=env, stdin=subprocess.PIPE)
        finally:
            os.close(fd)
        self._finalizer = weakref.finalize(self, _kill, self.proc)
        heads, hidden = _half(cfg.n_head, 1), _half(cfg.mlp_width, 1)
        self.worker_adds = {ATTN: heads.stop > heads.start, MLP: hidden.stop > hidden.start}
        self.seq, self.next_pos, self.parked = 0, 0, False
        try:
            self.share = Share(self.step, 0)
            self._ask(PING, 0, 0)
            self._wait()                              # answered once the worker is up
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> "TwoProcessStep":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def park(self) -> None:
        """Have the worker block on its pipe (not spin) until the next step."""
        if not self.parked:
            self._ask(PARK, 0, 0)
            self._wait()
            self.parked = True

    def wake(self) -> None:
        """Let a parked worker spin again (the next step does it too, on the clock)."""
        if self.parked:
            self.proc.stdin.write(b"w")
            self.proc.stdin.flush()
            self.parked = False

    def _ask(self, kind: int, layer: int, pos: int, x: np.ndarray | None = None) -> None:
        self.wake()
        ctl = self.shm.ctl
        if x is not None:
            self.shm.x[...] = x                       # the rows first, the counter last
        ctl[KIND], ctl[LAYER], ctl[POS] = kind, layer, pos
        self.seq += 1
        ctl[SEQ] = self.seq

    def _wait(self) -> None:
        ctl, spins = self.shm.ctl, 0
        while ctl[DONE] != self.seq:
            spins += 1
            if spins % 16384 == 0 and self.proc.poll() is not None:
                raise RuntimeError(f"the split_decode worker exited with code {self.proc.returncode}")

    def __call__(self, token: int, pos: int) -> np.ndarray:
        step, cfg = self.step, self.model.config
        if not 0 <= token < cfg.vocab_size:
            raise ValueError(f"token {token} is outside [0, {cfg.vocab_size})")
        if pos not in (0, self.next_pos) or pos >= cfg.block_size:
            raise ValueError(f"position {pos}: this run's next is {self.next_pos} (or 0 for a new run), "
                             f"below block_size={cfg.block_size}")
        self.next_pos = pos + 1
        x = step.wte[[token]] + step.wpe[pos]                                  # (1, C)
        for layer, p in enumerate(step.blocks):
            x = self._sublayer(ATTN, layer, pos, x, p["attn.c_proj"][1])
            x = self._sublayer(MLP, layer, pos, x, p["mlp.c_proj"][1])
        self._ask(HEAD, 0, 0, x)
        self.share.logits(x, self.shm.logits)
        self._wait()
        return self.shm.logits.copy()

    def _sublayer(self, kind: int, layer: int, pos: int, x: np.ndarray, bias) -> np.ndarray:
        """x after the block's attention (kind ATTN) or MLP: both halves added, the bias, the
        residual add."""
        self._ask(kind, layer, pos, x)
        y = self.share.attn(x, layer, pos) if kind == ATTN else self.share.mlp(x, layer)   # never None here
        self._wait()
        if self.worker_adds[kind]:
            y += self.shm.part
        if bias is not None:
            y += bias
        return x + y

    def close(self) -> None:
        """Ask the worker to leave (spinning, it sees EXIT; parked, its pipe's end); kill it if it
        has not within 5 s."""
        if self.proc.poll() is None:
            ctl = self.shm.ctl
            ctl[KIND] = EXIT
            self.seq += 1
            ctl[SEQ] = self.seq
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self._finalizer()


def serve(fd: int, config: str, dtype: str, jitter: float) -> None:
    """The worker: the same model (model_for), share 1, and a loop that answers requests
    until EXIT (or until its parent is gone)."""
    model = model_for(config, np.dtype(dtype), jitter)
    cfg = model.config
    shm = Block(mmap.mmap(fd, Block.layout(cfg, dtype)[1]), cfg, dtype)
    os.close(fd)
    share, ctl, seq, parent, spins = Share(DecodeStep(model), 1), shm.ctl, 0, os.getppid(), 0
    with one_thread():
        while True:
            if ctl[SEQ] == seq:
                spins += 1
                if spins % 65536 == 0 and os.getppid() != parent:
                    return
                continue
            seq = int(ctl[SEQ])
            kind, layer, pos = int(ctl[KIND]), int(ctl[LAYER]), int(ctl[POS])
            if kind == EXIT:
                return
            if kind == PARK:
                ctl[DONE] = seq
                if not sys.stdin.buffer.read(1):      # blocked until woken; b"": the parent closed the pipe
                    return
                continue
            if kind == HEAD:
                share.logits(shm.x, shm.logits)
            else:
                y = share.attn(shm.x, layer, pos) if kind == ATTN else share.mlp(shm.x, layer)
                if y is not None:
                    shm.part[...] = y
            ctl[DONE] = seq


def compare(config: str = "small", steps: int = 64, rounds: int = 20, dtype=np.float32) -> dict:
    """Runs of `steps` decoding steps from an empty cache, one-process and two-process alternating
    (which goes first alternates too). Returns {"one": [s per step], "two": [...], "max_diff":
    the largest |two - one| of any logit over the largest |one|, on the first run, "steps": the
    steps per run (at most block_size)}. The worker is parked while the one-process step runs."""
    if steps < 1 or rounds < 1:
        raise ValueError(f"--steps and --rounds must be at least 1, got {steps} and {rounds}")
    why = can_run()
    if why:
        raise SystemExit(f"split_decode {why}")
    two = TwoProcessStep(config, dtype)
    try:
        cfg = two.model.config
        steps = min(steps, cfg.block_size)
        tokens = np.random.default_rng(0).integers(0, cfg.vocab_size, steps)
        one = DecodeStep(two.model)

        def run_one(out=None):
            caches = two.model.new_kv_caches(1)
            for pos in range(steps):
                logits = one(tokens[pos:pos + 1], caches, pos)
                if out is not None:
                    out.append(logits)

        def run_two(out=None):
            for pos in range(steps):
                logits = two(int(tokens[pos]), pos)
                if out is not None:
                    out.append(logits)
        with one_thread():
            a, b = [], []
            run_two(b)
            two.park()
            run_one(a)
            scale = max(float(np.abs(x).max()) for x in a)
            result = {"one": [], "two": [], "steps": steps,
                      "max_diff": max(float(np.abs(x - y).max()) for x, y in zip(a, b)) / scale}
            for r in range(rounds):
                for name, run in (("one", run_one), ("two", run_two))[::1 if r % 2 else -1]:
                    if name == "one":                 # before the clock starts
                        two.park()
                    else:
                        two.wake()
                    t = time.perf_counter()
                    run()
                    result[name].append((time.perf_counter() - t) / steps)
        return result
    finally:
        two.close()


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", choices=sorted(CONFIGS), default="small")
    p.add_argument("--steps", type=int, default=64, help="decoding steps per run, from an empty cache")
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    a = p.parse_args(argv)
    r = compare(a.config, a.steps, a.rounds, np.dtype(a.dtype))
    one, two = statistics.median(r["one"]), statistics.median(r["two"])
    ratios = sorted(o / t for o, t in zip(r["one"], r["two"]))
    print(f"{a.config}, batch 1, {a.dtype}, runs of {r['steps']} steps from an empty cache, {a.rounds} rounds, "
          f"1 BLAS thread per process")
    print(f"one process:   {1e6 * one:.0f} us per step (median)")
    print(f"two processes: {1e6 * two:.0f} us per step (median)")
    print(f"one / two, paired run by run: median {statistics.median(ratios):.3f} "
          f"[{ratios[len(ratios) // 4]:.3f}-{ratios[(3 * len(ratios)) // 4]:.3f}] (above 1: two processes faster)")
    print(f"logits: largest difference {r['max_diff']:.1e} of the largest logit (the sums are cut in two)")


if __name__ == "__main__":
    main()
