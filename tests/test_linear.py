import weakref

import numpy as np
import pytest
from hypothesis import given, strategies as st

from numpy_gpt.linear import linear_backward, linear_forward
from tests import strategies as S
from tests.parity import against_finite_differences, against_torch
from torch_gpt.linear import linear_forward as t_linear


def draw_case(data, dtype, bias=True):
    r = S.rng(data)
    B, T, C_in = S.btc(data)
    C_out = data.draw(st.integers(1, 12), label="C_out")
    s = S.scale(data)
    args = dict(x=S.normal(r, (B, T, C_in), dtype, s), w=S.normal(r, (C_in, C_out), dtype),
                b=S.normal(r, C_out, dtype) if bias else None)
    return r, args


@pytest.mark.parametrize("dtype", S.DTYPE_LIST)
@pytest.mark.parametrize("bias", [True, False])
@given(data=st.data())
def test_matches_torch(data, dtype, bias):
    check_against_torch(data, dtype, bias)


@pytest.mark.parametrize("dtype", S.DTYPE_LIST)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", S.EDGE_SHAPES + [dict(B=1, T=1, C=1, C_out=1)], ids=str)
def test_smallest_shapes_match_torch(shape, dtype, bias):
    pinned = S.Pinned(**{"scale": 1.0, "C_out": 2, **shape})
    check_against_torch(pinned, dtype, bias)
    pinned.assert_all_drawn()


def check_against_torch(data, dtype, bias):
    r, args = draw_case(data, dtype, bias)
    wrt = ["x", "w", "b"] if bias else ["x", "w"]
    backward = linear_backward if bias else (lambda d, c: linear_backward(d, c)[:2])
    against_torch("linear", linear_forward, backward, t_linear, args, wrt, r)


@given(data=st.data())
def test_matches_finite_differences(data):
    r, args = draw_case(data, np.float64)
    against_finite_differences("linear", linear_forward, linear_backward, args, ["x", "w", "b"], r)


def test_no_bias_returns_none():
    x, w = np.ones((2, 3, 4)), np.ones((4, 5))
    out, cache = linear_forward(x, w)
    assert out.shape == (2, 3, 5)
    assert linear_backward(np.ones_like(out), cache)[2] is None


@given(data=st.data(), dtype=S.DTYPES, bias=st.booleans())
def test_a_rebuilt_input_gives_the_same_numbers_and_is_freed_before_dx(data, dtype, bias):
    # x_kept=Rebuild(...) puts a recipe for x in the cache (the model's layers after a layer norm,
    # and the MLP's second product): the backward makes x from it for dw, bit for bit the same
    # gradients, and lets it go before the product that allocates dx.
    from numpy_gpt import linear
    r, args = draw_case(data, dtype, bias)
    out, cache = linear_forward(**args)
    made = []

    def again():                                    # a copy: the same numbers in a new array
        x = args["x"].copy()
        made.append(weakref.ref(x))
        return x
    out_r, cache_r = linear_forward(**args, x_kept=linear.Rebuild(again))
    np.testing.assert_array_equal(out_r, out)
    assert isinstance(cache_r[0], linear.Rebuild) and not made      # kept as a recipe, not made yet
    alive = []
    matmul = linear.matmul
    dout = S.normal(r, out.shape, dtype)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(linear, "matmul", lambda a, b, **k: alive.append(made[0]() is not None) or matmul(a, b, **k))
        grads_r = linear_backward(dout, cache_r)
    for g_r, g in zip(grads_r, linear_backward(dout, cache)):
        assert (g_r is None) == (g is None)
        if g is not None:
            np.testing.assert_array_equal(g_r, g)
    assert alive == [True, False]                   # alive for dw = x^T g, gone for dx = g w^T


def test_out_receives_the_result():
    r = np.random.default_rng(0)
    x, w, b = r.standard_normal((2, 3, 4)), r.standard_normal((4, 5)), r.standard_normal(5)
    want, _ = linear_forward(x, w, b)
    buf = np.full((4, 3, 5), np.nan)
    got, _ = linear_forward(x, w, b, out=buf[1:3])            # rows of a bigger array, as the model's shards
    np.testing.assert_array_equal(got, want)
    assert np.shares_memory(got, buf) and np.array_equal(buf[1:3], want)
    assert np.isnan(buf[0]).all() and np.isnan(buf[3]).all()
    for bad in (np.empty((2, 3, 10))[..., ::2], np.empty(30), np.empty((2, 3, 5), np.float32)):
        with pytest.raises(ValueError, match=r"C-contiguous float64 array of shape \(2, 3, 5\)"):
            linear_forward(x, w, b, out=bad)         # not contiguous, the wrong shape, the wrong dtype


def test_a_handed_over_array_is_given_back_once():
    from numpy_gpt.linear import handed_over
    x = np.ones(3)
    give = handed_over(x)
    assert give() is x
    with pytest.raises(RuntimeError, match="asked for twice"):
        give()
