"""The parity helpers refuse a backward that returns the wrong number or shapes of gradients."""
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


def test_only_the_spurious_matmul_flag_earns_a_rerun():
    from hypothesis.errors import FlakyFailure

    from tests.conftest import SPURIOUS_MATMUL, spurious_matmul_flag
    spurious = FloatingPointError(SPURIOUS_MATMUL)
    assert spurious_matmul_flag(spurious)
    assert spurious_matmul_flag(FlakyFailure("flaky", [spurious]))
    assert spurious_matmul_flag(ExceptionGroup("two", [spurious, FloatingPointError(SPURIOUS_MATMUL)]))
    for other in (FloatingPointError("overflow encountered in matmul"),
                  FloatingPointError("invalid value encountered in exp"),
                  AssertionError(SPURIOUS_MATMUL), ValueError("x"),
                  FlakyFailure("flaky", [spurious, AssertionError("wrong dx")]),
                  ExceptionGroup("empty?", [AssertionError("no")])):
        assert not spurious_matmul_flag(other), other


def test_a_spurious_matmul_flag_reruns_the_test_unchanged_and_a_real_nan_still_fails(tmp_path):
    import os
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    (tmp_path / "conftest.py").write_text("from tests.conftest import pytest_runtest_call, pytest_terminal_summary  # noqa\n")
    (tmp_path / "test_inner.py").write_text(
        "import numpy as np\n"
        "from hypothesis import given, strategies as st\n"
        "CALLS = []\n"
        "def test_flag_once():\n"
        "    CALLS.append(1)\n"
        "    if len(CALLS) == 1:\n"
        "        raise FloatingPointError('invalid value encountered in matmul')\n"
        "def test_output_still_captured(capsys):\n"
        "    CALLS.append(2)\n"
        "    print('run', CALLS.count(2))\n"
        "    if CALLS.count(2) == 1:\n"
        "        raise FloatingPointError('invalid value encountered in matmul')\n"
        "    assert 'run 2' in capsys.readouterr().out\n"
        "def test_real_nan():\n"
        "    np.array([np.inf], np.float32) @ np.array([0.0], np.float32)\n"
        "@given(st.integers(0, 3))\n"
        "def test_real_nan_drawn(n):\n"
        "    np.full(n + 1, np.inf, np.float32) @ np.zeros(n + 1, np.float32)\n"
        "def test_other_error():\n"
        "    raise FloatingPointError('invalid value encountered in exp')\n")
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                          capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "PYTHONPATH": root},
                          timeout=120)
    out = done.stdout
    assert done.returncode == 1 and "3 failed, 2 passed" in out, out
    section = out.split("re-run after a spurious")[1].split("short test summary")[0]
    for name in ("test_flag_once", "test_output_still_captured", "test_real_nan", "test_real_nan_drawn"):
        assert f"::{name}\n" in section, (name, out)
    assert "test_other_error" not in section, out
    for name in ("test_real_nan", "test_real_nan_drawn", "test_other_error"):
        assert f"FAILED test_inner.py::{name} - FloatingPointError" in out, (name, out)
