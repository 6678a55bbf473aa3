import weakref

import numpy as np
import pytest
from hypothesis import assume, given, strategies as st

from numpy_gpt import ffn
from numpy_gpt.ffn import Recompute, ffn_backward, ffn_forward
from numpy_gpt.linear import Rebuild
from tests import strategies as S, tolerances
from tests.lifetimes import HANDS_OVER_ARGUMENTS, alive_at_each_call
from tests.parity import against_finite_differences, against_torch
from torch_gpt.ffn import ffn_forward as t_ffn

ACTIVATIONS = ["relu", "gelu", "gelu_exact"]


def draw_case(data, dtype, bias=True):
    r = S.rng(data)
    B, T, C = S.btc(data, max_c=8)
    H = data.draw(st.sampled_from([4 * C, data.draw(st.integers(1, 9))]), label="H")
    # In float32, weights scaled by 1/sqrt(C) as in a real model keep pre-activations O(1). With
    # N(0, 1) weights they reach -8, where float32 tanh is within an ulp of -1 and whether numpy
    # or torch rounds to exactly -1 decides a derivative of 1e-6 (float64 keeps the wide draw).
    w_scale = 1 / np.sqrt(C) if dtype == np.float32 else 1.0
    args = dict(x=S.normal(r, (B, T, C), dtype, S.scale(data)),
                c_fc_w=S.normal(r, (C, H), dtype, w_scale), c_fc_b=S.normal(r, H, dtype) if bias else None,
                c_proj_w=S.normal(r, (H, C), dtype), c_proj_b=S.normal(r, C, dtype) if bias else None)
    return r, args


# Each combination of dtype, bias and activation gets its own examples (drawn together,
# the derandomized CI profile gave some of them one example or none).
@pytest.mark.parametrize("dtype", S.DTYPE_LIST)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("activation", ACTIVATIONS)
@given(data=st.data())
def test_matches_torch(data, dtype, bias, activation):
    check_against_torch(data, dtype, bias, activation)


@pytest.mark.parametrize("dtype", S.DTYPE_LIST)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("shape", S.EDGE_SHAPES + [dict(B=1, T=1, C=1, H=1)], ids=str)
def test_smallest_shapes_match_torch(shape, dtype, bias, activation):
    pinned = S.Pinned(scale=1.0, **shape)
    check_against_torch(pinned, dtype, bias, activation)
    pinned.assert_all_drawn()


def check_against_torch(data, dtype, bias, activation):
    r, args = draw_case(data, dtype, bias)
    wrt = [k for k, v in args.items() if v is not None]
    backward = lambda d, c: tuple(g for g in ffn_backward(d, c) if g is not None)
    against_torch(f"ffn[{activation}]", ffn_forward, backward, t_ffn, args, wrt, r,
                  kwargs=dict(activation=activation))


@given(data=st.data(), activation=st.sampled_from(ACTIVATIONS))
def test_matches_finite_differences(data, activation):
    r, args = draw_case(data, np.float64)
    if activation == "relu":
        # No difference quotient across ReLU's kink: the largest step (1e-4, tolerances.py) on one
        # input moves a pre-activation by at most 1e-4 * max(|x|, |w|, 1). Draws with a
        # pre-activation within twice that of 0 are set aside (about 1 in 10 at the largest shapes).
        x, w, b = args["x"], args["c_fc_w"], args["c_fc_b"]
        step = max(tolerances.FD_FALLBACK_STEPS) * max(1.0, np.abs(x).max(), np.abs(w).max())
        assume(np.abs(x @ w + b).min() > 2 * step)
    against_finite_differences(f"ffn[{activation}]", ffn_forward, ffn_backward, args, list(args), r,
                               dict(activation=activation))


@pytest.mark.parametrize("option", ["recompute", "rebuild"])
@given(data=st.data(), dtype=S.DTYPES, activation=st.sampled_from(ACTIVATIONS), bias=st.booleans())
def test_keeping_less_gives_the_same_numbers(data, dtype, activation, bias, option):
    # The model runs the FFN with rebuild=True, and with recompute=True from 6 MB hidden layers up
    # (numpy_gpt/block.py); the model's parity tests cover those paths against torch. Here each must
    # equal the default path bit for bit, and keep what ffn.py's Memory section says: recompute,
    # h alone (neither a nor the activation's cache); rebuild, with tanh GELU, everything but a.
    r, args = draw_case(data, dtype, bias)
    out, kept = ffn_forward(**args, activation=activation)
    out_r, cache_r = ffn_forward(**args, activation=activation, **{option: True})
    np.testing.assert_array_equal(out_r, out)
    dout = S.normal(r, out.shape, dtype)
    for g_r, g in zip(ffn_backward(dout, cache_r), ffn_backward(dout, kept)):
        assert (g_r is None) == (g is None)
        if g is not None:
            np.testing.assert_array_equal(g_r, g)
    fc_cache, _, act_cache, proj_cache = cache_r

    def arrays(c):                                  # every array a cache holds, once each
        if isinstance(c, np.ndarray):
            return {id(c): c}
        if isinstance(c, tuple):
            return {k: v for part in c for k, v in arrays(part).items()}
        if isinstance(c, Recompute):
            return arrays(c.h)
        return {}
    kept_bytes = sum(a.nbytes for a in arrays(kept).values())
    less_bytes = sum(a.nbytes for a in arrays(cache_r).values())
    h_bytes = args["x"][..., :1].size * args["c_fc_w"].shape[1] * args["x"].itemsize
    if option == "rebuild":
        rebuilt = activation == "gelu"
        assert isinstance(proj_cache[0], Rebuild) == rebuilt
        assert less_bytes == kept_bytes - (h_bytes if rebuilt else 0)   # a, of h's size, left out
        return
    assert proj_cache[0] is None
    assert act_cache.h.shape == (*args["x"].shape[:-1], args["c_fc_w"].shape[1])
    assert arrays(cache_r).keys() == arrays((fc_cache, proj_cache, act_cache.h)).keys()
    # GELU kept a and s beside h (the exact GELU float64 copies): two arrays of h's size or more.
    # ReLU keeps a and a mask of bools, and h replaces a: the mask is saved.
    saved = h_bytes * (2 if activation != "relu" else 1 / args["x"].itemsize)
    assert less_bytes <= kept_bytes - saved


@HANDS_OVER_ARGUMENTS
@pytest.mark.parametrize("option", ["keep", "recompute", "rebuild"])
def test_the_hidden_layer_is_freed_before_step_1_s_backward(monkeypatch, option):
    """Handed its cache (as block_backward hands it: no other reference left), ffn_backward lets
    go of h and s once the activation's backward has used them, before step 1's products."""
    r = np.random.default_rng(0)
    x, w1, w2 = r.standard_normal((2, 3, 4)), r.standard_normal((4, 16)), r.standard_normal((16, 4))
    out, cache = ffn_forward(x, w1, None, w2, None, "gelu", **({} if option == "keep" else {option: True}))
    hidden = [cache[2].h] if option == "recompute" else list(cache[2])
    alive = alive_at_each_call(monkeypatch, ffn, "linear_backward", hidden)
    n = len(hidden)
    caches = [cache]
    del cache, hidden
    ffn_backward(np.ones_like(out), caches.pop())
    assert alive == [[True] * n, [False] * n]       # step 3, then step 1


@HANDS_OVER_ARGUMENTS
@pytest.mark.parametrize("option", ["recompute", "rebuild"])
def test_a_made_again_is_freed_before_da(monkeypatch, option):
    """With recompute or rebuild, step 3's backward makes a for dc_proj_w = a^T dout and frees it
    before the product that allocates da, so a and da are never held together."""
    from numpy_gpt import activations, linear
    r = np.random.default_rng(0)
    x, w1, w2 = r.standard_normal((2, 3, 4)), r.standard_normal((4, 16)), r.standard_normal((16, 4))
    made = []

    def watched(make):                              # make's output, watched by a weak reference
        def wrapper(*args):
            out = make(*args)
            a = out[0] if isinstance(out, tuple) else out
            made.append(weakref.ref(a))
            return out
        return wrapper
    if option == "recompute":
        monkeypatch.setitem(ffn.ACTIVATIONS, "gelu", (watched(activations.gelu_forward), activations.gelu_backward))
    else:
        monkeypatch.setitem(ffn.OUTPUTS, activations.gelu_forward, watched(activations.gelu_output))
    out, cache = ffn_forward(x, w1, None, w2, None, "gelu", **{option: True})
    made.clear()                                    # the forward's own a: not the one to watch
    alive = []
    matmul = linear.matmul
    monkeypatch.setattr(linear, "matmul", lambda a, b, **k: alive.append(made[0]() is not None) or matmul(a, b, **k))
    caches = [cache]
    del cache
    ffn_backward(np.ones_like(out), caches.pop())
    assert alive[:2] == [True, False]               # step 3's dc_proj_w, then its da
