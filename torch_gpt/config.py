"""The one GPTConfig both implementations share (re-exported from numpy_gpt.config)."""
from numpy_gpt.config import GPTConfig  # noqa: F401
