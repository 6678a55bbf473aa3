"""Token embedding lookup, as in numpy_gpt.embedding."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def embedding_forward(idx: torch.Tensor, wte: torch.Tensor) -> torch.Tensor:
    return F.embedding(idx, wte)
