"""The feed-forward network, as in numpy_gpt.ffn."""
from __future__ import annotations

import torch

from .activations import ACTIVATIONS
from .linear import linear_forward


def ffn_forward(x: torch.Tensor, c_fc_w: torch.Tensor, c_fc_b: torch.Tensor | None,
                c_proj_w: torch.Tensor, c_proj_b: torch.Tensor | None,
                activation: str = "gelu") -> torch.Tensor:
    return linear_forward(ACTIVATIONS[activation](linear_forward(x, c_fc_w, c_fc_b)), c_proj_w, c_proj_b)
