"""The matrix products of one config's linear layers: NumPy's BLAS against torch's, shape by shape.

    python -m benchmarks.gemm_shapes [--config medium] [--threads 1] [--repeats 7]

A training step's matrix products go to the BLAS NumPy links (OpenBLAS) in numpy_gpt and to
torch's own (MKL on x86) in torch_gpt. This times each linear layer's three products, in the
layouts the layers use them, on the config's whole batch:
    forward  x @ w          (N, C_in) @ (C_in, C_out)
    dx       g @ w.T        (N, C_out) @ (C_out, C_in)
    dw       x.T @ g        (C_in, N) @ (N, C_out)
(the tied LM head's weight is wte (V, C) seen transposed, as in numpy_gpt and torch_gpt).
Best of --repeats samples of 3 calls each, the two libraries alternating sample by sample.
"""
from __future__ import annotations

import argparse

import numpy as np

from .timing import best_of, thread_limit
from .workloads import CONFIGS


def layer_shapes(config: str) -> list[tuple[str, int, int, int]]:
    """(layer, N, C_in, C_out) for each distinct linear layer of the config."""
    w = CONFIGS[config]
    C, N = w.n_embd, w.tokens
    return [("attn.c_attn", N, C, 3 * C), ("attn.c_proj", N, C, C), ("mlp.c_fc", N, C, 4 * C),
            ("mlp.c_proj", N, 4 * C, C), ("lm_head", N, C, w.vocab_size)]


def main(argv=None) -> None:
    import torch
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="medium", choices=sorted(CONFIGS))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=7)
    a = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    print(f"{a.config}, float32, {a.threads} thread(s): GFLOP/s, best of {a.repeats} x 3 calls\n")
    print("| layer | product | shape | NumPy BLAS | torch | NumPy / torch |")
    print("|---|---|---|---|---|---|")
    with thread_limit(a.threads):
        for layer, N, c_in, c_out in layer_shapes(a.config):
            x, g = (rng.standard_normal(s, dtype=np.float32) for s in ((N, c_in), (N, c_out)))
            w = rng.standard_normal((c_in, c_out), dtype=np.float32)
            if layer == "lm_head":                         # the tied head multiplies by wte (V, C) transposed
                w = rng.standard_normal((c_out, c_in), dtype=np.float32).T
            tx, tw, tg = (torch.from_numpy(v) for v in (x, w, g))
            products = {"forward": (lambda: x @ w, lambda: tx @ tw, f"({N},{c_in})@({c_in},{c_out})"),
                        "dx": (lambda: g @ w.T, lambda: tg @ tw.T, f"({N},{c_out})@({c_out},{c_in})"),
                        "dw": (lambda: x.T @ g, lambda: tx.T @ tg, f"({c_in},{N})@({N},{c_out})")}
            for name, (np_fn, torch_fn, shape) in products.items():
                t = best_of({"numpy": np_fn, "torch": torch_fn}, a.repeats)
                gf = {k: 2 * N * c_in * c_out / s / 1e9 for k, s in t.items()}
                print(f"| {layer} | {name} | {shape} | {gf['numpy']:.0f} | {gf['torch']:.0f} | "
                      f"{gf['numpy'] / gf['torch']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
