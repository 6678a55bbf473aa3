"""The errors numpy_gpt raises on bad input: one base class, a few kinds.

Each message names the bad value and what was expected, so the CLI can print
it as one line. Each also subclasses the built-in error a Python user would
expect (ValueError, FileNotFoundError, ...), so generic handlers keep working.

    NumpyGPTError
    ├── UsageError              the command line: unknown command, option or option value
    ├── ConfigError             a model, training or generation setting out of range
    ├── InputError              token ids, arrays or text given to the model are malformed
    │   └── UnknownTokenError       (tokenizers) a word, character or id outside the vocabulary
    ├── DataError               a corpus that cannot be used
    │   ├── CorpusNotFoundError     (data) the file does not exist
    │   ├── CorpusDecodeError       (data) not valid UTF-8
    │   ├── EmptyCorpusError        (data) no characters at all
    │   └── DataTooShortError       (data) fewer tokens than one block needs
    ├── FormatError             a file or description that is malformed
    │   └── TokenizerFormatError    (tokenizers) tokenizer data or GPT-2 vocabulary files
    ├── CheckpointError         a checkpoint that cannot be used
    │   ├── CheckpointNotFoundError     the file does not exist
    │   ├── CheckpointCorruptError      truncated, damaged, or not a numpy-gpt checkpoint
    │   └── CheckpointMismatchError     made for another model configuration
    ├── StateDictError          a GPT-2 state dict with missing or extra keys or wrong shapes
    ├── TrainingDivergedError   (train) the loss, a gradient or a parameter became NaN or inf
    └── DependencyError         an optional package (torch, matplotlib, ...) is not installed

The classes marked (module) live in that module, next to the code that raises them.
"""
from __future__ import annotations


class NumpyGPTError(Exception):
    """Base class of every error numpy_gpt raises on purpose."""


class UsageError(NumpyGPTError, ValueError):
    """The command line cannot run as written: an unknown command, option or option value,
    options that do not go together, an output file that exists without --resume or --force."""


class ConfigError(NumpyGPTError, ValueError):
    """A model, training or generation setting is out of range."""


class InputError(NumpyGPTError, ValueError):
    """Token ids, arrays or text given to the model are malformed."""


class DataError(NumpyGPTError):
    """A corpus that cannot be used (see numpy_gpt.data for the kinds)."""


class FormatError(NumpyGPTError, ValueError):
    """A file or a description (tokenizer data, vocabulary files) that is malformed."""


class CheckpointError(NumpyGPTError):
    """A checkpoint that cannot be used; `path` names the file."""

    def __init__(self, message: str, path: str | None = None):
        super().__init__(message)
        self.path = path


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """The checkpoint file does not exist."""

    def __init__(self, path: str, what: str = "checkpoint"):
        super().__init__(f"{what} {path} not found", path)
        self.filename = path

    def __str__(self) -> str:          # OSError's own __str__ would print "[Errno ...]"
        return self.args[0]


class CheckpointCorruptError(CheckpointError, ValueError):
    """The file is truncated, damaged, or is not a numpy-gpt checkpoint at all."""


class CheckpointMismatchError(CheckpointError, ValueError):
    """The checkpoint was made for another model configuration than the one asked for."""


class StateDictError(NumpyGPTError, ValueError):
    """A (GPT-2) state dict whose keys or shapes do not make a model.

    `missing`, `unexpected` and `wrong_shapes` ({name: (got, expected)}) list what is wrong.
    """

    def __init__(self, message: str, missing=(), unexpected=(), wrong_shapes=None):
        super().__init__(message)
        self.missing, self.unexpected = list(missing), list(unexpected)
        self.wrong_shapes = dict(wrong_shapes or {})


class DependencyError(NumpyGPTError, ImportError):
    """An optional package that this feature needs is not installed."""


def require(module: str, feature: str, install: str):
    """Import an optional dependency, or raise DependencyError saying how to install it."""
    import importlib
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name is not None and module.split(".")[0] != e.name.split(".")[0]:
            raise                                        # a bug inside the module, not a missing package
        raise DependencyError(f"{feature} needs the {module.split('.')[0]} package: {install}") from None
