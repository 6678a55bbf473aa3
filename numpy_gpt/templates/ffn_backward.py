"""Your feed-forward network (MLP) backward. Save it, fill in the body, then grade it:

    numpy-gpt check ffn --template > my_ffn_backward.py      (this file)
    numpy-gpt check ffn --impl my_ffn_backward.py

The cache comes from numpy_gpt.ffn.ffn_forward (read numpy_gpt/ffn.py); docs/ffn.md walks
it through. Forward, with H = 4C:
    1. h = x @ c_fc_w + c_fc_b          (B, T, H)
    2. a = act(h)                       relu, gelu or gelu_exact (the check draws all three)
    3. out = a @ c_proj_w + c_proj_b    (B, T, C)
Check `linear` and an activation first; you may then call your own or numpy_gpt's
numpy_gpt.linear.linear_backward here.
"""
import numpy as np


def ffn_backward(dout, cache):
    """dout: (B, T, C), dL/dout. Returns (dx, dc_fc_w, dc_fc_b, dc_proj_w, dc_proj_b).

    cache = (fc_cache, act_backward, act_cache, proj_cache):
        fc_cache     = (x, c_fc_w, has_bias)     step 1's linear cache
        act_backward                             the activation's backward, a function (dout, cache) -> dx
        act_cache                                its cache
        proj_cache   = (a, c_proj_w, has_bias)   step 3's linear cache: a is act(h), (B, T, H)
    A bias gradient is None when has_bias is False.
    """
    fc_cache, act_backward, act_cache, proj_cache = cache
    # 3. linear backward with proj_cache:  da = dout @ c_proj_w.T,  dc_proj_w = a^T dout,  dc_proj_b = sum dout
    # 2. dh = act_backward(da, act_cache)
    # 1. linear backward with fc_cache:    dx = dh @ c_fc_w.T,  dc_fc_w = x^T dh,  dc_fc_b = sum dh
    # (each ^T product and sum runs over every position: flatten B and T first)
    raise NotImplementedError("ffn_backward: write the body")
