"""Your backward of GELU, tanh approximation (GPT-2's). Fill in the body, then grade it:

    numpy-gpt check gelu --impl gelu_backward.py

The cache comes from numpy_gpt.activations.gelu_forward (numpy_gpt/activations.py);
the derivation is in docs/activations.md. Forward, elementwise:
    u = c * (x + k x^3),  t = tanh(u),  out = x * (1 + t) / 2,   c = sqrt(2/pi), k = 0.044715
"""
import math

import numpy as np


def gelu_backward(dout, cache):
    """dout: any shape, dL/dout. Returns dx, the same shape and dtype.

    cache = (x, t):
        x   the forward's input
        t   tanh(u), shaped like x
    """
    x, t = cache
    # Product rule on x * (1 + t) / 2, chain rule through t = tanh(u):
    #   d out/dx = (1 + t) / 2  +  x / 2 * (1 - t^2) * du/dx,     du/dx = c * (1 + 3 k x^2)
    # dx = dout * d out/dx
    raise NotImplementedError("gelu_backward: write the body")
