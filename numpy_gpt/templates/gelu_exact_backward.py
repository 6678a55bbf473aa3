"""Your backward of the exact GELU (with erf). Save it, fill in the body, then grade it:

    numpy-gpt check gelu_exact --template > my_gelu_exact_backward.py      (this file)
    numpy-gpt check gelu_exact --impl my_gelu_exact_backward.py

The cache comes from numpy_gpt.activations.gelu_exact_forward (numpy_gpt/activations.py);
the derivation is in docs/activations.md. Forward, elementwise:
    out = x * Phi(x),   Phi(x) = (1 + erf(x / sqrt 2)) / 2, the normal distribution's CDF
"""
import math

import numpy as np


def gelu_exact_backward(dout, cache):
    """dout: any shape, dL/dout. Returns dx, the same shape, in dout's dtype.

    cache = (x64, cdf):
        x64   the forward's input, as float64
        cdf   Phi(x), float64, shaped like x
    """
    x64, cdf = cache
    # Product rule:  d out/dx = Phi(x) + x * phi(x),   phi(x) = exp(-x^2 / 2) / sqrt(2 pi), the density
    # dx = dout * d out/dx, cast back to dout's dtype
    raise NotImplementedError("gelu_exact_backward: write the body")
