"""Your linear-layer backward. Save it, fill in the body, then grade it:

    numpy-gpt check linear --template > my_linear_backward.py      (this file)
    numpy-gpt check linear --impl my_linear_backward.py

The cache comes from numpy_gpt.linear.linear_forward (read numpy_gpt/linear.py);
the derivation is in docs/linear.md. Forward:  out = x @ w + b,  w stored (C_in, C_out).
"""
import numpy as np


def linear_backward(dout, cache):
    """dout: (..., C_out), dL/dout. Returns (dx (..., C_in), dw (C_in, C_out), db (C_out,) or None).

    cache = (x, w, has_bias):
        x         (..., C_in)     the forward's input (any number of leading axes: B, T, ...)
        w         (C_in, C_out)   the weight
        has_bias  bool            False when the forward had no bias: return db = None then
    """
    x, w, has_bias = cache
    # Flatten the leading axes first: x2 = x.reshape(-1, C_in), g = dout.reshape(-1, C_out).
    # 1. dx = g @ w.T, reshaped back to x's shape       each output row mixes the inputs through w
    #    dw = x2.T @ g                                   every position adds its outer product x g^T
    #    db = g.sum(axis=0)                              the bias is added at every position
    raise NotImplementedError("linear_backward: write the body")
