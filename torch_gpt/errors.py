"""The same error hierarchy as numpy_gpt (re-exported)."""
from numpy_gpt.errors import ConfigError, InputError, NumpyGPTError  # noqa: F401
