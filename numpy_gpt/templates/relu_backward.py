"""Your ReLU backward. Save it, fill in the body, then grade it:

    numpy-gpt check relu --template > my_relu_backward.py      (this file)
    numpy-gpt check relu --impl my_relu_backward.py

The cache comes from numpy_gpt.activations.relu_forward (numpy_gpt/activations.py);
docs/activations.md has the one-line derivation. Forward: out = max(x, 0), elementwise.
"""
import numpy as np


def relu_backward(dout, cache):
    """dout: any shape, dL/dout. Returns dx, the same shape.

    cache = positive   bool array shaped like x: True where x > 0
    """
    positive = cache
    # f'(x) = 1 where x > 0, else 0 (at exactly 0 we take 0, as torch does)
    # dx = dout * f'(x)
    raise NotImplementedError("relu_backward: write the body")
