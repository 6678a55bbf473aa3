"""Per-layer cases: each layer's forward, and forward + backward, in numpy_gpt and torch_gpt.

Shapes come from a Workload (B, T, C, nh, V), so the layers run at the sizes the training
step gives them. Both sides get the same input arrays (torch tensors share numpy's memory).

"forward" is the training forward: numpy_gpt builds its cache, torch records the autograd
graph (its leaves require grad). torch.compile compiles the torch layer function itself (static
shapes, default inductor); its backward is the compiled graph's. "fwd+bwd" adds the backward for a fixed upstream gradient:
numpy_gpt's *_backward(dout, cache), torch's torch.autograd.grad(out, leaves, dout), which
returns every input's and parameter's gradient without accumulating into .grad.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from numpy_gpt import attention, embedding, ffn, layernorm, linear, loss, softmax

from .workloads import Workload


@dataclass
class LayerCase:
    """One layer at one size: numpy and torch callables for forward and forward+backward."""
    name: str
    shape: str                                   # the input shape, for the table
    numpy_fwd: Callable[[], object]
    numpy_fwdbwd: Callable[[], object]
    torch_fwd: Callable[[], object]
    torch_fwdbwd: Callable[[], object]
    compiled: Callable[[], tuple[Callable[[], object], Callable[[], object]]]
    """compiled() -> (forward, fwd+bwd) of torch.compile(the torch layer): compiling happens at
    their first call, for the thread count and shapes current then."""


def _case(name: str, shape: str, float_inputs: list[np.ndarray], other_inputs: list,
          np_forward: Callable, np_backward: Callable, torch_forward: Callable,
          dout: np.ndarray | None, floats_first: bool = True) -> LayerCase:
    """Wire one layer: forward(*args) where args = float_inputs + other_inputs (in that order
    unless the layer takes the integer input first, floats_first=False)."""
    import torch

    def order(floats, others):
        return (*floats, *others) if floats_first else (*others, *floats)

    np_args = order(float_inputs, other_inputs)
    leaves = [torch.from_numpy(a).requires_grad_(True) for a in float_inputs]
    t_others = [torch.from_numpy(o) if isinstance(o, np.ndarray) else o for o in other_inputs]
    t_args = order(leaves, t_others)
    t_dout = None if dout is None else torch.from_numpy(dout)
    np_dout = 1.0 if dout is None else dout

    def numpy_fwdbwd():
        out, cache = np_forward(*np_args)
        return np_backward(np_dout, cache)

    def fwdbwd(forward):
        def run():
            out = forward(*t_args)
            return torch.autograd.grad(out, leaves, t_dout)
        return run

    def compiled():
        forward = torch.compile(torch_forward, dynamic=False)
        return (lambda: forward(*t_args)), fwdbwd(forward)

    return LayerCase(name, shape, lambda: np_forward(*np_args), numpy_fwdbwd,
                     lambda: torch_forward(*t_args), fwdbwd(torch_forward), compiled)


def layer_cases(w: Workload, dtype, seed: int = 0) -> list[LayerCase]:
    """linear, layernorm, attention, ffn (gelu), embedding, cross-entropy and softmax at w's sizes."""
    import torch_gpt.attention
    import torch_gpt.embedding
    import torch_gpt.ffn
    import torch_gpt.layernorm
    import torch_gpt.linear
    import torch_gpt.loss
    import torch_gpt.softmax

    rng = np.random.default_rng(seed)
    B, T, C, nh, V = w.batch_size, w.block_size, w.n_embd, w.n_head, w.vocab_size

    def randn(*shape, std=1.0):
        return (std * rng.standard_normal(shape)).astype(dtype)

    x = randn(B, T, C)
    cases = [
        _case("linear", f"({B},{T},{C})@({C},{4 * C})", [x, randn(C, 4 * C, std=0.02), randn(4 * C)], [],
              linear.linear_forward, linear.linear_backward, torch_gpt.linear.linear_forward,
              randn(B, T, 4 * C)),
        _case("layernorm", f"({B},{T},{C})", [x, 1 + randn(C, std=0.1), randn(C, std=0.1)], [],
              layernorm.layernorm_forward, layernorm.layernorm_backward,
              torch_gpt.layernorm.layernorm_forward, randn(B, T, C)),
        _case("attention", f"({B},{T},{C}) nh={nh}",
              [x, randn(C, 3 * C, std=0.02), randn(3 * C, std=0.02), randn(C, C, std=0.02), randn(C, std=0.02)],
              [nh], attention.attention_forward, attention.attention_backward,
              torch_gpt.attention.attention_forward, randn(B, T, C)),
        # ffn_forward as a learner calls it (recompute=False, keeping the activation); a training
        # step of the model runs it with recompute=True where the whole batch's hidden layer takes
        # 6 MB or more (numpy_gpt/block.py, recompute_mlp_for).
        _case("ffn (gelu)", f"({B},{T},{C}) H={4 * C}",
              [x, randn(C, 4 * C, std=0.02), randn(4 * C, std=0.02), randn(4 * C, C, std=0.02), randn(C, std=0.02)],
              ["gelu"], ffn.ffn_forward, ffn.ffn_backward, torch_gpt.ffn.ffn_forward, randn(B, T, C)),
        _case("embedding", f"({B},{T}) ids, ({V},{C})", [randn(V, C, std=0.02)],
              [rng.integers(0, V, size=(B, T), dtype=np.int64)],
              embedding.embedding_forward, embedding.embedding_backward,
              torch_gpt.embedding.embedding_forward, randn(B, T, C), floats_first=False),
        _case("cross-entropy", f"({B},{T},{V})", [randn(B, T, V)],
              [rng.integers(0, V, size=(B, T), dtype=np.int64)],
              loss.cross_entropy_forward, loss.cross_entropy_backward,
              torch_gpt.loss.cross_entropy_forward, None),
        _case("softmax", f"({B},{nh},{T},{T})", [randn(B, nh, T, T)], [],
              softmax.softmax_forward, softmax.softmax_backward, torch_gpt.softmax.softmax_forward,
              randn(B, nh, T, T)),
    ]
    return cases
