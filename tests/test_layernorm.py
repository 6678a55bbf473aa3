import numpy as np
import pytest
from hypothesis import given, strategies as st

from numpy_gpt.layernorm import layernorm_backward, layernorm_forward, layernorm_output
from tests import strategies as S
from tests.parity import against_finite_differences, against_torch
from torch_gpt.layernorm import layernorm_forward as t_layernorm


def draw_case(data, dtype, bias=True, min_c=2, max_c=12):
    r = S.rng(data)
    B, T, C = S.btc(data, min_c=min_c, max_c=max_c)
    s = S.scale(data)
    x = S.normal(r, (B, T, C), dtype, s)
    if data.draw(st.booleans(), label="shift rows"):
        # A mean large next to the spread tests the centring step. Much larger and
        # float32 itself cannot hold x - mean to 4 digits, whoever computes it.
        x += dtype(10.0 * s)
    args = dict(x=x, w=S.normal(r, C, dtype), b=S.normal(r, C, dtype) if bias else None)
    return r, args


@given(data=st.data(), dtype=S.DTYPES, bias=st.booleans())
def test_matches_torch(data, dtype, bias):
    # C = 1 and C = 2 are degenerate (see the two tests at the end): there dx is a
    # cancellation of rounding noise, which no relative comparison can judge.
    r, args = draw_case(data, dtype, bias, min_c=3)
    wrt = ["x", "w", "b"] if bias else ["x", "w"]
    backward = layernorm_backward if bias else (lambda d, c: layernorm_backward(d, c)[:2])
    against_torch("layernorm", layernorm_forward, backward, t_layernorm, args, wrt, r)


@given(data=st.data())
def test_matches_finite_differences(data):
    r, args = draw_case(data, np.float64)
    against_finite_differences("layernorm", layernorm_forward, layernorm_backward, args, ["x", "w", "b"], r)


@given(data=st.data(), dtype=S.DTYPES)
def test_dx_sums_to_zero_over_channels(data, dtype):
    # Adding a constant to a row leaves xhat unchanged, so dL/dx has no component along (1, ..., 1).
    r, args = draw_case(data, dtype)
    out, cache = layernorm_forward(**args)
    dout = S.normal(r, out.shape, dtype)
    dx, _, _ = layernorm_backward(dout, cache)
    # Exact zero in real arithmetic; in floating point, rounding of the terms that cancel.
    # x - mean is off by ~eps * |x| (large when rows are shifted far from 0), which rstd magnifies.
    rstd = cache[1]
    terms = np.abs(rstd * dout * args["w"]).max() * dx.shape[-1] * (1 + (np.abs(args["x"]) * rstd).max())
    assert_within("dx.sum(-1)", dx.sum(-1), 100 * np.finfo(dtype).eps * terms)


def assert_within(what, err, bound):
    """Assert |err| <= bound everywhere (bound broadcasts); a failure names the worst entry."""
    err = np.abs(np.asarray(err, np.float64))
    bound = np.broadcast_to(np.asarray(bound, np.float64), err.shape)
    if not np.all(err <= bound):                        # (NaN fails too)
        excess = np.where(np.isnan(err), np.inf, err - bound)
        i = np.unravel_index(int(np.argmax(excess)), err.shape)
        raise AssertionError(f"{what}: |value| {err[i]:.3e} at {tuple(int(j) for j in i)} exceeds its bound "
                             f"{bound[i]:.3e} ({int((~(err <= bound)).sum())} of {err.size} entries do)")


def test_normalized_rows_have_zero_mean_unit_variance():
    x = np.random.default_rng(0).standard_normal((4, 7, 16)) * 3 + 5
    out, _ = layernorm_forward(x, np.ones(16), np.zeros(16), eps=0.0)
    np.testing.assert_allclose(out.mean(-1), 0, atol=1e-12)
    np.testing.assert_allclose(out.var(-1), 1, rtol=1e-12)


@given(data=st.data(), dtype=S.DTYPES)
def test_single_channel_gives_bias_and_zero_gradient(data, dtype):
    # With C = 1 every row equals its mean: xhat = 0, out = b, and no gradient reaches x or w.
    r = S.rng(data)
    x, w, b = S.normal(r, (2, 3, 1), dtype), S.normal(r, 1, dtype), S.normal(r, 1, dtype)
    out, cache = layernorm_forward(x, w, b)
    assert np.array_equal(out, np.broadcast_to(b, x.shape)), f"out {out.ravel()} is not the bias {b}"
    dx, dw, db = layernorm_backward(S.normal(r, x.shape, dtype), cache)
    assert not dx.any() and not dw.any(), f"max |dx| {np.abs(dx).max():.3e}, |dw| {np.abs(dw).max():.3e}; both must be 0"


@given(data=st.data())
def test_two_channels_match_the_closed_form(data):
    # With C = 2 and d = (x1 - x2) / 2:  xhat = (d, -d) / sqrt(d^2 + eps), out = xhat * w + b, so
    # dL/dx1 = -dL/dx2 = (g1 w1 - g2 w2) * eps / (2 (d^2 + eps)^(3/2))  (g = dL/dout), and
    # dw = sum over rows of g * xhat, db = sum over rows of g.
    # Rounding: the row mean is off by ~eps * |x|, which xhat magnifies by rstd, and dx is a
    # cancellation of terms of size rstd * g * w; the bounds below are those sizes times 100 eps.
    r = S.rng(data)
    dtype = np.float64
    eps = 1e-5
    x = S.normal(r, (3, 4, 2), dtype, S.scale(data))
    w, b = S.normal(r, 2, dtype), S.normal(r, 2, dtype)
    out, cache = layernorm_forward(x, w, b, eps=eps)
    d = (x[..., 0] - x[..., 1]) / 2
    xhat1 = d / np.sqrt(d * d + eps)
    rstd = cache[1][..., 0]
    out_bound = 100 * np.finfo(dtype).eps * np.abs(x).max() * rstd * np.abs(w).max()
    assert_within("out[..., 0] - (xhat1 w1 + b1)", out[..., 0] - (xhat1 * w[0] + b[0]), out_bound)
    assert_within("out[..., 1] - (-xhat1 w2 + b2)", out[..., 1] - (-xhat1 * w[1] + b[1]), out_bound)
    g = S.normal(r, x.shape, dtype)
    dx, dw, db = layernorm_backward(g, cache)
    dx1 = (g[..., 0] * w[0] - g[..., 1] * w[1]) * eps / (2 * (d * d + eps) ** 1.5)
    bound = (100 * np.finfo(dtype).eps * np.abs(cache[1] * g).max() * np.abs(w).max()
             * (1 + np.abs(x).max() * rstd.max()))
    assert_within("dx[..., 0] - dx1", dx[..., 0] - dx1, bound)
    assert_within("dx[..., 1] + dx1", dx[..., 1] + dx1, bound)
    xhat = np.stack([xhat1, -xhat1], axis=-1)
    sums_bound = 100 * np.finfo(dtype).eps * g.size * np.abs(g).max() * (1 + np.abs(x).max() * rstd.max())
    assert_within("dw - sum(g * xhat)", dw - (g * xhat).sum(axis=(0, 1)), sums_bound)
    assert_within("db - sum(g)", db - g.sum(axis=(0, 1)), sums_bound)


@given(data=st.data(), dtype=S.DTYPES)
def test_two_channels_out_dw_and_db_match_torch(data, dtype):
    # At C = 2 only dx is degenerate (a cancellation down to eps; the test above checks it in
    # float64). The output, ±xhat * w + b, and dw and db are well conditioned in both dtypes.
    r, args = draw_case(data, dtype, bias=True, min_c=2, max_c=2)
    against_torch("layernorm[C=2]", layernorm_forward, lambda d, c: layernorm_backward(d, c)[1:],
                  lambda x, w, b: t_layernorm(x.detach(), w, b), args, ["w", "b"], r)


@given(data=st.data(), dtype=S.DTYPES, bias=st.booleans())
def test_layernorm_output_gives_the_forward_s_out_again(data, dtype, bias):
    # The model's next layer keeps a Rebuild of layernorm_output rather than out (linear.py,
    # Memory): it must make the very same numbers from the cache, bit for bit.
    _, args = draw_case(data, dtype, bias, min_c=1)
    out, cache = layernorm_forward(**args)
    again = layernorm_output(cache, args["b"])
    assert again.shape == out.shape and again.dtype == out.dtype
    np.testing.assert_array_equal(again, out)
    assert not np.shares_memory(again, out)


def test_layernorm_output_refuses_a_bias_the_forward_did_not_have():
    x, w, b = np.ones((1, 2, 3)), np.ones(3), np.ones(3)
    _, with_bias = layernorm_forward(x, w, b)
    _, without = layernorm_forward(x, w, None)
    with pytest.raises(ValueError, match="with a bias; layernorm_output got none"):
        layernorm_output(with_bias, None)
    with pytest.raises(ValueError, match="without a bias; layernorm_output got one"):
        layernorm_output(without, b)
