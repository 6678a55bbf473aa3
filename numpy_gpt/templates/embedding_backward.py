"""Your token-embedding backward. Save it, fill in the body, then grade it:

    numpy-gpt check embedding --template > my_embedding_backward.py      (this file)
    numpy-gpt check embedding --impl my_embedding_backward.py

The cache comes from numpy_gpt.embedding.embedding_forward (read numpy_gpt/embedding.py);
the derivation and its trap are in docs/embedding.md. Forward:  out[b, t] = wte[idx[b, t]].
"""
import numpy as np


def embedding_backward(dout, cache):
    """dout: (B, T, C), dL/dout. Returns dwte (V, C).

    cache = (idx, (V, C)):
        idx     (B, T) int64   the token ids that were looked up
        (V, C)  tuple          the table's shape
    """
    idx, (V, C) = cache
    # 1. Row v of wte was copied to every position holding token v, so
    #    dwte[v] = sum of dout[b, t] over all (b, t) with idx[b, t] == v;  rows never used stay 0.
    # The trap: dwte[idx] += dout writes each repeated id ONCE and drops the other copies.
    # np.add.at(dwte, idx, dout) accumulates (so does a one-hot matmul, or sort + np.add.reduceat).
    # Create dwte in dout's dtype.
    raise NotImplementedError("embedding_backward: write the body")
