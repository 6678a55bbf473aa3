"""Peak memory of forwards that no backward follows: an evaluation's loss, and a prompt's prefill.

    python -m benchmarks.inference_memory [--config medium] [--gpt2] [--prompt 1000] [--repeats 2]

Each way runs in a fresh process on a model built (and run once on 8 tokens, so that the runtime
has started) before the process's high-water mark is reset; it prints the peak resident memory
above that mark (VmHWM) and the seconds taken. Ways:
    eval, grad=True       model.forward(x, y) in eval mode on one batch of the config: it keeps its
                          cache for a backward (what Trainer.eval_loss did before grad=False)
    eval, grad=False      model.forward(x, y, grad=False), what Trainer.eval_loss runs
    prefill, all logits   model.forward(prompt, kv_caches=...) on a whole block of the config
                          (--gpt2: GPT-2 124M's shapes, random weights, a --prompt-token prompt)
    prefill, last_only    the same with last_only=True, what generate() runs
The figures in docs/decoding.md and docs/performance.md come from this tool. Linux only (/proc).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import numpy as np

from .memory import maxrss_mb, reset_peak
from .workloads import CONFIGS

WAYS = ("eval, grad=True", "eval, grad=False", "prefill, all logits", "prefill, last_only")
GPT2 = dict(vocab_size=50257, block_size=1024, n_embd=768, n_layer=12, n_head=12)


def child(way: str, model_name: str, prompt: int) -> dict:
    from numpy_gpt import GPT, GPTConfig
    if model_name == "gpt2":
        cfg, batch = GPTConfig(**GPT2), 1
    else:
        w = CONFIGS[model_name]
        cfg = GPTConfig(vocab_size=w.vocab_size, block_size=w.block_size, n_embd=w.n_embd,
                        n_layer=w.n_layer, n_head=w.n_head)
        batch, prompt = w.batch_size, w.block_size
    model = GPT(cfg, dtype=np.float32)
    model.training = False
    r = np.random.default_rng(0)
    x = r.integers(0, cfg.vocab_size, (batch if way.startswith("eval") else 1, prompt))
    y = np.roll(x, -1, axis=1)
    model.forward(x[:1, :8], y[:1, :8])             # the runtime's start, not counted (its cache: 8 tokens)
    base, _ = reset_peak()
    t0 = time.perf_counter()
    # The keywords are passed only where they are not the defaults, so that the first and third
    # ways also run on a numpy_gpt from before grad= and last_only= (git worktree) as they ran there.
    if way.startswith("eval"):
        model.forward(x, y, **({"grad": False} if way.endswith("False") else {}))
    else:
        kv_caches = model.new_kv_caches(1)
        model.forward(x, kv_caches=kv_caches, **({"last_only": True} if way.endswith("last_only") else {}))
    return {"mb": maxrss_mb() - base, "s": time.perf_counter() - t0}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="medium", choices=sorted(CONFIGS))
    p.add_argument("--gpt2", action="store_true", help="prefill GPT-2 124M's shapes instead of the config's block")
    p.add_argument("--prompt", type=int, default=1000, help="prompt tokens with --gpt2 (at most 1024)")
    p.add_argument("--repeats", type=int, default=2, help="fresh processes per way, taken in turn")
    p.add_argument("--child", nargs=3, metavar=("WAY", "MODEL", "PROMPT"), help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        print(json.dumps(child(a.child[0], a.child[1], int(a.child[2]))))
        return
    models = {w: ("gpt2" if a.gpt2 and w.startswith("prefill") else a.config) for w in WAYS}
    got: dict[str, list[dict]] = {w: [] for w in WAYS}
    for _ in range(a.repeats):
        for w in WAYS:
            out = subprocess.run([sys.executable, "-m", "benchmarks.inference_memory", "--child", w,
                                  models[w], str(a.prompt)], capture_output=True, text=True, check=True)
            got[w].append(json.loads(out.stdout))
    for w in WAYS:
        mbs, secs = [g["mb"] for g in got[w]], [g["s"] for g in got[w]]
        what = "GPT-2 124M shapes, %d-token prompt" % a.prompt if models[w] == "gpt2" else a.config
        print(f"{w:20s} peak {min(mbs):.0f}-{max(mbs):.0f} MB above the model, "
              f"{min(secs):.2f}-{max(secs):.2f} s   ({what})")


if __name__ == "__main__":
    main()
