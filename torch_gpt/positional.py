"""Sinusoidal and learned positional encodings, as in numpy_gpt.positional.

The sinusoidal table is computed here with torch ops from the formula,
independently of numpy_gpt's code:
    PE(pos, 2i) = sin(pos / 10000^(2i/C)),  PE(pos, 2i+1) = cos(pos / 10000^(2i/C))
"""
from __future__ import annotations

import torch


def sinusoidal_table(T: int, C: int, dtype=torch.float32) -> torch.Tensor:
    pos = torch.arange(T, dtype=torch.float64).unsqueeze(1)
    two_i = torch.arange(0, C, 2, dtype=torch.float64)
    angle = pos / torch.pow(10000.0, two_i / C)
    pe = torch.zeros(T, C, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(angle)
    pe[:, 1::2] = torch.cos(angle)[:, : C // 2]
    return pe.to(dtype)


def sinusoidal_forward(x: torch.Tensor, pos0: int = 0) -> torch.Tensor:
    T, C = x.shape[-2:]
    return x + sinusoidal_table(pos0 + T, C, x.dtype)[pos0:].to(x.device)


def learned_forward(x: torch.Tensor, wpe: torch.Tensor, pos0: int = 0) -> torch.Tensor:
    T = x.shape[-2]
    return x + wpe[pos0:pos0 + T]
