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
