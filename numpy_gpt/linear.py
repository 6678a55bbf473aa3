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

Memory. The backward needs x for dw, so the cache keeps it. When x is the
output of a layer whose own cache can make it again in one or two passes (a
layer norm's out = xhat * w + b from its xhat; GELU's out = x * s), keeping
x as well holds the same numbers twice. The model then passes
x_kept=Rebuild(...): the cache holds that recipe instead of x, linear_backward
makes x from it for dw, and lets it go before dx takes its place. The same
operations in the same order give x back bit for bit.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .parallel import matmul
from .reductions import col_sums


def linear_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None,
                   out: np.ndarray | None = None, x_kept: Rebuild | None = None
                   ) -> tuple[np.ndarray, tuple]:
    """x: (..., C_in); w: (C_in, C_out); b: (C_out,) or None.

    out: a C-contiguous (..., C_out) array to write the result into (the model's
    shards write their logits into one array this way), or None for a new one.
    x_kept: what the cache holds for x; x itself by default (see Memory above).
    Returns out (..., C_out) and the cache for linear_backward.
    """
    C_in, C_out = w.shape
    x2 = x.reshape(-1, C_in)                 # a 2-D view goes straight to BLAS
    if out is not None:
        _check_out(out, x.shape[:-1] + (C_out,), np.result_type(x, w))
    out2 = matmul(x2, w, out=None if out is None else out.reshape(-1, C_out))   # 1. (N, C_out): x2 @ w
    if b is not None:
        out2 += b
    cache = (x if x_kept is None else x_kept, w, b is not None)
    return out2.reshape(*x.shape[:-1], C_out), cache


def linear_backward(dout: np.ndarray, cache: tuple
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """dout: (..., C_out). Returns (dx (..., C_in), dw (C_in, C_out), db (C_out,) or None)."""
    x, w, has_bias = cache
    C_in, C_out = w.shape
    g = dout.reshape(-1, C_out)
    if isinstance(x, Rebuild):
        x = x()                              # made again for dw (see Memory above)
    dw = matmul(x.reshape(-1, C_in).T, g)    # 1. x.T @ g: each position adds its outer product x g^T
    x_shape = x.shape
    del x                                    # a rebuilt x is freed before dx is allocated
    dx = matmul(g, w.T).reshape(x_shape)     # 1. g @ w.T: d(x @ w)/dx contracts with w's C_out
    db = col_sums(g) if has_bias else None   # 1. = g.sum(axis=0), as ones(N) @ g in BLAS
    return dx, dw, db


def _check_out(out: np.ndarray, shape: tuple, dtype) -> None:
    """out= must take the result as it is: its shape and dtype, C-contiguous (so that its 2-D
    reshape is a view, and the product lands in out itself)."""
    if (out.shape, out.dtype) != (shape, dtype) or not out.flags.c_contiguous:
        raise ValueError(f"out must be a C-contiguous {dtype} array of shape {shape}, got {out.dtype} "
                         f"{out.shape}{'' if out.flags.c_contiguous else ', not contiguous'}")


# ------------------------------------------------------------ keeping x once (Memory above)

@dataclass(frozen=True)
class Rebuild:
    """x for linear_backward, made again when needed: make(*args), which must give the very
    array the forward had (numpy_gpt/layernorm.py's layernorm_output, activations.gelu_output)."""
    make: Callable
    args: tuple = ()

    def __call__(self) -> np.ndarray:
        return self.make(*self.args)


def handed_over(x: np.ndarray) -> Rebuild:
    """A Rebuild that gives back x itself, once, and keeps no reference to it after: for an x
    made just for the backward (the MLP's recomputed activation), so that linear_backward's is
    the last reference and x is freed before dx is allocated."""
    box = [x]

    def give_back() -> np.ndarray:
        if not box:
            raise RuntimeError("an array handed over to linear_backward was asked for twice "
                               "(one backward per forward)")
        return box.pop()
    return Rebuild(give_back)
