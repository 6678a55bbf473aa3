"""The seed toy problems trained with torch_gpt, from the same initial weights as numpy_gpt."""
from __future__ import annotations

import numpy as np
import torch

from numpy_gpt.model import init_params
from numpy_gpt.seeds import SEEDS, answer, seed_config, seed_problem, seed_train_config  # noqa: F401

from .model import GPT, from_numpy
from .train import Trainer


class _TorchAnswering:
    """Lets numpy_gpt.seeds.answer drive a torch model (numpy ids in, numpy ids out)."""

    def __init__(self, model):
        self.model = model

    def generate(self, idx, n, **kw):
        return self.model.generate(torch.from_numpy(idx), n, **kw).numpy()


def train_seed(name: str, seed: int = 0, dtype=torch.float64, epochs: int = 30):
    """Train the torch_gpt seed model; returns (model, tokenizer, history, {prompt: answer})."""
    tok, x, y, spec = seed_problem(name)
    cfg = seed_config(tok.vocab_size)
    model = GPT(cfg).to(dtype)
    model.load_state_dict(from_numpy(init_params(cfg, seed, np.float64)))
    model.to(dtype)
    history = Trainer(model, None, None, seed_train_config(epochs), batch_fn=lambda rng: (x, y)).run(progress=False)
    return model, tok, history, {p: answer(_TorchAnswering(model), tok, p) for p in spec["prompts"]}
