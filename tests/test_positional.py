import math

import numpy as np
import torch
from hypothesis import given, strategies as st

from numpy_gpt.positional import (learned_backward, learned_forward, sinusoidal_backward,
                                  sinusoidal_forward, sinusoidal_table)
from tests import strategies as S
from tests.parity import against_finite_differences, against_torch
from torch_gpt import positional as tp


@given(T=st.integers(1, 40), C=st.integers(1, 17))
def test_sinusoidal_table_follows_the_formula(T, C):
    pe = sinusoidal_table(T, C, np.float64)
    for pos in range(T):
        for j in range(C):
            i2 = j - j % 2                                     # the "2i" of column j
            angle = pos / 10000 ** (i2 / C)
            expected = math.sin(angle) if j % 2 == 0 else math.cos(angle)
            assert abs(pe[pos, j] - expected) <= 1e-12, (pos, j)
    assert pe.shape == (T, C)


@given(T=st.integers(1, 40), C=st.integers(1, 17), dtype=S.DTYPES)
def test_sinusoidal_table_matches_torch(T, C, dtype):
    t_dtype = torch.float64 if dtype == np.float64 else torch.float32
    # Both compute in float64 and round; libm and torch's sin may differ in the last bit.
    np.testing.assert_allclose(sinusoidal_table(T, C, dtype), tp.sinusoidal_table(T, C, t_dtype).numpy(),
                               rtol=0, atol=4 * np.finfo(dtype).eps)


def draw_case(data, dtype, learned):
    r = S.rng(data)
    B, T, C = S.btc(data)
    pos0 = data.draw(st.integers(0, 3), label="pos0")
    args = dict(x=S.normal(r, (B, T, C), dtype, S.scale(data)))
    if learned:
        P = pos0 + T + data.draw(st.integers(0, 3), label="spare rows")
        args["wpe"] = S.normal(r, (P, C), dtype)
    return r, args, dict(pos0=pos0)


@given(data=st.data(), dtype=S.DTYPES)
def test_sinusoidal_matches_torch(data, dtype):
    r, args, kw = draw_case(data, dtype, learned=False)
    against_torch("sinusoidal", sinusoidal_forward, sinusoidal_backward, tp.sinusoidal_forward,
                  args, ["x"], r, kwargs=kw)


@given(data=st.data(), dtype=S.DTYPES)
def test_learned_matches_torch(data, dtype):
    r, args, kw = draw_case(data, dtype, learned=True)
    grads = against_torch("learned_pos", learned_forward, learned_backward, tp.learned_forward,
                          args, ["x", "wpe"], r, kwargs=kw)
    T = args["x"].shape[1]
    unused = np.ones(len(args["wpe"]), bool)
    unused[kw["pos0"]:kw["pos0"] + T] = False
    assert not grads["wpe"][unused].any()                      # rows never read get exactly 0


@given(data=st.data())
def test_finite_differences(data):
    r, args, kw = draw_case(data, np.float64, learned=True)
    against_finite_differences("learned_pos", learned_forward, learned_backward, args, ["x", "wpe"], r, kw)
    del args["wpe"]
    against_finite_differences("sinusoidal", sinusoidal_forward, sinusoidal_backward, args, ["x"], r, kw)
