"""The demo's character model (make demo, part 2), trained three ways in alternating rounds.

    python -m benchmarks.demo_training [--rounds 4] [--steps 500]

Each round trains the demo's model from the same weights on the same batches:
  - "threads":   numpy_gpt, one batch shard per thread (numpy_gpt.parallel);
  - "processes": numpy_gpt, every shard after the first in a worker process
                 (numpy_gpt.processes.ShardProcesses), as `make demo` does on 2+ threads;
  - "torch":     torch_gpt eager, torch's own threads;
and reports each one's tokens/s as the demo prints it (Trainer's rate, evaluation
included) and its wall time (worker start-up included), median and range over
the rounds. All must end at the same validation loss (to 1e-3), or the script fails.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import time

import numpy as np

from numpy_gpt import GPT, parallel
from numpy_gpt.demo import char_setup, model_init, torch_backend
from numpy_gpt.processes import ShardProcesses
from numpy_gpt.train import Trainer

MODES = ("threads", "processes", "torch")


def train_once(mode: str, steps: int):
    """(tokens/s, wall seconds, final val loss) of one training run of the demo's model."""
    _, train, val, cfg, tcfg = char_setup(steps=steps)
    t0 = time.perf_counter()
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        if mode == "torch":
            h = torch_backend().train_char(cfg, init_params=model_init(cfg, 0), train=train, val=val, tcfg=tcfg)
        else:
            model = GPT(cfg, seed=0, dtype=np.float32)
            with ShardProcesses(model) if mode == "processes" else contextlib.nullcontext():
                h = Trainer(model, train, val, tcfg).run()
    return h.tokens_per_s, time.perf_counter() - t0, h.eval[-1]["val_loss"]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--steps", type=int, default=500)
    args = ap.parse_args(argv)
    import torch
    print(f"numpy_gpt threads {parallel.get_num_threads()}, torch threads {torch.get_num_threads()}; "
          f"{args.rounds} rounds of {args.steps} steps, the modes alternating")
    runs: dict[str, list] = {m: [] for m in MODES}
    for r in range(args.rounds):
        for mode in MODES:
            runs[mode].append(train_once(mode, args.steps))
            tok_s, wall, loss = runs[mode][-1]
            print(f"  round {r + 1} {mode:9} {tok_s:9,.0f} tokens/s  {wall:6.2f} s  val loss {loss:.4f}", flush=True)
    losses = [x[2] for v in runs.values() for x in v]
    if max(losses) - min(losses) > 1e-3:
        raise SystemExit(f"the modes ended at different validation losses: {min(losses)} to {max(losses)}")
    print("\n| mode | tokens/s, median [min-max] | wall s, median |\n|---|---|---|")
    for mode, v in runs.items():
        t = [x[0] for x in v]
        print(f"| {mode} | {np.median(t):,.0f} [{min(t):,.0f}-{max(t):,.0f}] | {np.median([x[1] for x in v]):.2f} |")


if __name__ == "__main__":
    main()
