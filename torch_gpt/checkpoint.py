"""numpy_gpt's checkpoint files, written and read from torch_gpt.

The file format is numpy_gpt.checkpoint's (one safetensors file; parameters under their own
names, optimizer state in numpy_gpt's layout), so a run trained in numpy continues in torch and
back. A plain torch user needs none of this:

    from safetensors.torch import load_file
    sd = {k: v for k, v in load_file(path).items() if not k.startswith(("optimizer.", "history.", "rng."))}
    torch_gpt.GPT(cfg).load_state_dict(sd)
"""
from __future__ import annotations

import os

import numpy as np
import torch

from numpy_gpt.checkpoint import Checkpoint, check_resumable, load_checkpoint, save_checkpoint
from numpy_gpt.config import GPTConfig
from numpy_gpt.model import packed_params

from .model import GPT, adopt

_DTYPES = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}
_NUMPY = {t: n for n, t in _DTYPES.items()}


def save(path: str | os.PathLike, model: GPT, trainer=None, tokenizer=None, run: dict | None = None) -> str:
    """Save a torch_gpt model (and its Trainer's state) in numpy_gpt's checkpoint format."""
    run = {"backend": "torch", **(run or {})}
    params = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}   # views: read once, not copied
    return save_checkpoint(path, model.config, params,
                           trainer_state=None if trainer is None else trainer.state_dict(copy=False),
                           train_config=None if trainer is None else trainer.config,
                           tokenizer=tokenizer, run=run)


def load(path: str | os.PathLike, dtype: torch.dtype | None = None, config: GPTConfig | None = None
         ) -> tuple[GPT, Checkpoint]:
    """A torch_gpt GPT from a checkpoint, in the dtype it was saved in unless dtype is given."""
    ckpt = load_checkpoint(path, config, dtype=_NUMPY.get(dtype))           # float16 or bfloat16: cast below
    if np.dtype(next(iter(ckpt.params.values())).dtype) not in _DTYPES:     # saved in float16, say
        ckpt.params = packed_params(ckpt.params, np.float32)
    model = adopt(ckpt.config, ckpt.params)               # the model's parameters are ckpt.params
    return (model if dtype is None or dtype in _NUMPY else model.to(dtype)), ckpt


def restore_trainer(trainer, ckpt: Checkpoint) -> None:
    """Load a checkpoint's trainer state (written by either implementation) into a torch_gpt Trainer."""
    check_resumable(ckpt, trainer.config.optimizer)
    trainer.load_state_dict(ckpt.trainer_state)
