"""The torch half of `numpy-gpt trace`: the seed model's tensors, with autograd's gradients.

numpy_gpt.trace loads this module on demand. It builds the seed model's forward
from torch_gpt's layer functions (embedding, sinusoidal positions, linear,
residual, F.cross_entropy), with the inside of attention written out in torch ops
so that the scores and the attention weights exist as tensors; calls retain_grad()
on every intermediate; runs loss.backward(); and returns each tensor and each
gradient under the names numpy_gpt.trace uses. Nothing here is derived by hand.

whole_model_check then runs torch_gpt.GPT itself (F.scaled_dot_product_attention
inside) on the same weights, to show the written-out attention is the model's.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from .attention import causal_attention_forward
from .embedding import embedding_forward
from .linear import linear_forward
from .loss import IGNORE_INDEX, cross_entropy_forward
from .model import GPT, from_numpy
from .positional import sinusoidal_forward, sinusoidal_table
from .residual import residual_forward


def _graph(params: dict, cfg, idx: np.ndarray, targets: np.ndarray):
    P = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in params.items()}
    idx_t, tgt = torch.from_numpy(np.asarray(idx)), torch.from_numpy(np.asarray(targets))
    C, T = cfg.n_embd, idx.shape[1]
    hs = C // cfg.n_head
    t = {}
    t["x_tok"] = embedding_forward(idx_t, P["wte.weight"])                    # (B, T, C)
    t["x0"] = sinusoidal_forward(t["x_tok"])
    # x0 feeds two consumers; a clone for the attention branch lets autograd report
    # that branch's gradient on its own (x0's own grad is the sum of both).
    t["x0_branch"] = t["x0"].clone()
    t["qkv"] = linear_forward(t["x0_branch"], P["h.0.attn.c_attn.weight"], P["h.0.attn.c_attn.bias"])
    t["q"], t["k"], t["v"] = t["qkv"].split(C, dim=-1)                        # one head: (B, T, hs)
    t["s"] = t["q"] @ t["k"].transpose(-1, -2) / math.sqrt(hs)
    future = torch.ones(T, T, dtype=torch.bool).triu(1)
    t["s_masked"] = t["s"].masked_fill(future, float("-inf"))
    t["a"] = torch.softmax(t["s_masked"], dim=-1)
    t["y"] = t["a"] @ t["v"]
    t["attn"] = linear_forward(t["y"], P["h.0.attn.c_proj.weight"], P["h.0.attn.c_proj.bias"])
    t["x1"] = residual_forward(t["x0"], t["attn"])
    t["logits"] = linear_forward(t["x1"], P["lm_head.weight"].t())
    t["loss"] = cross_entropy_forward(t["logits"], tgt)
    for z in t.values():
        if z.requires_grad:
            z.retain_grad()
    t["loss"].backward()
    return P, t, tgt


def trace(params: dict, cfg, idx: np.ndarray, targets: np.ndarray) -> dict[str, np.ndarray]:
    """Every tensor numpy_gpt.trace prints, computed by torch (gradients by autograd)."""
    P, t, tgt = _graph(params, cfg, idx, targets)
    n = lambda z: z.detach().numpy().copy()                                  # noqa: E731
    T, C, V = idx.shape[1], cfg.n_embd, cfg.vocab_size
    nll = F.cross_entropy(t["logits"].detach().reshape(-1, V), tgt.reshape(-1), reduction="none",
                          ignore_index=IGNORE_INDEX).reshape(tgt.shape)
    out = {k: n(t[k]) for k in ("x_tok", "x0", "q", "k", "v", "s", "s_masked", "a", "y", "attn", "x1",
                                "logits", "loss")}
    out.update(pe=n(sinusoidal_table(T, C, torch.float64)), probs=n(torch.softmax(t["logits"], -1)), nll=n(nll))
    grads = dict(dlogits="logits", dx1="x1", dy="y", da="a", dv="v", ds="s_masked", dq="q", dk="k",
                 dqkv="qkv", dx0_attn="x0_branch", dx0="x0", dx_tok="x_tok")
    out.update({k: n(t[src].grad) for k, src in grads.items()})
    out.update(d_lm_head=n(P["lm_head.weight"].grad), d_c_proj_w=n(P["h.0.attn.c_proj.weight"].grad),
               d_c_proj_b=n(P["h.0.attn.c_proj.bias"].grad), d_c_attn_w=n(P["h.0.attn.c_attn.weight"].grad),
               d_c_attn_b=n(P["h.0.attn.c_attn.bias"].grad), d_wte=n(P["wte.weight"].grad))
    return out


def whole_model_check(params: dict, cfg, idx: np.ndarray, targets: np.ndarray, values: dict) -> dict[str, float]:
    """max |difference| between the written-out graph above and torch_gpt's own model and SDPA."""
    model = GPT(cfg).double()
    model.load_state_dict(from_numpy(params))
    logits, loss = model(torch.from_numpy(np.asarray(idx)), torch.from_numpy(np.asarray(targets)))
    loss.backward()
    grads = {k: p.grad.numpy() for k, p in model.named_parameters()}
    names = {"wte.weight": "d_wte", "h.0.attn.c_attn.weight": "d_c_attn_w", "h.0.attn.c_attn.bias": "d_c_attn_b",
             "h.0.attn.c_proj.weight": "d_c_proj_w", "h.0.attn.c_proj.bias": "d_c_proj_b",
             "lm_head.weight": "d_lm_head"}
    grad_diff = max(float(np.abs(grads[k] - values[v]).max()) for k, v in names.items())
    q, k, v = (torch.from_numpy(values[z]) for z in ("q", "k", "v"))
    y_sdpa = causal_attention_forward(q, k, v).numpy()
    return {"torch graph above vs torch_gpt.GPT (logits, loss)":
            max(float(np.abs(logits.detach().numpy() - values["logits"]).max()),
                abs(float(loss.detach()) - float(values["loss"]))),
            "torch graph above vs torch_gpt.GPT (every parameter gradient)": grad_diff,
            "y above vs F.scaled_dot_product_attention(q, k, v, is_causal=True)":
            float(np.abs(y_sdpa - values["y"]).max())}
