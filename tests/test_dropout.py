import numpy as np
import torch
from hypothesis import given, strategies as st

from numpy_gpt.dropout import dropout_backward, dropout_forward
from tests import strategies as S
from tests.parity import against_finite_differences, against_torch
from torch_gpt.dropout import dropout_forward as t_dropout

P = st.sampled_from([0.0, 0.1, 0.5, 0.9])


def draw_case(data, dtype):
    r = S.rng(data)
    shape = S.btc(data)
    p = data.draw(P, label="p")
    mask = r.random(shape) >= p
    return r, dict(x=S.normal(r, shape, dtype), p=p, mask=mask)


@given(data=st.data(), dtype=S.DTYPES)
def test_same_mask_matches_torch(data, dtype):
    r, args = draw_case(data, dtype)
    against_torch("dropout", dropout_forward, dropout_backward, t_dropout, args, ["x"], r)


@given(data=st.data())
def test_matches_finite_differences(data):
    r, args = draw_case(data, np.float64)
    against_finite_differences("dropout", dropout_forward, dropout_backward, args, ["x"], r)


@given(data=st.data(), dtype=S.DTYPES)
def test_eval_mode_is_identity(data, dtype):
    r, args = draw_case(data, dtype)
    out, cache = dropout_forward(args["x"], args["p"], training=False)
    g = S.normal(r, out.shape, dtype)
    assert out is args["x"] and dropout_backward(g, cache) is g


def test_drawn_mask_drops_about_p_and_keeps_the_mean():
    x = np.ones(200_000, np.float32)
    out, (mask, _) = dropout_forward(x, 0.3, rng=np.random.default_rng(0))
    assert abs((~mask).mean() - 0.3) < 0.01
    assert abs(out.mean() - 1.0) < 0.01 and out.dtype == np.float32
