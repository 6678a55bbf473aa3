"""Your layer-norm backward. Save it, fill in the body, then grade it:

    numpy-gpt check layernorm --template > my_layernorm_backward.py      (this file)
    numpy-gpt check layernorm --impl my_layernorm_backward.py

The cache comes from numpy_gpt.layernorm.layernorm_forward (read numpy_gpt/layernorm.py);
the derivation, line by line, is in docs/layernorm.md. Forward, per row x of C numbers:
    1. mu = mean(x)   2. xc = x - mu   3. var = mean(xc**2)   4. rstd = 1/sqrt(var + eps)
    5. xhat = xc * rstd   6. out = xhat * w + b
"""
import numpy as np


def layernorm_backward(dout, cache):
    """dout: (..., C), dL/dout. Returns (dx (..., C), dw (C,), db (C,) or None).

    cache = (xhat, rstd, w, has_bias):
        xhat      (..., C)   the normalized input (step 5)
        rstd      (..., 1)   1 / sqrt(var + eps) of each row (step 4): x's axes with the last one
                             of length 1, so it broadcasts against (..., C)
        w         (C,)       the gain
        has_bias  bool       False when the forward had no bias: return db = None then
    """
    xhat, rstd, w, has_bias = cache
    # 6. out = xhat * w + b, reversed. "Over every row" means over all leading axes:
    #    db = sum of dout over every row                            (C,)
    #    dw = sum of dout * xhat over every row                     (C,)
    #    g  = dout * w                                              dL/dxhat, (..., C)
    # 5-1. xhat depends on x directly, through mu and through rstd. The three paths fold into
    #    dx = rstd * (g - mean(g) - xhat * mean(g * xhat))          means over the last axis (keepdims)
    #    The mean(g) term is the mu path; the xhat * mean(g * xhat) term is the rstd path.
    # A check you can run yourself: dx sums to zero over the last axis.
    raise NotImplementedError("layernorm_backward: write the body")
