"""The parity helpers refuse a backward that returns the wrong number or shapes of gradients."""
import re

import numpy as np
import pytest

from numpy_gpt.linear import linear_backward, linear_forward
from tests.parity import against_torch
from torch_gpt.linear import linear_forward as t_linear


def run(backward):
    r = np.random.default_rng(0)
    args = dict(x=r.standard_normal((2, 3, 4)), w=r.standard_normal((4, 5)), b=r.standard_normal(5))
    return against_torch("linear", linear_forward, backward, t_linear, args, ["x", "w", "b"], r)


def test_the_correct_backward_passes():
    assert set(run(linear_backward)) == {"x", "w", "b"}


@pytest.mark.parametrize("backward, message", [
    (lambda d, c: linear_backward(d, c) + (np.zeros(5),), "returned 4 gradient(s); expected 3"),
    (lambda d, c: linear_backward(d, c)[:2], "returned 2 gradient(s); expected 3"),
    (lambda d, c: (*linear_backward(d, c)[:2], linear_backward(d, c)[2][None]), "db has shape (1, 5); expected (5,), the shape of b"),
    (lambda d, c: (*linear_backward(d, c)[:2], None), "db is None; expected an array of shape (5,), the shape of b"),
])
def test_a_wrong_count_or_shape_of_gradients_is_named(backward, message):
    with pytest.raises(AssertionError, match=re.escape(message)):
        run(backward)


@pytest.fixture
def worst_table_untouched():
    # assert_close records every error it judges in tests.parity.WORST, the table printed at the
    # end of the run; the made-up errors of these tests of the helper itself stay out of it.
    from tests import parity
    saved = dict(parity.WORST)
    yield
    parity.WORST.clear()
    parity.WORST.update(saved)


def test_the_float64_truth_forgives_only_a_result_as_close_as_torch_and_near_the_truth(worst_table_untouched):
    from tests.parity import assert_close
    truth = np.array([1.0, 2.0, 3.0])
    torch32 = truth * (1 + 3e-3)                          # a loose reference, off by 3e-3
    assert_close("helper", "as good as torch", truth * (1 + 2e-3), torch32, 1e-4, truth=truth)
    with pytest.raises(AssertionError, match="rel error"):             # worse than torch by > 4x
        assert_close("helper", "worse than torch", truth * (1 + 2e-2), torch32, 1e-4, truth=truth)
    far = truth * (1 + 0.05)                              # torch itself 5% off: no pass at 4x that
    with pytest.raises(AssertionError, match="rel error"):
        assert_close("helper", "beyond the cap", truth * (1 + 0.1), far, 1e-4, truth=truth)


def test_the_suite_fails_on_a_nan_or_overflow_but_not_on_a_products_invalid_flag(threads):
    # tests/conftest.py: every floating-point error fails a test, in the calling thread and in
    # numpy_gpt's pool, except "invalid value encountered in matmul" (OpenBLAS sets it falsely).
    from numpy_gpt.parallel import _submit
    inf = np.array([np.inf], np.float32)
    with pytest.raises(RuntimeWarning, match="invalid value encountered in subtract"):
        inf - inf
    threads(2)
    with pytest.raises(RuntimeWarning, match="invalid value encountered in multiply"):
        _submit(lambda: inf * 0).result()                  # on a pool thread
    with pytest.raises(FloatingPointError, match="overflow encountered in matmul"):
        np.full((1, 2), 3e38, np.float32) @ np.full((2, 1), 10, np.float32)
    with pytest.raises(FloatingPointError, match="divide by zero"):
        np.float32(1) / np.zeros(1, np.float32)
    # A product whose flag is set (inf * 0 here, which really sets it) passes the suite's rule...
    zero = np.zeros((1, 1), np.float32)
    with np.errstate(invalid="raise"), pytest.raises(FloatingPointError, match="invalid value encountered in matmul"):
        inf[None] @ zero
    assert np.isnan(inf[None] @ zero).all()
    # ...and its NaN still fails any comparison it reaches.
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(inf[None] @ zero, zero)
