"""`numpy-gpt pictures`: the study guide's PNGs, drawn from models trained on the spot.

    seed_attention.png    the trained seed model's one head over its first sentence
    seed_loss.png         the seed problem's training loss (30 epochs), numpy and (if installed) torch
    char_attention.png    the character model's last layer, one heatmap per head, over a prompt
    char_grad_norms.png   per-layer gradient norms during the character model's training
    char_loss.png         its training and validation loss

The character model is the demo's (numpy_gpt.demo.char_setup), trained for --steps
steps (300 by default, about half a minute). Needs matplotlib.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

import numpy as np

from .attention import causal_mask
from .block import block_forward
from .errors import ConfigError, InputError, require
from .embedding import embedding_forward
from .layernorm import layernorm_forward
from .linear import linear_forward
from .model import block_params
from .positional import learned_forward, sinusoidal_forward
from .softmax import softmax_forward

DEFAULT_PROMPT = "She asked her father for help."       # a line of the demo corpus' validation text
PICTURES = ("seed_attention.png", "seed_loss.png", "char_attention.png", "char_grad_norms.png", "char_loss.png")


def attention_maps(model, ids, layer: int = -1) -> np.ndarray:
    """The attention weights a (n_head, T, T) of one layer of a numpy_gpt GPT over the ids (T,).

    Runs the forward up to that layer's attention with the public layer functions (no
    dropout) and recomputes steps 1-5 of numpy_gpt/attention.py there.
    """
    cfg, p = model.config, model.params
    idx = model.check_idx(np.asarray(ids, dtype=np.int64)[None])
    layer = layer % cfg.n_layer
    x, _ = embedding_forward(idx, p["wte.weight"])
    x = learned_forward(x, p["wpe.weight"])[0] if cfg.pos_encoding == "learned" else sinusoidal_forward(x)[0]
    for i in range(layer):
        x, _ = block_forward(x, block_params(p, i), cfg, masks={}, training=False)
    bp = block_params(p, layer)
    if cfg.norm == "pre":                                            # the attention reads ln_1(x)
        x, _ = layernorm_forward(x, bp["ln_1.weight"], bp.get("ln_1.bias"))
    qkv, _ = linear_forward(x, bp["attn.c_attn.weight"], bp.get("attn.c_attn.bias"))   # 1.
    T, C, nh = idx.shape[1], cfg.n_embd, cfg.n_head
    q, k, _ = qkv[0].reshape(T, 3, nh, C // nh).transpose(1, 2, 0, 3)                   # 2. (nh, T, hs)
    s = (q @ k.swapaxes(-1, -2)) / np.sqrt(C // nh)                                     # 3.
    s = np.where(causal_mask(T, T), -np.inf, s)                                         # 4.
    return softmax_forward(s)[0]                                                        # 5. (nh, T, T)


def _tick(ch: str) -> str:
    return {" ": "\u2423", "\n": "\\n", "\t": "\\t"}.get(ch, ch)


def make_pictures(out_dir: str = os.path.join("out", "pictures"), steps: int = 300, seed: int = 0,
                  prompt: str = DEFAULT_PROMPT, progress: bool = True, with_torch: bool = True,
                  eval_batches: int | None = None, out=None) -> dict:
    """Train, draw, and return {"paths": {name: path}, "histories": ..., "seed_attention": ...,
    "char_attention": ...}. with_torch adds torch's seed run to seed_loss.png (when installed);
    eval_batches overrides the demo's 8 batches per evaluation (tests use 1)."""
    out = out or sys.stdout
    require("matplotlib", "numpy-gpt pictures", "pip install matplotlib")
    from .demo import char_setup
    from .model import GPT
    from .plots import plot_attention, plot_layer_grad_norms, plot_losses
    from .seeds import SEEDS, train_seed
    from .train import Trainer
    if steps < 1:
        raise ConfigError(f"--steps must be at least 1, got {steps}")
    if eval_batches is not None and eval_batches < 1:
        raise ConfigError(f"--eval-batches must be at least 1, got {eval_batches}")
    ctok, train, val, cfg, tcfg = char_setup(steps=steps)
    if eval_batches is not None:
        tcfg.eval_batches = eval_batches
    prompt_ids = ctok.encode(prompt)                 # UnknownTokenError names a character outside the corpus
    if not 1 <= len(prompt_ids) <= cfg.block_size:
        raise InputError(f"--prompt must have 1 to {cfg.block_size} characters, got {len(prompt_ids)}")
    paths, result = {}, {}

    print("seed problem 'apple': training 30 epochs ...", file=out)
    model, tok, seed_history, _ = train_seed("apple", seed=seed)
    ids = tok.encode(SEEDS["apple"]["sentences"][0])[:-1]
    a = attention_maps(model, ids)
    result["seed_attention"] = a
    paths["seed_attention.png"] = plot_attention(
        a, [tok.decode([i]) for i in ids], os.path.join(out_dir, "seed_attention.png"),
        "trained seed model (d_model = 2, one head)", ["the one head"])
    seed_histories = {"numpy": seed_history}
    try:                                  # torch's run of the same problem, from the same weights
        if with_torch:
            seed_histories["torch"] = importlib.import_module("torch_gpt.seeds").train_seed("apple", seed=seed)[2]
    except ModuleNotFoundError as e:
        if not (e.name and e.name.split(".")[0] in ("torch", "torch_gpt")):
            raise
    paths["seed_loss.png"] = plot_losses(seed_histories, os.path.join(out_dir, "seed_loss.png"),
                                         "seed problem 'apple': Adam lr 0.1, one full batch per epoch")

    print(f"character model: training {steps} steps ({cfg.n_layer} layers x {cfg.n_head} heads x "
          f"{cfg.n_embd}) ...", file=out)
    cmodel = GPT(cfg, seed=seed, dtype=np.float32)
    history = Trainer(cmodel, train, val, tcfg).run(progress=progress)
    a = attention_maps(cmodel, prompt_ids)
    result["char_attention"] = a
    last = history.eval[-1] if history.eval else {}
    paths["char_attention.png"] = plot_attention(
        a, [_tick(c) for c in prompt], os.path.join(out_dir, "char_attention.png"),
        f"character model after {steps} steps: layer {cfg.n_layer - 1} (the last), every head")
    paths["char_grad_norms.png"] = plot_layer_grad_norms(
        history, os.path.join(out_dir, "char_grad_norms.png"),
        f"character model: gradient norm per layer ({cfg.n_layer} blocks, tied wte)", clip=tcfg.grad_clip)
    paths["char_loss.png"] = plot_losses(
        {"numpy": history}, os.path.join(out_dir, "char_loss.png"),
        "character model on the demo corpus" + (f" (val loss {last['val_loss']:.3f})" if last else ""))
    result.update(paths=paths, histories={"char": history, **{f"seed {k}": h for k, h in seed_histories.items()}})
    return result


def handler(args) -> int:
    result = make_pictures(args.out, steps=args.steps, seed=args.seed, prompt=args.prompt,
                           progress=not args.quiet, with_torch=not args.no_torch, eval_batches=args.eval_batches)
    for name, path in result["paths"].items():
        print(f"  {path}  ({os.path.getsize(path) / 1024:.0f} KB)")
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default=os.path.join("out", "pictures"),
                   help="folder for the PNGs (default out/pictures; --out docs/img redraws the docs' own)")
    p.add_argument("--steps", type=int, default=300, help="training steps of the character model (default 300)")
    p.add_argument("--seed", type=int, default=0, help="initialization seed of both models")
    p.add_argument("--prompt", default=DEFAULT_PROMPT, help="the text the attention heatmaps read "
                                                             f"(default {DEFAULT_PROMPT!r})")
    p.add_argument("--eval-batches", type=int, default=None,
                   help="batches per evaluation of the character model (default 8, as the demo)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--no-torch", action="store_true", help="leave torch's seed run out of seed_loss.png")


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("pictures", help="draw attention heatmaps, gradient norms and loss curves as PNGs",
                              description=__doc__.split("\n\n")[0])
    add_arguments(p)
    p.set_defaults(func=handler)
    return p


def main(argv=None) -> int:
    """Run the command without the numpy-gpt CLI: python -m numpy_gpt.pictures ..."""
    from .errors import NumpyGPTError, UsageError
    parser = argparse.ArgumentParser(prog="numpy-gpt pictures")
    add_arguments(parser)
    try:
        return handler(parser.parse_args(argv))
    except NumpyGPTError as e:
        print(f"numpy-gpt pictures: error: {e}", file=sys.stderr)
        return 2 if isinstance(e, UsageError) else 1


if __name__ == "__main__":
    sys.exit(main())
