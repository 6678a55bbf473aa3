import numpy as np
import pytest
import torch
from hypothesis import given, strategies as st

from numpy_gpt.attention import (EXP_SAFE, MIN_BLOCKED_T, BlockedCache, _core_parts, _softmax_rows, attention_backward,
                                 attention_forward, blocked_causal_attention_backward,
                                 blocked_causal_attention_forward, causal_attention_backward,
                                 causal_attention_forward, causal_bias, query_blocks)
from tests import strategies as S
from tests.lifetimes import HANDS_OVER_ARGUMENTS, alive_at_each_call
from tests.parity import against_finite_differences, against_torch
from torch_gpt import attention as ta


def draw_case(data, dtype, bias=True, s=None, T=None):
    """A layer's arguments; T fixes the sequence length (else drawn up to 7)."""
    r = S.rng(data)
    B, T_drawn, C = S.btc(data, max_t=7, max_c=8)
    T = T_drawn if T is None else T
    n_head = S.heads(data, C)
    if s is None and dtype == np.float32:
        # Inputs of scale 10 give scores near 100: softmax saturates and g - sum(g * y)
        # cancels, so float32 gradients (torch's as much as ours) carry errors up to 5e-5 to 5e-4.
        # numpy_gpt is the closer to float64 in most draws, but in a few (0.4-1% of gradients,
        # python -m tests.float32_accuracy --attention) it is more than 4x further off than torch,
        # which a single draw cannot forgive. That regime is checked tightly in float64 and for
        # finiteness in float32 (test_extreme_scores_stay_finite_in_float32).
        s = data.draw(st.sampled_from([0.01, 1.0]), label="scale")
    s = S.scale(data) if s is None else s
    w = lambda *shape: S.normal(r, shape, dtype, 1 / np.sqrt(shape[0]))
    args = dict(x=S.normal(r, (B, T, C), dtype, s),
                c_attn_w=w(C, 3 * C), c_attn_b=S.normal(r, 3 * C, dtype) if bias else None,
                c_proj_w=w(C, C), c_proj_b=S.normal(r, C, dtype) if bias else None)
    return r, args, dict(n_head=n_head)


def drop_none(backward):
    return lambda d, c: tuple(g for g in backward(d, c) if g is not None)


@pytest.mark.parametrize("dtype", S.DTYPE_LIST)
@pytest.mark.parametrize("bias", [True, False])
@given(data=st.data())
def test_matches_torch(data, dtype, bias):
    check_against_torch(data, dtype, bias)


@pytest.mark.parametrize("dtype", S.DTYPE_LIST)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [dict(s, n_head=h) for s in S.EDGE_SHAPES for h in (1, 2)]
                         + [dict(B=1, T=1, C=1, n_head=1)], ids=str)
def test_smallest_shapes_match_torch(shape, dtype, bias):
    pinned = S.Pinned(scale=1.0, **shape)
    check_against_torch(pinned, dtype, bias)
    pinned.assert_all_drawn()


def check_against_torch(data, dtype, bias):
    r, args, kw = draw_case(data, dtype, bias)
    wrt = [k for k, v in args.items() if v is not None]
    against_torch("attention", attention_forward, drop_none(attention_backward), ta.attention_forward,
                  args, wrt, r, kwargs=kw)


@given(data=st.data())
def test_matches_finite_differences(data):
    r, args, kw = draw_case(data, np.float64, s=1.0)
    against_finite_differences("attention", attention_forward, attention_backward, args, list(args), r, kw)


def draw_qkv(data, dtype, s=1.0):
    r = S.rng(data)
    B, nh = data.draw(st.integers(1, 2), label="B"), data.draw(st.integers(1, 3), label="n_head")
    T_k = data.draw(st.integers(1, 7), label="T_k")
    T_q = data.draw(st.integers(1, T_k), label="T_q")        # T_q < T_k: queries after a KV cache
    hs = data.draw(st.integers(1, 5), label="hs")
    qkv = dict(q=S.normal(r, (B, nh, T_q, hs), dtype, s), k=S.normal(r, (B, nh, T_k, hs), dtype, s),
               v=S.normal(r, (B, nh, T_k, hs), dtype))
    return r, qkv


@pytest.mark.parametrize("dtype", S.DTYPE_LIST)
@given(data=st.data())
def test_core_matches_torch_sdpa_with_cached_keys(data, dtype):
    r, qkv = draw_qkv(data, dtype)
    against_torch("causal_attention", causal_attention_forward, causal_attention_backward,
                  ta.causal_attention_forward, qkv, ["q", "k", "v"], r)


@given(data=st.data())
def test_core_matches_finite_differences(data):
    r, qkv = draw_qkv(data, np.float64)
    against_finite_differences("causal_attention", causal_attention_forward, causal_attention_backward,
                               qkv, ["q", "k", "v"], r)


def blocked_with_rows(data, T_q):
    rows = data.draw(st.integers(1, T_q), label="rows per query block")
    return lambda q, k, v: blocked_causal_attention_forward(q, k, v, rows=rows)


@pytest.mark.parametrize("dtype", S.DTYPE_LIST)
@given(data=st.data())
def test_blocked_core_matches_torch_sdpa_with_cached_keys(data, dtype):
    # The query-blocked core (only the scores each block can see) against torch, with blocks
    # of any size from one row to all of them, after a KV cache or not.
    r, qkv = draw_qkv(data, dtype)
    forward = blocked_with_rows(data, qkv["q"].shape[2])
    against_torch("blocked_attention", forward, blocked_causal_attention_backward,
                  ta.causal_attention_forward, qkv, ["q", "k", "v"], r)


@given(data=st.data())
def test_blocked_core_matches_finite_differences(data):
    r, qkv = draw_qkv(data, np.float64)
    forward = blocked_with_rows(data, qkv["q"].shape[2])
    against_finite_differences("blocked_attention", forward, blocked_causal_attention_backward,
                               qkv, ["q", "k", "v"], r)


@pytest.mark.parametrize("blocked", [False, True])
@given(data=st.data())
def test_cores_match_torch_at_extreme_scores_in_float64(data, blocked):
    # q and k of scale 30 give scores around +-1e3 (exp overflows without the max shift,
    # weights are nearly one-hot). Float64 only: in float32 the scores themselves round by
    # ~1e-4 and the two sides' summation orders decide near-tied weights (see draw_case).
    r, qkv = draw_qkv(data, np.float64, s=30.0)
    if blocked:
        forward, backward = blocked_with_rows(data, qkv["q"].shape[2]), blocked_causal_attention_backward
    else:
        forward, backward = causal_attention_forward, causal_attention_backward
    against_torch("blocked_attention[extreme]" if blocked else "causal_attention[extreme]", forward, backward,
                  ta.causal_attention_forward, qkv, ["q", "k", "v"], r, inputs_in_scale=False)


def draw_dropout(data, r, shape):
    """(keep, p): attention dropout's keep-mask of shape (B, nh, T_q, T_k) and its probability."""
    p = data.draw(st.sampled_from([0.1, 0.5, 0.9]), label="attention dropout p")
    return r.random(shape) >= p, p


def cores_with_dropout(data, T_q):
    """(numpy forward, numpy backward, torch forward), each taking (q, k, v, keep, p): the
    reference core or the query-blocked one, with attention dropout on the weights."""
    if data.draw(st.booleans(), label="query blocks"):
        rows = data.draw(st.integers(1, T_q), label="rows per query block")
        forward = lambda q, k, v, keep, p: blocked_causal_attention_forward(q, k, v, rows=rows, drop=(keep, p))
        backward = blocked_causal_attention_backward
    else:
        forward = lambda q, k, v, keep, p: causal_attention_forward(q, k, v, drop=(keep, p))
        backward = causal_attention_backward
    return forward, backward, lambda q, k, v, keep, p: ta.causal_attention_forward(q, k, v, p, keep)


@pytest.mark.parametrize("dtype", S.DTYPE_LIST)
@given(data=st.data())
def test_core_with_attention_dropout_matches_torch(data, dtype):
    """Step 5b with a shared keep-mask: torch forms the weights explicitly and applies that mask."""
    r, qkv = draw_qkv(data, dtype)
    (B, nh, T_q, _), T_k = qkv["q"].shape, qkv["k"].shape[2]
    keep, p = draw_dropout(data, r, (B, nh, T_q, T_k))
    forward, backward, torch_forward = cores_with_dropout(data, T_q)
    against_torch("attention_dropout", forward, backward, torch_forward, {**qkv, "keep": keep, "p": p},
                  ["q", "k", "v"], r)


@given(data=st.data())
def test_core_with_attention_dropout_matches_finite_differences(data):
    r, qkv = draw_qkv(data, np.float64)
    (B, nh, T_q, _), T_k = qkv["q"].shape, qkv["k"].shape[2]
    keep, p = draw_dropout(data, r, (B, nh, T_q, T_k))
    forward, backward, _ = cores_with_dropout(data, T_q)
    against_finite_differences("attention_dropout", forward, backward, {**qkv, "keep": keep, "p": p},
                               ["q", "k", "v"], r)


@pytest.mark.parametrize("dtype", S.DTYPE_LIST)
@pytest.mark.parametrize("long", [False, True])
@given(data=st.data())
def test_attention_layer_with_dropout_matches_torch(data, dtype, long):
    """The whole layer with a weight mask, short (whole score matrix) and long (query blocks)."""
    r, args, kw = draw_case(data, dtype, T=MIN_BLOCKED_T + 3 if long else None)
    B, T, _ = args["x"].shape
    keep, p = draw_dropout(data, r, (B, kw["n_head"], T, T))
    n_head = kw["n_head"]
    against_torch("attention_dropout", lambda *a: attention_forward(*a[:5], n_head, drop=(a[5], a[6])),
                  drop_none(attention_backward),
                  lambda *a: ta.attention_forward(*a[:5], n_head, None, a[6], a[5]),
                  {**args, "keep": keep, "p": p}, list(args), r)


def test_attention_dropout_zeroes_exactly_the_dropped_weights():
    """With every weight of query t kept but the one on key u, y[t] leaves out v[u] exactly."""
    r = np.random.default_rng(0)
    q, k, v = (r.standard_normal((1, 1, 4, 3)) for _ in range(3))
    keep = np.ones((1, 1, 4, 4), bool)
    keep[0, 0, 3, 1] = False
    y, cache = causal_attention_forward(q, k, v, drop=(keep, 0.5))
    a = cache[3][0, 0]                                          # the weights before dropout
    assert np.allclose(y[0, 0, 3], 2 * (a[3] * keep[0, 0, 3]) @ v[0, 0])
    assert np.allclose(y[0, 0, :3], 2 * a[:3] @ v[0, 0])


@given(data=st.data(), T=st.integers(MIN_BLOCKED_T, MIN_BLOCKED_T + 80), dtype=S.DTYPES)
def test_attention_layer_uses_query_blocks_from_min_blocked_t_and_matches_torch(data, T, dtype):
    # The whole layer at lengths where attention_forward switches to query blocks.
    r, args, kw = draw_case(data, dtype, T=T)
    _, cache = attention_forward(**args, **kw)
    assert isinstance(cache[1], BlockedCache) and len(cache[1].blocks) >= 2
    against_torch("attention", attention_forward, attention_backward, ta.attention_forward,
                  args, list(args), r, kwargs=kw)


def test_query_blocks_cover_every_query_once_and_see_up_to_the_diagonal():
    for T_q, T_k in [(1, 1), (5, 9), (64, 64), (100, 100), (256, 256), (1000, 1024)]:
        blocks = query_blocks(T_q, T_k)
        assert blocks[0][0] == 0 and blocks[-1][1] == T_q and blocks[-1][2] == T_k
        assert all(hi == next_lo for (_, hi, _), (next_lo, _, _) in zip(blocks, blocks[1:]))
        assert all(keys == T_k - T_q + hi and hi > lo for lo, hi, keys in blocks)
    assert len(query_blocks(256, 256)) == 4 and len(query_blocks(1024, 1024)) == 16


@pytest.mark.parametrize("dtype", S.DTYPE_LIST)
@given(data=st.data())
def test_causal_future_inputs_get_exactly_zero_gradient(data, dtype):
    # Output t may depend on inputs 0..t only: backpropagating a gradient that is
    # non-zero only at position t must leave every later input's gradient exactly 0.
    long = data.draw(st.booleans(), label="long enough for query blocks")
    r, args, kw = draw_case(data, dtype, T=MIN_BLOCKED_T + data.draw(st.integers(0, 40)) if long else None)
    out, cache = attention_forward(**args, **kw)
    T = out.shape[1]
    t = data.draw(st.integers(0, T - 1), label="t")
    dout = np.zeros_like(out)
    dout[:, t] = S.normal(r, dout[:, t].shape, dtype)
    dx = attention_backward(dout, cache)[0]
    assert (dx[:, t + 1:] == 0).all()
    # and the forward agrees: changing the future leaves outputs up to t untouched
    x2 = args["x"].copy()
    x2[:, t + 1:] += S.normal(r, x2[:, t + 1:].shape, dtype)
    out2, _ = attention_forward(x2, *list(args.values())[1:], **kw)
    np.testing.assert_array_equal(out2[:, :t + 1], out[:, :t + 1])


@given(data=st.data())
def test_extreme_scores_stay_finite_in_float32(data):
    # Scores up to about +-1e4: softmax saturates to one-hot but nothing overflows.
    r, qkv = draw_qkv(data, np.float32, s=100.0)
    y, cache = causal_attention_forward(**qkv)
    grads = causal_attention_backward(S.normal(r, y.shape, np.float32), cache)
    assert np.isfinite(y).all() and all(np.isfinite(g).all() for g in grads)
    s = cache[3]                                   # the attention weights: rows sum to 1
    np.testing.assert_allclose(s.sum(-1), 1.0, rtol=1e-5)
    y, cache = blocked_causal_attention_forward(**qkv, rows=data.draw(st.integers(1, qkv["q"].shape[2])))
    grads = blocked_causal_attention_backward(S.normal(r, y.shape, np.float32), cache)
    assert np.isfinite(y).all() and all(np.isfinite(g).all() for g in grads)
    for a in cache.a_blocks:
        np.testing.assert_allclose(a.sum(-1), 1.0, rtol=1e-5)


@given(data=st.data(), dtype=S.DTYPES, edge=st.sampled_from(["inside", "at the limit", "outside", "below"]),
       scale=st.sampled_from([0.25, 1.0, 4.0]))
def test_softmax_rows_with_and_without_the_max_shift_agree_with_float64(data, dtype, edge, scale):
    # Blocks whose scaled scores all lie within +-EXP_SAFE skip the row-max shift; others take it.
    r = S.rng(data)
    n, T_k = data.draw(st.integers(1, 40), label="n"), data.draw(st.integers(1, 70), label="T_k")
    T_q = data.draw(st.integers(1, T_k), label="T_q")
    limit = EXP_SAFE[np.dtype(dtype)]
    s = r.uniform(-1.0, 1.0, (n, T_q, T_k))
    top = {"inside": 5.0, "at the limit": limit, "outside": 3 * limit, "below": 3 * limit}[edge]
    s *= top / np.abs(s).max() / scale
    if edge == "below":                                    # every score negative, some far below -EXP_SAFE
        s = -np.abs(s)
    s = s.astype(dtype)
    bias = causal_bias(T_q, T_k, dtype)
    got = s.copy()
    _softmax_rows(got, dtype(scale), bias)                 # scale is a power of 2: exact in any dtype
    assert got.dtype == dtype and np.isfinite(got).all()
    want = s.astype(np.float64) * scale + (0.0 if bias is None else bias)
    want = np.exp(want - want.max(-1, keepdims=True))
    want /= want.sum(-1, keepdims=True)
    np.testing.assert_allclose(got, want, rtol=0, atol=8 * np.finfo(dtype).eps)
    if bias is not None:
        assert (got[:, bias == -np.inf] == 0.0).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_softmax_row_ignores_the_other_rows_scores_bit_for_bit(dtype):
    # One huge score sends its block down the shifted path; every other row must come out
    # exactly as before, including the row for which that score is a masked future key.
    r = np.random.default_rng(0)
    s = r.standard_normal((3, 8, 8)).astype(dtype)
    bias, scale = causal_bias(8, 8, dtype), dtype(0.5)
    base = s.copy()
    _softmax_rows(base, scale, bias)
    huge = dtype(6 * EXP_SAFE[np.dtype(dtype)])
    own = s.copy()
    own[1, -1, -1] = huge                                  # the last query's own key
    _softmax_rows(own, scale, bias)
    np.testing.assert_array_equal(np.delete(own, 7, axis=1), np.delete(base, 7, axis=1))
    np.testing.assert_array_equal(own[[0, 2]], base[[0, 2]])
    assert own[1, -1, -1] == 1.0                           # and that row is the one-hot it should be
    future = s.copy()
    future[1, 0, -1] = huge                                # a key query 0 may not see
    _softmax_rows(future, scale, bias)
    np.testing.assert_array_equal(future, base)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_row_with_scores_far_below_its_maximum_is_shifted_and_keeps_its_small_weights(dtype):
    # Largest score -35 (in range) but another at -100: unshifted, exp(-100) would be subnormal
    # in float32; shifted, the small weight keeps its digits.
    limit = EXP_SAFE[np.dtype(dtype)]
    s = np.array([[[-0.875 * limit, -2.5 * limit, -0.9 * limit]]], dtype)
    got = s.copy()
    _softmax_rows(got, dtype(1.0), None)
    want = np.exp(s.astype(np.float64) - s.max())
    want /= want.sum()
    np.testing.assert_allclose(got, want, rtol=16 * np.finfo(dtype).eps)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_rows_within_exp_safe_go_into_exp_unshifted_without_overflow_or_subnormals(dtype):
    # EXP_SAFE's promise: within +-limit, exp gives a normal number, and even a billion keys at
    # +limit sum to a finite number. A long row at +limit and one at -limit, softmax unshifted,
    # must come out as float64 gives them.
    limit = dtype(EXP_SAFE[np.dtype(dtype)])
    assert np.exp(-limit) >= np.finfo(dtype).tiny
    assert np.isfinite(np.exp(limit) * dtype(1e9))
    s = np.empty((1, 2, 4096), dtype)
    s[0, 0], s[0, 1] = limit, -limit
    s[0, :, ::3] *= dtype(0.5)                             # not one value per row, to see the weights differ
    got = s.copy()
    _softmax_rows(got, dtype(1.0), None)
    want = np.exp(s.astype(np.float64) - s.max(-1, keepdims=True))
    want /= want.sum(-1, keepdims=True)
    np.testing.assert_allclose(got, want, rtol=64 * np.finfo(dtype).eps)


def test_an_empty_batch_gives_empty_attention():
    q = np.zeros((0, 2, 5, 4), np.float32)
    y, cache = causal_attention_forward(q, q, q)
    assert y.shape == q.shape
    y, cache = blocked_causal_attention_forward(q, q, q, rows=2)
    assert y.shape == q.shape


def test_mask_is_minus_infinity_not_a_large_finite_number():
    # With a finite mask such as -1e9, huge scores could leak weight into the future.
    q = np.full((1, 1, 2, 1), 1e6)
    k = np.array([[[[1.0], [1e6]]]])
    v = np.array([[[[0.0], [1.0]]]])
    y, cache = causal_attention_forward(q, k, v)
    assert cache[3][0, 0, 0, 1] == 0.0 and y[0, 0, 0, 0] == 0.0


def test_single_head_scale_is_one_over_sqrt_d_model():
    # The seeds' model: one head, so the scores are divided by sqrt(d_model).
    r = np.random.default_rng(0)
    C = 4
    x = r.standard_normal((1, 3, C))
    w = r.standard_normal((C, 3 * C))
    out, cache = attention_forward(x, w, None, np.eye(C), None, n_head=1)
    q, k, v = x[0] @ w[:, :C], x[0] @ w[:, C:2 * C], x[0] @ w[:, 2 * C:]
    s = q @ k.T / np.sqrt(C)
    s[np.triu_indices(3, 1)] = -np.inf
    a = np.exp(s - s.max(-1, keepdims=True))
    a /= a.sum(-1, keepdims=True)
    np.testing.assert_allclose(out[0], a @ v, rtol=1e-12)



def sharing(fn):
    """fn, run inside S.sharing_everything(): steps 3-6 cut among threads by heads (or batch rows)."""
    def run(*a, **k):
        with S.sharing_everything():
            return fn(*a, **k)
    return run


@pytest.mark.parametrize("dtype", S.DTYPE_LIST)
@pytest.mark.parametrize("T", [None, MIN_BLOCKED_T + 3], ids=["whole", "blocked"])
@pytest.mark.parametrize("drop", [False, True])
@given(data=st.data())
def test_heads_shared_among_threads_match_torch(data, dtype, T, drop):
    """Inside share_products each thread runs steps 3-6 for its group of heads (or of batch
    rows, with one head); the layer's forward and backward still match torch."""
    r, args, kw = draw_case(data, dtype, T=T)
    B, T, _ = args["x"].shape
    n_head = kw["n_head"]
    with S.sharing_everything():
        parts = _core_parts(np.empty((B, n_head, T, 1)), T)
    assert len(parts) == (2 if max(n_head, B) > 1 else 0)      # cut, where there is anything to cut
    keep, p = draw_dropout(data, r, (B, n_head, T, T)) if drop else (None, 0.0)
    against_torch("attention[shared]",
                  sharing(lambda *a: attention_forward(*a[:5], n_head, drop=(a[5], a[6]) if drop else None)),
                  sharing(drop_none(attention_backward)),
                  lambda *a: ta.attention_forward(*a[:5], n_head, None, a[6] if drop else 0.0, a[5]),
                  {**args, "keep": keep, "p": p}, list(args), r)


@pytest.mark.parametrize("T", [7, MIN_BLOCKED_T + 3], ids=["whole", "blocked"])
def test_shared_heads_give_the_usual_cache(T):
    """The cache of a shared core has the form and the numbers of the one-thread cache, so
    a backward written against attention.py's docstring (templates/) reads it as usual."""
    r = np.random.default_rng(0)
    x = r.standard_normal((1, T, 12))
    w = [r.standard_normal(s) / 4 for s in [(12, 36), (36,), (12, 12), (12,)]]
    keep = r.random((1, 3, T, T)) > 0.3
    out, cache = attention_forward(x, *w, 3, drop=(keep, 0.3))
    with S.sharing_everything():
        out_s, cache_s = attention_forward(x, *w, 3, drop=(keep, 0.3))
    np.testing.assert_allclose(out_s, out, rtol=1e-12, atol=1e-14)
    core, core_s = cache[1], cache_s[1]
    assert type(core_s) is type(core)
    if isinstance(core, BlockedCache):
        assert core_s.blocks == core.blocks and core_s.drop_cache[0] is keep
        pairs = list(zip(core_s.a_blocks, core.a_blocks))
    else:
        assert len(core_s) == len(core) == 6 and core_s[5][0] is keep
        pairs = [(core_s[3], core[3])]
    for a_s, a in pairs + list(zip(core_s[:3], core[:3])):
        assert a_s.shape == a.shape
        np.testing.assert_allclose(a_s, a, rtol=1e-12, atol=1e-14)


@HANDS_OVER_ARGUMENTS
@pytest.mark.parametrize("T", [8, MIN_BLOCKED_T])
def test_the_core_s_cache_is_freed_before_step_1_s_backward(monkeypatch, T):
    """Handed its cache (as block_backward hands it), attention_backward lets go of q, k, v and
    the attention weights once the core's backward has used them, before step 1's products."""
    from numpy_gpt import attention
    r = np.random.default_rng(0)
    C = 8
    x = r.standard_normal((2, T, C))
    out, cache = attention_forward(x, r.standard_normal((C, 3 * C)), None, r.standard_normal((C, C)), None, 2)
    core = cache[1]
    weights = core.a_blocks if isinstance(core, BlockedCache) else [core[3]]
    held = [core[0].base] + list(weights)           # q, k, v are views of one array
    alive = alive_at_each_call(monkeypatch, attention, "linear_backward", held)
    n = len(held)
    caches = [cache]
    del cache, core, weights, held
    attention_backward(np.ones_like(out), caches.pop())
    assert alive == [[True] * n, [False] * n]       # step 8, then step 1
