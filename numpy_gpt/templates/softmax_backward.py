"""Your softmax backward. Save it, fill in the body, then grade it:

    numpy-gpt check softmax --template > my_softmax_backward.py      (this file)
    numpy-gpt check softmax --impl my_softmax_backward.py

The cache comes from numpy_gpt.softmax.softmax_forward (read numpy_gpt/softmax.py);
the derivation is in docs/softmax.md. Forward, per row x of K numbers:
    y = exp(x - max(x)) / sum(exp(x - max(x)))
"""
import numpy as np


def softmax_backward(dout, cache):
    """dout: (..., K), dL/dy. Returns dx (..., K).

    cache = y   (..., K)   the forward's output: each row sums to 1
    """
    y = cache
    # The Jacobian of one row is dy_i/dx_j = y_i * (delta_ij - y_j). Never build it: multiplied
    # by the upstream gradient g it collapses to
    # 3-1. dx = y * (g - sum(g * y))        the sum over the last axis, keepdims
    raise NotImplementedError("softmax_backward: write the body")
