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

from .timing import best_of, fmt_threads, thread_limit
from .workloads import CONFIGS, Workload


def layer_shapes(config: str | Workload) -> list[tuple[str, int, int, int]]:
    """(layer, N, C_in, C_out) for each distinct linear layer of the config."""
    w = CONFIGS[config] if isinstance(config, str) else config
    C, N, H = w.n_embd, w.tokens, w.config().mlp_width
    return [("attn.c_attn", N, C, 3 * C), ("attn.c_proj", N, C, C), ("mlp.c_fc", N, C, H),
            ("mlp.c_proj", N, H, C), ("lm_head", N, C, w.vocab_size)]


def _operands(N: int, c_in: int, c_out: int, head: bool, dtype, rng) -> tuple[np.ndarray, ...]:
    """x (N, C_in), w (C_in, C_out) and g (N, C_out); the tied head's w is wte (V, C) transposed."""
    x, g = (rng.standard_normal(s).astype(dtype) for s in ((N, c_in), (N, c_out)))
    w = rng.standard_normal((c_out, c_in)).astype(dtype).T if head else rng.standard_normal((c_in, c_out)).astype(dtype)
    return x, w, g


def _products(x, w, g, head: bool) -> dict:
    """forward, dx and dw of one linear layer as zero-argument functions, in the layers' layouts.

    The operands may be NumPy arrays or torch tensors: the same expressions run in either's BLAS.
    """
    return {"forward": lambda: x @ w,
            "dx": lambda: g @ w.T,
            "dw": (lambda: g.T @ x) if head else (lambda: x.T @ g)}    # the head's made as (V, C), wte's shape


def step_products(w: Workload, dtype=np.float32, seed: int = 0):
    """Every linear-layer product of one training step of w, in NumPy's BLAS and in torch's.

    Returns (numpy_fn, torch_fn, flops): each function runs the forward, dx and dw products of
    every block layer n_layer times and the LM head's once, on the whole batch, in the layouts
    the layers use; flops is the total of the products numpy_fn runs (2 N C_in C_out each).
    These are the model's weight products, the 6 N tokens term of the step's FLOP count less the
    layer norms and biases; attention's own q k^T and a v products are not among them.
    """
    import torch
    rng = np.random.default_rng(seed)
    calls: dict[str, list] = {"numpy": [], "torch": []}
    for layer, N, c_in, c_out in layer_shapes(w):
        head = layer == "lm_head"
        times = 1 if head else w.n_layer
        arrays = _operands(N, c_in, c_out, head, dtype, rng)
        for lib, operands in (("numpy", arrays), ("torch", tuple(torch.from_numpy(a) for a in arrays))):
            calls[lib] += times * [(f, 2.0 * N * c_in * c_out) for f in _products(*operands, head).values()]

    def run(lib: str):
        fns = [f for f, _ in calls[lib]]

        def fn():
            for f in fns:
                f()
        return fn
    return run("numpy"), run("torch"), sum(flops for _, flops in calls["numpy"])


def main(argv=None) -> None:
    import torch
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="medium", choices=sorted(CONFIGS))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=7)
    a = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    print(f"{a.config}, float32, {fmt_threads(a.threads)}: GFLOP/s, best of {a.repeats} x 3 calls\n")
    print("| layer | product | shape | NumPy BLAS | torch | NumPy / torch |")
    print("|---|---|---|---|---|---|")
    with thread_limit(a.threads):
        for layer, N, c_in, c_out in layer_shapes(a.config):
            head = layer == "lm_head"
            x, w, g = _operands(N, c_in, c_out, head, np.float32, rng)
            np_fns = _products(x, w, g, head)
            torch_fns = _products(*(torch.from_numpy(v) for v in (x, w, g)), head)
            shapes = {"forward": f"({N},{c_in})@({c_in},{c_out})", "dx": f"({N},{c_out})@({c_out},{c_in})",
                      "dw": f"({c_out},{N})@({N},{c_in})" if head else f"({c_in},{N})@({N},{c_out})"}
            for name, shape in shapes.items():
                t = best_of({"numpy": np_fns[name], "torch": torch_fns[name]}, a.repeats)
                gf = {k: 2 * N * c_in * c_out / s / 1e9 for k, s in t.items()}
                print(f"| {layer} | {name} | {shape} | {gf['numpy']:.0f} | {gf['torch']:.0f} | "
                      f"{gf['numpy'] / gf['torch']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
