"""One KV-cache decoding step in torch, mirroring numpy_gpt.decode: the fast path beside GPT.forward.

GPT.forward on one position runs the modules a training forward runs: an nn.Module call per
layer, a causal mask built for every layer (which a single query, the newest position, does not
need), dropout bookkeeping. DecodeStep computes the same function on (B, C) rows with torch's
functional ops: a product per weight, F.layer_norm, F.scaled_dot_product_attention without a
mask, the model's activation. generate() uses it for every step after the prompt, as numpy_gpt's
does with numpy_gpt.decode.DecodeStep, so that the two are compared fast path against fast path
(benchmarks: "generation"). Its logits equal GPT.forward's within rounding (tests/test_decode.py).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from numpy_gpt.errors import InputError

from .activations import ACTIVATIONS
from .attention import KVCache
from .positional import sinusoidal_table


def _linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
    """x (B, C_in) @ w (C_in, C_out) + b, one call."""
    return x @ w if b is None else torch.addmm(b, x, w)


class DecodeStep:
    """step(tokens (B,), caches, pos) -> logits (B, V) for the tokens at position pos.

    caches: the model's KV caches (GPT.new_kv_caches), holding positions 0 to pos - 1; each gets
    this position's keys and values. The parameters are looked up once, when the DecodeStep is
    made (their values are read at each call: training the model in place is seen)."""

    def __init__(self, model):
        cfg = self.config = model.config
        p = {k: v.detach() for k, v in model.named_parameters()}
        self.n_head, self.hs = cfg.n_head, cfg.head_size
        self.wte = p["wte.weight"]
        self.head = p["wte.weight"] if cfg.tie_weights else p["lm_head.weight"]     # (V, C)
        self.wpe = (p["wpe.weight"] if cfg.pos_encoding == "learned"
                    else sinusoidal_table(cfg.block_size, cfg.n_embd, self.wte.dtype))
        self.ln_f = (p["ln_f.weight"], p.get("ln_f.bias")) if cfg.norm == "pre" else None
        self.act = ACTIVATIONS[cfg.activation]
        self.blocks = [{k[len(f"h.{i}."):]: v for k, v in p.items() if k.startswith(f"h.{i}.")}
                       for i in range(cfg.n_layer)]

    def __call__(self, tokens: torch.Tensor, caches: list[KVCache], pos: int) -> torch.Tensor:
        self._check(tokens, caches, pos)
        x = self.wte[tokens] + self.wpe[pos]                     # (B, C)
        for bp, cache in zip(self.blocks, caches):
            x = self._block(x, bp, cache)
        if self.ln_f is not None:
            x = F.layer_norm(x, (x.shape[-1],), *self.ln_f)
        return x @ self.head.t()                                 # (B, V)

    def _check(self, tokens, caches, pos) -> None:
        cfg = self.config
        if tokens.dim() != 1:
            raise InputError(f"tokens must be a 1-D tensor (one per row), got shape {tuple(tokens.shape)}")
        lo, hi = (int(tokens.min()), int(tokens.max())) if tokens.numel() else (0, 0)
        if lo < 0 or hi >= cfg.vocab_size:
            raise InputError(f"token id {lo if lo < 0 else hi} in tokens is outside [0, {cfg.vocab_size})")
        if not 0 <= pos < cfg.block_size:
            raise InputError(f"position {pos} is outside [0, block_size={cfg.block_size})")
        if len(caches) != cfg.n_layer or any(c.length != pos for c in caches):
            raise InputError(f"this step needs {cfg.n_layer} KV cache(s) holding {pos} position(s) each")

    def _block(self, x: torch.Tensor, p: dict, cache: KVCache) -> torch.Tensor:
        """torch_gpt.block.Block.forward for one position, without dropout."""
        cfg = self.config

        def ln(z, name):
            return F.layer_norm(z, (z.shape[-1],), p[f"{name}.weight"], p.get(f"{name}.bias"))
        if cfg.norm == "pre":
            x = x + self._attn(ln(x, "ln_1"), p, cache)
            if cfg.mlp:
                x = x + self._mlp(ln(x, "ln_2"), p)
        elif cfg.norm == "post":
            x = ln(x + self._attn(x, p, cache), "ln_1")
            if cfg.mlp:
                x = ln(x + self._mlp(x, p), "ln_2")
        else:
            x = x + self._attn(x, p, cache)
            if cfg.mlp:
                x = x + self._mlp(x, p)
        return x

    def _attn(self, h: torch.Tensor, p: dict, cache: KVCache) -> torch.Tensor:
        """One query per row, which sees every cached key: no mask."""
        B = h.shape[0]
        qkv = _linear(h, p["attn.c_attn.weight"], p.get("attn.c_attn.bias"))        # (B, 3C)
        q, k, v = qkv.view(B, 3, self.n_head, 1, self.hs).unbind(1)                 # (B, nh, 1, hs) each
        k, v = cache.append(k, v)                                                   # (B, nh, L, hs)
        y = F.scaled_dot_product_attention(q, k, v, scale=1.0 / math.sqrt(self.hs)).reshape(B, -1)
        return _linear(y, p["attn.c_proj.weight"], p.get("attn.c_proj.bias"))

    def _mlp(self, h: torch.Tensor, p: dict) -> torch.Tensor:
        a = self.act(_linear(h, p["mlp.c_fc.weight"], p.get("mlp.c_fc.bias")))
        return _linear(a, p["mlp.c_proj.weight"], p.get("mlp.c_proj.bias"))
