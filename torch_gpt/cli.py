"""The torch half of the numpy-gpt command line, loaded only when a command needs torch
(`--backend torch`, `parity`), so that numpy_gpt itself never imports torch.

BACKEND mirrors numpy_gpt.cli.NumpyBackend: the same methods, torch_gpt inside.
"""
from __future__ import annotations

import numpy as np
import torch

from numpy_gpt.model import init_params

from . import checkpoint
from .model import GPT, adopt, from_numpy, to_numpy
from .train import Trainer

_TORCH = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}


class TorchBackend:
    name = "torch"

    def new_model(self, cfg, seed: int, dtype, params: dict | None = None, copy: bool = True) -> GPT:
        """A torch_gpt GPT; without params, numpy_gpt's initialization for this seed, so that
        both backends start from the same weights. copy=False: the model's parameters are the
        arrays of params themselves (torch_gpt.model.adopt), which must be in dtype already; so
        are the fresh arrays of that initialization (no torch initialization first, no copy)."""
        if params is None or not copy:
            return adopt(cfg, init_params(cfg, seed, np.dtype(dtype)) if params is None else params)
        model = GPT(cfg).to(_TORCH[np.dtype(dtype)])
        model.load_state_dict(from_numpy(params))
        return model

    def trainer(self, model, train, val, tcfg) -> Trainer:
        # Dropout's masks come from torch's global RNG: the same --seed, the same run (a resumed
        # run then restores the state its checkpoint saved over this).
        torch.manual_seed(tcfg.seed)
        return Trainer(model, train, val, tcfg, fused=True)      # torch's fastest Adam(W) on the CPU

    def params(self, model) -> dict[str, np.ndarray]:
        return to_numpy(model.state_dict())

    def all_finite(self, model) -> bool:
        with torch.no_grad():
            return all(bool(torch.isfinite(p).all()) for p in model.parameters())

    def save(self, path, model, trainer, tokenizer, run) -> str:
        return checkpoint.save(path, model, trainer, tokenizer, run)

    def restore(self, trainer, ckpt) -> None:
        checkpoint.restore_trainer(trainer, ckpt)

    def generate(self, model, ids: list[int], max_new_tokens: int, seed: int, on_token, **kw) -> list[int]:
        gen = torch.Generator().manual_seed(seed)
        idx = torch.tensor([ids], dtype=torch.long)
        if kw.get("beam_width") is None:
            kw["generator"] = gen
        out = model.generate(idx, max_new_tokens, on_token=lambda t: on_token(int(t[0])), **kw)
        return out[0].tolist()


BACKEND = TorchBackend()


def parity(cfg, params: dict[str, np.ndarray], batch_size: int, seq_len: int | None, seed: int):
    """Rows and run info of torch_gpt.parity.run_parity (imported here: it needs torch)."""
    from .parity import run_parity
    return run_parity(cfg, params, batch_size, seq_len, seed)


def trajectory(cfg, params: dict[str, np.ndarray], tcfg, data: np.ndarray):
    """torch_gpt.parity.run_trajectory, for `numpy-gpt parity --steps`."""
    from .parity import run_trajectory
    return run_trajectory(cfg, params, tcfg, data)
