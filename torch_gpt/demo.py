"""The torch half of numpy_gpt.demo: the same problems, trained with torch_gpt."""
from __future__ import annotations

import torch

from .model import GPT, from_numpy
from .seeds import train_seed
from .train import Trainer


def seed_answers(name: str, seed: int = 0) -> dict:
    return train_seed(name, seed=seed)[3]


def num_threads() -> int:
    """The intra-op threads torch trains on (torch.set_num_threads)."""
    return torch.get_num_threads()


def train_char(cfg, init_params, train, val, tcfg):
    """Train torch_gpt from the given (numpy) initial weights; returns its History."""
    model = GPT(cfg)
    model.load_state_dict(from_numpy(init_params))
    return Trainer(model, train, val, tcfg, fused=True).run()    # as the command line trains
