"""The model configurations, the FLOP count, and one training step for each implementation.

Configurations are GPT-2 style: learned positions, pre-LN, tanh GELU, tied LM head, biases,
no dropout. Each implementation starts from the same weights (numpy_gpt's init, copied into
torch_gpt) and trains on the same fixed batch, so all do exactly the same arithmetic.

Model FLOPs per step (nanoGPT's estimate_mfu, after the PaLM paper, appendix B):
    flops = 6 * N * tokens + 12 * n_layer * T * n_embd * tokens,     tokens = B * T
N counts the parameters without the position table wpe (its lookup does no multiplies);
wte counts once, as the tied LM head's matmul. 6 = 2 (multiply-add) * 3 (forward, and two
matmuls in the backward). The second term is attention's q @ k^T and a @ v, counted over the
full T x T square (causal masking is not subtracted), forward and backward.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from numpy_gpt import GPT, GPTConfig

LR, BETAS, EPS, WEIGHT_DECAY = 3e-4, (0.9, 0.95), 1e-8, 0.1     # AdamW as nanoGPT trains GPT-2


@dataclass(frozen=True)
class Workload:
    """A model configuration and the batch size it trains with."""
    name: str
    vocab_size: int
    block_size: int            # T: every step uses full-length sequences
    n_embd: int
    n_layer: int
    n_head: int
    batch_size: int

    def config(self) -> GPTConfig:
        return GPTConfig(vocab_size=self.vocab_size, block_size=self.block_size, n_layer=self.n_layer,
                         n_head=self.n_head, n_embd=self.n_embd, pos_encoding="learned",
                         activation="gelu", norm="pre", tie_weights=True, dropout=0.0, bias=True)

    @property
    def tokens(self) -> int:
        return self.batch_size * self.block_size

    def with_(self, **changes) -> "Workload":
        """A copy with some fields changed (for the scaling sweeps)."""
        return Workload(**{**self.__dict__, **changes})


CONFIGS: dict[str, Workload] = {
    #                  name      V     T    C    L  nh  B
    "tiny": Workload("tiny", 65, 64, 64, 2, 4, 16),
    "small": Workload("small", 1024, 128, 256, 4, 4, 8),
    "medium": Workload("medium", 4096, 256, 512, 6, 8, 4),
}

FLOPS_FORMULA = ("6 * N * tokens + 12 * n_layer * T * n_embd * tokens; N = parameters without wpe, "
                 "tokens = B * T (nanoGPT estimate_mfu / PaLM appendix B; causal mask not subtracted)")


def n_params(w: Workload) -> int:
    """All parameters (wte counted once: the head is tied)."""
    from numpy_gpt.model import param_shapes
    return int(sum(np.prod(s) for s in param_shapes(w.config()).values()))


def attention_flops(w: Workload) -> float:
    """The attention term of step_flops: q k^T and a v, forward and backward, for every token
    against all T positions of its sequence (so T^2 per sequence; the causal mask not subtracted)."""
    return 12.0 * w.n_layer * w.block_size * w.n_embd * w.tokens


def step_flops(w: Workload) -> float:
    """Model FLOPs of one training step (see the module docstring)."""
    N = n_params(w) - w.block_size * w.n_embd                     # without wpe
    return 6.0 * N * w.tokens + attention_flops(w)


def fixed_batch(w: Workload, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """One (B, T) batch of random token ids and its targets, int64."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, w.vocab_size, size=(w.batch_size, w.block_size + 1), dtype=np.int64)
    return ids[:, :-1].copy(), ids[:, 1:].copy()


# ------------------------------------------------------------------------------ AdamW
def _numpy_adamw(params: dict[str, np.ndarray]):
    """numpy_gpt.optim.AdamW if it is importable, else a local equivalent (same update)."""
    try:
        from numpy_gpt.optim import AdamW
        return AdamW(params, lr=LR, betas=BETAS, eps=EPS, weight_decay=WEIGHT_DECAY), "numpy_gpt.optim.AdamW"
    except ImportError:
        return _LocalAdamW(params), "benchmarks local AdamW"


class _LocalAdamW:
    """torch.optim.AdamW's update, decaying the >= 2-D weights except wte/wpe (fallback only)."""

    def __init__(self, params: dict[str, np.ndarray]):
        self.params, self.t = params, 0
        self.m = {k: np.zeros_like(p) for k, p in params.items()}
        self.v = {k: np.zeros_like(p) for k, p in params.items()}

    def step(self, grads: dict[str, np.ndarray]) -> None:
        self.t += 1
        b1, b2 = BETAS
        for k, p in self.params.items():
            f, g = p.dtype.type, grads[k]
            if p.ndim >= 2 and not k.startswith(("wte", "wpe")):
                p *= f(1 - LR * WEIGHT_DECAY)
            self.m[k] = f(b1) * self.m[k] + f(1 - b1) * g
            self.v[k] = f(b2) * self.v[k] + f(1 - b2) * g * g
            denom = np.sqrt(self.v[k]) / f(np.sqrt(1 - b2 ** self.t)) + f(EPS)
            p -= f(LR / (1 - b1 ** self.t)) * self.m[k] / denom


def _torch_adamw(model):
    """torch_gpt.optim's AdamW (torch.optim.AdamW, two groups) if importable, else torch's own;
    fused=True, torch's fastest AdamW on the CPU (one pass over each parameter; its default
    there updates one tensor at a time, about 3x slower at medium)."""
    import torch
    try:
        from torch_gpt.optim import make_optimizer
        return make_optimizer("adamw", model, LR, fused=True, betas=BETAS, eps=EPS,
                              weight_decay=WEIGHT_DECAY), "torch_gpt.optim.make_optimizer('adamw', fused=True)"
    except ImportError:
        decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and not n.startswith(("wte", "wpe"))]
        rest = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and not n.startswith(("wte", "wpe")))]
        groups = [{"params": decay, "weight_decay": WEIGHT_DECAY}, {"params": rest, "weight_decay": 0.0}]
        return torch.optim.AdamW(groups, lr=LR, betas=BETAS, eps=EPS, fused=True), "torch.optim.AdamW(fused=True)"


# ------------------------------------------------------------------------ the models
IMPLS = ("numpy", "torch", "compile")          # numpy_gpt, torch_gpt eager, torch_gpt + torch.compile
# numpy_gpt with its opt-in shard processes (numpy_gpt.processes): timed in the step section at > 1 thread
PROCS = "procs"
IMPL_LABELS = {"numpy": "numpy_gpt", "torch": "torch eager", "compile": "torch.compile",
               PROCS: "numpy_gpt + shard processes"}


def numpy_model(w: Workload, dtype) -> GPT:
    return GPT(w.config(), seed=0, dtype=dtype)


def torch_model(w: Workload, dtype, params: dict[str, np.ndarray] | None = None):
    """torch_gpt.GPT holding numpy_gpt's initial weights (the same seed), in dtype."""
    import torch
    import torch_gpt
    from numpy_gpt.model import init_params
    params = init_params(w.config(), 0, np.dtype(dtype)) if params is None else params
    model = torch_gpt.GPT(w.config())
    model.load_state_dict(torch_gpt.from_numpy(params))
    return model.to(torch.float64 if np.dtype(dtype) == np.float64 else torch.float32)


def make_step(impl: str, w: Workload, dtype) -> tuple[Callable[[], float], dict]:
    """A zero-argument training step (forward, backward, AdamW) for impl, and facts about it.

    Each call does one full step on the same fixed batch and returns the loss as a float.
    For "compile" the first call compiles (that time is reported separately by the caller).
    impl PROCS is numpy_gpt with shard processes. Call step.close() when done with a step: it
    stops PROCS's workers (and does nothing for the others).
    """
    x, y = fixed_batch(w)
    if impl in ("numpy", PROCS):
        model = numpy_model(w, dtype)
        opt, opt_name = _numpy_adamw(model.params)
        info = {"optimizer": opt_name}
        if impl == PROCS:
            from numpy_gpt.processes import ShardProcesses
            workers = ShardProcesses(model)
            info["shards"] = f"numpy_gpt.processes.ShardProcesses, {len(workers.workers)} worker process(es)"

        def step() -> float:
            _, loss = model.forward(x, y)
            opt.step(model.backward())
            return float(loss)
        step.close = workers.close if impl == PROCS else (lambda: None)   # stops the workers
        return step, info

    import torch
    model = torch_model(w, dtype)
    model.train()
    opt, opt_name = _torch_adamw(model)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    info = {"optimizer": opt_name}
    if impl == "compile":
        torch._dynamo.reset()                # compiled kernels bake in the thread count
        forward = torch.compile(model)
        info["compile"] = "torch.compile(model) (default inductor); optimizer step eager"
    elif impl == "torch":
        forward = model
    else:
        raise ValueError(f"unknown implementation {impl!r}; expected one of {IMPLS + (PROCS,)}")

    def step() -> float:
        opt.zero_grad(set_to_none=True)
        _, loss = forward(xt, yt)
        loss.backward()
        opt.step()
        return float(loss.detach())
    step.close = lambda: None
    return step, info


def make_generate(impl: str, w: Workload, dtype, prompt_len: int, new_tokens: int, use_cache: bool
                  ) -> Callable[[], np.ndarray]:
    """Greedy generation of new_tokens after a fixed prompt (batch 1); returns the token ids.

    numpy_gpt and torch eager decode each position after the prompt with their fast steps
    (numpy_gpt/decode.py, torch_gpt/decode.py), on one thread for a batch of one (their
    generate()s' policy for matrix-vector work on weights that stay in the cache, as tiny's and
    small's do: numpy_gpt.generation.ONE_THREAD_MAX_BYTES). impl "compile" runs torch_gpt's generate on
    torch.compile(model) with fast=False, so that the compiled forward runs every position: two
    graphs, the prompt's forward and a decoding step (with the KV cache: its length dynamic;
    without: the sequence length dynamic, from the second call on). Its first call compiles."""
    rng = np.random.default_rng(1)
    prompt = rng.integers(0, w.vocab_size, size=(1, prompt_len), dtype=np.int64)
    if impl == "numpy":
        model = numpy_model(w, dtype)
        return lambda: model.generate(prompt, new_tokens, greedy=True, use_cache=use_cache)
    import torch
    from torch_gpt.generation import generate
    model = torch_model(w, dtype)
    pt = torch.from_numpy(prompt)
    if impl == "compile":
        torch._dynamo.reset()                # compiled kernels bake in the thread count
        compiled = torch.compile(model)
        return lambda: generate(compiled, pt, new_tokens, greedy=True, use_cache=use_cache, fast=False).numpy()
    if impl != "torch":
        raise ValueError(f"unknown implementation {impl!r}; expected one of {IMPLS}")
    return lambda: model.generate(pt, new_tokens, greedy=True, use_cache=use_cache).numpy()
