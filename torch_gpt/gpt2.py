"""GPT-2 weights in and out of torch_gpt, through numpy_gpt.gpt2 (same names, same layout).

    tmodel = torch_gpt.gpt2.from_gpt2("gpt2/model.safetensors")    # or a state dict of tensors
    sd = torch_gpt.gpt2.to_gpt2(tmodel)                             # Hugging Face's names
"""
from __future__ import annotations

import numpy as np
import torch

from numpy_gpt import gpt2 as np_gpt2

from .model import GPT, adopt


def from_gpt2(source, dtype: torch.dtype = torch.float32, n_head: int | None = None) -> GPT:
    """A torch_gpt GPT holding GPT-2 weights; source as numpy_gpt.gpt2.from_gpt2 takes it
    (a .safetensors path, a folder, or a dict of tensors or arrays)."""
    np_dtype = np.float64 if dtype == torch.float64 else np.float32
    np_model = np_gpt2.from_gpt2(source, dtype=np_dtype, n_head=n_head)
    model = adopt(np_model.config, np_model.params)           # the arrays just read: no copy
    return model if dtype in (torch.float32, torch.float64) else model.to(dtype)   # float16, bfloat16: cast


def to_gpt2(model: GPT, tensors: dict[str, torch.Tensor] | None = None, prefix: str = np_gpt2.PREFIX
            ) -> dict[str, torch.Tensor]:
    """The model's parameters (detached), or a dict with their names such as
    {name: p.grad}, under GPT-2's names."""
    np_gpt2.check_gpt2_shaped(model.config)
    params = dict(model.named_parameters())
    tensors = {k: p.detach() for k, p in params.items()} if tensors is None else tensors
    np_gpt2.check_same_names({k: tuple(p.shape) for k, p in params.items()}, tensors)
    return {np_gpt2.gpt2_name(k, prefix): tensors[k] for k in params}
