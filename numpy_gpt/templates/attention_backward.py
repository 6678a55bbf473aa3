"""Your causal self-attention backward (the whole layer). Save it, fill in the body, then grade it:

    numpy-gpt check attention --template > my_attention_backward.py      (this file)
    numpy-gpt check attention --impl my_attention_backward.py

The cache comes from numpy_gpt.attention.attention_forward (read numpy_gpt/attention.py);
the derivation is in docs/attention.md. Forward:
    1. qkv = x @ c_attn_w + c_attn_b            (B, T, 3C)
    2. q, k, v = split(qkv), each into heads    (B, nh, T, hs), hs = C / nh
    3. s = q @ k^T * scale                      (B, nh, T, T), scale = 1 / sqrt(hs)
    4. s[t, u] = -inf for u > t                 the causal mask
    5. a = softmax(s)                           (B, nh, T, T)
    6. y = a @ v                                (B, nh, T, hs)
    7. y = merge heads                          (B, T, C)
    8. out = y @ c_proj_w + c_proj_b            (B, T, C)
Try `numpy-gpt check attention_core` (steps 3-6 alone) and `numpy-gpt check linear` first.
"""
import numpy as np


def attention_backward(dout, cache):
    """dout: (B, T, C), dL/dout. Returns (dx, dc_attn_w, dc_attn_b, dc_proj_w, dc_proj_b).

    cache = (c_attn_cache, core_cache, c_proj_cache):
        c_attn_cache = (x, c_attn_w, has_bias)     step 1's linear cache: x (B, T, C), c_attn_w (C, 3C)
        core_cache   = (q, k, v, a, scale)         steps 3-6: q, k, v (B, nh, T, hs), a (B, nh, T, T)
                                                   (exactly 0 where masked), scale = 1 / sqrt(hs)
        c_proj_cache = (y, c_proj_w, has_bias)     step 8's linear cache: y merged (B, T, C), c_proj_w (C, C)
    A bias gradient is None when has_bias is False. (The check's sequences are short, so the
    forward keeps the whole matrix a; from 64 positions on it keeps blocks of it: docs/attention.md.)
    """
    c_attn_cache, core_cache, c_proj_cache = cache
    q, k, v, a, scale = core_cache
    # 8. linear backward with c_proj_cache:  dy = dout @ c_proj_w.T,  dc_proj_w = y^T dout,
    #    dc_proj_b = dout summed over B and T (flatten to (-1, C) first)
    # 7. split dy into heads: (B, T, C) -> (B, T, nh, hs) -> (B, nh, T, hs)
    # 6. da = dy @ v^T;   dv = a^T @ dy                   (^T swaps the last two axes)
    # 5. ds = a * (da - sum(da * a))                      the softmax backward, sum over the last axis
    # 4. nothing: a = 0 where masked, so ds = 0 there already
    # 3. dq = ds @ k * scale;   dk = ds^T @ q * scale
    # 2. merge dq, dk, dv back to (B, T, C) each and put them side by side: dqkv (B, T, 3C),
    #    in the order q, k, v the forward split them
    # 1. linear backward with c_attn_cache:  dx = dqkv @ c_attn_w.T,  dc_attn_w = x^T dqkv,
    #    dc_attn_b = dqkv summed over B and T
    raise NotImplementedError("attention_backward: write the body")
