"""The training loop of numpy_gpt.train on torch: autograd, torch.optim, torch's schedulers.

Batches come from the same NumPy generator, seeded the same way, so both
loops see exactly the same tokens step for step.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import torch

from numpy_gpt.train import History, TrainConfig, TrainingDivergedError, TrainLoop, layer_grad_norms

from .data import batch_to_torch, get_batch
from .optim import clip_grad_norm, make_optimizer, make_scheduler, set_lr, state_by_name


class Trainer(TrainLoop):
    """numpy_gpt.train.Trainer's twin: the same loop (TrainLoop), torch inside each step."""

    def __init__(self, model, train_data: np.ndarray, val_data: np.ndarray | None = None,
                 config: TrainConfig | None = None, batch_fn=None, fused: bool = False):
        """fused=True: Adam and AdamW run torch's fused kernel, its fastest on the CPU and equal to
        rounding (the command line's torch backend and the demo train so). The default updates one
        parameter at a time, numpy_gpt's operations in its order, as the parity tests compare."""
        self.model, self.config = model, config or TrainConfig()
        cfg = self.config
        self.train_data, self.val_data = train_data, val_data
        self.optimizer = make_optimizer(cfg.optimizer, model, cfg.lr, fused=fused and cfg.optimizer in ("adam", "adamw"),
                                        **cfg.optimizer_kwargs())
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
        layer_norms = layer_grad_norms({k: p.grad.numpy() for k, p in self.model.named_parameters()})
        norm = (clip_grad_norm(params, cfg.grad_clip) if cfg.grad_clip
                else float(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params]))))
        loss_value = float(loss.detach())
        if not (math.isfinite(loss_value) and math.isfinite(norm)):
            raise TrainingDivergedError(f"training diverged at step {self.step}: loss {loss_value}, "
                                        f"gradient norm {norm}; parameters keep the step before")
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        return self.finish_step(loss_value, lr, norm, layer_norms)

    @torch.no_grad()
    def eval_loss(self, x, y) -> float:
        return float(self.model(*batch_to_torch(x, y))[1])

    def set_training(self, training: bool) -> bool:
        was = self.model.training
        self.model.train(training)
        return was

    # ------------------------------------------------------------- checkpoints
    def state_dict(self, copy: bool = True) -> dict:
        """The trainer's state in numpy_gpt.train.Trainer's layout, so either trainer resumes
        the other's run: step, optimizer ({"step", "lr", buffer: {param name: array}}), the batch
        RNG, history; plus torch's own RNG (dropout) and, passed through untouched, the NumPy
        model's dropout RNG if this run was resumed from numpy_gpt. copy=False: the optimizer's
        buffers are views of torch's, not copies (for a checkpoint save)."""
        opt = state_by_name(self.optimizer, self.model, copy)
        # As numpy_gpt's optimizers record them: the steps taken (torch's SGD counts none) and the
        # learning rate of the last step (torch's param groups hold the next one's, after the scheduler).
        opt["step"] = self.step
        if self.history.lr:
            opt["lr"] = self.history.lr[-1]
        return {"step": self.step, "optimizer": opt,
                "rng": self.rng.bit_generator.state, "model_rng": getattr(self, "_model_rng", None),
                "torch_rng": torch.get_rng_state().numpy().copy(), "history": self.history.to_dict()}

    def load_state_dict(self, state: dict) -> None:
        """Restore what state_dict() (of this trainer or of numpy_gpt's) returned."""
        cfg = self.config
        self.step = int(state["step"])
        self.rng.bit_generator.state = state["rng"]
        self._model_rng = state.get("model_rng")
        if state.get("torch_rng") is not None:
            torch.set_rng_state(torch.as_tensor(np.asarray(state["torch_rng"]), dtype=torch.uint8))
        self.history = History(**state["history"])
        _load_state_by_name(self.optimizer, dict(self.model.named_parameters()), state["optimizer"])
        # The schedule: a fresh one, advanced to this step (torch's schedulers only count steps).
        for group in self.optimizer.param_groups:
            group["lr"] = cfg.lr
            group.pop("initial_lr", None)
        if cfg.schedule == "cosine":
            self.scheduler = make_scheduler(self.optimizer, min(cfg.warmup_steps, cfg.steps), cfg.steps, cfg.min_lr)
            with warnings.catch_warnings():          # "scheduler.step() before optimizer.step()"
                warnings.simplefilter("ignore", UserWarning)
                for _ in range(self.step):
                    self.scheduler.step()


def _load_state_by_name(optimizer: torch.optim.Optimizer, named: dict, state: dict) -> None:
    """The inverse of torch_gpt.optim.state_by_name: per-parameter buffers by name into optimizer.state."""
    step = int(state["step"])
    buffers = {k: v for k, v in state.items() if k not in ("step", "lr")}
    optimizer.state.clear()
    for name, p in named.items():
        s = {}
        for buf, arrays in buffers.items():
            if name in arrays:
                s[buf] = torch.as_tensor(np.array(arrays[name], copy=True)).to(dtype=p.dtype, device=p.device)
        if s and not isinstance(optimizer, torch.optim.SGD):
            s["step"] = torch.tensor(float(step), dtype=torch.float32)
        if s:
            optimizer.state[p] = s
