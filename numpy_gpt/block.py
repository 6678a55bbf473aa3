"""One transformer block, forward and backward, in three arrangements.

Shapes: B = batch, T = time, C = channels. p holds the block's parameters
under their short names ("ln_1.weight", "attn.c_attn.weight", "mlp.c_fc.bias", ...).

Forward, with attn and mlp the sublayers and drop the residual dropout (attn
also drops attention weights in training: numpy_gpt/attention.py, step 5b):
    pre-LN (GPT-2):       x = x + drop(attn(ln_1(x)));   x = x + drop(mlp(ln_2(x)))
    post-LN (original):   x = ln_1(x + drop(attn(x)));   x = ln_2(x + drop(mlp(x)))
    none:                 x = x + drop(attn(x));         x = x + drop(mlp(x))
Without the mlp (config.mlp = False) the second half is left out.

Backward reads each line right to left. Where the residual stream splits (x
feeds both the sublayer and the skip path) the two gradients add.
"""
from __future__ import annotations

import numpy as np

from .attention import KVCache, attention_backward, attention_forward
from .config import GPTConfig
from .dropout import dropout_backward, dropout_forward, dropout_mask
from .ffn import ffn_backward, ffn_forward
from .layernorm import layernorm_backward, layernorm_forward, layernorm_output
from .linear import Rebuild


def _ln(x, p, name):
    return layernorm_forward(x, p[f"{name}.weight"], p.get(f"{name}.bias"))


def ln_rebuild(ln_cache: tuple, b: np.ndarray | None) -> Rebuild:
    """For the layer that reads a layer norm's output: its cache keeps this instead of the
    output, which layernorm_output makes again in the backward (numpy_gpt/linear.py, Memory).
    The layer norm keeps xhat anyway; out = xhat * w + b is the same numbers again."""
    return Rebuild(layernorm_output, (ln_cache, b))


def _attn(x, p, cfg, kv_cache=None, drop=None, x_kept=None):
    return attention_forward(x, p["attn.c_attn.weight"], p.get("attn.c_attn.bias"),
                             p["attn.c_proj.weight"], p.get("attn.c_proj.bias"), cfg.n_head, kv_cache, drop,
                             x_kept)


# A forward (training or evaluation) has the MLP run its activation again in the backward
# (numpy_gpt/ffn.py, recompute=True) when the whole batch's hidden layer, (B, T, 4C), takes at
# least this many bytes and the activation is cheap to run again. It trades time for memory: with
# tanh GELU it drops one (B, T, 4C) array per layer for 1-2.5% more time per step. The line lies
# between the small benchmark config (a 4 MB hidden layer: 2.1-2.4% of the step for 9-11 MB, which
# its memory does not need, as the caches keep each number once) and medium (8 MB: 1-2% for 26 MB
# with threads and 35 with shard processes, which these need to stay level with torch).
# gelu_exact, which calls math.erf element by element, would make small's step about 1.8 times as
# long. Measured in docs/performance.md. The numbers are the same either way.
RECOMPUTE_MIN_BYTES = 6 << 20
RECOMPUTED_ACTIVATIONS = ("gelu", "relu")


def recompute_mlp_for(cfg: GPTConfig, n_tokens: int, itemsize: int) -> bool:
    """Whether a forward over n_tokens positions (the whole batch: its shards' caches are all
    alive at once), in training or evaluation, keeps only the MLP's hidden layer (see
    RECOMPUTE_MIN_BYTES)."""
    return (cfg.mlp and cfg.activation in RECOMPUTED_ACTIVATIONS
            and n_tokens * cfg.mlp_width * itemsize >= RECOMPUTE_MIN_BYTES)


def _mlp(x, p, cfg, recompute=False, x_kept=None):
    # rebuild=True: with tanh GELU the cache leaves out the activation's output (ffn.py, Memory)
    return ffn_forward(x, p["mlp.c_fc.weight"], p.get("mlp.c_fc.bias"), p["mlp.c_proj.weight"],
                       p.get("mlp.c_proj.bias"), cfg.activation, recompute=recompute, rebuild=True, x_kept=x_kept)


def _put(grads, names, values):
    for name, value in zip(names, values):
        if value is not None:
            grads[name] = value


def block_forward(x: np.ndarray, p: dict, cfg: GPTConfig, masks: dict, training: bool = True,
                  kv_cache: KVCache | None = None, recompute_mlp: bool = False) -> tuple[np.ndarray, dict]:
    """x: (B, T, C). masks: dropout keep-masks by name, drawn where missing if masks has an
    "rng" entry: "attn_weights" (B, nh, T, T) on the attention weights, then "attn" and
    "mlp" (B, T, C) on the residual branches. recompute_mlp: the MLP keeps only its hidden
    layer for the backward (see recompute_mlp_for). Returns the new x (B, T, C) and the cache."""
    c = {}
    dropping = training and cfg.dropout > 0.0

    def mask(name, shape):
        if name not in masks:
            masks[name] = dropout_mask(shape, cfg.dropout, masks["rng"])
        return masks[name]

    def drop(z, name):
        if not dropping:
            return z, None
        return dropout_forward(z, cfg.dropout, mask(name, z.shape))

    def attn(z, x_kept=None):
        weights = None
        if dropping:
            B, T, _ = z.shape
            weights = (mask("attn_weights", (B, cfg.n_head, T, T)), cfg.dropout)
        return _attn(z, p, cfg, kv_cache, weights, x_kept)

    if cfg.norm == "pre":                   # xn: a layer norm's output; attn and mlp keep a Rebuild of it (ln_rebuild)
        xn, c["ln_1"] = _ln(x, p, "ln_1")
        a, c["attn"] = attn(xn, ln_rebuild(c["ln_1"], p.get("ln_1.bias")))
        a, c["drop_attn"] = drop(a, "attn")
        x = x + a
        if cfg.mlp:
            xn, c["ln_2"] = _ln(x, p, "ln_2")
            m, c["mlp"] = _mlp(xn, p, cfg, recompute_mlp, ln_rebuild(c["ln_2"], p.get("ln_2.bias")))
            m, c["drop_mlp"] = drop(m, "mlp")
            x = x + m
    elif cfg.norm == "post":
        a, c["attn"] = attn(x)
        a, c["drop_attn"] = drop(a, "attn")
        x, c["ln_1"] = _ln(x + a, p, "ln_1")
        if cfg.mlp:
            m, c["mlp"] = _mlp(x, p, cfg, recompute_mlp)
            m, c["drop_mlp"] = drop(m, "mlp")
            x, c["ln_2"] = _ln(x + m, p, "ln_2")
    else:
        a, c["attn"] = attn(x)
        a, c["drop_attn"] = drop(a, "attn")
        x = x + a
        if cfg.mlp:
            m, c["mlp"] = _mlp(x, p, cfg, recompute_mlp)
            m, c["drop_mlp"] = drop(m, "mlp")
            x = x + m
    return x, c


def block_backward(dx: np.ndarray, c: dict, cfg: GPTConfig) -> tuple[np.ndarray, dict]:
    """dx: (B, T, C), dL/d(block output). Returns dL/d(block input) and the
    block's gradients under the same short names as its parameters.

    Each part of the cache c is taken out of it as its backward runs, so what the
    MLP kept is freed before the attention's backward starts (c ends up empty)."""
    grads = {}

    def ln_back(d, name):
        d, dw, db = layernorm_backward(d, c.pop(name))
        _put(grads, [f"{name}.weight", f"{name}.bias"], [dw, db])
        return d

    def attn_back(d):
        d = dropout_backward(d, c.pop("drop_attn"))
        d, *dp = attention_backward(d, c.pop("attn"))
        _put(grads, ["attn.c_attn.weight", "attn.c_attn.bias", "attn.c_proj.weight", "attn.c_proj.bias"], dp)
        return d

    def mlp_back(d):
        d = dropout_backward(d, c.pop("drop_mlp"))
        d, *dp = ffn_backward(d, c.pop("mlp"))
        _put(grads, ["mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias"], dp)
        return d

    if cfg.norm == "pre":
        if cfg.mlp:                         # x = x + drop(mlp(ln_2(x)))
            dx = dx + ln_back(mlp_back(dx), "ln_2")
        dx = dx + ln_back(attn_back(dx), "ln_1")   # x = x + drop(attn(ln_1(x)))
    elif cfg.norm == "post":
        if cfg.mlp:                         # x = ln_2(x + drop(mlp(x)))
            dx = ln_back(dx, "ln_2")
            dx = dx + mlp_back(dx)
        dx = ln_back(dx, "ln_1")            # x = ln_1(x + drop(attn(x)))
        dx = dx + attn_back(dx)
    else:
        if cfg.mlp:                         # x = x + drop(mlp(x))
            dx = dx + mlp_back(dx)
        dx = dx + attn_back(dx)             # x = x + drop(attn(x))
    return dx, grads
