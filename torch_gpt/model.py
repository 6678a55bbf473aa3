"""The GPT model in torch, mirroring numpy_gpt.model, differentiated by autograd.

tmodel = torch_gpt.GPT(cfg)
tmodel.load_state_dict(torch_gpt.from_numpy(model.params))   # same keys and shapes
logits, loss = tmodel(idx, targets)
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from .attention import KVCache
from .block import Block
from .config import GPTConfig
from .dropout import dropout_forward
from .embedding import embedding_forward
from .errors import InputError
from .linear import linear_forward
from .loss import cross_entropy_forward
from .positional import learned_forward, sinusoidal_forward


class GPT(nn.Module):
    def __init__(self, config: GPTConfig, seed: int | None = None, init: bool = True):
        """init=False leaves the parameters unset (for adopt, which replaces them all)."""
        super().__init__()
        self.config = cfg = config
        # Each embedding gets an empty weight, not torch's own N(0, 1) fill, which reset_parameters
        # would overwrite (and which, on the meta device, costs a second the first time: adopt).
        self.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd, _weight=torch.empty(cfg.vocab_size, cfg.n_embd))
        if cfg.pos_encoding == "learned":
            self.wpe = nn.Embedding(cfg.block_size, cfg.n_embd, _weight=torch.empty(cfg.block_size, cfg.n_embd))
        self.h = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        if cfg.norm == "pre":
            self.ln_f = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        if not cfg.tie_weights:
            self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)   # weight (V, C)
        if init:
            self.reset_parameters(seed)

    @torch.no_grad()
    def reset_parameters(self, seed: int | None = None):
        """GPT-2 initialization, as numpy_gpt.model.init_params (with torch's own RNG)."""
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        for name, p in self.named_parameters():
            if name.endswith(".bias"):
                p.zero_()
            elif ".ln_" in name or name.startswith("ln_f"):
                p.fill_(1.0)
            else:
                std = 0.02 / math.sqrt(2 * self.config.n_layer) if name.endswith("c_proj.weight") else 0.02
                p.normal_(0.0, std, generator=gen)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None, masks: dict | None = None,
                kv_caches: list | None = None, pos0: int = 0, last_only: bool = False):
        """idx, targets: int64 (B, T). masks: dropout keep-masks by name, as numpy_gpt's.
        last_only=True: the last position's logits alone, (B, 1, V), with no loss (generation)."""
        if targets is not None and last_only:
            raise InputError("last_only=True computes the last position's logits alone, so no loss: "
                             "pass targets=None")
        cfg, masks = self.config, masks or {}
        T = idx.shape[-1]
        if 0 in tuple(idx.shape):                     # numpy_gpt's checks (GPT.check_idx, GPT.forward)
            raise InputError(f"idx must hold at least one token in at least one row, got shape {tuple(idx.shape)}")
        if T > cfg.block_size:
            raise InputError(f"sequence length {T} exceeds block_size {cfg.block_size}")
        if pos0 + T > cfg.block_size:
            raise InputError(f"positions up to {pos0 + T} exceed block_size {cfg.block_size}")
        training = self.training and kv_caches is None
        x = embedding_forward(idx, self.wte.weight)
        if cfg.pos_encoding == "learned":
            x = learned_forward(x, self.wpe.weight, pos0)
        else:
            x = sinusoidal_forward(x, pos0)
        x = dropout_forward(x, cfg.dropout, masks.get("drop"), training)
        for i, block in enumerate(self.h):
            prefix = f"h.{i}."
            block_masks = {k[len(prefix):]: v for k, v in masks.items() if k.startswith(prefix)}
            x = block(x, block_masks, None if kv_caches is None else kv_caches[i])
        if last_only:
            x = x[:, -1:]
        if cfg.norm == "pre":
            x = self.ln_f(x)
        w_head = self.wte.weight if cfg.tie_weights else self.lm_head.weight
        logits = linear_forward(x, w_head.t())
        loss = None if targets is None else cross_entropy_forward(logits, targets)
        return logits, loss

    def new_kv_caches(self, B: int = 1) -> list[KVCache]:
        cfg = self.config
        return [KVCache(B, cfg.n_head, cfg.block_size, cfg.head_size, self.wte.weight.dtype)
                for _ in range(cfg.n_layer)]

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def generate(self, idx, max_new_tokens: int, **kwargs) -> torch.Tensor:
        from .generation import generate
        return generate(self, idx, max_new_tokens, **kwargs)


def adopt(config: GPTConfig, params: dict[str, np.ndarray]) -> GPT:
    """A GPT whose parameters are these NumPy arrays themselves (torch.from_numpy shares their
    memory): no random initialization first (the modules are built on the meta device) and no
    copy. For arrays nothing else will use, such as numpy_gpt's reads of a checkpoint or of GPT-2
    weights; training the model changes them. Names and shapes are checked as load_state_dict
    checks them, and the model computes in the arrays' dtype."""
    with torch.device("meta"):
        model = GPT(config, init=False)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in params.items()}, assign=True)
    return model


def from_numpy(params: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """numpy_gpt parameters as a torch state dict: same keys, same shapes, no transposes."""
    return {k: torch.from_numpy(np.ascontiguousarray(v)).clone() for k, v in params.items()}


def to_numpy(state_dict: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """A torch_gpt state dict as numpy_gpt parameters."""
    return {k: v.detach().cpu().numpy().copy() for k, v in state_dict.items()}
