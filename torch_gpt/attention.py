"""Causal multi-head self-attention, as in numpy_gpt.attention, on torch built-ins."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .dropout import dropout_forward
from .linear import linear_forward


def split_heads(z: torch.Tensor, n_head: int) -> torch.Tensor:
    B, T, C = z.shape
    return z.view(B, T, n_head, C // n_head).transpose(1, 2)     # (B, nh, T, hs)


def merge_heads(z: torch.Tensor) -> torch.Tensor:
    B, nh, T, hs = z.shape
    return z.transpose(1, 2).reshape(B, T, nh * hs)             # (B, T, C)


def causal_attention_forward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, dropout_p: float = 0.0,
                             keep: torch.Tensor | None = None) -> torch.Tensor:
    """q: (B, nh, T_q, hs); k, v: (B, nh, T_k, hs); queries are the last T_q positions.

    dropout_p: attention dropout on the weights (training only). With a keep-mask
    (B, nh, T_q, T_k), to share one with numpy_gpt, the weights are formed
    explicitly and that mask applied; without one, SDPA draws its own.
    """
    T_q, T_k = q.shape[-2], k.shape[-2]
    # is_causal aligns the mask top-left; with a KV cache the queries sit at the end.
    allowed = torch.ones(T_q, T_k, dtype=torch.bool, device=q.device).tril(diagonal=T_k - T_q)
    if dropout_p and keep is not None:
        s = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
        a = torch.softmax(s.masked_fill(~allowed, float("-inf")), dim=-1)
        return dropout_forward(a, dropout_p, keep) @ v
    if T_q == T_k:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=dropout_p)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=dropout_p)


def attention_forward(x: torch.Tensor, c_attn_w: torch.Tensor, c_attn_b: torch.Tensor | None,
                      c_proj_w: torch.Tensor, c_proj_b: torch.Tensor | None, n_head: int,
                      kv_cache: "KVCache | None" = None, dropout_p: float = 0.0,
                      keep: torch.Tensor | None = None) -> torch.Tensor:
    q, k, v = (split_heads(z, n_head) for z in linear_forward(x, c_attn_w, c_attn_b).split(x.shape[-1], dim=-1))
    if kv_cache is not None:
        k, v = kv_cache.append(k, v)
    y = causal_attention_forward(q, k, v, dropout_p, keep)
    return linear_forward(merge_heads(y), c_proj_w, c_proj_b)


class KVCache:
    """Keys and values seen so far for one layer (inference only), as in numpy_gpt:
    preallocated to the longest context, so a decoding step writes one slot instead
    of concatenating (and copying) the whole history."""

    def __init__(self, B: int, n_head: int, max_T: int, head_size: int, dtype: torch.dtype):
        self.k = torch.empty(B, n_head, max_T, head_size, dtype=dtype)
        self.v = torch.empty(B, n_head, max_T, head_size, dtype=dtype)
        self.length = 0

    def append(self, k: torch.Tensor, v: torch.Tensor):
        """Store k, v (B, nh, T, hs) after the past ones; return views of all so far."""
        end = self.length + k.shape[2]
        self.k[:, :, self.length:end] = k
        self.v[:, :, self.length:end] = v
        self.length = end
        return self.k[:, :, :end], self.v[:, :, :end]

    def select(self, rows):
        """Keep batch rows `rows`, in that order, repeats allowed (beam search's parent beams)."""
        for name in ("k", "v"):
            old = getattr(self, name)
            new = old.new_empty(len(rows), *old.shape[1:])
            new[:, :, :self.length] = old[rows, :, :self.length]     # only the positions filled so far
            setattr(self, name, new)
