"""The training loop of numpy_gpt.train on torch: autograd, torch.optim, torch's schedulers.

Batches come from the same NumPy generator, seeded the same way, so both
loops see exactly the same tokens step for step.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from numpy_gpt.train import History, TrainConfig, TrainingDivergedError, TrainLoop, layer_of

from .data import batch_to_torch, get_batch
from .optim import clip_grad_norm, make_optimizer, make_scheduler, set_lr


class Trainer(TrainLoop):
    """numpy_gpt.train.Trainer's twin: the same loop (TrainLoop), torch inside each step."""

    def __init__(self, model, train_data: np.ndarray, val_data: np.ndarray | None = None,
                 config: TrainConfig | None = None, batch_fn=None):
        self.model, self.config = model, config or TrainConfig()
        cfg = self.config
        self.train_data, self.val_data = train_data, val_data
        self.optimizer = make_optimizer(cfg.optimizer, model, cfg.lr, **cfg.optimizer_kwargs())
        self.scheduler = (make_scheduler(self.optimizer, min(cfg.warmup_steps, cfg.steps), cfg.steps, cfg.min_lr)
                          if cfg.schedule == "cosine" else None)
        self.rng = np.random.default_rng(cfg.seed)
        self.eval_rng_seed = cfg.seed + 1_000_003
        self.step = 0
        self.history = History()
        self.batch_fn = batch_fn or (lambda rng: get_batch(self.train_data, self.model.config.block_size,
                                                           cfg.batch_size, rng))

    def train_step(self) -> float:
        cfg = self.config
        x, y = batch_to_torch(*self.batch_fn(self.rng))
        lr = self.optimizer.param_groups[0]["lr"]
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        _, loss = self.model(x, y)
        loss.backward()
        params = list(self.model.parameters())
        norm = (clip_grad_norm(params, cfg.grad_clip) if cfg.grad_clip
                else float(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params]))))
        loss_value = float(loss.detach())
        if not (math.isfinite(loss_value) and math.isfinite(norm)):
            raise TrainingDivergedError(f"training diverged at step {self.step}: loss {loss_value}, "
                                        f"gradient norm {norm}; parameters keep the step before")
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        h = self.history
        h.step.append(self.step)
        h.loss.append(loss_value)
        h.lr.append(lr)
        h.grad_norm.append(norm)
        per_layer: dict[str, float] = {}
        for k, p in self.model.named_parameters():
            per_layer[layer_of(k)] = per_layer.get(layer_of(k), 0.0) + float((p.grad.double() ** 2).sum())
        h.layer_grad_norms.append({k: math.sqrt(v) for k, v in per_layer.items()})
        self.step += 1
        return loss_value

    @torch.no_grad()
    def evaluate(self) -> dict:
        model, cfg = self.model, self.config
        was = model.training
        model.eval()
        out = {"step": self.step}
        try:
            for split, data in (("train", self.train_data), ("val", self.val_data)):
                if data is None or len(data) <= model.config.block_size:
                    continue
                rng = np.random.default_rng(self.eval_rng_seed)
                losses = [float(model(*batch_to_torch(*get_batch(data, model.config.block_size,
                                                                   cfg.batch_size, rng)))[1])
                          for _ in range(cfg.eval_batches)]
                out[f"{split}_loss"] = float(np.mean(losses))
            if "val_loss" in out:
                out["val_ppl"] = math.exp(min(out["val_loss"], 700.0))
        finally:
            model.train(was)
        self.history.eval.append(out)
        return out
