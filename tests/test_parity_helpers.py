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
    (lambda d, c: (*linear_backward(d, c)[:2], linear_backward(d, c)[2][None]), "db is of shape (1, 5); b has shape (5,)"),
    (lambda d, c: (*linear_backward(d, c)[:2], None), "db is None; b has shape (5,)"),
])
def test_a_wrong_count_or_shape_of_gradients_is_named(backward, message):
    with pytest.raises(AssertionError, match=re.escape(message)):
        run(backward)
