"""The position-wise feed-forward network (GPT-2's "mlp"), forward and backward.

Shapes: B = batch, T = time, C = channels, H = hidden width (4C in GPT-2).

Parameters: c_fc_w (C, H), c_fc_b (H,), c_proj_w (H, C), c_proj_b (C,).

Forward:
    1. h   = x @ c_fc_w + c_fc_b          (B, T, H)
    2. a   = act(h)                       relu, gelu (tanh) or gelu_exact
    3. out = a @ c_proj_w + c_proj_b      (B, T, C)

Backward, walking 3 -> 1 with linear_backward, the activation's backward,
and linear_backward again.

Memory. Kept as they are, the caches hold h's activation twice over: a, for
step 3's dc_proj_w = a^T dout, and the activation's own cache (GELU keeps h
and s, with a = h * s), each (B, T, H) with H = 4C, the widest arrays of the
model. Two options keep less, with the same numbers bit for bit:
  - rebuild=True: for tanh GELU, step 3's cache holds a linear.Rebuild in
    place of a, and step 3's backward makes a again as h * s, one multiply
    (activations.OUTPUTS), freeing it again before da takes its place. It
    saves H numbers per position, for next to no time. The model always asks
    for it; other activations keep a as before.
  - recompute=True (the model's choice for tanh GELU and ReLU from 6 MB
    hidden layers up: numpy_gpt/block.py): the cache keeps h alone, and
    ffn_backward runs step 2 again to get a and the activation's cache back:
    activation recomputation (Chen et al., "Training Deep Nets with Sublinear
    Memory Cost", 2016), here on the one layer whose recomputation is cheap
    and whose arrays are the largest. With tanh GELU it saves 2H numbers per
    position against keeping everything (H against rebuild=True), at the
    price of one more activation forward in the backward.
    (gelu_exact would save more, float64 copies, but its forward calls
    math.erf element by element: running it twice costs far more than it saves.)
docs/performance.md has what these came to in a training step.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .activations import ACTIVATIONS, OUTPUTS
from .linear import Rebuild, handed_over, linear_backward, linear_forward


@dataclass(frozen=True)
class Recompute:
    """In place of the activation's cache when ffn_forward ran with recompute=True."""
    act_forward: Callable
    h: np.ndarray                                               # the activation's input, (B, T, H)


def ffn_forward(x: np.ndarray, c_fc_w: np.ndarray, c_fc_b: np.ndarray | None,
                c_proj_w: np.ndarray, c_proj_b: np.ndarray | None,
                activation: str = "gelu", recompute: bool = False, rebuild: bool = False,
                x_kept: Rebuild | None = None) -> tuple[np.ndarray, tuple]:
    """x: (B, T, C). Returns out (B, T, C) and the cache for ffn_backward.

    The cache is (fc_cache, act_backward, act_cache, proj_cache), as
    numpy_gpt/templates/ffn_backward.py spells out. With recompute=True,
    act_cache is Recompute(act_forward, h) and proj_cache holds None for a;
    otherwise, with rebuild=True and an activation whose forward is in
    activations.OUTPUTS, proj_cache holds a linear.Rebuild for a (the Memory
    section above). x_kept: what step 1's cache holds for x (linear_forward's x_kept)."""
    act_forward, act_backward = ACTIVATIONS[activation]
    h, fc_cache = linear_forward(x, c_fc_w, c_fc_b, x_kept=x_kept)   # 1.
    a, act_cache = act_forward(h)                               # 2.
    out, proj_cache = linear_forward(a, c_proj_w, c_proj_b)     # 3.
    if recompute:                                               # keep h, not a and act_cache
        act_cache, proj_cache = Recompute(act_forward, h), (None, *proj_cache[1:])
    elif rebuild and act_forward in OUTPUTS:                    # keep act_cache, not a
        proj_cache = (Rebuild(OUTPUTS[act_forward], (act_cache,)), *proj_cache[1:])
    return out, (fc_cache, act_backward, act_cache, proj_cache)


def ffn_backward(dout: np.ndarray, cache: tuple) -> tuple:
    """dout: (B, T, C). Returns (dx, dc_fc_w, dc_fc_b, dc_proj_w, dc_proj_b).

    Each part of the cache is let go once used (the model hands the cache over and
    keeps no reference): a, recomputed or rebuilt, before step 3 allocates da, and the
    activation's cache (GELU's h and s) before step 1 allocates dx."""
    fc_cache, act_backward, act_cache, proj_cache = cache
    del cache
    if isinstance(act_cache, Recompute):                           # 2. again, the same numbers
        a, act_cache = act_cache.act_forward(act_cache.h)
        proj_cache = (handed_over(a), *proj_cache[1:])             # freed in step 3, before da
        del a
    da, dc_proj_w, dc_proj_b = linear_backward(dout, proj_cache)   # 3. (a Rebuild makes a here)
    del proj_cache
    dh = act_backward(da, act_cache, out=da)                       # 2. dh over da, no longer needed
    del act_cache, da
    dx, dc_fc_w, dc_fc_b = linear_backward(dh, fc_cache)           # 1.
    return dx, dc_fc_w, dc_fc_b, dc_proj_w, dc_proj_b
