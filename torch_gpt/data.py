"""The data pipeline: numpy_gpt's, re-exported, plus batch_to_torch.

Batches are drawn once, in NumPy, and handed to both sides, so numpy_gpt and
torch_gpt train on exactly the same tokens.
"""
from __future__ import annotations

import numpy as np
import torch

from numpy_gpt.data import (DEMO_CORPUS, CorpusDecodeError, CorpusNotFoundError, DataTooShortError,
                            EmptyCorpusError, demo_corpus, get_batch, load_text, sequences_to_batch,
                            train_val_split)

__all__ = ["DEMO_CORPUS", "CorpusDecodeError", "CorpusNotFoundError", "DataTooShortError",
           "EmptyCorpusError", "demo_corpus", "get_batch", "load_text", "sequences_to_batch",
           "train_val_split", "batch_to_torch"]


def batch_to_torch(x: np.ndarray, y: np.ndarray, device: str | torch.device | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """A numpy (x, y) batch as two torch LongTensors (copies; the arrays stay untouched)."""
    return (torch.tensor(np.asarray(x), dtype=torch.long, device=device),
            torch.tensor(np.asarray(y), dtype=torch.long, device=device))
