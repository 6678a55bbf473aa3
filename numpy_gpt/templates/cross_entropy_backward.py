"""Your cross-entropy backward (softmax fused in). Save it, fill in the body, then grade it:

    numpy-gpt check cross_entropy --template > my_cross_entropy_backward.py      (this file)
    numpy-gpt check cross_entropy --impl my_cross_entropy_backward.py

The cache comes from numpy_gpt.loss.cross_entropy_forward (read numpy_gpt/loss.py);
docs/cross_entropy.md has the derivation. Forward, over the M positions n whose target
y_n is not ignore_index (-100):
    loss = -(1/M) * sum_n log softmax(z_n)[y_n]
"""
import numpy as np


def cross_entropy_backward(dloss, cache):
    """dloss: a scalar, dL/dloss (1.0 for the loss itself). Returns dlogits, shaped like the logits.

    cache = (probs, y, rows, n_kept, shape):
        probs    (N, V)   softmax of every position's logits, N = all positions flattened
        y        (N,)     the targets, flattened (ignored ones are -100)
        rows     (M,)     the indices n of the positions that count
        n_kept   int      M
        shape    tuple    the logits' shape, e.g. (B, T, V)
    """
    probs, y, rows, n_kept, shape = cache
    # 2-1. For a position that counts:  dz_n = dloss * (probs_n - onehot(y_n)) / M
    #      For an ignored position:     dz_n = 0
    # (Start from zeros shaped like probs, fill the kept rows, scale, reshape to `shape`.
    #  M = 0 means nothing counts: return zeros.)
    raise NotImplementedError("cross_entropy_backward: write the body")
