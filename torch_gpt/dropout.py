"""Inverted dropout, as in numpy_gpt.dropout.

Without a mask this is F.dropout. With a mask (to share one with numpy_gpt)
it applies that mask with the same 1/(1-p) scaling, and autograd differentiates it.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def dropout_forward(x: torch.Tensor, p: float, mask: torch.Tensor | None = None,
                    training: bool = True) -> torch.Tensor:
    if not training or p == 0.0:
        return x
    if mask is None:
        return F.dropout(x, p, training=True)
    return x * mask.to(x.dtype) / (1.0 - p)
