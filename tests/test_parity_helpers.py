"""The parity helpers refuse a backward that returns the wrong number or shapes of gradients; the
worst-error table (tests/conftest.py) is written where asked, or refused before the run."""
import json
import os
import re

import numpy as np
import pytest

from numpy_gpt.linear import linear_backward, linear_forward
from tests.parity import against_torch
from torch_gpt.linear import linear_forward as t_linear


def run(backward):
    r = np.random.default_rng(0)
    args = dict(x=r.standard_normal((2, 3, 4)), w=r.standard_normal((4, 5)), b=r.standard_normal(5))
    return against_torch("linear", linear_forward, backward, t_linear, args, ["x", "w", "b"], r)


def test_only_a_c_attn_bias_differing_in_its_key_part_alone_is_set_apart_as_free():
    from numpy_gpt.parity_report import FREE
    from torch_gpt.parity import _judged
    C, tol = 4, 1e-9
    ours = np.arange(1.0, 3 * C + 1)
    key_off, query_off = ours.copy(), ours.copy()
    key_off[C:2 * C] += 0.5
    query_off[0] += 0.5
    statuses = lambda rows: [(r.name, r.status) for r in rows]
    name = "exp_avg.h.1.attn.c_attn.bias"
    assert statuses(_judged(name, "optimizer state", ours, key_off, tol, C)) == [
        (f"{name}[query, value]", "exact"), (f"{name}[key]", FREE)]
    both = key_off.copy()
    both[0] += 0.5
    for theirs in (query_off, both):                                    # a query or value part off fails it whole
        assert statuses(_judged(name, "optimizer state", ours, theirs, tol, C)) == [(name, "FAIL")]
    assert statuses(_judged(name, "optimizer state", ours, ours, tol, C)) == [(name, "exact")]
    assert statuses(_judged("h.1.attn.c_proj.bias", "parameter", ours, key_off, tol, C)) == [
        ("h.1.attn.c_proj.bias", "FAIL")]                              # no other tensor is free


def test_the_correct_backward_passes():
    assert set(run(linear_backward)) == {"x", "w", "b"}


@pytest.mark.parametrize("backward, message", [
    (lambda d, c: linear_backward(d, c) + (np.zeros(5),), "returned 4 gradient(s); expected 3"),
    (lambda d, c: linear_backward(d, c)[:2], "returned 2 gradient(s); expected 3"),
    (lambda d, c: (*linear_backward(d, c)[:2], linear_backward(d, c)[2][None]), "db has shape (1, 5); expected (5,), the shape of b"),
    (lambda d, c: (*linear_backward(d, c)[:2], None), "db is None; expected an array of shape (5,), the shape of b"),
])
def test_a_wrong_count_or_shape_of_gradients_is_named(backward, message):
    with pytest.raises(AssertionError, match=re.escape(message)):
        run(backward)


@pytest.fixture
def worst_table_untouched():
    # assert_close records every error it judges in tests.parity.WORST, the table printed at the
    # end of the run; the made-up errors of these tests of the helper itself stay out of it.
    from tests import parity
    saved = dict(parity.WORST)
    yield
    parity.WORST.clear()
    parity.WORST.update(saved)


def test_the_float64_truth_forgives_only_a_result_as_close_as_torch_and_near_the_truth(worst_table_untouched):
    from tests.parity import assert_close
    truth = np.array([1.0, 2.0, 3.0])
    torch32 = truth * (1 + 3e-3)                          # a loose reference, off by 3e-3
    assert_close("helper", "as good as torch", truth * (1 + 2e-3), torch32, 1e-4, truth=truth)
    with pytest.raises(AssertionError, match="rel error"):             # worse than torch by > 4x
        assert_close("helper", "worse than torch", truth * (1 + 2e-2), torch32, 1e-4, truth=truth)
    far = truth * (1 + 0.05)                              # torch itself 5% off: no pass at 4x that
    with pytest.raises(AssertionError, match="rel error"):
        assert_close("helper", "beyond the cap", truth * (1 + 0.1), far, 1e-4, truth=truth)


def test_the_suite_fails_on_a_nan_or_overflow_but_not_on_a_products_invalid_flag(threads):
    # tests/conftest.py: every floating-point error fails a test, in the calling thread and in
    # numpy_gpt's pool, except "invalid value encountered in matmul" (OpenBLAS sets it falsely).
    from numpy_gpt.parallel import _submit
    inf = np.array([np.inf], np.float32)
    with pytest.raises(RuntimeWarning, match="invalid value encountered in subtract"):
        inf - inf
    threads(2)
    with pytest.raises(RuntimeWarning, match="invalid value encountered in multiply"):
        _submit(lambda: inf * 0).result()                  # on a pool thread
    with pytest.raises(FloatingPointError, match="overflow encountered in matmul"):
        np.full((1, 2), 3e38, np.float32) @ np.full((2, 1), 10, np.float32)
    with pytest.raises(FloatingPointError, match="divide by zero"):
        np.float32(1) / np.zeros(1, np.float32)
    # A product whose flag is set (inf * 0 here, which really sets it) passes the suite's rule...
    zero = np.zeros((1, 1), np.float32)
    with np.errstate(invalid="raise"), pytest.raises(FloatingPointError, match="invalid value encountered in matmul"):
        inf[None] @ zero
    assert np.isnan(inf[None] @ zero).all()
    # ...and its NaN still fails any comparison it reaches.
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(inf[None] @ zero, zero)



class _Reporter:
    """The few methods of pytest's terminal reporter that the summary uses, keeping the lines."""
    def __init__(self):
        self.lines = []

    def section(self, title):
        self.lines.append(title)

    def write_line(self, line, **markup):
        self.lines.append(line)


@pytest.mark.parametrize("where, said", [("absent/e.json", "absent is not a folder this user can write to"),
                                         (".", "it is a folder"), ("e.json", None)])
def test_the_error_table_path_is_checked_before_the_run(tmp_path, monkeypatch, worst_table_untouched, where, said):
    # NUMPY_GPT_ERROR_TABLE is written at the end of a run (20 minutes for the thorough profile):
    # a path it cannot be written to is refused at the start (pytest prints the one line and
    # exits 4), and a write that fails at the end anyway is said without undoing the run's outcome.
    from tests import conftest, parity

    class Config:
        def addinivalue_line(self, *args):
            pass
    path = tmp_path / where
    monkeypatch.setenv("NUMPY_GPT_ERROR_TABLE", str(path))
    if said is not None:
        with pytest.raises(pytest.UsageError, match=f"NUMPY_GPT_ERROR_TABLE={re.escape(str(path))}: .*{said}"):
            conftest.pytest_configure(Config())
        return
    conftest.pytest_configure(Config())
    parity.WORST.clear()
    parity.WORST[("linear", "out", "float64", "torch")] = (1e-15, 1e-9)
    tr = _Reporter()
    conftest.pytest_terminal_summary(tr, 0, None)
    assert json.loads(path.read_text())[0]["worst_rel_error"] == 1e-15 and tr.lines[-1] == f"written to {path}"
    os.remove(path)
    os.mkdir(path)                                  # something took the name during the run
    conftest.pytest_terminal_summary(tr, 0, None)
    assert tr.lines[-1].startswith(f"NUMPY_GPT_ERROR_TABLE: could not write {path}: "), tr.lines[-1]
