"""One transformer block as torch modules, mirroring numpy_gpt.block.

Submodule and parameter names give state_dict keys equal to numpy_gpt's:
ln_1, attn.c_attn, attn.c_proj, ln_2, mlp.c_fc, mlp.c_proj.
"""
from __future__ import annotations

import torch
from torch import nn

from .attention import attention_forward
from .config import GPTConfig
from .dropout import dropout_forward
from .ffn import ffn_forward


class Linear(nn.Module):
    """x @ weight + bias with weight stored (C_in, C_out), GPT-2's Conv1D layout."""

    def __init__(self, c_in: int, c_out: int, bias: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(c_in, c_out))
        self.bias = nn.Parameter(torch.zeros(c_out)) if bias else None


class Attention(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.c_attn = Linear(cfg.n_embd, 3 * cfg.n_embd, cfg.bias)
        self.c_proj = Linear(cfg.n_embd, cfg.n_embd, cfg.bias)
        self.n_head = cfg.n_head

    def forward(self, x, kv_cache=None, dropout_p: float = 0.0, keep=None):
        return attention_forward(x, self.c_attn.weight, self.c_attn.bias, self.c_proj.weight,
                                 self.c_proj.bias, self.n_head, kv_cache, dropout_p, keep)


class MLP(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.c_fc = Linear(cfg.n_embd, cfg.mlp_width, cfg.bias)
        self.c_proj = Linear(cfg.mlp_width, cfg.n_embd, cfg.bias)
        self.activation = cfg.activation

    def forward(self, x):
        return ffn_forward(x, self.c_fc.weight, self.c_fc.bias, self.c_proj.weight, self.c_proj.bias,
                           self.activation)


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.cfg = cfg
        if cfg.norm != "none":
            self.ln_1 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.attn = Attention(cfg)
        if cfg.mlp:
            if cfg.norm != "none":
                self.ln_2 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
            self.mlp = MLP(cfg)

    def forward(self, x: torch.Tensor, masks: dict, kv_cache=None) -> torch.Tensor:
        """masks: dropout keep-masks by name ("attn_weights", "attn", "mlp"); torch draws any missing."""
        cfg = self.cfg
        training = self.training and kv_cache is None

        def drop(z, name):
            return dropout_forward(z, cfg.dropout, masks.get(name), training)

        def attn(z):
            return self.attn(z, kv_cache, cfg.dropout if training else 0.0, masks.get("attn_weights"))

        if cfg.norm == "pre":
            x = x + drop(attn(self.ln_1(x)), "attn")
            if cfg.mlp:
                x = x + drop(self.mlp(self.ln_2(x)), "mlp")
        elif cfg.norm == "post":
            x = self.ln_1(x + drop(attn(x), "attn"))
            if cfg.mlp:
                x = self.ln_2(x + drop(self.mlp(x), "mlp"))
        else:
            x = x + drop(attn(x), "attn")
            if cfg.mlp:
                x = x + drop(self.mlp(x), "mlp")
        return x
