"""Where a numpy_gpt training step spends its time: cProfile of a few steps.

    python -m benchmarks.profile_step [--config small] [--steps 5] [--threads 1] [--top 25]

Prints (1) the step split into the model's parts (cumulative time of each layer's forward
and backward, the optimizer step), and (2) the functions with the most time of their own
(tottime), which is where NumPy kernels and Python overhead actually sit.
"""
from __future__ import annotations

import argparse
import cProfile
import pstats

import numpy as np

from .timing import fmt_threads, thread_limit
from .workloads import CONFIGS, make_step

# (file suffix, function) pairs whose cumulative time partitions a step.
PARTS = [
    ("embedding.py", "embedding_forward"), ("positional.py", "learned_forward"),
    ("layernorm.py", "layernorm_forward"), ("attention.py", "attention_forward"),
    ("ffn.py", "ffn_forward"), ("model.py", "forward"),
    ("loss.py", "cross_entropy_forward"), ("loss.py", "cross_entropy_backward"),
    ("layernorm.py", "layernorm_backward"), ("attention.py", "attention_backward"),
    ("ffn.py", "ffn_backward"), ("embedding.py", "embedding_backward"),
    ("positional.py", "learned_backward"), ("model.py", "backward"),
    ("optim.py", "step"), ("attention.py", "causal_attention_forward"),
    ("attention.py", "causal_attention_backward"), ("softmax.py", "softmax_forward"),
    ("softmax.py", "softmax_backward"), ("linear.py", "linear_forward"), ("linear.py", "linear_backward"),
    ("activations.py", "gelu_forward"), ("activations.py", "gelu_backward"),
]


def profile(config: str = "small", steps: int = 5, threads: int = 1, dtype: str = "float32") -> pstats.Stats:
    """cProfile `steps` numpy_gpt training steps (after 2 warm-up steps)."""
    with thread_limit(threads):
        step, _ = make_step("numpy", CONFIGS[config], np.dtype(dtype))
        step()
        step()
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(steps):
            step()
        prof.disable()
    return pstats.Stats(prof)


def parts_table(stats: pstats.Stats, steps: int) -> list[tuple[str, float, float, int]]:
    """(name, ms per step cumulative, % of the step, calls per step) for each part in PARTS."""
    total = max(v[3] for v in stats.stats.values())                       # the outermost cumtime
    rows = []
    for (path, _, func), (cc, nc, tt, ct, _) in stats.stats.items():
        for suffix, name in PARTS:
            if func == name and path.endswith(("numpy_gpt/" + suffix, "numpy_gpt\\" + suffix)):
                rows.append((f"{suffix[:-3]}.{name}", 1e3 * ct / steps, 100 * ct / total, nc // steps))
    order = {f"{s[:-3]}.{n}": i for i, (s, n) in enumerate(PARTS)}
    return sorted(rows, key=lambda r: order[r[0]])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="small", choices=list(CONFIGS))
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    p.add_argument("--top", type=int, default=25)
    a = p.parse_args(argv)
    stats = profile(a.config, a.steps, a.threads, a.dtype)
    total = max(v[3] for v in stats.stats.values())
    print(f"numpy_gpt training step, config {a.config}, {fmt_threads(a.threads)}, {a.dtype}: "
          f"{1e3 * total / a.steps:.1f} ms per step under cProfile (profiling adds overhead)\n")
    print("| part (cumulative, nested parts overlap) | ms/step | % of step | calls/step |\n|---|---|---|---|")
    for name, ms, pct, calls in parts_table(stats, a.steps):
        print(f"| {name} | {ms:.2f} | {pct:.1f} | {calls} |")
    print(f"\nTop {a.top} functions by own time (tottime):\n")
    stats.sort_stats("tottime").print_stats(a.top)


if __name__ == "__main__":
    main()
