"""Attention's core, whole score matrix against query blocks (numpy_gpt.attention).

    python -m benchmarks.attention_blocks [--threads 1] [--repeats 15]

Times forward + backward of causal_attention_forward/backward (every score, the
masked ones included) against blocked_causal_attention_forward/backward (each block
of queries only against the keys it may see), interleaved, on the shapes of one
data-parallel shard of the tiny, small and medium benchmarks, then longer sequences.
Prints a markdown table (docs/attention.md shows one run).
"""
from __future__ import annotations

import argparse

import numpy as np

from numpy_gpt.attention import (blocked_causal_attention_backward, blocked_causal_attention_forward,
                                 causal_attention_backward, causal_attention_forward, query_blocks)
from numpy_gpt.parallel import keep_freed_memory

from .timing import fmt_ms, interleaved, thread_limit

SHAPES = [(8, 4, 64, 16), (4, 4, 128, 64), (2, 8, 256, 64), (1, 8, 512, 64), (1, 4, 1024, 64)]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=15)
    a = ap.parse_args(argv)
    keep_freed_memory()                       # as in the benchmark suite (benchmarks/README.md)
    r = np.random.default_rng(0)
    print("| shape (B, nh, T, hs) | blocks | whole matrix | query blocks | speedup (median, min-max) |")
    print("|---|---|---|---|---|")
    with thread_limit(a.threads):
        for B, nh, T, hs in SHAPES:
            q, k, v, dy = (r.standard_normal((B, nh, T, hs)).astype(np.float32) for _ in range(4))
            m = interleaved({
                "whole": lambda: causal_attention_backward(dy, causal_attention_forward(q, k, v)[1]),
                "blocks": lambda: blocked_causal_attention_backward(dy, blocked_causal_attention_forward(q, k, v)[1]),
            }, repeats=a.repeats)
            ratio = np.array(m.samples["whole"]) / np.array(m.samples["blocks"])
            print(f"| ({B}, {nh}, {T}, {hs}) | {len(query_blocks(T, T))} | {fmt_ms(m.median('whole'))} ms | "
                  f"{fmt_ms(m.median('blocks'))} ms | {np.median(ratio):.2f}× ({ratio.min():.2f}-{ratio.max():.2f}) |")


if __name__ == "__main__":
    main()
