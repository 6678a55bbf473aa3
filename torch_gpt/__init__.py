"""torch_gpt: the PyTorch reference for numpy_gpt.

It mirrors numpy_gpt's model file for file (config, embedding, positional,
layernorm, attention, ffn, block, model, loss, ...), with the layer functions'
names and the same parameter names and shapes, but is built on torch
built-ins and autograd, so it never repeats numpy_gpt's hand derivations:
that is what makes it an oracle. Around the model it follows torch's ways
where those differ: GPT(cfg, seed=None) is an nn.Module (cast it with
.double(), or build it from numpy_gpt's arrays with model.adopt or
load_state_dict), generate takes torch tensors and a torch.Generator,
optim builds torch.optim optimizers (make_optimizer, make_scheduler) and
checkpoint has save and load. What numpy_gpt has for its own speed or for
checking itself (decode, parallel, processes, reductions, gradcheck,
parity_report) has no twin here; parity is the torch side of `numpy-gpt
parity`.
"""
from .config import GPTConfig
from .model import GPT, from_numpy, to_numpy

__version__ = "0.1.0"
__all__ = ["GPT", "GPTConfig", "from_numpy", "to_numpy"]
