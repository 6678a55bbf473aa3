"""ReLU and the two GELUs, as in numpy_gpt.activations, from torch.nn.functional."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def relu_forward(x: torch.Tensor) -> torch.Tensor:
    return F.relu(x)


def gelu_forward(x: torch.Tensor) -> torch.Tensor:
    return F.gelu(x, approximate="tanh")


def gelu_exact_forward(x: torch.Tensor) -> torch.Tensor:
    return F.gelu(x)


ACTIVATIONS = {"relu": relu_forward, "gelu": gelu_forward, "gelu_exact": gelu_exact_forward}
