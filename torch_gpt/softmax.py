"""Softmax over the last axis, as in numpy_gpt.softmax."""
from __future__ import annotations

import torch


def softmax_forward(x: torch.Tensor) -> torch.Tensor:
    return torch.softmax(x, dim=-1)
