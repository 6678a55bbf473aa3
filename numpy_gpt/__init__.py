"""numpy_gpt: a GPT-style transformer with every forward and backward pass written by hand.

One file per layer; each holds a `*_forward(...) -> (out, cache)` and a
`*_backward(dout, cache) -> grads` pair with the math written beside the code.
This package imports NumPy only; optional helpers (tqdm, matplotlib,
threadpoolctl) are imported lazily where they are used. Checkpoints are safetensors files,
written and read by numpy_gpt.checkpoint itself.
"""
from .config import GPTConfig
from .errors import (CheckpointError, ConfigError, DataError, InputError, NumpyGPTError,
                     StateDictError)
from .model import GPT

__version__ = "0.1.0"
__all__ = ["GPT", "GPTConfig", "NumpyGPTError", "ConfigError", "InputError", "DataError",
           "CheckpointError", "StateDictError"]
