"""out = x @ w + b with w stored (C_in, C_out), as in numpy_gpt.linear."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def linear_forward(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
    # F.linear wants (C_out, C_in); w.t() is a view, so autograd sees the same leaf.
    return F.linear(x, w.t(), b)
