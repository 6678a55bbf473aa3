"""The residual connection out = x + f(x), as a block uses it.

Forward:   out = x + fx
Backward:  the sum hands the same gradient to both branches: dx = g, dfx = g.
Where the residual stream splits (x feeds both f and the skip path), the
caller adds the gradient coming back through f to the one from the skip path.

The model does not call these two functions: numpy_gpt/block.py writes the same
sum inline, `x = x + a` forward and `dx = dx + attn_back(dx)` backward, which is
this module's two lines with the split added. They stand here as a layer of their
own, so that the rule can be read, and checked against torch, on its own.
"""
from __future__ import annotations

import numpy as np


def residual_forward(x: np.ndarray, fx: np.ndarray) -> tuple[np.ndarray, None]:
    return x + fx, None


def residual_backward(dout: np.ndarray, cache: None) -> tuple[np.ndarray, np.ndarray]:
    return dout, dout
