import numpy as np
import pytest
from hypothesis import given, strategies as st

from numpy_gpt.embedding import RANK_ROUNDS, embedding_backward, embedding_forward, scatter_add_rows
from tests import strategies as S
from tests.parity import against_finite_differences, against_torch
from tests.tolerances import SUMMATION_ORDER
from torch_gpt.embedding import embedding_forward as t_embedding


def draw_case(data, dtype):
    r = S.rng(data)
    B, T, C = S.btc(data)
    V = data.draw(st.integers(1, 10), label="V")        # small V: repeated ids are the rule
    idx = S.token_ids(data, (B, T), V)
    return r, dict(idx=idx, wte=S.normal(r, (V, C), dtype, S.scale(data)))


@given(data=st.data(), dtype=S.DTYPES)
def test_matches_torch(data, dtype):
    r, args = draw_case(data, dtype)
    against_torch("embedding", embedding_forward, embedding_backward, t_embedding, args, ["wte"], r)


@pytest.mark.parametrize("dtype", S.DTYPE_LIST)
@given(data=st.data())
def test_matches_torch_with_an_id_past_rank_rounds_beside_singletons(data, dtype):
    # Once some id occurs more than RANK_ROUNDS times, scatter_add_rows sums the repeated ids'
    # runs with reduceat and writes the ids seen once separately; drawn batches rarely mix the
    # two. Here: one id past that count, a few ids repeated 2 to RANK_ROUNDS times, and
    # singletons, shuffled and given random ids.
    r = S.rng(data)
    many = data.draw(st.integers(RANK_ROUNDS + 1, 2 * RANK_ROUNDS + 2), label="occurrences of the frequent id")
    few = [int(r.integers(2, RANK_ROUNDS + 1)) for _ in range(data.draw(st.integers(0, 3), label="ids repeated a few times"))]
    n_single = data.draw(st.integers(1, 5), label="ids seen once")
    counts = [many, *few] + [1] * n_single
    V = len(counts) + data.draw(st.integers(0, 3), label="unused ids")
    labels = r.permutation(V)[:len(counts)]
    ids = r.permutation(np.repeat(labels, counts))
    B = data.draw(st.sampled_from([b for b in (1, 2, 3) if ids.size % b == 0]), label="B")
    idx = ids.reshape(B, -1)
    seen = np.bincount(idx.ravel(), minlength=V)
    assert seen.max() > RANK_ROUNDS and (seen == 1).any()
    wte = S.normal(r, (V, data.draw(st.integers(1, 6), label="C")), dtype)
    against_torch("embedding", embedding_forward, embedding_backward, t_embedding, dict(idx=idx, wte=wte),
                  ["wte"], r)
    # The tied head's path: added into the head's own gradient of wte (out=), where writing the
    # ids seen once with = instead of += would pass the comparison above, whose out starts at 0.
    out, cache = embedding_forward(idx, wte)
    dout, head = S.normal(r, out.shape, dtype), S.normal(r, wte.shape, dtype)
    want = head + embedding_backward(dout, cache)
    tol = SUMMATION_ORDER[np.dtype(dtype)]
    np.testing.assert_allclose(embedding_backward(dout, cache, out=head), want, rtol=tol, atol=tol)


@given(data=st.data())
def test_matches_finite_differences(data):
    r, args = draw_case(data, np.float64)
    against_finite_differences("embedding", embedding_forward, embedding_backward, args, ["wte"], r)


@given(data=st.data(), dtype=S.DTYPES)
def test_repeated_ids_accumulate(data, dtype):
    # Every position holding id v adds its gradient to row v: the row's gradient is the
    # plain sum over those positions, which we compute here position by position.
    r, args = draw_case(data, dtype)
    out, cache = embedding_forward(**args)
    dout = S.normal(r, out.shape, dtype)
    dwte = embedding_backward(dout, cache)
    expected = np.zeros(args["wte"].shape, np.float64)
    for (b, t), v in np.ndenumerate(args["idx"]):
        expected[v] += dout[b, t]
    tol = SUMMATION_ORDER[np.dtype(dtype)]
    np.testing.assert_allclose(dwte, expected, rtol=tol, atol=tol)


@given(data=st.data(), dtype=S.DTYPES)
def test_backward_into_out_adds_to_it_in_place(data, dtype):
    # The tied head passes its own gradient of wte as out: the embedding's part is added
    # to it, in place, as a separate array added afterwards would be (to rounding: rows
    # may be added one occurrence at a time rather than summed first).
    r, args = draw_case(data, dtype)
    out, cache = embedding_forward(**args)
    dout = S.normal(r, out.shape, dtype)
    head = S.normal(r, args["wte"].shape, dtype)
    want = head + embedding_backward(dout, cache)
    got = embedding_backward(dout, cache, out=head)
    assert got is head
    tol = SUMMATION_ORDER[np.dtype(dtype)]
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


def test_fancy_index_assignment_would_drop_repeats():
    # The trap the backward avoids: with ids (1, 1), `d[ids] += g` counts one of the two.
    g = np.ones((2, 3))
    naive = np.zeros((4, 3))
    naive[np.array([1, 1])] += g
    ours = np.zeros((4, 3))
    scatter_add_rows(ours, np.array([1, 1]), g)
    assert naive[1, 0] == 1.0 and ours[1, 0] == 2.0


@given(data=st.data())
def test_scatter_add_equals_add_at(data):
    # V up to 64 against up to 80 ids: some ids once, some repeated, or all one kind.
    r = S.rng(data)
    n, V = data.draw(st.integers(0, 80)), data.draw(st.integers(1, 64))
    C = data.draw(st.integers(1, 5))
    rows, values = r.integers(0, V, n), r.standard_normal((n, C))
    a = r.standard_normal((V, C))                  # a table that already holds values
    b = a.copy()
    np.add.at(a, rows, values)
    scatter_add_rows(b, rows, values)
    np.testing.assert_allclose(b, a, rtol=SUMMATION_ORDER[b.dtype], atol=SUMMATION_ORDER[b.dtype])


@pytest.mark.parametrize("V", [2, 64, 10_000])
def test_scatter_add_takes_both_paths_and_equals_add_at(V):
    # V = 2: each id about 100 times (reduceat); V = 64 or 10,000: a few times at most (rounds).
    r = np.random.default_rng(V)
    rows, values = r.integers(0, V, 200), r.standard_normal((200, 3))
    assert (np.bincount(rows).max() <= RANK_ROUNDS) == (V > 2)
    a = r.standard_normal((V, 3))
    b = a.copy()
    np.add.at(a, rows, values)
    scatter_add_rows(b, rows, values)
    np.testing.assert_allclose(b, a, rtol=SUMMATION_ORDER[b.dtype], atol=SUMMATION_ORDER[b.dtype])
