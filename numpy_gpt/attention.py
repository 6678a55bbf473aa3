"""Causal multi-head self-attention, forward and backward by hand.

Shapes: B = batch, T = time, C = channels, nh = number of heads,
hs = head size = C // nh.

Parameters (GPT-2 names and layout):
    c_attn_w (C, 3C), c_attn_b (3C,)     the fused Q, K, V projection
    c_proj_w (C, C),  c_proj_b (C,)      the output projection

Forward:
    1. qkv = x @ c_attn_w + c_attn_b                 (B, T, 3C)
    2. q, k, v = split(qkv), each split into heads   (B, nh, T, hs)
    3. s = q @ k^T / sqrt(hs)                        (B, nh, T, T)
    4. s[t, u] = -inf for u > t                      the causal mask
    5. a = softmax(s)  over the last axis            (B, nh, T, T)
    6. y = a @ v                                     (B, nh, T, hs)
    7. y = merge heads                               (B, T, C)
    8. out = y @ c_proj_w + c_proj_b                 (B, T, C)

Backward: the same steps in reverse, g_z meaning dL/dz:
    8. linear backward gives g_y, g_c_proj_w, g_c_proj_b
    7. split g_y into heads
    6. g_a = g_y @ v^T;   g_v = a^T @ g_y
    5. g_s = a * (g_a - sum(g_a * a))                (softmax backward, as in softmax.py)
    4. nothing to do: a is exactly 0 where s was -inf, so g_s is 0 there too
    3. g_q = g_s @ k / sqrt(hs);   g_k = g_s^T @ q / sqrt(hs)
    2. merge g_q, g_k, g_v back into g_qkv           (B, T, 3C)
    1. linear backward gives g_x, g_c_attn_w, g_c_attn_b

The mask is -inf, not a large negative number: exp(-inf) is exactly 0, so no
amount of training can make a position see its future.
"""
from __future__ import annotations

import numpy as np

from .linear import linear_backward, linear_forward
from .parallel import for_row_blocks


def split_heads(z: np.ndarray, n_head: int) -> np.ndarray:
    """(B, T, C) -> (B, nh, T, hs)."""
    B, T, C = z.shape
    return z.reshape(B, T, n_head, C // n_head).transpose(0, 2, 1, 3)


def merge_heads(z: np.ndarray) -> np.ndarray:
    """(B, nh, T, hs) -> (B, T, C)."""
    B, nh, T, hs = z.shape
    return z.transpose(0, 2, 1, 3).reshape(B, T, nh * hs)


def causal_mask(T_q: int, T_k: int) -> np.ndarray:
    """Boolean (T_q, T_k), True where a query must not look: key u > query t.

    Queries are the last T_q of the T_k positions, so with a KV cache a new
    token at position T_k - 1 sees every key.
    """
    return np.triu(np.ones((T_q, T_k), dtype=bool), k=T_k - T_q + 1)


_MASK_BIAS: dict = {}


def causal_bias(T_q: int, T_k: int, dtype) -> np.ndarray | None:
    """(T_q, T_k): 0 where a query may look, -inf where it may not (step 4 as an addition).

    Adding it is one cheap broadcast pass, where writing -inf through a boolean
    index is a slow scatter. Cached per shape and dtype. None when no query has
    a future to hide: a single query, the newest position, sees every key.
    """
    if T_q == 1:
        return None
    key = (T_q, T_k, np.dtype(dtype).str)
    if key not in _MASK_BIAS:
        _MASK_BIAS[key] = np.where(causal_mask(T_q, T_k), -np.inf, 0.0).astype(dtype)
    return _MASK_BIAS[key]


def causal_attention_forward(q: np.ndarray, k: np.ndarray, v: np.ndarray
                             ) -> tuple[np.ndarray, tuple]:
    """Steps 3 to 6. q: (B, nh, T_q, hs); k, v: (B, nh, T_k, hs), T_k >= T_q.

    Returns y (B, nh, T_q, hs) and the cache for causal_attention_backward.
    """
    hs = q.shape[-1]
    scale = q.dtype.type(1.0 / np.sqrt(hs))
    s = q @ k.swapaxes(-1, -2)                                  # 3. (B, nh, T_q, T_k)
    bias = causal_bias(q.shape[-2], k.shape[-2], s.dtype)
    s3 = s.reshape(-1, *s.shape[-2:])                           # (B*nh, T_q, T_k), a view

    def steps_3_to_5(lo, hi):                                   # in place, a few heads at a time
        a = s3[lo:hi]
        a *= scale                                              # 3. s = q k^T / sqrt(hs)
        if bias is not None:
            a += bias                                           # 4. -inf above the diagonal
        a -= a.max(axis=-1, keepdims=True)                      # 5. softmax; exp(-inf) = 0 exactly
        np.exp(a, out=a)
        a /= a.sum(axis=-1, keepdims=True)
    for_row_blocks(steps_3_to_5, s3.shape[0], s3[:1].nbytes)
    a = s
    y = a @ v                                                   # 6. (B, nh, T_q, hs)
    return y, (q, k, v, a, scale)


def causal_attention_backward(dy: np.ndarray, cache: tuple, out: np.ndarray | None = None
                              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """dy: (B, nh, T_q, hs). Returns (dq, dk, dv) shaped like q, k, v.

    out: optionally a (3, B, nh, T, hs) buffer (T_q == T_k) to write dq, dk, dv into.
    """
    q, k, v, a, scale = cache
    dq, dk, dv = (None, None, None) if out is None else out
    da = dy @ v.swapaxes(-1, -2)                                # 6. (B, nh, T_q, T_k)
    dv = np.matmul(a.swapaxes(-1, -2), dy, out=dv)              # 6. (B, nh, T_k, hs)
    ds = da
    ds3, a3 = ds.reshape(-1, *ds.shape[-2:]), a.reshape(-1, *a.shape[-2:])

    def steps_5_to_3(lo, hi):                                   # in place, a few heads at a time
        g, p = ds3[lo:hi], a3[lo:hi]
        g -= (g * p).sum(axis=-1, keepdims=True)                # 5. ds = a * (da - sum(da * a))
        g *= p                                                  # 4. a = 0 where masked: ds = 0 there
        g *= scale                                              # 3. s = scale * q k^T
    for_row_blocks(steps_5_to_3, ds3.shape[0], ds3[:1].nbytes)
    dq = np.matmul(ds, k, out=dq)
    dk = np.matmul(ds.swapaxes(-1, -2), q, out=dk)
    return dq, dk, dv


def attention_forward(x: np.ndarray, c_attn_w: np.ndarray, c_attn_b: np.ndarray | None,
                      c_proj_w: np.ndarray, c_proj_b: np.ndarray | None, n_head: int,
                      kv_cache: "KVCache | None" = None) -> tuple[np.ndarray, tuple]:
    """Causal self-attention over x: (B, T, C). Returns out (B, T, C) and the cache.

    kv_cache (inference only): keys and values of earlier positions; this call's
    are appended to it and its queries attend to all of them.
    """
    B, T, C = x.shape
    qkv, c_attn_cache = linear_forward(x, c_attn_w, c_attn_b)   # 1. (B, T, 3C)
    # 2. one copy into (3, B, nh, T, hs): q, k and v each contiguous, as matmul likes
    q, k, v = np.ascontiguousarray(qkv.reshape(B, T, 3, n_head, C // n_head).transpose(2, 0, 3, 1, 4))
    if kv_cache is not None:
        k, v = kv_cache.append(k, v)                            # (B, nh, T_past + T, hs)
    y, core_cache = causal_attention_forward(q, k, v)           # 3-6.
    out, c_proj_cache = linear_forward(merge_heads(y), c_proj_w, c_proj_b)  # 7-8.
    return out, (c_attn_cache, core_cache, c_proj_cache)


def attention_backward(dout: np.ndarray, cache: tuple) -> tuple:
    """dout: (B, T, C). Returns (dx, dc_attn_w, dc_attn_b, dc_proj_w, dc_proj_b).

    A bias gradient is None where the forward had no bias.
    """
    c_attn_cache, core_cache, c_proj_cache = cache
    dy, dc_proj_w, dc_proj_b = linear_backward(dout, c_proj_cache)          # 8.
    B, T, C = dy.shape
    n_head = core_cache[0].shape[1]
    dqkv = np.empty((3, B, n_head, T, C // n_head), dtype=dy.dtype)        # dq, dk, dv side by side
    causal_attention_backward(split_heads(dy, n_head), core_cache, out=dqkv)  # 7-3.
    dqkv = dqkv.transpose(1, 3, 0, 2, 4).reshape(B, T, 3 * C)              # 2. back to (B, T, 3C)
    dx, dc_attn_w, dc_attn_b = linear_backward(dqkv, c_attn_cache)          # 1.
    return dx, dc_attn_w, dc_attn_b, dc_proj_w, dc_proj_b


class KVCache:
    """Keys and values of the positions seen so far, for one attention layer.

    Preallocated to the longest context, so each decoding step writes one slot
    instead of concatenating (and copying) the whole history.
    """

    def __init__(self, B: int, n_head: int, max_T: int, head_size: int, dtype):
        self.k = np.empty((B, n_head, max_T, head_size), dtype=dtype)
        self.v = np.empty((B, n_head, max_T, head_size), dtype=dtype)
        self.length = 0

    def append(self, k: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Store k, v (B, nh, T, hs) after the past ones; return views of all so far."""
        end = self.length + k.shape[2]
        self.k[:, :, self.length:end] = k
        self.v[:, :, self.length:end] = v
        self.length = end
        return self.k[:, :, :end], self.v[:, :, :end]
