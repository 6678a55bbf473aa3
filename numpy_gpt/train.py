"""The training loop: batches, forward, backward, clipping, schedule, optimizer step.

One step, with B = batch_size and T = block_size:
    1. x, y = get_batch(train data)                  (B, T) each, y = x shifted by one
    2. lr   = schedule(step)                         warmup + cosine, or constant
    3. loss = model.forward(x, y);  grads = model.backward()
    4. clip the gradients' global norm to grad_clip
    5. optimizer.step(grads)
Every eval_interval steps the mean loss over eval_batches batches of train and
validation data is recorded, with the perplexity exp(val loss).

A NaN or inf loss or gradient stops training with TrainingDivergedError naming
the step, before the bad update reaches the parameters.
"""
from __future__ import annotations

import math
import sys
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from .config import MAX_SEED
from .data import get_batch
from .errors import ConfigError, NumpyGPTError
from .optim import OPTIMIZERS, clip_grad_norm, cosine_lr
from .reductions import sum_of_squares


class TrainingDivergedError(NumpyGPTError, FloatingPointError):
    """The loss or a gradient became NaN or inf."""


@dataclass
class TrainConfig:
    steps: int = 300              # optimizer steps
    batch_size: int = 16          # sequences per batch
    optimizer: str = "adamw"      # "sgd", "adam" or "adamw"
    lr: float = 3e-3              # peak learning rate
    min_lr: float = 3e-4          # floor of the cosine schedule
    warmup_steps: int = 20        # linear warmup steps
    schedule: str = "cosine"      # "cosine" (warmup then cosine) or "constant"
    weight_decay: float = 0.1     # AdamW's decoupled decay (weight matrices only); L2 for SGD/Adam
    betas: tuple = (0.9, 0.95)    # Adam(W) moment decay rates, as nanoGPT
    momentum: float = 0.9         # SGD momentum
    grad_clip: float = 1.0        # global-norm clip; 0 turns clipping off
    eval_interval: int = 50       # steps between evaluations; 0 never evaluates
    eval_batches: int = 4         # batches averaged per evaluation
    seed: int = 0                 # batches are drawn from this seed

    def __post_init__(self):
        def integer(name, least):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < least:
                kind = "a positive integer" if least == 1 else f"an integer >= {least}"
                raise ConfigError(f"{name} must be {kind}, got {v!r}")

        def number(name, ok, rule):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not ok(v):   # NaN fails every ok()
                raise ConfigError(f"{name} must be {rule}, got {v!r}")

        for name in ("steps", "batch_size", "eval_batches"):
            integer(name, 1)
        for name in ("warmup_steps", "eval_interval", "seed"):
            integer(name, 0)
        if self.seed > MAX_SEED:                 # torch's generator would refuse it (torch_gpt's Trainer)
            raise ConfigError(f"seed must be an integer from 0 to 2**63 - 1, got {self.seed!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"optimizer must be one of {', '.join(OPTIMIZERS)}; got {self.optimizer!r}")
        if self.schedule not in ("cosine", "constant"):
            raise ConfigError(f"schedule must be 'cosine' or 'constant', got {self.schedule!r}")
        number("lr", lambda v: 0 < v < float("inf"), "a finite number > 0")
        if self.schedule == "cosine":            # a floor above the peak would make the schedule climb
            number("min_lr", lambda v: 0 <= v <= self.lr, f"between 0 and lr ({self.lr!r}) for the cosine schedule")
        for name in ("weight_decay", "momentum", "grad_clip"):
            number(name, lambda v: 0 <= v < float("inf"), "a finite number >= 0")
        betas = self.betas
        if (not isinstance(betas, (tuple, list)) or len(betas) != 2
                or not all(isinstance(b, (int, float)) and 0 <= b < 1 for b in betas)):
            raise ConfigError(f"betas must be two numbers in [0, 1), got {betas!r}")

    def lr_at(self, step: int) -> float:
        if self.schedule == "constant":
            return self.lr
        return cosine_lr(step, self.lr, min(self.warmup_steps, self.steps), self.steps, self.min_lr)

    def optimizer_kwargs(self) -> dict:
        if self.optimizer == "sgd":
            return dict(momentum=self.momentum, weight_decay=self.weight_decay)
        return dict(betas=tuple(self.betas), weight_decay=self.weight_decay)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class History:
    step: list = field(default_factory=list)        # step index of each entry below
    loss: list = field(default_factory=list)        # training loss of that step's batch
    lr: list = field(default_factory=list)
    grad_norm: list = field(default_factory=list)   # global norm before clipping
    eval: list = field(default_factory=list)        # dicts: step, train_loss, val_loss, val_ppl
    layer_grad_norms: list = field(default_factory=list)   # {block or part: norm} per step, before clipping
    tokens_per_s: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def layer_of(name: str) -> str:
    """Group a parameter name by where it sits: "h.3.attn.c_attn.weight" -> "h.3"."""
    parts = name.split(".")
    return ".".join(parts[:2]) if parts[0] == "h" else parts[0]


def layer_grad_norms(grads: dict) -> dict[str, float]:
    """{part of the model: L2 norm of its gradients}, from arrays of any float dtype (before
    clipping). The squares are summed in float64 (numpy_gpt.reductions.sum_of_squares)."""
    squares: dict[str, float] = {}
    for k, g in grads.items():
        squares[layer_of(k)] = squares.get(layer_of(k), 0.0) + sum_of_squares(g)
    return {k: math.sqrt(v) for k, v in squares.items()}


class TrainLoop:
    """The loop around train_step() and evaluate(), shared by numpy_gpt's and torch_gpt's
    trainers: progress bar, periodic evaluation, tokens/s, callbacks.

    A subclass provides model (with .config.block_size), config (TrainConfig), step,
    history, train/val data, eval_rng_seed, train_step() -> loss, eval_loss(x, y) -> float
    and set_training(bool) -> previous setting.
    """

    def finish_step(self, loss: float, lr: float, norm: float, layer_norms: dict) -> float:
        """Record a finished step in the history and count it; returns the loss."""
        h = self.history
        h.step.append(self.step)
        h.loss.append(loss)
        h.lr.append(lr)
        h.grad_norm.append(norm)
        h.layer_grad_norms.append(layer_norms)
        self.step += 1
        return loss

    def evaluate(self) -> dict:
        """Mean loss over eval_batches batches of train and val data (no dropout), the same
        batches every time; records and returns {"step", "train_loss", "val_loss", "val_ppl"}."""
        cfg, T = self.config, self.model.config.block_size
        was = self.set_training(False)
        out = {"step": self.step}
        try:
            for split, data in (("train", self.train_data), ("val", self.val_data)):
                if data is None or len(data) <= T:
                    continue
                rng = np.random.default_rng(self.eval_rng_seed)
                losses = [self.eval_loss(*get_batch(data, T, cfg.batch_size, rng)) for _ in range(cfg.eval_batches)]
                out[f"{split}_loss"] = float(np.mean(losses))
            if "val_loss" in out:
                out["val_ppl"] = math.exp(min(out["val_loss"], 700.0))
        finally:
            self.set_training(was)
        self.history.eval.append(out)
        return out

    def run(self, steps: int | None = None, progress: bool | str = True, on_step=None) -> History:
        """Train until `steps` (default config.steps) steps in total have been taken.

        progress=True shows a tqdm bar with loss and tokens/s on a terminal; where the output
        goes to a file or a pipe (or tqdm is not installed) it prints one line per evaluation
        instead, as a bar's redraws would fill a log. progress="lines" prints those lines and
        draws no bar anywhere; False prints nothing.
        on_step(trainer) is called after each step (checkpointing, plots, Ctrl-C handling).
        """
        total = self.config.steps if steps is None else steps
        bar = _progress(total, self.step, progress is True)
        lines = bool(progress) and bar is None
        tokens = self.config.batch_size * self.model.config.block_size
        t0, done = time.perf_counter(), 0
        try:
            while self.step < total:
                loss = self.train_step()
                done += 1
                rate = done * tokens / max(time.perf_counter() - t0, 1e-9)
                self.history.tokens_per_s = rate
                if self.config.eval_interval and (self.step % self.config.eval_interval == 0 or self.step == total):
                    ev = self.evaluate()
                    if bar is not None:
                        bar.write(eval_line(ev))
                    elif lines:
                        print(eval_line(ev), flush=True)
                if bar is not None:
                    bar.set_postfix(loss=f"{loss:.4f}", tok_s=f"{rate:,.0f}")
                    bar.update(1)
                if on_step is not None:
                    on_step(self)
        finally:
            if bar is not None:
                bar.close()
        return self.history


def eval_line(ev: dict) -> str:
    """One evaluation as printed during training: 'step 200: train 2.2770  val 2.3100  ppl 10.07'.
    Both losses are means over the same eval batches (TrainLoop.evaluate), not one training batch."""
    parts = [f"train {ev['train_loss']:.4f}"] if "train_loss" in ev else []
    if "val_loss" in ev:
        parts += [f"val {ev['val_loss']:.4f}", f"ppl {ev['val_ppl']:.2f}"]
    return f"step {ev['step']}: " + "  ".join(parts)


class Trainer(TrainLoop):
    """Trains a numpy_gpt GPT on a 1-D array of token ids.

    trainer = Trainer(model, train_ids, val_ids, TrainConfig(steps=200))
    history = trainer.run()
    The trainer's whole state (step, optimizer moments, batch RNG) is in
    state_dict(), so a run can be saved and resumed bit for bit.
    """

    def __init__(self, model, train_data: np.ndarray, val_data: np.ndarray | None = None,
                 config: TrainConfig | None = None, batch_fn=None):
        self.model, self.config = model, config or TrainConfig()
        self.train_data, self.val_data = train_data, val_data
        self.optimizer = OPTIMIZERS[self.config.optimizer](model.params, lr=self.config.lr,
                                                           **self.config.optimizer_kwargs())
        self.rng = np.random.default_rng(self.config.seed)
        self.eval_rng_seed = self.config.seed + 1_000_003
        self.step = 0
        self.history = History()
        # batch_fn(rng) -> (x, y); the default samples windows of train_data.
        self.batch_fn = batch_fn or (lambda rng: get_batch(self.train_data, self.model.config.block_size,
                                                           self.config.batch_size, rng))

    def train_step(self) -> float:
        cfg = self.config
        x, y = self.batch_fn(self.rng)                                  # 1.
        lr = cfg.lr_at(self.step)                                       # 2.
        self.model.training = True
        _, loss = self.model.forward(x, y)                              # 3.
        grads = self.model.backward()
        layer_norms = layer_grad_norms(grads)
        norm = math.sqrt(sum(v * v for v in layer_norms.values()))     # float64, recorded as it is
        with np.errstate(over="ignore"):
            if math.isfinite(norm) and not np.isfinite(self.model.dtype.type(norm)):
                norm = math.inf                 # past the grads' dtype: a norm taken there (torch's) is inf
        if cfg.grad_clip:                                               # 4.
            clip_grad_norm(grads, cfg.grad_clip, norm=norm)             # leaves them alone for inf or nan
        loss = float(loss)
        if not (math.isfinite(loss) and math.isfinite(norm)):
            raise TrainingDivergedError(f"training diverged at step {self.step}: loss {loss}, "
                                        f"gradient norm {norm}; parameters keep the step before")
        self.optimizer.lr = lr
        self.optimizer.step(grads)                                      # 5.
        return self.finish_step(loss, lr, norm, layer_norms)

    def eval_loss(self, x: np.ndarray, y: np.ndarray) -> float:
        return float(self.model.forward(x, y, grad=False)[1])

    def set_training(self, training: bool) -> bool:
        """Switch dropout on or off; returns the previous setting."""
        was, self.model.training = self.model.training, training
        return was

    def state_dict(self, copy: bool = True) -> dict:
        """Everything a resumed run needs; copy=False: the optimizer's buffers themselves (Optimizer.state_dict)."""
        return {"step": self.step, "optimizer": self.optimizer.state_dict(copy),
                "rng": self.rng.bit_generator.state, "model_rng": self.model.rng.bit_generator.state,
                "history": self.history.to_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.step = int(state["step"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.rng.bit_generator.state = state["rng"]
        self.model.rng.bit_generator.state = state["model_rng"]
        self.history = History(**state["history"])


def _progress(total: int, initial: int, enabled: bool):
    """A tqdm bar, or None: not enabled, tqdm not installed, or nowhere to draw it: stderr is not a
    terminal (a file, a pipe) and this is not a Jupyter kernel (whose widget tqdm.auto picks)."""
    terminal = getattr(sys.stderr, "isatty", lambda: False)()
    if not enabled or not (terminal or "ipykernel" in sys.modules):
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True)
