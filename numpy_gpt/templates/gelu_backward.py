"""Your backward of GELU, tanh approximation (GPT-2's). Save it, fill in the body, then grade it:

    numpy-gpt check gelu --template > my_gelu_backward.py      (this file)
    numpy-gpt check gelu --impl my_gelu_backward.py

The cache comes from numpy_gpt.activations.gelu_forward (numpy_gpt/activations.py);
the derivation is in docs/activations.md. Forward, elementwise:
    u = c * (x + k x^3),  s = (1 + tanh u) / 2,  out = x * s,   c = sqrt(2/pi), k = 0.044715
(s is also sigmoid(2u), which is how the forward computes it.)
"""
import math

import numpy as np


def gelu_backward(dout, cache):
    """dout: any shape, dL/dout. Returns dx, the same shape and dtype.

    cache = (x, s):
        x   the forward's input
        s   (1 + tanh u) / 2, shaped like x
    """
    x, s = cache
    # Product rule on x * s, chain rule through s = (1 + tanh u) / 2, whose derivative in u is
    # (1 - tanh^2 u) / 2 = 2 s (1 - s):
    #   d out/dx = s  +  x * 2 s (1 - s) * du/dx,     du/dx = c * (1 + 3 k x^2)
    # dx = dout * d out/dx
    raise NotImplementedError("gelu_backward: write the body")
