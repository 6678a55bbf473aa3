"""numpy_gpt.gradcheck.check_backward, the finite-difference checker a learner runs on a
backward of their own: it passes a right backward, fails a wrong one, and refuses a
backward whose gradients are missing or misshapen instead of comparing them by broadcasting."""
import numpy as np
import pytest

from numpy_gpt.gradcheck import check_backward
from numpy_gpt.layernorm import layernorm_backward, layernorm_forward


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
