"""Positional encodings: sinusoidal (fixed) and learned (GPT-2).

Shapes: B = batch, T = time, C = channels (d_model), P = rows of a table.

Both add a (T, C) block of position vectors to the (B, T, C) token embeddings.
`pos0` offsets the positions, which incremental decoding with a KV cache needs.

Sinusoidal ("Attention Is All You Need", section 3.5), for pos >= 0, 0 <= 2i < C:
    PE(pos, 2i)   = sin(pos / 10000^(2i / C))
    PE(pos, 2i+1) = cos(pos / 10000^(2i / C))
For odd C the last column is a sine with no cosine partner.
    1. out = x + PE[pos0 : pos0 + T]
    backward: dx = g  (the table is a constant; the gradient passes straight through)

Learned, with a table wpe (P, C):
    1. out = x + wpe[pos0 : pos0 + T]
    backward: dx = g;  dwpe[pos0 + t] = sum over b of g[b, t]; zero for unused rows
"""
from __future__ import annotations

import numpy as np


def sinusoidal_table(T: int, C: int, dtype=np.float32) -> np.ndarray:
    """The (T, C) table PE defined above, computed in float64 then cast to dtype."""
    pos = np.arange(T, dtype=np.float64)[:, None]               # (T, 1)
    two_i = np.arange(0, C, 2, dtype=np.float64)                # (ceil(C/2),)
    angle = pos / 10000.0 ** (two_i / C)                        # (T, ceil(C/2))
    pe = np.empty((T, C), dtype=np.float64)
    pe[:, 0::2] = np.sin(angle)
    pe[:, 1::2] = np.cos(angle[:, : C // 2])
    return pe.astype(dtype)


def sinusoidal_forward(x: np.ndarray, pos0: int = 0) -> tuple[np.ndarray, None]:
    """x: (B, T, C). Returns x + PE[pos0 : pos0+T] and an empty cache."""
    T, C = x.shape[-2:]
    pe = sinusoidal_table(pos0 + T, C, x.dtype)[pos0:]          # (T, C)
    return x + pe, None                                         # 1.


def sinusoidal_backward(dout: np.ndarray, cache: None) -> np.ndarray:
    """The table is constant, so dx = dout."""
    return dout


def learned_forward(x: np.ndarray, wpe: np.ndarray, pos0: int = 0) -> tuple[np.ndarray, tuple]:
    """x: (B, T, C); wpe: (P, C) with P >= pos0 + T. Returns x + wpe[pos0:pos0+T] and the cache."""
    T = x.shape[-2]
    out = x + wpe[pos0:pos0 + T]                                # 1. broadcast over B
    return out, (wpe.shape, pos0)


def learned_backward(dout: np.ndarray, cache: tuple) -> tuple[np.ndarray, np.ndarray]:
    """dout: (B, T, C). Returns (dx (B, T, C), dwpe (P, C))."""
    (P, C), pos0 = cache
    T = dout.shape[-2]
    dwpe = np.zeros((P, C), dtype=dout.dtype)
    dwpe[pos0:pos0 + T] = dout.reshape(-1, T, C).sum(axis=0)    # 1. each row reused by every b
    return dout, dwpe
