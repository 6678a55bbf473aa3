"""torch_gpt: the PyTorch reference for numpy_gpt.

It mirrors numpy_gpt file for file with the same function names, parameter
names and shapes, but is built on torch built-ins and autograd, so it never
repeats numpy_gpt's hand derivations: that is what makes it an oracle.
"""
from .config import GPTConfig
from .model import GPT, from_numpy, to_numpy

__version__ = "0.1.0"
__all__ = ["GPT", "GPTConfig", "from_numpy", "to_numpy"]
