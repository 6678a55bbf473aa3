import numpy as np
from hypothesis import given, strategies as st

from numpy_gpt.residual import residual_backward, residual_forward
from tests import strategies as S
from tests.parity import against_finite_differences, against_torch
from torch_gpt.residual import residual_forward as t_residual


@given(data=st.data(), dtype=S.DTYPES)
def test_matches_torch_and_finite_differences(data, dtype):
    r = S.rng(data)
    shape = S.btc(data)
    args = dict(x=S.normal(r, shape, dtype), fx=S.normal(r, shape, dtype))
    against_torch("residual", residual_forward, residual_backward, t_residual, args, ["x", "fx"], r)
    if dtype == np.float64:
        against_finite_differences("residual", residual_forward, residual_backward, args, ["x", "fx"], r)
