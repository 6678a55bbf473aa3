"""The errors numpy_gpt raises on bad input: one base class, a few kinds.

Each message names the bad value and what was expected, so the CLI can print
it as one line. Each also subclasses the built-in error a Python user would
expect (ValueError, FileNotFoundError), so generic handlers keep working.
"""
from __future__ import annotations


class NumpyGPTError(Exception):
    """Base class of every error numpy_gpt raises on purpose."""


class ConfigError(NumpyGPTError, ValueError):
    """A model, training or generation setting is out of range."""


class InputError(NumpyGPTError, ValueError):
    """Token ids, arrays or text given to the model are malformed."""
