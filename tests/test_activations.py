import numpy as np
import pytest
import torch
from hypothesis import given, strategies as st

from numpy_gpt.activations import ACTIVATIONS
from tests import strategies as S
from tests.parity import against_finite_differences, against_torch
from torch_gpt.activations import ACTIVATIONS as T_ACTIVATIONS

NAME_LIST = sorted(ACTIVATIONS)
NAMES = st.sampled_from(NAME_LIST)


def draw_case(data, dtype, name):
    r = S.rng(data)
    x = S.normal(r, S.btc(data), dtype, data.draw(st.sampled_from([0.1, 1.0, 3.0, 30.0]), label="scale"))
    if name == "relu":
        x[x == 0] = 1.0                       # ReLU has no derivative at exactly 0
    if name == "gelu" and dtype == np.float32:
        # Below x = -4.5, float32 tanh(u) is within an ulp or two of -1, so torch's derivative
        # (true value 2e-7 at x = -5.3) is decided by how tanh rounds (it gives 0). numpy_gpt's
        # sigmoid form resolves it, but torch cannot judge it there: float64 covers the tail,
        # the 400-digit test below checks ours, and +-1e4 stays finite below.
        np.clip(x, dtype(-4.5), None, out=x)
    return r, dict(x=x)


@pytest.mark.parametrize("dtype", S.DTYPE_LIST)
@pytest.mark.parametrize("name", NAME_LIST)
@given(data=st.data())
def test_matches_torch(data, dtype, name):
    check_against_torch(data, dtype, name)


@pytest.mark.parametrize("dtype", S.DTYPE_LIST)
@pytest.mark.parametrize("name", NAME_LIST)
@pytest.mark.parametrize("shape", S.EDGE_SHAPES + [dict(B=1, T=1, C=1)], ids=str)
def test_smallest_shapes_match_torch(shape, dtype, name):
    pinned = S.Pinned(scale=1.0, **shape)
    check_against_torch(pinned, dtype, name)
    pinned.assert_all_drawn()


def check_against_torch(data, dtype, name):
    r, args = draw_case(data, dtype, name)
    forward, backward = ACTIVATIONS[name]
    against_torch(name, forward, backward, T_ACTIVATIONS[name], args, ["x"], r)


@pytest.mark.parametrize("dtype", S.DTYPE_LIST)
def test_relu_at_exactly_zero_takes_torch_s_derivative_of_zero(dtype):
    # The drawn tests move x = 0 away (no derivative there); at 0 and -0 both libraries pick 0.
    x = np.array([[-1.5, -0.0, 0.0, 2.0, 0.0, np.finfo(dtype).tiny]], dtype)
    dout = np.array([[0.3, -0.7, 1.1, 0.5, -2.0, 0.9]], dtype)
    out, cache = ACTIVATIONS["relu"][0](x)
    dx = ACTIVATIONS["relu"][1](dout, cache)
    xt = torch.from_numpy(x).requires_grad_()
    T_ACTIVATIONS["relu"](xt).backward(torch.from_numpy(dout))
    np.testing.assert_array_equal(out, torch.relu(torch.from_numpy(x)).numpy())
    np.testing.assert_array_equal(dx, xt.grad.numpy())
    assert (dx[0, 1:3] == 0).all() and dx[0, 4] == 0 and dx[0, 5] == dout[0, 5]


@given(data=st.data(), name=NAMES)
def test_matches_finite_differences(data, name):
    r, args = draw_case(data, np.float64, name)
    if name == "relu":                        # keep every x a step h away from the kink
        args["x"][np.abs(args["x"]) < 1e-3] = 0.5
    if name in ("gelu", "gelu_exact"):
        # Below x = -5, gelu_exact's 1 + erf cancels (to 1e-11 at x = -6): its float64 forward
        # is then off by ~1e-5 relative (as torch's tanh GELU is; ours uses the sigmoid form,
        # checked to 400 digits below), and further out the gradient underflows (1e-83 at
        # x = -30); no finite difference can check it to 1e-6. The tail is compared with torch
        # and kept finite at +-1e4 above.
        np.clip(args["x"], -5.0, 5.0, out=args["x"])
    forward, backward = ACTIVATIONS[name]
    against_finite_differences(name, forward, backward, args, ["x"], r)


@pytest.mark.parametrize("name", NAME_LIST)
@given(data=st.data(), dtype=S.DTYPES, rows=st.sampled_from([1, 3, 700]))
def test_backward_written_over_dout_gives_the_same_numbers(data, dtype, name, rows):
    """out=dout (as ffn_backward calls it) returns dout itself, holding what out=None returns.

    700 rows of 128 are several of parallel.for_row_blocks' blocks, each reading and
    writing its own rows of the one array."""
    r = S.rng(data)
    x = S.normal(r, (rows, 128), dtype, data.draw(st.sampled_from([0.1, 3.0, 30.0]), label="scale"))
    dout = S.normal(r, x.shape, dtype)
    forward, backward = ACTIVATIONS[name]
    _, cache = forward(x)
    want = backward(dout.copy(), cache)
    given_dout = dout.copy()
    got = backward(given_dout, cache, out=given_dout)
    assert got is given_dout
    np.testing.assert_array_equal(got, want)
    assert not np.array_equal(want, dout)          # the backward did change what it was given


@given(dtype=S.DTYPES)
def test_gelus_agree_closely_but_not_exactly(dtype):
    # The tanh form approximates the erf form to within about 1e-3 on ordinary inputs.
    x = np.linspace(-6, 6, 1001).astype(dtype)
    exact, _ = ACTIVATIONS["gelu_exact"][0](x)
    approx, _ = ACTIVATIONS["gelu"][0](x)
    diff = np.abs(exact.astype(np.float64) - approx)
    assert diff.max() < 1e-3 and diff.max() > 1e-5


def test_extreme_inputs_stay_finite():
    x = np.array([-1e4, -50.0, 0.0, 50.0, 1e4], np.float32)
    for name, (forward, backward) in ACTIVATIONS.items():
        out, cache = forward(x)
        assert np.isfinite(out).all() and np.isfinite(backward(np.ones_like(x), cache)).all(), name
        np.testing.assert_allclose(out[[0, -1]], [0.0, 1e4], atol=1e-3)


def test_tanh_gelu_keeps_its_digits_in_the_negative_tail():
    """gelu_forward and gelu_backward use s = (1 + tanh u) / 2 = sigmoid(2u): no cancellation for x << 0.

    The reference is the formula as written, at 400 significant digits (mpmath, which torch
    brings in through sympy); 1 + tanh(u) in float64 would be off by ~1e-5 relative at x = -6,
    in the forward and in the derivative.
    """
    mp = pytest.importorskip("mpmath")
    mp.mp.dps = 400                      # 1 + tanh(u) reaches 1e-262 at x = -20
    x = np.linspace(-20.0, -4.0, 161)
    out, cache = ACTIVATIONS["gelu"][0](x)
    dx = ACTIVATIONS["gelu"][1](np.ones_like(x), cache)
    c, k = mp.sqrt(2 / mp.pi), mp.mpf("0.044715")
    for xi, oi, si, di in zip(x, out, cache[1], dx):
        xm = mp.mpf(xi)
        t = mp.tanh(c * (xm + k * xm ** 3))
        want_out, want_s = xm * (1 + t) / 2, (1 + t) / 2
        want_dx = (1 + t) / 2 + xm / 2 * (1 - t * t) * c * (1 + 3 * k * xm ** 2)
        assert abs(oi - want_out) <= 1e-13 * abs(want_out), xi
        assert abs(si - want_s) <= 1e-13 * abs(want_s), xi
        assert abs(di - want_dx) <= 1e-12 * abs(want_dx), xi

@pytest.mark.parametrize("dtype, big", [(np.float32, [1e12, 2e13, 1e18]), (np.float64, [1e100, 1e103, 1e150])])
def test_tanh_gelu_derivative_is_one_and_zero_far_out_not_nan(dtype, big):
    # x du/dx overflows long before x^2 does; s (1 - s) is 0 there and must keep the product 0.
    x = np.array(big + [-v for v in big], dtype)
    with np.errstate(over="ignore"):                        # x^3 overflows in the forward: exp(-inf), 1/inf
        out, cache = ACTIVATIONS["gelu"][0](x)
    dx = ACTIVATIONS["gelu"][1](np.ones_like(x), cache)
    np.testing.assert_array_equal(dx, [1.0] * len(big) + [0.0] * len(big))
    np.testing.assert_array_equal(out, np.where(x > 0, x, 0.0))
