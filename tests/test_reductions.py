"""numpy_gpt.reductions: the BLAS sums and the fmax maxima equal NumPy's own reductions."""
import math

import numpy as np
import pytest
from hypothesis import given, strategies as st

from numpy_gpt import reductions
from numpy_gpt.reductions import col_sums, ones, row_dots, row_max, row_sums, sum_of_squares
from tests import strategies as S
from tests.lifetimes import lowest_traced_peak

shapes = st.lists(st.integers(1, 70), min_size=1, max_size=4).map(tuple)


def _array(data, shape, dtype):
    a = S.normal(S.rng(data), shape, dtype, S.scale(data))
    if data.draw(st.booleans(), label="non-contiguous") and a.ndim >= 2:
        a = np.swapaxes(a, -1, -2).copy().swapaxes(-1, -2)     # the same values, in Fortran-like order
    return a


@given(data=st.data(), shape=shapes, dtype=S.DTYPES)
def test_row_sums_equal_numpy_sums(data, shape, dtype):
    a = _array(data, shape, dtype)
    got = row_sums(a)
    want = a.sum(axis=-1, keepdims=True, dtype=np.float64)
    assert got.shape == want.shape and got.dtype == a.dtype
    scale = np.abs(a).sum(axis=-1, keepdims=True)
    assert np.all(np.abs(got - want) <= 4 * shape[-1] * np.finfo(dtype).eps * (1 + scale))


@given(data=st.data(), shape=shapes.filter(lambda s: len(s) == 2), dtype=S.DTYPES)
def test_col_sums_equal_numpy_sums(data, shape, dtype):
    a = _array(data, shape, dtype)
    got = col_sums(a)
    want = a.sum(axis=0, dtype=np.float64)
    assert got.shape == want.shape and got.dtype == a.dtype
    scale = np.abs(a).sum(axis=0)
    assert np.all(np.abs(got - want) <= 4 * shape[0] * np.finfo(dtype).eps * (1 + scale))


@given(data=st.data(), shape=shapes, dtype=S.DTYPES)
def test_row_dots_equal_numpy_sums_of_products(data, shape, dtype):
    a, b = _array(data, shape, dtype), _array(data, shape, dtype)
    want = (a.astype(np.float64) * b).sum(axis=-1, keepdims=True)
    scale = np.abs(a.astype(np.float64) * b).sum(axis=-1, keepdims=True)
    got = row_dots(a, b)
    assert got.shape == want.shape and got.dtype == a.dtype
    assert np.all(np.abs(got - want) <= 4 * shape[-1] * np.finfo(dtype).eps * (1 + scale))


@given(data=st.data(), shape=shapes, dtype=S.DTYPES)
def test_row_max_is_numpy_max_exactly(data, shape, dtype):
    a = _array(data, shape, dtype)
    if data.draw(st.booleans(), label="infinities"):
        a[..., 0] = -np.inf                                     # a masked score, as in causal attention
    got = row_max(a)
    np.testing.assert_array_equal(got, a.max(axis=-1, keepdims=True))
    assert got.dtype == a.dtype


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_softmax_row_with_nan_or_minus_inf_stays_nan_as_with_max(dtype):
    # fmax skips the NaN that max would return; the softmax row is NaN either way.
    a = np.array([[1.0, np.nan, 3.0], [-np.inf, -np.inf, -np.inf], [0.0, 1.0, 2.0]], dtype)
    with np.errstate(invalid="ignore"):
        ours = np.exp(a - row_max(a))
        ours /= row_sums(ours)
        numpy_s = np.exp(a - a.max(axis=-1, keepdims=True))
        numpy_s /= numpy_s.sum(axis=-1, keepdims=True)
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(numpy_s))
    assert np.isnan(ours[:2]).all()
    np.testing.assert_allclose(ours[2], numpy_s[2], rtol=4 * np.finfo(dtype).eps)


def test_ones_is_cached_and_read_only():
    v = ones(5, np.float32)
    assert v is ones(5, np.float32) and v.dtype == np.float32 and not v.flags.writeable
    np.testing.assert_array_equal(v, 1.0)


@given(data=st.data(), shape=st.lists(st.integers(0, 40), max_size=3).map(tuple), dtype=S.DTYPES,
       block=st.sampled_from([1, 3, 7, 64]))
def test_sum_of_squares_is_the_float64_sum(data, shape, dtype, block):
    # Small blocks: many of them, and a last one cut short. A float32 value squared in
    # float64 is exact (48 bits of mantissa), so fsum of the squares is the sum rounded once.
    a = _array(data, shape, dtype)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(reductions, "SQUARES_BLOCK", block)
        got = sum_of_squares(a)
    want = math.fsum((a.astype(np.float64) ** 2).ravel())
    assert isinstance(got, float)
    assert abs(got - want) <= 4 * max(a.size, 1) * np.finfo(np.float64).eps * want


def test_sum_of_squares_makes_no_float64_copy_of_a_float32_array():
    a = np.random.default_rng(0).standard_normal(1 << 20).astype(np.float32)   # 4 MB; 8 MB in float64
    got, peak = lowest_traced_peak(lambda: sum_of_squares(a))
    assert peak <= reductions.SQUARES_BLOCK * 8 + (64 << 10), peak
    assert abs(got - math.fsum(a.astype(np.float64) ** 2)) <= 1e-12 * got
