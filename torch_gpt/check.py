"""The torch oracle of `numpy-gpt check`: torch_gpt's forward of a layer, differentiated by autograd.

numpy_gpt.check loads this module on demand (importlib), so numpy_gpt itself never
imports torch. For a layer name, the inputs numpy_gpt's forward took (by name, in
order), the names to differentiate and the upstream gradient G, it returns torch's
output and the gradient of sum(out * G) with respect to each input, in float64.
No hand-written derivative is involved: torch_gpt builds each layer from torch
built-ins (F.layer_norm, F.scaled_dot_product_attention, F.gelu, F.cross_entropy, ...).
"""
from __future__ import annotations

import numpy as np
import torch

from . import activations, attention, dropout, embedding, ffn, layernorm, linear, loss, positional, softmax

FORWARDS = {
    "linear": linear.linear_forward,
    "layernorm": layernorm.layernorm_forward,
    "softmax": softmax.softmax_forward,
    "embedding": embedding.embedding_forward,
    "attention": attention.attention_forward,
    "attention_core": attention.causal_attention_forward,
    "gelu": activations.gelu_forward,
    "gelu_exact": activations.gelu_exact_forward,
    "relu": activations.relu_forward,
    "ffn": ffn.ffn_forward,
    "dropout": dropout.dropout_forward,
    "cross_entropy": loss.cross_entropy_forward,
    "positional": positional.learned_forward,
}


def _tensor(name: str, value, wrt) -> object:
    if not isinstance(value, np.ndarray):
        return value                                   # ints, floats, strings stay as they are
    if value.dtype.kind == "f":
        return torch.tensor(value, dtype=torch.float64, requires_grad=name in wrt)
    return torch.from_numpy(value.copy())              # ids (int64) and masks (bool)


def gradients(layer: str, args: dict, wrt, dout: np.ndarray, kwargs: dict | None = None
              ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """torch's output and {name: d sum(out * dout) / d input} for each name in wrt, as float64 arrays."""
    forward = FORWARDS[layer]
    t_args = {k: _tensor(k, v, wrt) for k, v in args.items()}
    out = forward(*t_args.values(), **(kwargs or {}))
    (out * torch.as_tensor(np.asarray(dout, dtype=np.float64))).sum().backward()
    grads = {k: (np.zeros(np.shape(args[k])) if t_args[k].grad is None else t_args[k].grad.numpy().copy())
             for k in wrt}
    return out.detach().numpy().copy(), grads
