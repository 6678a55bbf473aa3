"""The matrix products of one config's linear layers: NumPy's BLAS against torch's, shape by shape.

    python -m benchmarks.gemm_shapes [--config medium] [--threads 1] [--repeats 7]

A training step's matrix products go to the BLAS NumPy links (OpenBLAS) in numpy_gpt and to
torch's own (MKL on x86) in torch_gpt. This times each linear layer's three products, in the
layouts the layers use them, on the config's whole batch:
    forward  x @ w          (N, C_in) @ (C_in, C_out)
    dx       g @ w.T        (N, C_out) @ (C_out, C_in)
    dw       x.T @ g        (C_in, N) @ (N, C_out)
(the tied LM head's weight is wte (V, C) seen transposed, as in numpy_gpt and torch_gpt, and
its gradient is made as (V, C), g.T @ x, as both make it).
Best of --repeats samples of 3 calls each, the two libraries alternating sample by sample.

step_products() gathers the same products into one training step's worth (each block layer's
three n_layer times, the head's once), for the "products" section of benchmarks.run.
"""
from __future__ import annotations

import argparse

import numpy as np

from .timing import best_of, thread_limit
from .workloads import CONFIGS, Workload


def layer_shapes(config: str | Workload) -> list[tuple[str, int, int, int]]:
    """(layer, N, C_in, C_out) for each distinct linear layer of the config."""
    w = CONFIGS[config] if isinstance(config, str) else config
    C, N = w.n_embd, w.tokens
    return [("attn.c_attn", N, C, 3 * C), ("attn.c_proj", N, C, C), ("mlp.c_fc", N, C, 4 * C),
            ("mlp.c_proj", N, 4 * C, C), ("lm_head", N, C, w.vocab_size)]


def _operands(N: int, c_in: int, c_out: int, head: bool, dtype, rng) -> tuple[np.ndarray, ...]:
    """x (N, C_in), w (C_in, C_out) and g (N, C_out); the tied head's w is wte (V, C) transposed."""
    x, g = (rng.standard_normal(s).astype(dtype) for s in ((N, c_in), (N, c_out)))
    w = rng.standard_normal((c_out, c_in)).astype(dtype).T if head else rng.standard_normal((c_in, c_out)).astype(dtype)
    return x, w, g


def step_products(w: Workload, dtype=np.float32, seed: int = 0):
    """Every linear-layer product of one training step of w, in NumPy's BLAS and in torch's.

    Returns (numpy_fn, torch_fn, flops): each function runs the forward, dx and dw products of
    every block layer n_layer times and the LM head's once, on the whole batch, in the layouts
    the layers use; flops is their total (2 N C_in C_out per product). These are the model's
    weight products, the 6 N tokens term of the step's FLOP count less the layer norms and biases;
    attention's own q k^T and a v products are not among them.
    """
    import torch
    rng = np.random.default_rng(seed)
    work, flops = [], 0.0
    for layer, N, c_in, c_out in layer_shapes(w):
        times = 1 if layer == "lm_head" else w.n_layer
        arrays = _operands(N, c_in, c_out, layer == "lm_head", dtype, rng)
        work.append((times, layer == "lm_head", arrays, tuple(torch.from_numpy(a) for a in arrays)))
        flops += times * 3 * 2.0 * N * c_in * c_out

    def run(lib: int):
        def fn():
            for times, head, *operands in work:
                x, wt, g = operands[lib]
                for _ in range(times):
                    x @ wt                       # forward
                    g @ wt.T                     # dx
                    if head:
                        g.T @ x                  # dW_head, (V, C) as wte
                    else:
                        x.T @ g                  # dw
        return fn
    return run(0), run(1), flops


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
            x, w, g = _operands(N, c_in, c_out, layer == "lm_head", np.float32, rng)
            tx, tw, tg = (torch.from_numpy(v) for v in (x, w, g))
            products = {"forward": (lambda: x @ w, lambda: tx @ tw, f"({N},{c_in})@({c_in},{c_out})"),
                        "dx": (lambda: g @ w.T, lambda: tg @ tw.T, f"({N},{c_out})@({c_out},{c_in})"),
                        "dw": (lambda: x.T @ g, lambda: tx.T @ tg, f"({c_in},{N})@({N},{c_out})")}
            if layer == "lm_head":                         # made as (V, C), wte's own shape
                products["dw"] = (lambda: g.T @ x, lambda: tg.T @ tx, f"({c_out},{N})@({N},{c_in})")
            for name, (np_fn, torch_fn, shape) in products.items():
                t = best_of({"numpy": np_fn, "torch": torch_fn}, a.repeats)
                gf = {k: 2 * N * c_in * c_out / s / 1e9 for k, s in t.items()}
                print(f"| {layer} | {name} | {shape} | {gf['numpy']:.0f} | {gf['torch']:.0f} | "
                      f"{gf['numpy'] / gf['torch']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
