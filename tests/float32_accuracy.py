"""How far numpy_gpt's and torch's float32 gradients each fall from the float64 result,
over many random models of one sequence: the study behind the known limit on long
sequences in float32 (docs/parity_tests.md, "Known limits of float32, measured").

    python -m tests.float32_accuracy [--draws 90] [--T 100] [--norm none] [--dropout 0.5]
                                     [--channels 8] [--heads 2]
    python -m tests.float32_accuracy --attention [--scale 10] [--draws 90]

Each draw is a randomized 2-layer model (tests/model_strategies.randomized, --channels 8 and
--heads 2 unless given, the activation cycling through relu, gelu and gelu_exact) and one sequence of T tokens. numpy_gpt
and torch run it in float32 with the same dropout masks, torch again in float64 on the same
float32 weights: the truth. For every gradient whose error (rel_error, floored at the problem's
scale as in the tests) is above --big on either side, it prints the ratio numpy_gpt / torch of the
two errors: its quantiles, and how often either side is more than 4x further off than the other
(tolerances.AS_ACCURATE_AS_TORCH, the most a single draw in the tests forgives).

--attention studies the attention layer alone instead (B = 2, T = 8, C = 8, 2 heads, weights and
biases as tests/test_attention.py draws them), with inputs of --scale: at 10 its scores reach
about 100, where softmax saturates (the known limit on saturated attention, ibid.).
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

from numpy_gpt import GPTConfig
from numpy_gpt.gradcheck import rel_error
from tests.model_strategies import randomized
from tests.parity import _torch_run
from tests.test_model import torch_run, training_run
from tests.tolerances import AS_ACCURATE_AS_TORCH, scale_floor

ACTIVATIONS = ("relu", "gelu", "gelu_exact")


def errors(cfg: GPTConfig, seed: int, T: int) -> list[tuple[str, float, float]]:
    """(parameter, numpy_gpt's error, torch's error) against torch float64, for one draw."""
    r = np.random.default_rng(seed)
    model = randomized(cfg, seed, np.float32)
    idx, targets = r.integers(0, cfg.vocab_size, (2, 1, T))
    dloss = float(r.standard_normal())
    model.forward(idx, targets)
    ours = model.backward(dloss)
    run = training_run(model, idx, targets, dloss)                 # torch with the same dropout masks
    theirs, truth = (torch_run(model, run, dtype)[2] for dtype in (np.float32, np.float64))
    floor = scale_floor(np.float32) * max(np.abs(a).max() for a in [*theirs.values(), *model.params.values()])
    return [(k, rel_error(ours[k], truth[k], floor), rel_error(theirs[k], truth[k], floor)) for k in ours]


def attention_errors(seed: int, scale: float, B: int = 2, T: int = 8, C: int = 8, n_head: int = 2
                     ) -> list[tuple[str, float, float]]:
    """(input, numpy_gpt's error, torch's error) against torch float64, for one attention draw."""
    from numpy_gpt.attention import attention_backward, attention_forward
    from torch_gpt.attention import attention_forward as t_attention
    r = np.random.default_rng(seed)
    f = np.float32
    args = dict(x=(r.standard_normal((B, T, C)) * scale).astype(f),
                c_attn_w=(r.standard_normal((C, 3 * C)) / np.sqrt(C)).astype(f), c_attn_b=r.standard_normal(3 * C).astype(f),
                c_proj_w=(r.standard_normal((C, C)) / np.sqrt(C)).astype(f), c_proj_b=r.standard_normal(C).astype(f))
    out, cache = attention_forward(*args.values(), n_head=n_head)
    dout = r.standard_normal(out.shape).astype(f)
    ours = dict(zip(args, attention_backward(dout, cache)))
    t_out, theirs = _torch_run(t_attention, args, list(args), dout, {"n_head": n_head}, np.float32)
    _, truth = _torch_run(t_attention, args, list(args), dout, {"n_head": n_head}, np.float64)
    floor = scale_floor(f) * max(np.abs(a).max() for a in [t_out, dout, *theirs.values(), *args.values()])
    return [(k, rel_error(ours[k], truth[k], floor), rel_error(theirs[k], truth[k], floor)) for k in args]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--draws", type=int, default=90)
    ap.add_argument("--T", type=int, default=100)
    ap.add_argument("--norm", default="none", choices=["none", "pre", "post"])
    ap.add_argument("--dropout", type=float, default=0.5)
    ap.add_argument("--channels", type=int, default=8, help="n_embd of the drawn models")
    ap.add_argument("--heads", type=int, default=2, help="n_head of the drawn models")
    ap.add_argument("--big", type=float, default=3e-5, help="count gradients with an error above this")
    ap.add_argument("--attention", action="store_true", help="the attention layer alone (see above)")
    ap.add_argument("--scale", type=float, default=10.0, help="with --attention: the inputs' scale")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    rows, draws_with_big = [], set()
    for i in range(args.draws):
        if args.attention:
            draw = attention_errors(5000 + i, args.scale)
        else:
            cfg = GPTConfig(vocab_size=12, block_size=args.T, n_layer=2, n_head=args.heads, n_embd=args.channels,
                            norm=args.norm,
                            activation=ACTIVATIONS[i % 3], dropout=args.dropout, pos_encoding="learned")
            draw = errors(cfg, 5000 + i, args.T)
        for k, ours, theirs in draw:
            if max(ours, theirs) > args.big:
                rows.append((ours, theirs))
                draws_with_big.add(i)
    what = (f"attention, inputs of scale {args.scale:g}" if args.attention
            else f"T = {args.T}, norm {args.norm}, dropout {args.dropout}, {args.channels} channels, "
                 f"{args.heads} head(s)")
    print(f"{args.draws} draws, {what}: "
          f"{len(rows)} gradients in {len(draws_with_big)} draws with an error above {args.big:g}")
    if not rows:
        return
    ours, theirs = np.array(rows).T
    ratio = ours / np.maximum(theirs, np.finfo(np.float64).tiny)       # torch exact: a huge ratio, not inf
    qs = [0, 0.05, 0.25, 0.5, 0.75, 0.95, 1]
    print("numpy_gpt / torch error ratio, quantiles", ", ".join(f"{q:g}: {v:.2f}" for q, v in zip(qs, np.quantile(ratio, qs))))
    k = AS_ACCURATE_AS_TORCH
    print(f"numpy_gpt more than {k:g}x further off: {np.mean(ratio > k):.1%}; torch more than {k:g}x: {np.mean(ratio < 1 / k):.1%}")
    print(f"largest errors: numpy_gpt {ours.max():.1e}, torch {theirs.max():.1e}")


if __name__ == "__main__":
    main()
