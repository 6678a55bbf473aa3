"""Your backward of learned positions (GPT-2's wpe). Save it, fill in the body, then grade it:

    numpy-gpt check positional --template > my_learned_backward.py      (this file)
    numpy-gpt check positional --impl my_learned_backward.py

The cache comes from numpy_gpt.positional.learned_forward (read numpy_gpt/positional.py);
docs/positional.md has the derivation. Forward:
    out = x + wpe[pos0 : pos0 + T]      (B, T, C) + (T, C), broadcast over B
"""
import numpy as np


def learned_backward(dout, cache):
    """dout: (B, T, C), dL/dout. Returns (dx (B, T, C), dwpe (P, C)).

    cache = ((P, C), pos0):
        (P, C)  tuple   the table's shape (P >= pos0 + T rows)
        pos0    int     the first row used
    """
    (P, C), pos0 = cache
    # 1. An addition passes the gradient through:      dx = dout
    #    A broadcast over B becomes a sum over B:      dwpe[pos0 + t] = sum over b of dout[b, t]
    #    Rows the forward did not use get 0.           (create dwpe in dout's dtype)
    raise NotImplementedError("learned_backward: write the body")
