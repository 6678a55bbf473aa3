"""Peak memory of a training run the way the command line trains: numpy_gpt's Trainer, with
evaluations, gradient norms and clipping, and a checkpoint saved at the end.

    python -m benchmarks.trainer_memory [--config medium] [--steps 3] [--eval-interval 0]
                                        [--save] [--processes] [--threads 2]

Prints the process's peak resident memory above its imports (VmHWM, its mark reset after the
imports) after the steps and, with --save, after numpy_gpt.checkpoint.save; with --processes
(ShardProcesses, as `numpy-gpt train` on 2 threads or more) also each shard worker's peak above
its own start, shared blocks included. The benchmark suite's memory figures (benchmarks.memory)
time a bare step instead: forward, backward and AdamW, without what a Trainer adds around it.

The figures in numpy_gpt.reductions.sum_of_squares, GPT.forward's test of the cache it lets go,
numpy_gpt.checkpoint.safetensors_writer and README.md come from this tool (run against the
commits before and after each change, on 2 threads). Linux only (/proc).
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np

from .memory import _status_mb, maxrss_mb, reset_peak
from .timing import child_pids, thread_limit
from .workloads import CONFIGS


def measure(config: str, steps: int, eval_interval: int, save: bool, processes: bool, threads: int) -> dict:
    from numpy_gpt import GPT, GPTConfig, checkpoint
    from numpy_gpt.train import TrainConfig, Trainer
    w = CONFIGS[config]
    cfg = GPTConfig(vocab_size=w.vocab_size, block_size=w.block_size, n_embd=w.n_embd,
                    n_layer=w.n_layer, n_head=w.n_head)
    data = np.random.default_rng(0).integers(0, w.vocab_size, 200_000)
    out: dict = {"config": config, "steps": steps, "eval_interval": eval_interval, "threads": threads}
    baseline, out["method"] = reset_peak()
    with thread_limit(threads):
        model = GPT(cfg, dtype=np.float32)
        procs = None
        if processes:
            from numpy_gpt.processes import ShardProcesses
            procs = ShardProcesses(model)
            started = {pid: _status_mb("VmRSS", pid) for pid in child_pids()}
        try:
            trainer = Trainer(model, data, data[:20_000],
                              TrainConfig(steps=steps, batch_size=w.batch_size, eval_interval=eval_interval,
                                          eval_batches=2))
            trainer.run(progress=False)
            out["after_steps_mb"] = maxrss_mb() - baseline
            if save:
                with tempfile.TemporaryDirectory() as folder:
                    t0 = time.perf_counter()
                    checkpoint.save(os.path.join(folder, "m.safetensors"), model, trainer)
                    out["save_s"] = time.perf_counter() - t0
                out["after_save_mb"] = maxrss_mb() - baseline
            if procs is not None:
                out["workers_mb"] = [_status_mb("VmHWM", pid) - rss for pid, rss in started.items()]
        finally:
            if procs is not None:
                procs.close()
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="medium", choices=sorted(CONFIGS))
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--eval-interval", type=int, default=0, help="steps between evaluations (0: none)")
    p.add_argument("--save", action="store_true", help="save a checkpoint after the steps")
    p.add_argument("--processes", action="store_true", help="train with ShardProcesses")
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args(argv)
    r = measure(a.config, a.steps, a.eval_interval, a.save, a.processes, a.threads)
    line = (f"{r['config']}, {r['steps']} steps, evaluations every {r['eval_interval'] or 'never'}, "
            f"{r['threads']} threads: peak {r['after_steps_mb']:.0f} MB above the imports after the steps")
    if "after_save_mb" in r:
        line += f", {r['after_save_mb']:.0f} MB after a checkpoint save ({r['save_s']:.2f} s)"
    if "workers_mb" in r:
        line += f"; shard workers {', '.join(f'{v:.0f}' for v in r['workers_mb'])} MB above their start"
    print(line)


if __name__ == "__main__":
    main()
