"""Your backward of attention's core (steps 3 to 6). Save it, fill in the body, then grade it:

    numpy-gpt check attention_core --template > my_causal_attention_backward.py      (this file)
    numpy-gpt check attention_core --impl my_causal_attention_backward.py

The cache comes from numpy_gpt.attention.causal_attention_forward (numpy_gpt/attention.py);
the derivation is in docs/attention.md. Forward, for each batch row and head:
    3. s = q @ k^T * scale        (T_q, T_k), scale = 1 / sqrt(hs)
    4. s[t, u] = -inf where key u is in query t's future
    5. a = softmax(s)             over the last axis
    6. y = a @ v                  (T_q, hs)
The check also draws T_q < T_k (queries after a KV cache); the math is the same.
"""
import numpy as np


def causal_attention_backward(dy, cache):
    """dy: (B, nh, T_q, hs), dL/dy. Returns (dq, dk, dv) shaped like q, k, v.

    cache = (q, k, v, a, scale):
        q      (B, nh, T_q, hs)
        k, v   (B, nh, T_k, hs)
        a      (B, nh, T_q, T_k)   the attention weights; exactly 0 where masked
        scale  float               1 / sqrt(hs)
    """
    q, k, v, a, scale = cache
    # 6. da = dy @ v^T;   dv = a^T @ dy              (^T swaps the last two axes: .swapaxes(-1, -2))
    # 5. ds = a * (da - sum(da * a))                  sum over the last axis, keepdims
    # 4. nothing to do: where the mask put -inf, a = 0 exactly, so ds = 0 there too
    # 3. dq = ds @ k * scale;   dk = ds^T @ q * scale
    raise NotImplementedError("causal_attention_backward: write the body")
