"""The learners' examples (examples/*.py) run as the README tells them to, and say what they claim.

Each example is run as its own program, from the checkout, and its printed lines are read back:
the seed model's answers and its agreement with torch (01), the numbers redone by hand against
the traced ones (02), the checker failing the buggy backward and passing the fixed one (03), and
the character model learning something in a short run (04).
"""
from __future__ import annotations

import math
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from tests import ROOT, child_env

pytest.importorskip("torch")


def run_example(name: str, *args: str) -> str:
    proc = subprocess.run([sys.executable, os.path.join("examples", name), *args], cwd=ROOT,
                          env=child_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{name} exited with {proc.returncode}:\n{proc.stderr[-3000:]}"
    return proc.stdout


def numbers(text: str) -> np.ndarray:
    return np.array([float(v) for v in re.findall(r"-?\d+\.\d+(?:e-?\d+)?", text)])


def test_the_seed_toy_answers_its_question_and_agrees_with_torch():
    out = run_example("01_seed_toy.py")
    first, last = map(float, re.search(r"loss (\S+) -> (\S+) after 30 epochs", out).groups())
    assert last < first / 5                         # 1.61 -> 0.22 (some next words stay ambiguous)
    assert re.search(r"'what is apple <EOS>'\s+-> 'healthy <EOS>'", out)
    worst = float(re.search(r"largest difference from numpy over 30 epochs: (\S+)", out).group(1))
    assert worst < 1e-9
    assert "same answers: True" in out


def test_the_trace_s_numbers_redone_by_hand_equal_the_traced_ones():
    out = run_example("02_trace.py")
    by_hand = out[out.index("==== three numbers by hand"):]
    lines = [line for line in by_hand.splitlines() if "traced" in line]
    assert len(lines) == 3
    for line in lines:
        left, traced = line.split("traced")
        mine = numbers(left.split("=")[-1])          # the right-hand side of the last "="
        assert mine.size == numbers(traced).size > 0, line
        np.testing.assert_allclose(mine, numbers(traced), atol=1e-4, err_msg=line)
    pe = numbers(lines[0].split("traced")[1])        # and the first is sin 3, cos 3 itself
    np.testing.assert_allclose(pe, [math.sin(3), math.cos(3)], atol=1e-4)


def test_the_checker_fails_the_buggy_layernorm_backward_and_passes_the_fixed_one():
    out = run_example("03_check_your_backward.py")
    buggy, fixed = out.split("######## fixed")
    assert "FAIL (wrong): wrong dx" in buggy and "(exit code 1)" in buggy
    assert "PASS: every gradient agrees with every oracle" in fixed and "(exit code 0)" in fixed


def test_the_char_model_learns_in_a_short_run():
    out = run_example("04_char_model.py", "--steps", "60", "--prompt", "Once")
    loss, uniform = map(float, re.search(r"validation loss (\S+) nats/char.*ln \d+ = (\S+)\)", out).groups())
    assert loss < uniform - 0.5                      # well below guessing among the characters
    sample = out[out.index("(a uniform guess"):].split("\n\n", 1)[1][:-1]   # printed after a blank line
    assert sample.startswith("Once") and len(sample) == len("Once") + 300   # the prompt, then 300 characters
