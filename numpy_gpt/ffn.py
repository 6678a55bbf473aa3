"""The position-wise feed-forward network (GPT-2's "mlp"), forward and backward.

Shapes: B = batch, T = time, C = channels, H = hidden width (4C in GPT-2).

Parameters: c_fc_w (C, H), c_fc_b (H,), c_proj_w (H, C), c_proj_b (C,).

Forward:
    1. h   = x @ c_fc_w + c_fc_b          (B, T, H)
    2. a   = act(h)                       relu, gelu (tanh) or gelu_exact
    3. out = a @ c_proj_w + c_proj_b      (B, T, C)

Backward, walking 3 -> 1 with linear_backward, the activation's backward,
and linear_backward again.
"""
from __future__ import annotations

import numpy as np

from .activations import ACTIVATIONS
from .linear import linear_backward, linear_forward


def ffn_forward(x: np.ndarray, c_fc_w: np.ndarray, c_fc_b: np.ndarray | None,
                c_proj_w: np.ndarray, c_proj_b: np.ndarray | None,
                activation: str = "gelu") -> tuple[np.ndarray, tuple]:
    """x: (B, T, C). Returns out (B, T, C) and the cache for ffn_backward."""
    act_forward, act_backward = ACTIVATIONS[activation]
    h, fc_cache = linear_forward(x, c_fc_w, c_fc_b)             # 1.
    a, act_cache = act_forward(h)                               # 2.
    out, proj_cache = linear_forward(a, c_proj_w, c_proj_b)     # 3.
    return out, (fc_cache, act_backward, act_cache, proj_cache)


def ffn_backward(dout: np.ndarray, cache: tuple) -> tuple:
    """dout: (B, T, C). Returns (dx, dc_fc_w, dc_fc_b, dc_proj_w, dc_proj_b)."""
    fc_cache, act_backward, act_cache, proj_cache = cache
    da, dc_proj_w, dc_proj_b = linear_backward(dout, proj_cache)   # 3.
    dh = act_backward(da, act_cache)                               # 2.
    dx, dc_fc_w, dc_fc_b = linear_backward(dh, fc_cache)           # 1.
    return dx, dc_fc_w, dc_fc_b, dc_proj_w, dc_proj_b
