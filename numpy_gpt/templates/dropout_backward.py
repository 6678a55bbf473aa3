"""Your (inverted) dropout backward. Save it, fill in the body, then grade it:

    numpy-gpt check dropout --template > my_dropout_backward.py      (this file)
    numpy-gpt check dropout --impl my_dropout_backward.py

The cache comes from numpy_gpt.dropout.dropout_forward (read numpy_gpt/dropout.py);
docs/dropout.md has the derivation. Forward, in training, with a boolean keep-mask m:
    out = x * m / (1 - p)
"""
import numpy as np


def dropout_backward(dout, cache):
    """dout: any shape, dL/dout. Returns dx, the same shape.

    cache = (mask, scale), or None:
        mask    bool, shaped like x: True where the element was kept
        scale   1 / (1 - p), in x's dtype
        None    when the forward was the identity (evaluation, or p == 0): then dx = dout
    """
    if cache is None:
        return dout
    mask, scale = cache
    # The mask is a constant once drawn, so the layer is linear in x:
    # 1. dx = dout * mask * scale
    raise NotImplementedError("dropout_backward: write the body")
