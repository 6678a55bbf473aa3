"""Optimizers, gradient clipping and the learning-rate schedule, by hand.

Parameters are the model's own dict[str, np.ndarray]; gradients a second
dict with the same keys, shapes and dtypes. An optimizer updates the
parameter arrays in place (the model keeps the same objects) and never
writes to the gradients. Every constant is cast to the parameter's dtype
before it touches an array, so a float32 model stays float32.

Notation, for one parameter array p with gradient g at step t = 1, 2, ...:
    lr  learning rate            wd  weight-decay coefficient
    mu  momentum                 b1, b2  the two Adam betas
    m, v  running means of g and of g**2 (Adam); b  the momentum buffer (SGD)

Each update follows torch.optim exactly (the same formulas, the same place
for eps, the same bias corrections), so torch_gpt.optim can check it.

    SGD       p -= lr * g, with optional momentum, Nesterov and L2 weight decay
    Adam      p -= lr * mhat / (sqrt(vhat) + eps), L2 weight decay added to g
    AdamW     Adam, with weight decay decoupled from g and applied only to
              the weights that decay_mask selects
    clip_grad_norm  rescale all gradients together when their norm is too large
    cosine_lr       linear warmup, then cosine decay to a floor
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from .parallel import for_blocks, row_blocks

# Adam and AdamW update parameters of at most this many entries together (Adam._make_plan).
PACK_SIZE = 1 << 16
# ... and in blocks of this many bytes per array. Smaller blocks cost more NumPy calls
# and, on several threads, more hand-overs of Python's lock: at 2 threads, medium's
# update took 1.1x as long in 256 KB blocks as in 512 KB, and 128 KB blocks 1.5x as long
# as 256 KB (docs/performance.md).
BLOCK_BYTES = 512 * 1024
# An update of fewer bytes of parameters than this runs on the calling thread alone: waking
# another costs more than it saves (tiny's 0.44 MB took 0.25 ms alone, 0.31 ms on 2 threads).
SHARE_MIN_BYTES = 1 << 20

# Embedding tables: rows are looked up, not multiplied, so shrinking them toward 0 is
# not the regularizer it is for a linear layer's weight matrix.
EMBEDDINGS = ("wte", "wpe")


def is_decayed(name: str, ndim: int) -> bool:
    """True for the weight matrix of a linear layer: a name ending in ".weight",
    at least 2-D, and not an embedding table (wte, wpe).

    Biases and layer-norm weights (1-D) and embeddings are not decayed: decay
    pulls a parameter toward 0, which for a layer-norm gain means toward
    switching the layer off, and for a bias toward no shift at all.
    """
    if not name.endswith(".weight") or ndim < 2:
        return False
    module = name[: -len(".weight")].rsplit(".", 1)[-1]           # "h.0.attn.c_attn" -> "c_attn"
    return module not in EMBEDDINGS


def decay_mask(params: Mapping[str, Any]) -> dict[str, bool]:
    """{name: is_decayed(name, ndim)} for a dict of arrays (NumPy or torch: only .shape is read)."""
    return {name: is_decayed(name, len(p.shape)) for name, p in params.items()}


class Optimizer:
    """What SGD, Adam and AdamW share: the parameters, lr, the step count, and state.

    params: dict[str, np.ndarray] of floating arrays, updated in place by step().
    lr: the learning rate; a plain attribute, so a schedule may set it before each step.
    Subclasses name their per-parameter buffers in `buffers` (torch's state keys).
    """
    buffers: tuple[str, ...] = ()

    def __init__(self, params: dict[str, np.ndarray], lr: float):
        if lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        _check_params(params)
        self.params = params
        self.lr = float(lr)
        self.t = 0                                  # steps taken: the t of the bias corrections

    def step(self, grads: Mapping[str, np.ndarray]) -> None:
        """One update of every parameter from grads (same keys, shapes and dtypes; not modified)."""
        if grads.keys() != self.params.keys():
            missing, extra = self.params.keys() - grads.keys(), grads.keys() - self.params.keys()
            raise KeyError(f"grads must have the parameters' keys; missing {sorted(missing)}, "
                           f"unexpected {sorted(extra)}")
        for name, p in self.params.items():
            g = grads[name]
            if g.shape != p.shape or g.dtype != p.dtype:
                raise ValueError(f"grad {name}: {g.dtype}{g.shape}, parameter {p.dtype}{p.shape}")
        self.t += 1
        self._update(grads)

    def _update(self, grads: Mapping[str, np.ndarray]) -> None:
        raise NotImplementedError

    def state_dict(self, copy: bool = True) -> dict[str, Any]:
        """{"step": int, "lr": float, buffer: {param name: array copy}} for each of self.buffers.

        Hyperparameters (betas, eps, momentum, weight decay) are not included: they
        come from the configuration the optimizer is rebuilt with. copy=False gives the
        buffers themselves, not a snapshot, for a caller that reads them at once and lets
        go (a checkpoint save: AdamW's copies are twice the parameters' memory).
        """
        state: dict[str, Any] = {"step": self.t, "lr": self.lr}
        for buf in self.buffers:
            state[buf] = {name: a.copy() if copy else a for name, a in getattr(self, buf).items()}
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what state_dict() returned; arrays are copied and cast to each parameter's dtype."""
        for buf in self.buffers:
            saved = state[buf]
            # Every parameter has each buffer; only SGD's momentum buffers may not exist yet.
            if saved.keys() != self.params.keys() and not (not saved and buf == "momentum_buffer"):
                missing, extra = self.params.keys() - saved.keys(), saved.keys() - self.params.keys()
                raise KeyError(f"{buf}: missing {sorted(missing)}, unexpected {sorted(extra)}")
            for name, a in saved.items():
                p = self.params[name]
                if np.shape(a) != p.shape:
                    raise ValueError(f"{buf}[{name}]: shape {np.shape(a)}, parameter {p.shape}")
            current = getattr(self, buf)
            if current.keys() == saved.keys():        # in place: Adam's may be views of a pack
                for name, a in saved.items():
                    current[name][...] = np.asarray(a, dtype=current[name].dtype)
            else:
                setattr(self, buf, {name: np.array(a, dtype=self.params[name].dtype, copy=True)
                                    for name, a in saved.items()})
        self.t = int(state["step"])
        self.lr = float(state["lr"])


class SGD(Optimizer):
    """Stochastic gradient descent with momentum, as torch.optim.SGD.

    At step t, for each parameter p with gradient g:

        g = g + wd * p                        L2 weight decay (when wd > 0)
        b = g                                 at t = 1: the buffer starts as g, undamped
        b = mu * b + (1 - dampening) * g      at t > 1              (both when mu > 0)
        g = g + mu * b   (Nesterov)   or   g = b   (classical)      (when mu > 0)
        p = p - lr * g

    Classical momentum steps along the running direction b; Nesterov's looks one
    step ahead, along g + mu * b. Nesterov needs mu > 0 and no dampening.
    """
    buffers = ("momentum_buffer",)

    def __init__(self, params: dict[str, np.ndarray], lr: float, momentum: float = 0.0,
                 dampening: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False):
        super().__init__(params, lr)
        if momentum < 0.0:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if weight_decay < 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        self.momentum, self.dampening = float(momentum), float(dampening)
        self.weight_decay, self.nesterov = float(weight_decay), bool(nesterov)
        self.momentum_buffer: dict[str, np.ndarray] = {}      # filled at the first step
        # One flat scratch array per dtype, as long as the largest parameter: every temporary
        # of an update is a view of it, so a step allocates nothing. (Adam's update works in
        # blocks, each with a temporary of its own.)
        self._scratch: dict[np.dtype, np.ndarray] = {}
        for p in params.values():
            have = self._scratch.get(p.dtype)
            if have is None or have.size < p.size:
                self._scratch[p.dtype] = np.empty(p.size, p.dtype)

    def _tmp(self, p: np.ndarray) -> np.ndarray:
        """A scratch array shaped like p, contents undefined."""
        return self._scratch[p.dtype][: p.size].reshape(p.shape)

    def _update(self, grads):
        mu, wd = self.momentum, self.weight_decay
        for name, p in self.params.items():
            f, g, s = p.dtype.type, grads[name], self._tmp(p)
            if wd != 0:
                g = g + f(wd) * p                              # a new array: grads stay untouched
            if mu != 0:
                b = self.momentum_buffer.get(name)
                if b is None:
                    b = self.momentum_buffer[name] = g.copy()  # b = g
                else:
                    b *= f(mu)                                 # b = mu * b + (1 - dampening) * g
                    np.multiply(g, f(1.0 - self.dampening), out=s)
                    b += s
                if self.nesterov:
                    np.multiply(b, f(mu), out=s)               # g = g + mu * b
                    s += g
                    g = s
                else:
                    g = b
            np.multiply(g, f(self.lr), out=s)                  # p = p - lr * g
            p -= s


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015), as torch.optim.Adam; weight decay is L2, added to g.

    m = v = 0 at t = 0. At step t, for each parameter p with gradient g:

        g    = g + wd * p                     L2 weight decay (when wd > 0)
        m    = b1 * m + (1 - b1) * g          running mean of g
        v    = b2 * v + (1 - b2) * g**2       running mean of g**2 (elementwise)
        mhat = m / (1 - b1**t)                bias corrections
        vhat = v / (1 - b2**t)
        p    = p - lr * mhat / (sqrt(vhat) + eps)

    Why the corrections: m starts at 0, so after t steps of a steady gradient g it
    holds (1 - b1**t) * g, not g; dividing by 1 - b1**t undoes exactly that (and
    likewise for v). eps sits outside the square root, after the correction, as
    in torch and the paper; it only matters where sqrt(vhat) is tiny.

    Computed as torch does: step_size = lr / (1 - b1**t) and
    denom = sqrt(v) / sqrt(1 - b2**t) + eps, then p -= step_size * m / denom.
    """
    buffers = ("exp_avg", "exp_avg_sq")
    decoupled = False            # AdamW: weight decay acts on p directly, not through g

    def __init__(self, params: dict[str, np.ndarray], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0):
        super().__init__(params, lr)
        if eps < 0.0:
            raise ValueError(f"Invalid epsilon value: {eps}")
        for i, beta in enumerate(betas):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"Invalid beta parameter at index {i}: {beta}")
        if weight_decay < 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        self.betas = (float(betas[0]), float(betas[1]))
        self.eps, self.weight_decay = float(eps), float(weight_decay)
        self.decay = {name: True for name in params}           # which parameters weight decay touches
        self.exp_avg = {name: np.zeros_like(p) for name, p in params.items()}      # m
        self.exp_avg_sq = {name: np.zeros_like(p) for name, p in params.items()}   # v
        self._plan = None                                      # _make_plan, at the first step

    def _update(self, grads):
        # Bookkeeping: which arrays, in which blocks, on which threads. The update itself,
        # the formulas of the class docstring, is _adam below.
        b1, b2 = self.betas
        step_size = self.lr / (1.0 - b1 ** self.t)            # lr / (1 - b1^t), a Python float
        bc2_sqrt = math.sqrt(1.0 - b2 ** self.t)              # sqrt(1 - b2^t)
        if self._plan is None:
            self._plan = self._make_plan()
        arrays = []                                           # (p, g, m, v, decayed?), all 1-D
        gathered = []                                         # the packs' p, to copy back
        for names, decay, pack in self._plan:
            if pack is None:                                  # one parameter, updated where it lies
                name, = names
                p, g = _flat(self.params[name]), _flat(grads[name])
                m, v = _flat(self.exp_avg[name]), _flat(self.exp_avg_sq[name])
            else:                                             # small ones, gathered into one array
                # p and g are gathered anew each step, so that they take no memory between
                # steps (where the backward's peak lies); m and v live in the pack.
                m, v = pack["m"], pack["v"]
                p = np.concatenate([self.params[n].reshape(-1) for n in names])
                g = np.concatenate([grads[n].reshape(-1) for n in names])
                gathered.append((names, pack["spans"], p))
            arrays.append((p, g, m, v, decay))

        def update(i, lo, hi):                                # entries lo..hi-1 of arrays[i]
            p, g, m, v, decay = arrays[i]
            self._adam(p[lo:hi], g[lo:hi], m[lo:hi], v[lo:hi], decay, step_size, bc2_sqrt)
        # Every array's blocks go into one list, so the threads share them out in one go.
        blocks = [(i, lo, hi) for i, (p, *_) in enumerate(arrays)
                  for lo, hi in row_blocks(p.size, p.itemsize, BLOCK_BYTES)]
        small = sum(p.nbytes for p, *_ in arrays) < SHARE_MIN_BYTES
        try:
            for_blocks(update, blocks, max_threads=1 if small else None)
        finally:                                              # even if a block raised, so p keeps up with m, v
            for names, spans, p in gathered:
                for n, (lo, hi) in zip(names, spans):
                    self.params[n].reshape(-1)[...] = p[lo:hi]        # back into the model's arrays

    def _adam(self, p, g, m, v, decay: bool, step_size: float, bc2_sqrt: float) -> None:
        """The update of the class docstring on 1-D arrays p, g, m, v, in place (g is only read)."""
        b1, b2 = self.betas
        f = p.dtype.type
        if decay:
            if self.decoupled:
                p *= f(1.0 - self.lr * self.weight_decay)         # p = p - lr * wd * p
            else:
                g = g + f(self.weight_decay) * p                  # g = g + wd * p, a new array
        s = g * f(1.0 - b1)
        m *= f(b1)                                                # m = b1 * m + (1 - b1) * g
        m += s
        np.multiply(g, g, out=s)
        s *= f(1.0 - b2)
        v *= f(b2)                                                # v = b2 * v + (1 - b2) * g**2
        v += s
        np.sqrt(v, out=s)                                         # denom = sqrt(vhat) + eps
        s /= f(bc2_sqrt)
        s += f(self.eps)
        np.divide(m, s, out=s)                                    # p = p - lr * mhat / denom
        s *= f(step_size)
        p -= s

    def _make_plan(self) -> list[tuple[list[str], bool, dict | None]]:
        """How _update walks the parameters: (names, decayed?, pack or None) per update call.

        A parameter larger than PACK_SIZE is updated on its own, where it lies.
        Smaller ones are packed, one pack per dtype and decay group: their m and
        v become views of one flat array each, and at every step p and g are
        gathered into two new arrays, updated, and p copied back. Same numbers, since
        every entry is updated alone; far fewer NumPy calls for a model's many
        biases and layer norms; and a pack big enough to split is shared among
        the threads. Fixed at the first step: decay groups do not change later.
        """
        plan, packs = [], {}
        for name, p in self.params.items():
            decay = self.weight_decay != 0 and self.decay[name]
            if p.size > PACK_SIZE:
                plan.append(([name], decay, None))
            else:
                packs.setdefault((p.dtype, decay), []).append(name)
        for (dtype, decay), names in packs.items():
            ends = np.cumsum([self.params[n].size for n in names]).tolist()
            spans = list(zip([0] + ends[:-1], ends))
            pack = {"spans": spans}
            for buf, key in (("exp_avg", "m"), ("exp_avg_sq", "v")):
                state = getattr(self, buf)
                pack[key] = np.concatenate([state[n].reshape(-1) for n in names])    # values so far
                for n, (lo, hi) in zip(names, spans):
                    state[n] = pack[key][lo:hi].reshape(self.params[n].shape)         # now views of it
            plan.append((names, decay, pack))
        return plan


def _flat(a: np.ndarray) -> np.ndarray:
    """a as 1-D; a view for a contiguous array (writes reach a), a copy otherwise (read only)."""
    return a.reshape(-1)


class AdamW(Adam):
    """AdamW (Loshchilov & Hutter, 2019), as torch.optim.AdamW with two parameter groups.

    Before the Adam step (see Adam, without its L2 term), each decayed parameter shrinks:

        p = p - lr * wd * p                   i.e. p *= 1 - lr * wd

    Why decoupled: with L2 (Adam's weight_decay) the decay term wd * p passes
    through m and v and is divided by sqrt(vhat), so weights with large gradients
    are hardly decayed at all. Shrinking p directly decays every weight at the
    same rate, whatever its gradient history.

    Groups: only the weight matrices of linear layers decay (decay_mask); biases,
    layer-norm weights and embeddings do not. no_decay, if given, lists the
    names to leave undecayed instead, and every other name decays.
    """
    decoupled = True

    def __init__(self, params: dict[str, np.ndarray], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.01, no_decay: Iterable[str] | None = None):
        super().__init__(params, lr, betas, eps, weight_decay)
        self.decay = decay_groups(params, no_decay)


def decay_groups(params: Mapping[str, Any], no_decay: Iterable[str] | None = None) -> dict[str, bool]:
    """{name: decayed?}: decay_mask(params), or, when no_decay is given, every name not in it."""
    if no_decay is None:
        return decay_mask(params)
    no_decay = set(no_decay)
    unknown = no_decay - params.keys()
    if unknown:
        raise KeyError(f"no_decay names no parameter: {sorted(unknown)}")
    return {name: name not in no_decay for name in params}


OPTIMIZERS = {"sgd": SGD, "adam": Adam, "adamw": AdamW}


def clip_grad_norm(grads: Mapping[str, np.ndarray], max_norm: float, norm: float | None = None) -> float:
    """Scale all gradients together, in place, so their global norm is at most max_norm.

        norm = sqrt(sum of g**2 over every entry of every gradient)   (all of them as one vector)
        coef = max_norm / (norm + 1e-6)
        g    = g * coef   for every g, only when coef < 1

    As torch.nn.utils.clip_grad_norm_: the 1e-6 keeps coef finite for a zero
    norm, and leaves a clipped norm a hair below max_norm. The direction of the
    full gradient is kept; only its length changes. Returns the norm before
    clipping, as a float. If that norm is inf or nan (an overflow upstream) the
    grads are left as they are, so the caller can see it and skip the step
    (torch would scale them by nan for a nan norm, and by 0 for an inf one).

    norm: the global norm, where the caller has it already (the Trainer sums
    the squares in float64 for its per-layer norms), so the gradients are not
    read once more; by default it is computed here in their dtype, as torch does.
    """
    if not grads:
        return 0.0
    dtype = np.result_type(*grads.values())
    f = dtype.type
    if norm is None:
        norms = np.array([np.linalg.norm(g.reshape(-1)) for g in grads.values()], dtype=dtype)
        norm = np.linalg.norm(norms)                           # sqrt(sum of per-tensor norms**2)
    else:
        with np.errstate(over="ignore"):                       # past the dtype's range: inf, as computed here
            norm = f(norm)
    if not np.isfinite(norm):
        return float(norm)
    coef = f(max_norm) / (norm + f(1e-6))
    if coef < 1:
        for g in grads.values():
            g *= g.dtype.type(coef)
    return float(norm)


def cosine_lr(step: int, max_lr: float, warmup_steps: int, max_steps: int,
              min_lr: float = 0.0) -> float:
    """The learning rate for step (counted from 0): linear warmup, cosine decay, then a floor.

    With W = warmup_steps and M = max_steps (0 <= W <= M):

        step < W:        lr = max_lr * (step + 1) / (W + 1)
        W <= step < M:   lr = min_lr + (max_lr - min_lr) * (1 + cos(pi * (step - W) / (M - W))) / 2
        step >= M:       lr = min_lr

    This is nanoGPT's get_lr. Warmup climbs max_lr/(W+1), 2 max_lr/(W+1), ...,
    W max_lr/(W+1), so the first step is never wasted at lr = 0, and step W
    reaches max_lr exactly where the cosine starts. The cosine falls to min_lr at
    step M, half-way ((max_lr + min_lr) / 2) at step (W + M) / 2, and stays
    at min_lr after M. W = 0 means no warmup. torch_gpt.optim.make_scheduler builds
    the same schedule from torch's LinearLR and CosineAnnealingLR.
    """
    if step < 0 or warmup_steps < 0 or max_steps < warmup_steps:
        raise ValueError(f"need 0 <= step and 0 <= warmup_steps <= max_steps, got step={step}, "
                         f"warmup_steps={warmup_steps}, max_steps={max_steps}")
    if step < warmup_steps:
        return max_lr * (step + 1) / (warmup_steps + 1)
    if step >= max_steps:
        return min_lr
    progress = (step - warmup_steps) / (max_steps - warmup_steps)     # 0 -> 1
    return min_lr + (max_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def _check_params(params: Mapping[str, np.ndarray]) -> None:
    """Floating arrays, none sharing memory with another: an update must reach each exactly once."""
    if not params:
        raise ValueError("optimizer got an empty parameter dict")
    for name, p in params.items():
        if isinstance(p, np.ndarray) and not p.flags.c_contiguous:
            raise ValueError(f"parameter {name} must be C-contiguous (np.ascontiguousarray), so it is updated in place")
        if not isinstance(p, np.ndarray) or p.dtype.kind != "f":
            raise TypeError(f"parameter {name} must be a floating np.ndarray, got {type(p).__name__}"
                            f"{'' if not isinstance(p, np.ndarray) else ' of ' + str(p.dtype)}")
    items = list(params.items())
    for i, (a, p) in enumerate(items):
        for b, q in items[i + 1:]:
            if np.shares_memory(p, q):
                raise ValueError(f"parameters {a} and {b} share memory; tie weights by keeping one key")
