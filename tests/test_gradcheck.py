"""numpy_gpt.gradcheck.check_backward, the finite-difference checker a learner runs on a
backward of their own: it passes a right backward, fails a wrong one, and refuses a
backward whose gradients are missing or misshapen instead of comparing them by broadcasting."""
import numpy as np
import pytest

from numpy_gpt.gradcheck import check_backward
from numpy_gpt.layernorm import layernorm_backward, layernorm_forward
from tests.model_strategies import EDGE_BATCH


def _inputs(dtype=np.float64):
    rng = np.random.default_rng(3)
    return [rng.standard_normal((2, 3, 5)).astype(dtype), rng.standard_normal(5).astype(dtype),
            rng.standard_normal(5).astype(dtype)]


def _check(backward, args=None, **kw):
    return check_backward(layernorm_forward, backward, _inputs() if args is None else args,
                          wrt=[0, 1, 2], names=["dx", "dw", "db"], **kw)


def test_a_right_backward_passes():
    results = _check(layernorm_backward)
    assert [r.name for r in results] == ["dx", "dw", "db"]
    assert all(r.ok() for r in results), results
    assert all(type(r.rel_error) is float for r in results)


def test_a_wrong_backward_fails_on_the_wrong_gradient_only():
    def forgot_mean(dout, cache):           # the classic bug: dx without the - mean(g) term
        dx, dw, db = layernorm_backward(dout, cache)
        xhat, rstd, w, _ = cache
        return dx + rstd * (dout * w).mean(axis=-1, keepdims=True), dw, db

    dx, dw, db = _check(forgot_mean)
    assert not dx.ok() and dx.rel_error > 1e-2
    assert dw.ok() and db.ok()


def test_too_few_gradients_is_an_error():
    with pytest.raises(ValueError, match="returned 1 gradient.*expected 3"):
        _check(lambda dout, cache: layernorm_backward(dout, cache)[0])


def test_a_misshapen_gradient_is_an_error_not_a_broadcast():
    def dw_as_row(dout, cache):
        dx, dw, db = layernorm_backward(dout, cache)
        return dx, dw[None, :], db                 # (1, 5) broadcasts against (5,)

    with pytest.raises(ValueError, match=r"dw has shape \(1, 5\); expected \(5,\), the shape of input 1"):
        _check(dw_as_row)


def test_float32_inputs_are_refused():
    with pytest.raises(TypeError, match="input 0 \\(dx\\) is a float32 array"):
        _check(layernorm_backward, args=_inputs(np.float32))


def test_names_must_match_wrt():
    with pytest.raises(ValueError, match="names has 2 entries for 3 inputs"):
        check_backward(layernorm_forward, layernorm_backward, _inputs(), wrt=[0, 1, 2], names=["dx", "dw"])


def test_a_float32_input_outside_wrt_is_refused_too():
    x, w, b = _inputs()
    with pytest.raises(TypeError, match="input 2 is a float32 array"):
        check_backward(layernorm_forward, lambda d, c: layernorm_backward(d, c)[:2], [x, w, b.astype(np.float32)],
                       wrt=[0, 1], names=["dx", "dw"])


def _linear_check(scale_dx, shapes=((2, 3, 4), (4, 5), (5,))):
    from numpy_gpt.linear import linear_backward, linear_forward
    rng = np.random.default_rng(5)
    x, w, b = (rng.standard_normal(s) for s in shapes)

    def off_by_a_factor(dout, cache):
        dx, dw, db = linear_backward(dout, cache)
        return dx * scale_dx, dw, db

    return check_backward(linear_forward, off_by_a_factor, [x, w, b], wrt=[0, 1, 2], names=["dx", "dw", "db"])


def test_ok_holds_a_gradient_to_the_documented_one_in_a_million():
    # A dx off by 1e-5 relative is wrong at the documented tolerance of 1e-6; ok() with no
    # argument must say so (a looser default would pass it), and still pass the right dw, db.
    dx, dw, db = _linear_check(1 + 1e-5)
    assert not dx.ok(), dx
    assert dw.ok() and db.ok(), (dw, db)


def test_a_larger_fallback_step_does_not_buy_a_wrong_gradient_more_noise_allowance():
    # Rounding noise of a finite difference shrinks as the step grows (eps |L| / step), so the
    # fallback steps must get a smaller allowance than h, not a larger one that hides a 1e-4 error.
    dx, dw, db = _linear_check(1 + 1e-4, shapes=((4, 8, 16), (16, 16), (16,)))
    assert not dx.ok(), dx
    assert dw.ok() and db.ok(), (dw, db)


def test_rel_error_is_the_largest_difference_over_the_largest_magnitude():
    # By its definition max|a - b| / max(max|a|, max|b|, floor): 1 / 1 here, not the mean 1/4.
    from numpy_gpt.gradcheck import rel_error
    assert rel_error(np.array([0.0, 0.0, 0.0, 1.0]), np.zeros(4)) == 1.0
    # One wrong entry among a million is as wrong as it is: 0.5 / 1, not diluted by the rest.
    a = np.ones(1_000_000)
    b = a.copy()
    b[123_456] = 0.5
    assert rel_error(a, b) == 0.5
    # The floor only raises the scale: 1e-9 over a floor of 1e-3.
    assert rel_error(np.zeros(3), np.array([0.0, 1e-9, 0.0]), floor=1e-3) == pytest.approx(1e-6, rel=1e-12)
    assert rel_error(a, a.copy()) == 0.0


def test_the_model_gradcheck_catches_a_wrong_small_gradient(monkeypatch):
    # h.0.ln_1.bias's gradient is about 6e-5 of the largest (wte's) here. Off by 1%, it is wrong
    # far beyond 1e-6 against a floor of 1e-3 of the largest gradient; against the largest
    # gradient itself the error would shrink to ~3e-7 and pass.
    from numpy_gpt.config import GPTConfig
    from numpy_gpt.model import GPT
    from numpy_gpt.parity_report import model_gradcheck
    right_backward = GPT.backward

    def one_percent_off(self, *args, **kwargs):
        grads = right_backward(self, *args, **kwargs)
        grads["h.0.ln_1.bias"] = grads["h.0.ln_1.bias"] * 1.01
        return grads

    monkeypatch.setattr(GPT, "backward", one_percent_off)
    cfg = GPTConfig(vocab_size=7, block_size=5, n_layer=1, n_head=2, n_embd=4, dropout=0.0)
    rows = {r.name: r for r in model_gradcheck(cfg, samples=0, seed=4, batch=EDGE_BATCH)}
    assert rows["h.0.ln_1.bias"].status == "FAIL", rows["h.0.ln_1.bias"]
    assert all(r.status == "ok" for name, r in rows.items() if name != "h.0.ln_1.bias"), rows


def test_a_nan_in_both_tensors_is_a_failure_not_an_exact_match():
    # NaN on both sides means both computations broke; the parity report must not call it equal.
    from numpy_gpt.parity_report import compare
    row = compare("h.0.attn.out", "activation", [np.nan], [np.nan], 1e-9)
    assert row.status == "FAIL", row
