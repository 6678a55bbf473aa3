"""Text in, batches of token ids out.

Shapes: B = batch, T = time (block_size). Ids are int64 throughout the batch
functions, the dtype embedding lookups and cross-entropy targets expect.

The pipeline for a language model on a corpus:

    text = demo_corpus()                          # or load_text("my.txt")
    tok = CharTokenizer.from_text(text)           # numpy_gpt.tokenizers
    ids = np.array(tok.encode(text))
    train, val = train_val_split(ids)             # contiguous: val is the text's tail
    x, y = get_batch(train, block_size, batch_size, rng)   # y[b, t] = x[b, t + 1]

For the word-level seeds (a handful of sentences of different lengths),
sequences_to_batch pads them into one (x, y) batch whose padded targets are
ignore_index, so the loss skips them.

The demo corpus, numpy_gpt/data/demo_corpus.txt (about 64 KB, ASCII): short,
simple English stories written for this project by a small deterministic
template grammar, numpy_gpt/data/make_demo_corpus.py, which reproduces it
byte for byte. Original work, under the project's MIT licence; nothing is
downloaded at run time.
"""
from __future__ import annotations

import errno
import os
from collections.abc import Sequence
from functools import lru_cache
from importlib import resources

import numpy as np

from numpy_gpt.errors import DataError
from numpy_gpt.loss import IGNORE_INDEX

DEMO_CORPUS = "demo_corpus.txt"


class CorpusNotFoundError(DataError, FileNotFoundError):
    """No text file at the path (nothing there, or a folder); `filename` holds the path."""


class CorpusDecodeError(DataError, ValueError):
    """The file is not valid UTF-8; `path` and `offset` (in bytes) say where."""

    def __init__(self, path: str, offset: int, reason: str, line: int):
        super().__init__(f"{path} is not valid UTF-8: {reason} at byte offset {offset} (line {line})")
        self.path, self.offset, self.line = path, offset, line


class EmptyCorpusError(DataError, ValueError):
    """The text holds no characters at all."""


class DataTooShortError(DataError, ValueError):
    """Fewer tokens than one block of inputs plus its shifted targets needs."""


def demo_corpus() -> str:
    """The demo corpus shipped inside the package (about 64 KB of English)."""
    return _demo_corpus()


@lru_cache(maxsize=1)
def _demo_corpus() -> str:
    return (resources.files("numpy_gpt") / "data" / DEMO_CORPUS).read_text(encoding="utf-8")


def load_text(path: str | os.PathLike) -> str:
    """Read a UTF-8 text file exactly (line endings untouched; a leading BOM dropped).

    Raises CorpusNotFoundError, CorpusDecodeError (with the byte offset of the
    first bad byte) or EmptyCorpusError, each naming the path.
    """
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise CorpusNotFoundError(errno.ENOENT, "corpus file not found", path) from None
    except IsADirectoryError:
        raise CorpusNotFoundError(errno.EISDIR, "corpus is a folder, not a text file", path) from None
    skip = 3 if raw.startswith(b"\xef\xbb\xbf") else 0
    try:
        text = raw[skip:].decode("utf-8")
    except UnicodeDecodeError as e:
        offset = skip + e.start
        raise CorpusDecodeError(path, offset, e.reason, raw.count(b"\n", 0, offset) + 1) from None
    if not text:
        raise EmptyCorpusError(f"{path} is empty: a corpus needs at least one character")
    return text


def _ids_1d(ids: np.ndarray | Sequence[int], name: str) -> np.ndarray:
    arr = np.asarray(ids)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of token ids, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must hold integer token ids, got dtype {arr.dtype}")
    return arr


def train_val_split(ids: np.ndarray | Sequence[int], val_fraction: float = 0.1
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Split a 1-D id array into its head (train) and its last val_fraction (val).

    Contiguous, not shuffled: a random split of overlapping windows would let
    validation text leak into training. Returns views of `ids`; the validation
    part has floor(len * val_fraction) tokens.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    arr = _ids_1d(ids, "ids")
    n_train = len(arr) - int(len(arr) * val_fraction)
    return arr[:n_train], arr[n_train:]


def get_batch(data: np.ndarray, block_size: int, batch_size: int, rng: np.random.Generator
              ) -> tuple[np.ndarray, np.ndarray]:
    """batch_size random windows of data: inputs x and next-token targets y.

    data: (N,) integer ids. Start offsets s are drawn uniformly from
    [0, N - block_size - 1] by rng, so the same seed gives the same batches.
    Returns x, y: (B, T) int64 with x[b] = data[s_b : s_b + T] and
    y[b] = data[s_b + 1 : s_b + T + 1] (teacher forcing: y is x shifted by one).
    """
    if block_size < 1 or batch_size < 1:
        raise ValueError(f"block_size and batch_size must be >= 1, got {block_size} and {batch_size}")
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy Generator (np.random.default_rng(seed)), got {type(rng).__name__}")
    data = _ids_1d(data, "data")
    if len(data) < block_size + 1:
        raise DataTooShortError(
            f"data has {len(data)} tokens, but one block of block_size={block_size} needs "
            f"{block_size + 1} (the inputs plus one more for the shifted targets)")
    starts = rng.integers(0, len(data) - block_size, size=batch_size)      # (B,)
    idx = starts[:, None] + np.arange(block_size)                          # (B, T)
    x = data[idx].astype(np.int64, copy=False)
    y = data[idx + 1].astype(np.int64, copy=False)
    return x, y


def sequences_to_batch(sequences: Sequence[Sequence[int]], pad_id: int = 0,
                       ignore_index: int = IGNORE_INDEX) -> tuple[np.ndarray, np.ndarray]:
    """One (x, y) batch from sentences of different lengths, padded on the right.

    Row b holds x = seq[:-1] and y = seq[1:], padded to T = longest length - 1
    with pad_id in x and ignore_index in y; the loss then skips the padding.
    With causal attention, real positions never see the right padding, so
    pad_id's value does not matter (the EOS id is a natural choice).
    Returns x, y: (B, T) int64. Each sequence needs at least two ids.
    """
    if len(sequences) == 0:
        raise ValueError("sequences_to_batch needs at least one sequence")
    rows = [_ids_1d(s, f"sequence {i}") for i, s in enumerate(sequences)]
    for i, s in enumerate(rows):
        if len(s) < 2:
            raise DataTooShortError(f"sequence {i} has {len(s)} ids; it needs at least 2 "
                                    "(an input and its next-token target)")
    T = max(len(s) for s in rows) - 1
    x = np.full((len(rows), T), pad_id, dtype=np.int64)                    # (B, T)
    y = np.full((len(rows), T), ignore_index, dtype=np.int64)              # (B, T)
    for b, s in enumerate(rows):
        x[b, :len(s) - 1] = s[:-1]
        y[b, :len(s) - 1] = s[1:]
    return x, y
