"""The optimizers, clipping and schedule of numpy_gpt.optim, built from torch's own.

torch.optim.SGD / Adam / AdamW, torch.nn.utils.clip_grad_norm_ and the
LinearLR + CosineAnnealingLR schedulers: nothing here restates an update rule,
which is what lets the tests use these as the oracle. The one thing shared with
numpy_gpt is decay_groups, the naming rule that says which parameters decay
(a convention, not a derivation).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Union

import torch
from torch.optim.lr_scheduler import CosineAnnealingLR, LambdaLR, LinearLR, SequentialLR

from numpy_gpt.optim import decay_groups

NamedParameters = Union[torch.nn.Module, Mapping[str, torch.Tensor], Iterable[tuple[str, torch.Tensor]]]


def _named(named_parameters: NamedParameters) -> dict[str, torch.Tensor]:
    if isinstance(named_parameters, torch.nn.Module):
        return dict(named_parameters.named_parameters())
    return dict(named_parameters)          # a Mapping, or (name, tensor) pairs


def param_groups(named_parameters: NamedParameters, weight_decay: float,
                 no_decay: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """Two torch param groups: the decayed weights with weight_decay, the rest with 0 (empty ones dropped)."""
    named = _named(named_parameters)
    decay = decay_groups(named, no_decay)
    groups = [{"params": [p for n, p in named.items() if decay[n]], "weight_decay": weight_decay},
              {"params": [p for n, p in named.items() if not decay[n]], "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def make_optimizer(name: str, named_parameters: NamedParameters, lr: float, fused: bool = False,
                   **hparams: Any) -> torch.optim.Optimizer:
    """torch.optim's equivalent of numpy_gpt.optim.OPTIMIZERS[name](params, lr, **hparams).

    name: "sgd" (momentum, dampening, weight_decay, nesterov), "adam" (betas, eps,
    weight_decay) or "adamw" (betas, eps, weight_decay, no_decay). AdamW gets the
    two parameter groups of param_groups; SGD and Adam one group, as numpy_gpt's.

    By default each parameter is updated on its own (foreach=False, torch's default
    on the CPU), the same operations in the same order as numpy_gpt, for the parity
    tests. fused=True (Adam and AdamW) takes torch's fused kernel instead, one pass
    over each parameter's memory, equal to rounding: the benchmarks time torch with it.
    """
    if fused and name not in ("adam", "adamw"):
        raise ValueError(f"fused=True is for adam and adamw, not {name!r}")
    kernel = {"fused": True} if fused else {"foreach": False}
    named = _named(named_parameters)
    if name == "sgd":
        return torch.optim.SGD(list(named.values()), lr=lr, foreach=False, **hparams)
    if name == "adam":
        return torch.optim.Adam(list(named.values()), lr=lr, **kernel, **hparams)
    if name == "adamw":
        no_decay = hparams.pop("no_decay", None)
        weight_decay = hparams.pop("weight_decay", 0.01)
        return torch.optim.AdamW(param_groups(named, weight_decay, no_decay), lr=lr,
                                 **kernel, **hparams)
    raise ValueError(f"unknown optimizer {name!r}; expected sgd, adam or adamw")


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set every group's learning rate (what numpy_gpt does with opt.lr = ...)."""
    for group in optimizer.param_groups:
        group["lr"] = lr


def clip_grad_norm(parameters: Iterable[torch.Tensor] | torch.nn.Module, max_norm: float) -> float:
    """torch.nn.utils.clip_grad_norm_ on the parameters' .grad, in place; returns the norm before clipping."""
    if isinstance(parameters, torch.nn.Module):
        parameters = parameters.parameters()
    return float(torch.nn.utils.clip_grad_norm_(list(parameters), max_norm))


def make_scheduler(optimizer: torch.optim.Optimizer, warmup_steps: int, max_steps: int,
                   min_lr: float = 0.0) -> torch.optim.lr_scheduler.LRScheduler:
    """numpy_gpt.optim.cosine_lr from torch's schedulers, with max_lr = the optimizer's lr.

    LinearLR from 1/(W+1) to 1 over W steps, then CosineAnnealingLR down to
    min_lr over M - W steps, then a constant min_lr. Read the lr for step s from
    optimizer.param_groups after s calls of scheduler.step().
    """
    if not 0 <= warmup_steps <= max_steps:
        raise ValueError(f"need 0 <= warmup_steps <= max_steps, got {warmup_steps}, {max_steps}")
    max_lr = optimizer.param_groups[0]["lr"]
    schedulers, milestones = [], []
    if warmup_steps > 0:
        schedulers.append(LinearLR(optimizer, start_factor=1.0 / (warmup_steps + 1), end_factor=1.0,
                                   total_iters=warmup_steps))
    if max_steps > warmup_steps:
        if schedulers:
            milestones.append(warmup_steps)
        schedulers.append(CosineAnnealingLR(optimizer, T_max=max_steps - warmup_steps, eta_min=min_lr))
    if schedulers:
        milestones.append(max_steps)
    floor = min_lr / max_lr if max_lr else 0.0
    schedulers.append(LambdaLR(optimizer, lambda _: floor))
    if len(schedulers) == 1:
        return schedulers[0]
    return SequentialLR(optimizer, schedulers, milestones)


def state_by_name(optimizer: torch.optim.Optimizer, named_parameters: NamedParameters,
                  copy: bool = True) -> dict[str, Any]:
    """The torch optimizer's state in numpy_gpt's state_dict() layout:
    {"step": int, "lr": float, buffer: {param name: np.ndarray}}, buffers as torch names them
    (copy=False: views of torch's buffers, not copies)."""
    named = _named(named_parameters)
    out: dict[str, Any] = {"step": 0, "lr": optimizer.param_groups[0]["lr"]}
    for name, p in named.items():
        for key, value in optimizer.state.get(p, {}).items():
            if key == "step":
                out["step"] = int(value)
            elif isinstance(value, torch.Tensor):
                array = value.detach().cpu().numpy()
                out.setdefault(key, {})[name] = array.copy() if copy else array
    return out
