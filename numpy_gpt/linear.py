"""The affine layer out = x @ w + b, forward and backward by hand.

Shapes: N = any number of leading positions (B*T in a transformer),
C_in = input features, C_out = output features.

The weight is stored (C_in, C_out), the layout of GPT-2's Conv1D, so the
forward reads as the math does and GPT-2 weights load without transposes.

Forward:
    1. out = x @ w + b                     (..., C_in) @ (C_in, C_out)

Backward, given g = dL/dout:
    1. dx = g @ w.T                        (..., C_out) @ (C_out, C_in)
       dw = x.T @ g, summed over every leading position
       db = sum of g over every leading position

Each product goes through parallel.matmul, which is plain `a @ b` except
in a long step of a single sequence on several threads
(parallel.share_products): there it cuts the product into one block of rows
or columns per thread.
"""
from __future__ import annotations

import numpy as np

from .parallel import matmul
from .reductions import col_sums


def linear_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None
                   ) -> tuple[np.ndarray, tuple]:
    """x: (..., C_in); w: (C_in, C_out); b: (C_out,) or None.

    Returns out (..., C_out) and the cache for linear_backward.
    """
    C_in, C_out = w.shape
    x2 = x.reshape(-1, C_in)                 # a 2-D view goes straight to BLAS
    out = matmul(x2, w)                                         # 1. (N, C_out): x2 @ w
    if b is not None:
        out += b
    cache = (x, w, b is not None)
    return out.reshape(*x.shape[:-1], C_out), cache


def linear_backward(dout: np.ndarray, cache: tuple
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """dout: (..., C_out). Returns (dx (..., C_in), dw (C_in, C_out), db (C_out,) or None)."""
    x, w, has_bias = cache
    C_in, C_out = w.shape
    g = dout.reshape(-1, C_out)
    dx = matmul(g, w.T).reshape(x.shape)     # 1. g @ w.T: d(x @ w)/dx contracts with w's C_out
    dw = matmul(x.reshape(-1, C_in).T, g)    # 1. x.T @ g: each position adds its outer product x g^T
    db = col_sums(g) if has_bias else None   # 1. = g.sum(axis=0), as ones(N) @ g in BLAS
    return dx, dw, db
