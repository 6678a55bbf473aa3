import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, strategies as st

from numpy_gpt.loss import cross_entropy_backward, cross_entropy_forward
from tests import strategies as S
from tests.parity import against_finite_differences, against_torch
from tests.tolerances import AS_ACCURATE_AS_TORCH
from torch_gpt.loss import cross_entropy_forward as t_cross_entropy


def draw_case(data, dtype, scale=None):
    r = S.rng(data)
    B, T, V = S.btc(data, max_c=20)
    s = scale if scale is not None else data.draw(st.sampled_from([0.1, 1.0, 10.0, 1e4]), label="scale")
    targets = S.token_ids(data, (B, T), V)
    ignored = r.random((B, T)) < data.draw(st.sampled_from([0.0, 0.3]), label="ignored fraction")
    ignored.flat[r.integers(B * T)] = False                  # keep at least one target
    targets[ignored] = -100
    return r, dict(logits=S.normal(r, (B, T, V), dtype, s), targets=targets)


@given(data=st.data(), dtype=S.DTYPES)
def test_matches_torch(data, dtype):
    # The upstream gradient of a scalar loss is a random scalar, not 1.
    r, args = draw_case(data, dtype)
    dloss = np.asarray(r.standard_normal(), dtype)
    against_torch("cross_entropy", cross_entropy_forward, cross_entropy_backward, t_cross_entropy,
                  args, ["logits"], r, dout=dloss, inputs_in_scale=False, out_in_grad_scale=False)


@given(data=st.data(), dtype=S.DTYPES)
def test_another_ignore_index_matches_torch(data, dtype):
    # The model always passes -100, but ignore_index is public: -1, or a class id (then real
    # targets of that class are ignored too, as torch does).
    r, args = draw_case(data, dtype)
    V = args["logits"].shape[-1]
    ignore_index = data.draw(st.sampled_from([-1, 0, V - 1] if V > 1 else [-1]), label="ignore_index")
    targets = args["targets"]
    targets[targets == -100] = ignore_index
    if (targets == ignore_index).all():                       # keep at least one target
        targets.flat[0] = (ignore_index + 1) % V
    dloss = np.asarray(r.standard_normal(), dtype)
    against_torch("cross_entropy", cross_entropy_forward, cross_entropy_backward, t_cross_entropy,
                  args, ["logits"], r, dout=dloss, inputs_in_scale=False, out_in_grad_scale=False,
                  kwargs=dict(ignore_index=ignore_index))


@given(data=st.data())
def test_matches_finite_differences(data):
    r, args = draw_case(data, np.float64, scale=1.0)
    against_finite_differences("cross_entropy", cross_entropy_forward, cross_entropy_backward,
                               args, ["logits"], r)


@given(data=st.data())
def test_extreme_logits_stay_finite_in_float32(data):
    r, args = draw_case(data, np.float32, scale=1e4)
    loss, cache = cross_entropy_forward(**args)
    assert np.isfinite(loss) and np.isfinite(cross_entropy_backward(1.0, cache)).all()


@given(data=st.data(), dtype=S.DTYPES)
def test_ignored_positions_get_zero_gradient_and_rows_sum_to_zero(data, dtype):
    r, args = draw_case(data, dtype)
    _, cache = cross_entropy_forward(**args)
    d = cross_entropy_backward(1.0, cache)
    assert not d[args["targets"] == -100].any()
    np.testing.assert_allclose(d.sum(-1), 0.0, atol=50 * np.finfo(dtype).eps)


@given(data=st.data(), dtype=S.DTYPES)
def test_consume_writes_the_same_gradient_over_the_cached_probabilities(data, dtype):
    # The model's way (consume=True) saves an (N, V) array; it must give the same numbers,
    # and the default must leave the cache's probabilities as they were.
    r, args = draw_case(data, dtype)
    dloss = np.asarray(r.standard_normal(), dtype)
    _, cache = cross_entropy_forward(**args)
    probs = cache[0]
    before = probs.copy()
    fresh = cross_entropy_backward(dloss, cache)
    np.testing.assert_array_equal(probs, before)
    consumed = cross_entropy_backward(dloss, cache, consume=True)
    assert np.shares_memory(consumed, probs)
    np.testing.assert_array_equal(consumed, fresh)


def test_consume_with_every_target_ignored_gives_zeros_and_leaves_the_cache():
    logits = np.random.default_rng(0).standard_normal((2, 3, 5))
    _, cache = cross_entropy_forward(logits, np.full((2, 3), -100))
    before = cache[0].copy()
    d = cross_entropy_backward(0.5, cache, consume=True)
    assert d.shape == logits.shape and not d.any()
    np.testing.assert_array_equal(cache[0], before)


@pytest.mark.parametrize("top", [5.0, 20.0, 60.0])
def test_a_confident_prediction_s_small_loss_keeps_its_digits_in_float32(top):
    # The target's logit is the largest by 10: the loss is 6.4e-5. Subtracting the max from the
    # target's logit first is exact there; subtracting log-sum-exp as a whole rounds at the scale
    # of the logits (7e-3 to 5e-2 relative error, against torch's 1.7e-4).
    z = np.array([[top + 10, top, top - 1, top - 3], [top - 3, top + 10, top, top]], np.float32)
    y = np.array([0, 1])
    truth = F.cross_entropy(torch.from_numpy(z.astype(np.float64)), torch.from_numpy(y)).item()
    theirs = F.cross_entropy(torch.from_numpy(z), torch.from_numpy(y)).item()
    ours = float(cross_entropy_forward(z, y)[0])
    assert abs(ours - truth) <= AS_ACCURATE_AS_TORCH * max(abs(theirs - truth), np.finfo(np.float32).eps * truth)


def test_uniform_logits_give_log_v():
    loss, _ = cross_entropy_forward(np.zeros((2, 3, 7)), np.zeros((2, 3), np.int64))
    assert abs(float(loss) - np.log(7)) < 1e-15


def test_all_ignored_is_nan_like_torch():
    logits, targets = np.zeros((1, 2, 3)), np.full((1, 2), -100)
    loss, _ = cross_entropy_forward(logits, targets)
    t = t_cross_entropy(torch.from_numpy(logits), torch.from_numpy(targets))
    assert np.isnan(loss) and torch.isnan(t)
