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
   5b. d = a * keep / (1 - p)                        attention dropout, in training (else d = a)
    6. y = d @ v                                     (B, nh, T, hs)
    7. y = merge heads                               (B, T, C)
    8. out = y @ c_proj_w + c_proj_b                 (B, T, C)

Backward: the same steps in reverse, g_z meaning dL/dz:
    8. linear backward gives g_y, g_c_proj_w, g_c_proj_b
    7. split g_y into heads
    6. g_d = g_y @ v^T;   g_v = d^T @ g_y
   5b. g_a = g_d * keep / (1 - p)                    dropout's backward (dropout.py); else g_a = g_d
    5. g_s = a * (g_a - sum(g_a * a))                (softmax backward, as in softmax.py)
    4. nothing to do: a is exactly 0 where s was -inf, so g_s is 0 there too
    3. g_q = g_s @ k / sqrt(hs);   g_k = g_s^T @ q / sqrt(hs)
    2. merge g_q, g_k, g_v back into g_qkv           (B, T, 3C)
    1. linear backward gives g_x, g_c_attn_w, g_c_attn_b

In the code, steps 3-5 of the forward run in place on one array (s becomes a), and the
backward's step 5 multiplies by 1 / sqrt(hs) at once: its array holds g_s / sqrt(hs), named
gs_scaled, so that step 3 is two plain products.

The mask is -inf, not a large negative number: exp(-inf) is exactly 0, so no
amount of training can make a position see its future.

Step 5b is GPT-2's attention dropout (attn_pdrop): in training, each weight
is zeroed with probability p and the rest scaled by 1 / (1 - p). It takes a
keep-mask (B, nh, T, T) drawn by the caller, so a test can hand torch the
same one. A dropped weight can be on the diagonal too: a position may then
not see itself, only its past, for that step.

Long sequences take the same steps in blocks of queries, skipping the scores
above the diagonal (blocked_causal_attention_forward, below the reference
causal_attention_forward; docs/attention.md explains and times it).

Heads are independent from step 3 to step 6, so when the batch is not already
cut among threads (a single long sequence) the heads are: each thread runs
steps 3-6 for its share of them (shared_core_forward, near the end).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .dropout import dropout_backward, dropout_forward
from .linear import Rebuild, linear_backward, linear_forward
from .parallel import for_row_blocks, map_shards, shares
from .reductions import row_dots, row_max, row_sums


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


# A row whose visible scores all lie within +-EXP_SAFE[dtype] goes into exp unshifted: exp
# of each is a normal number, and a sum of up to 1e9 of them cannot overflow (float32:
# e^40 = 2e17, e^-40 = 4e-18).
EXP_SAFE = {np.dtype(np.float32): 40.0, np.dtype(np.float64): 300.0}


def _softmax_rows(s3: np.ndarray, scale, bias: np.ndarray | None) -> None:
    """Steps 3-5 in place on scores s3 (n, T_q, T_k), a few (batch, head) pairs at a time.

    Softmax is the same whatever constant a row is shifted by; the usual shift,
    the row's maximum, only keeps exp in range. Here a row is shifted only when
    one of its visible scores lies beyond +-EXP_SAFE. When every score of a
    block is within that range (two quick whole-block reductions tell) no row
    maximum is taken at all, which saves the slowest pass on short rows
    (reductions.py). Either way each row's result depends on its own visible
    scores alone (for finite scores: a NaN or inf added to the -inf mask spoils
    its row, as in any additive mask), and differs from the always-shifted
    softmax by rounding only.
    """
    limit = EXP_SAFE.get(s3.dtype, 0.0)
    for_row_blocks(lambda lo, hi: _softmax_block(s3[lo:hi], scale, bias, limit), s3.shape[0], s3[:1].nbytes)


def _softmax_block(s: np.ndarray, scale, bias: np.ndarray | None, limit: float) -> None:
    """_softmax_rows on one block of rows s (n, T_q, T_k): q k^T on entry, a on return."""
    s *= scale                                                  # 3. s = q k^T / sqrt(hs)
    in_range = s.size == 0 or (np.maximum.reduce(s, axis=None) <= limit
                                and np.minimum.reduce(s, axis=None) >= -limit)   # (False if a NaN is present)
    if bias is not None:
        s += bias                                               # 4. -inf above the diagonal
    if not in_range:                                            # 5. softmax; exp(-inf) = 0 exactly
        m = row_max(s)                                          # each row's largest visible score
        low = np.fmin.reduce(np.where(s == -np.inf, np.inf, s), axis=-1, keepdims=True)  # and smallest
        s -= np.where((m <= limit) & (low >= -limit), s.dtype.type(0.0), m)
    np.exp(s, out=s)
    s /= row_sums(s)                                            # now a = softmax(s)


def _softmax_rows_backward(g3: np.ndarray, a3: np.ndarray, scale) -> None:
    """Steps 5-3 in place: g3 holds g_a (n, T_q, T_k) and becomes g_s * scale = g_s / sqrt(hs)."""
    def kernel(lo, hi):
        g, a = g3[lo:hi], a3[lo:hi]
        g -= row_dots(g, a)                                     # 5. g_s = a * (g_a - sum(g_a * a))
        g *= a                                                  # 5 (and 4 for free: a = 0 where masked, so g_s = 0)
        g *= scale                                              # 3's 1 / sqrt(hs), taken here once
    for_row_blocks(kernel, g3.shape[0], g3[:1].nbytes)


def _rows(z: np.ndarray) -> np.ndarray:
    return z.reshape(-1, *z.shape[-2:])                          # (B, nh, T, U) -> (B*nh, T, U), a view


def causal_attention_forward(q: np.ndarray, k: np.ndarray, v: np.ndarray, drop: tuple | None = None
                             ) -> tuple[np.ndarray, tuple]:
    """Steps 3 to 6 on the whole score matrix. q: (B, nh, T_q, hs); k, v: (B, nh, T_k, hs), T_k >= T_q.

    drop: None, or (keep, p) for attention dropout (step 5b): keep a boolean
    (B, nh, T_q, T_k) mask, p the drop probability.
    Returns y (B, nh, T_q, hs) and the cache (q, k, v, a, scale) for
    causal_attention_backward, a being the (B, nh, T_q, T_k) attention weights
    before dropout; with dropout the cache has a sixth entry, (keep, 1 / (1 - p)).
    This is the reference; attention_forward uses the query-blocked version
    below for long sequences, which gives the same numbers with less work.
    """
    hs = q.shape[-1]
    scale = q.dtype.type(1.0 / np.sqrt(hs))
    s = q @ k.swapaxes(-1, -2)                                  # 3. q k^T (B, nh, T_q, T_k), scaled next
    _softmax_rows(_rows(s), scale, causal_bias(q.shape[-2], k.shape[-2], s.dtype))   # 3-5. in place
    a = s                                                       # the attention weights
    if drop is None:
        return a @ v, (q, k, v, a, scale)                       # 6. y = a @ v (B, nh, T_q, hs)
    keep, p = drop
    d, drop_cache = dropout_forward(a, p, keep)                 # 5b. a new array; a stays as it was
    return d @ v, (q, k, v, a, scale, drop_cache)               # 6. y = d @ v


def causal_attention_backward(dy: np.ndarray, cache: tuple, out: np.ndarray | None = None
                              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """dy: (B, nh, T_q, hs). Returns (dq, dk, dv) shaped like q, k, v.

    out: optionally a (3, B, nh, T, hs) buffer (T_q == T_k) to write dq, dk, dv into.
    """
    q, k, v, a, scale, *drop_cache = cache
    dq, dk, dv = (None, None, None) if out is None else out
    g_d = dy @ v.swapaxes(-1, -2)                               # 6. g_d = g_y @ v^T (B, nh, T_q, T_k)
    # Step 6 used d = a * keep / (1 - p): dropout_backward's very product, remade here.
    d = dropout_backward(a, drop_cache[0]) if drop_cache else a
    dv = np.matmul(d.swapaxes(-1, -2), dy, out=dv)              # 6. g_v = d^T @ g_y (B, nh, T_k, hs)
    g_a = dropout_backward(g_d, drop_cache[0]) if drop_cache else g_d   # 5b.
    del g_d                                                     # with dropout, its (T_q, T_k) memory goes now
    _softmax_rows_backward(_rows(g_a), _rows(a), scale)         # 5-3. in place: g_a becomes g_s / sqrt(hs)
    gs_scaled = g_a
    dq = np.matmul(gs_scaled, k, out=dq)                        # 3. g_q = g_s @ k / sqrt(hs)
    dk = np.matmul(gs_scaled.swapaxes(-1, -2), q, out=dk)       # 3. g_k = g_s^T @ q / sqrt(hs)
    return dq, dk, dv


# ------------------------------------------------------------ skipping the masked half
# Query t only sees keys 0..t, so in the lower-left triangle of the (T, T) score
# matrix lies all the work; the upper-right is computed only to be set to -inf
# and turned into exact zeros. Cut the queries into blocks of rows: block [lo, hi)
# sees keys [0, hi) and nothing after, so its scores are (hi - lo, hi), and
# softmax, a @ v and the whole backward run on that rectangle alone. With nb
# blocks this computes (nb + 1) / (2 nb) of the matrix (5/8 with 4 blocks), and
# each block's working set is small enough to stay in cache. Every row sees the
# same keys with the same weights as in the whole matrix, so the results agree
# with causal_attention_forward to rounding (the sums run over fewer zeros).

MIN_BLOCKED_T = 64        # from this many queries on, attention_forward uses query blocks


def query_blocks(T_q: int, T_k: int, rows: int | None = None) -> list[tuple[int, int, int]]:
    """(lo, hi, keys) per block of about `rows` queries: queries lo..hi-1 look at keys 0..keys-1.

    Queries are the last T_q of T_k positions. By default blocks of T_q / 4
    rows, at least 32 and at most 64, the fastest on the benchmark's shapes
    (T = 64 to 1024; docs/attention.md has the timings).
    """
    rows = min(64, max(32, T_q // 4)) if rows is None else rows
    nb = max(1, round(T_q / rows))
    edges = [T_q * i // nb for i in range(nb + 1)]
    return [(lo, hi, T_k - T_q + hi) for lo, hi in zip(edges[:-1], edges[1:])]


class BlockedCache(NamedTuple):
    """What blocked_causal_attention_backward needs: a_blocks[i] holds the attention weights a
    (B, nh, hi - lo, keys) of blocks[i] = (lo, hi, keys), before dropout."""
    q: np.ndarray
    k: np.ndarray
    v: np.ndarray
    blocks: list
    a_blocks: list
    scale: np.floating
    drop_cache: tuple | None = None       # attention dropout: (keep, 1 / (1 - p)), keep (B, nh, T_q, T_k)


def blocked_causal_attention_forward(q: np.ndarray, k: np.ndarray, v: np.ndarray, rows: int | None = None,
                                     drop: tuple | None = None) -> tuple[np.ndarray, BlockedCache]:
    """Steps 3 to 6 as causal_attention_forward, block of queries by block (see above).

    rows: queries per block (query_blocks' choice by default); drop as in
    causal_attention_forward, each block taking its part of the mask."""
    hs = q.shape[-1]
    scale = q.dtype.type(1.0 / np.sqrt(hs))
    blocks = query_blocks(q.shape[-2], k.shape[-2], rows)
    y = np.empty_like(q)
    a_blocks = []
    for lo, hi, keys in blocks:
        s = q[:, :, lo:hi] @ k[:, :, :keys].swapaxes(-1, -2)    # 3. q k^T (B, nh, hi - lo, keys)
        _softmax_rows(_rows(s), scale, causal_bias(hi - lo, keys, s.dtype))   # 3-5. in place
        a = s                                                   # this block's attention weights
        d = a if drop is None else dropout_forward(a, drop[1], drop[0][:, :, lo:hi, :keys])[0]   # 5b.
        np.matmul(d, v[:, :, :keys], out=y[:, :, lo:hi])        # 6. y = d @ v
        a_blocks.append(a)
    drop_cache = None if drop is None else (drop[0], q.dtype.type(1.0 / (1.0 - drop[1])))   # as dropout_forward's
    return y, BlockedCache(q, k, v, blocks, a_blocks, scale, drop_cache)


def blocked_causal_attention_backward(dy: np.ndarray, cache: BlockedCache, out: np.ndarray | None = None
                                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of blocked_causal_attention_forward; arguments as causal_attention_backward.

    A key gets gradient from every block that sees it, so dk and dv add up over
    blocks, starting from the last block, which sees every key.
    """
    q, k, v, blocks, a_blocks, scale, drop_cache = cache
    dq, dk, dv = (np.empty_like(q), np.empty_like(k), np.empty_like(v)) if out is None else out
    for (lo, hi, keys), a in reversed(list(zip(blocks, a_blocks))):
        g_y = dy[:, :, lo:hi]
        g_d = g_y @ v[:, :, :keys].swapaxes(-1, -2)             # 6. g_d = g_y @ v^T (B, nh, hi - lo, keys)
        d, g_a = a, g_d
        if drop_cache is not None:                              # this block's part of the mask
            block_drop = (drop_cache[0][:, :, lo:hi, :keys], drop_cache[1])
            d = dropout_backward(a, block_drop)                 # the dropped weights step 6 used
            g_a = dropout_backward(g_d, block_drop)             # 5b.
        del g_d                                                 # with dropout, its memory goes now
        dv_part = d.swapaxes(-1, -2) @ g_y                      # 6. g_v = d^T @ g_y (B, nh, keys, hs)
        _softmax_rows_backward(_rows(g_a), _rows(a), scale)     # 5-3. in place: g_a becomes g_s / sqrt(hs)
        gs_scaled = g_a
        np.matmul(gs_scaled, k[:, :, :keys], out=dq[:, :, lo:hi])      # 3. g_q = g_s @ k / sqrt(hs)
        dk_part = gs_scaled.swapaxes(-1, -2) @ q[:, :, lo:hi]          # 3. g_k = g_s^T @ q / sqrt(hs)
        if keys == k.shape[-2]:                                 # the first pass writes every key
            dv[...], dk[...] = dv_part, dk_part
        else:
            dv[:, :, :keys] += dv_part
            dk[:, :, :keys] += dk_part
    return dq, dk, dv


def attention_forward(x: np.ndarray, c_attn_w: np.ndarray, c_attn_b: np.ndarray | None,
                      c_proj_w: np.ndarray, c_proj_b: np.ndarray | None, n_head: int,
                      kv_cache: "KVCache | None" = None, drop: tuple | None = None,
                      x_kept: Rebuild | None = None) -> tuple[np.ndarray, tuple]:
    """Causal self-attention over x: (B, T, C). Returns out (B, T, C) and the cache.

    kv_cache (inference only): keys and values of earlier positions; this call's
    are appended to it and its queries attend to all of them.
    drop (training only): (keep, p), attention dropout on the weights (step 5b),
    keep a boolean (B, nh, T, T) mask.
    x_kept: what step 1's cache holds for x (linear_forward's x_kept).
    """
    B, T, C = x.shape
    qkv, c_attn_cache = linear_forward(x, c_attn_w, c_attn_b, x_kept=x_kept)   # 1. (B, T, 3C)
    # 2. one copy into (3, B, nh, T, hs): q, k and v each contiguous, as matmul likes
    q, k, v = np.ascontiguousarray(qkv.reshape(B, T, 3, n_head, C // n_head).transpose(2, 0, 3, 1, 4))
    if kv_cache is not None:
        k, v = kv_cache.append(k, v)                            # (B, nh, T_past + T, hs)
    core = blocked_causal_attention_forward if T >= MIN_BLOCKED_T else causal_attention_forward
    y, core_cache = shared_core_forward(core, q, k, v, drop)   # 3-6.
    out, c_proj_cache = linear_forward(merge_heads(y), c_proj_w, c_proj_b)  # 7-8.
    return out, (c_attn_cache, core_cache, c_proj_cache)


def attention_backward(dout: np.ndarray, cache: tuple) -> tuple:
    """dout: (B, T, C). Returns (dx, dc_attn_w, dc_attn_b, dc_proj_w, dc_proj_b).

    A bias gradient is None where the forward had no bias. Each part of the cache
    is let go once used, so q, k, v and the weights are freed before step 1's backward.
    """
    c_attn_cache, core_cache, c_proj_cache = cache
    del cache
    dy, dc_proj_w, dc_proj_b = linear_backward(dout, c_proj_cache)          # 8.
    del c_proj_cache
    B, T, C = dy.shape
    n_head = core_cache[0].shape[1]
    dqkv = np.empty((3, B, n_head, T, C // n_head), dtype=dy.dtype)        # dq, dk, dv side by side
    shared_core_backward(split_heads(dy, n_head), core_cache, out=dqkv)     # 7-3.
    del core_cache, dy
    dqkv = dqkv.transpose(1, 3, 0, 2, 4).reshape(B, T, 3 * C)              # 2. back to (B, T, 3C)
    dx, dc_attn_w, dc_attn_b = linear_backward(dqkv, c_attn_cache)          # 1.
    return dx, dc_attn_w, dc_attn_b, dc_proj_w, dc_proj_b


# ------------------------------------------------------------ heads on several threads
# Steps 3-6 treat every (sequence, head) pair on its own. A training step of
# several sequences already gives each thread its own sequences (model.py,
# parallel.map_shards). A long step of one sequence runs under
# parallel.share_products(), and there the heads are cut into one group per
# thread (the batch rows, when there is a single head): each thread runs the
# whole core on its group. (BLAS's threads could not share these products
# out: a block of 64 queries by a head's 64 columns is too small to split.)
# Each head's numbers are as with one thread, to rounding, and the cache has
# the usual form: the forward puts the groups' results back together, the
# backward takes views of them.

def _core_parts(q: np.ndarray, T_k: int) -> list[tuple]:
    """How to cut (B, nh, ...) among the threads: index tuples by heads, else by batch rows; [] for no cut."""
    B, nh, T_q, hs = q.shape
    macs = B * nh * T_q * T_k * hs                              # of q @ k^T, as many again in a @ v
    parts = [(slice(None), h) for h in shares(nh, macs)] if nh > 1 else [(b,) for b in shares(B, macs)]
    return parts if len(parts) > 1 else []


def _core_cache_part(cache, ix: tuple):
    """The part of a core's cache that belongs to heads (or batch rows) ix: views, no copies."""
    def part(d):                                                # dropout's (keep, 1 / (1 - p)), or None
        return None if d is None else (d[0][ix], d[1])
    if isinstance(cache, BlockedCache):
        q, k, v, blocks, a_blocks, scale, drop_cache = cache
        return BlockedCache(q[ix], k[ix], v[ix], blocks, [a[ix] for a in a_blocks], scale, part(drop_cache))
    q, k, v, a, scale, *drop_cache = cache
    return (q[ix], k[ix], v[ix], a[ix], scale, *map(part, drop_cache))


def shared_core_forward(core, q, k, v, drop: tuple | None = None) -> tuple[np.ndarray, tuple]:
    """core(q, k, v, drop=drop), the same result and cache, its heads shared among the threads."""
    parts = _core_parts(q, k.shape[-2])
    if not parts:
        return core(q, k, v, drop=drop)
    outs = map_shards(lambda ix: core(q[ix], k[ix], v[ix], drop=None if drop is None else (drop[0][ix], drop[1])),
                      parts)
    axis = len(parts[0]) - 1                                    # 1 for heads, 0 for batch rows

    def joined(arrays):
        return np.concatenate(list(arrays), axis=axis)

    def whole(d):                                               # a part's (keep, 1 / (1 - p)) -> the whole mask's
        return None if d is None else (drop[0], d[1])
    y, caches = joined(y for y, _ in outs), [c for _, c in outs]
    first = caches[0]
    if isinstance(first, BlockedCache):
        a_blocks = [joined(a) for a in zip(*(c.a_blocks for c in caches))]
        return y, first._replace(q=q, k=k, v=v, a_blocks=a_blocks, drop_cache=whole(first.drop_cache))
    a = joined(c[3] for c in caches)
    return y, (q, k, v, a, first[4], *map(whole, first[5:]))    # (q, k, v, a, scale[, drop_cache])


def shared_core_backward(dy: np.ndarray, cache, out: np.ndarray) -> None:
    """The backward of the core that made cache, heads shared among the threads as in the forward.

    dy: (B, nh, T, hs). Writes dq, dk, dv into out: (3, B, nh, T, hs).
    """
    core = blocked_causal_attention_backward if isinstance(cache, BlockedCache) else causal_attention_backward
    parts = _core_parts(cache[0], cache[1].shape[-2])
    if not parts:
        core(dy, cache, out=out)
        return
    map_shards(lambda ix: core(dy[ix], _core_cache_part(cache, ix), out=out[(slice(None),) + ix]), parts)


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

    def select(self, rows) -> None:
        """Keep batch rows `rows`, in that order, repeats allowed (beam search's parent beams)."""
        for name in ("k", "v"):
            old = getattr(self, name)
            new = np.empty((len(rows), *old.shape[1:]), old.dtype)
            new[:, :, :self.length] = old[rows, :, :self.length]     # only the positions filled so far
            setattr(self, name, new)
