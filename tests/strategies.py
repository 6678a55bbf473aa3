"""Hypothesis strategies shared by the tests.

Values come from a NumPy generator seeded by hypothesis, so every failing
example replays exactly (and shrinks toward small shapes and seed 0), while
drawing thousands of floats stays cheap.
"""
from __future__ import annotations

import contextlib

import numpy as np
from hypothesis import find, strategies as st

# For pytest.mark.parametrize: each dtype gets its own examples (a drawn dtype can get one or none).
DTYPE_LIST = [np.float64, np.float32]
DTYPES = st.sampled_from(DTYPE_LIST)


class Pinned:
    """Stands in for hypothesis's data object in an explicit edge case: a draw returns the value
    given for its label, and any other draw the strategy's simplest value (what hypothesis
    shrinks to: seed 0, the first of a sampled_from, the low end of a range)."""

    def __init__(self, **values):
        self.values = values
        self.drawn: set[str] = set()

    def draw(self, strategy, label=None):
        if label in self.values:
            self.drawn.add(label)
            return self.values[label]
        key = repr(strategy)
        if key not in _SIMPLEST:
            _SIMPLEST[key] = find(strategy, lambda _: True)
        return _SIMPLEST[key]

    def assert_all_drawn(self) -> None:
        """A pinned label that the test never draws (misspelt, or renamed in the strategy) would
        leave the case at the simplest shape without a word; this says so."""
        missing = sorted(set(self.values) - self.drawn)
        assert not missing, f"pinned values never drawn: {missing} (drawn: {sorted(self.drawn)})"


_SIMPLEST: dict[str, object] = {}


# The smallest shapes a layer gets, for explicit cases beside the drawn ones: one sequence of
# one position over two channels, and the same with a batch and a sequence.
EDGE_SHAPES = [dict(B=1, T=1, C=2), dict(B=2, T=3, C=2)]


def rng(data: st.DataObject) -> np.random.Generator:
    return np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))


def scale(data: st.DataObject) -> float:
    """How large the inputs are: small, ordinary, or large."""
    return data.draw(st.sampled_from([0.01, 1.0, 1.0, 10.0]), label="scale")


def normal(r: np.random.Generator, shape, dtype, s: float = 1.0) -> np.ndarray:
    return (s * r.standard_normal(shape)).astype(dtype)


def btc(data: st.DataObject, max_b=3, max_t=8, min_c=1, max_c=12) -> tuple[int, int, int]:
    """Batch, time and channel sizes, shrinking to B = T = 1 and the smallest C."""
    B = data.draw(st.integers(1, max_b), label="B")
    T = data.draw(st.integers(1, max_t), label="T")
    C = data.draw(st.integers(min_c, max_c), label="C")
    return B, T, C


def head_counts(C: int) -> st.SearchStrategy[int]:
    """Head counts that divide C (1 always does)."""
    return st.sampled_from([h for h in range(1, C + 1) if C % h == 0])


def heads(data: st.DataObject, C: int) -> int:
    """A head count that divides C."""
    return data.draw(head_counts(C), label="n_head")


def token_ids(data: st.DataObject, shape, V: int) -> np.ndarray:
    """Ids in [0, V); with a small V repeats are common, and sometimes forced."""
    r = rng(data)
    if data.draw(st.booleans(), label="all same id"):
        return np.full(shape, r.integers(V), dtype=np.int64)
    return r.integers(0, V, size=shape, dtype=np.int64)


@contextlib.contextmanager
def sharing_everything():
    """Inside: numpy_gpt.parallel.share_products on 2 threads, cutting every product and every
    group of heads however small (tests' shapes lie far below the size it cuts from otherwise).
    Skips the test without threadpoolctl, where share_products does nothing."""
    import pytest
    pytest.importorskip("threadpoolctl")
    from numpy_gpt import parallel
    n, split = parallel.get_num_threads(), parallel.SPLIT_MACS
    parallel.set_num_threads(2)
    parallel.SPLIT_MACS = 0
    try:
        with parallel.share_products(parallel.SHARE_MIN_ROWS):
            yield
    finally:
        parallel.set_num_threads(n)
        parallel.SPLIT_MACS = split
