"""numpy_gpt.parallel: elementwise kernels split into row blocks on threads (each row computed
as it would be alone, so bit-identical for any thread count), and data-parallel training steps
(one batch shard per thread, gradients added), which agree with one thread to rounding."""
import contextlib
import os
import sys

import numpy as np
import pytest

from numpy_gpt import GPT, GPTConfig, parallel
from numpy_gpt.activations import gelu_backward, gelu_forward
from numpy_gpt.loss import IGNORE_INDEX, cross_entropy_backward, cross_entropy_forward
from numpy_gpt.optim import AdamW
from tests import child_env
from tests.tolerances import SHARDED_LOSS, SHARDED_PARAMS_THREADS

threadpoolctl = pytest.importorskip("threadpoolctl")


def train_steps(n_threads, dtype=np.float64, steps=3, dropout=0.0, batch=8, mlp=True):
    parallel.set_num_threads(n_threads)
    cfg = GPTConfig(vocab_size=50, block_size=64, n_layer=2, n_head=2, n_embd=64,
                    pos_encoding="learned", dropout=dropout, mlp=mlp)
    model = GPT(cfg, seed=0, dtype=dtype)
    opt = AdamW(model.params, lr=1e-3)
    r = np.random.default_rng(0)
    x, y = r.integers(0, 50, (batch, 64)), r.integers(0, 50, (batch, 64))   # 0.5-1 MB arrays: several blocks
    y[: batch // 2] = IGNORE_INDEX                  # the first shard's targets all ignored but one
    y[0, 0] = 3
    losses, masks = [], []
    for _ in range(steps):
        _, loss = model.forward(x, y)
        masks.append(dict(model.masks))
        opt.step(model.backward())
        losses.append(float(loss))
    return losses, model.params, masks


def test_elementwise_kernels_are_bit_identical_for_any_thread_count(threads):
    r = np.random.default_rng(1)
    x, g = r.standard_normal((2, 64, 4096), dtype=np.float32)
    z, y = r.standard_normal((4096, 300), dtype=np.float32), r.integers(0, 300, 4096)
    results = []
    for n in (1, 3):
        threads(n)
        out, cache = gelu_forward(x)
        loss, ce = cross_entropy_forward(z, y)
        results.append([out, gelu_backward(g, cache), loss, cross_entropy_backward(1.0, ce)])
    for a, b in zip(*results):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("n", [2, 3])
def test_data_parallel_steps_agree_with_one_thread(threads, n):
    l1, p1, _ = train_steps(1)
    ln, pn, _ = train_steps(n)
    np.testing.assert_allclose(ln, l1, rtol=SHARDED_LOSS)
    for k in p1:
        np.testing.assert_allclose(pn[k], p1[k], **SHARDED_PARAMS_THREADS, err_msg=k)


def test_data_parallel_steps_are_repeatable(threads):
    a, b = train_steps(2, dtype=np.float32), train_steps(2, dtype=np.float32)
    assert a[0] == b[0]
    assert all(np.array_equal(a[1][k], b[1][k]) for k in a[1])


@pytest.mark.parametrize("mlp", [True, False])
def test_data_parallel_draws_the_whole_batch_masks(threads, mlp):
    """The shards get the masks one whole-batch forward draws, in its order: the same masks, the
    same names, and so the same losses (a mask drawn for a layer the model lacks would shift
    every mask after it)."""
    l1, _, m1 = train_steps(1, dropout=0.2, steps=2, mlp=mlp)
    l2, _, m2 = train_steps(2, dropout=0.2, steps=2, mlp=mlp)
    per_layer = 3 if mlp else 2                     # attn_weights, attn (and mlp)
    for a, b in zip(m1, m2):
        assert a.keys() == b.keys() and len(a) == 1 + 2 * per_layer   # drop + 2 layers
        assert all(np.array_equal(a[k], b[k]) for k in a)
    np.testing.assert_allclose(l2, l1, rtol=SHARDED_LOSS)


def test_batch_shards(threads):
    threads(3)
    assert parallel.batch_shards(8) == [slice(0, 2), slice(2, 5), slice(5, 8)]
    assert parallel.batch_shards(2) == [slice(0, 1), slice(1, 2)]     # no empty shards
    assert parallel.batch_shards(1) == [slice(0, 1)]
    threads(1)
    assert parallel.batch_shards(8) == [slice(0, 8)]


def test_map_shards_gives_blas_one_thread_and_restores_it(threads):
    threads(2)
    blas = threadpoolctl.ThreadpoolController().select(user_api="blas")
    with blas.limit(limits=2):
        inside = parallel.map_shards(lambda i: blas.info()[0]["num_threads"], [0, 1])
        assert inside == [1, 1]
        with pytest.raises(ZeroDivisionError):
            parallel.map_shards(lambda i: 1 / i, [1, 0])
        assert blas.info()[0]["num_threads"] == 2


def test_blocks_cover_every_row_once(threads):
    seen = np.zeros(1000, int)

    def kernel(lo, hi):
        seen[lo:hi] += 1
    threads(2)
    parallel.for_row_blocks(kernel, 1000, 4096)      # 64 rows a block: 16 blocks
    assert (seen == 1).all()


def test_for_blocks_calls_each_block_once_on_the_threads_allowed(threads):
    import threading
    threads(2)
    calls, where = [], set()

    def kernel(name, n):
        calls.append((name, n))
        where.add(threading.get_ident())
    blocks = [("a", i) for i in range(5)] + [("b", 0)]
    parallel.for_blocks(kernel, blocks)
    assert sorted(calls) == sorted(blocks) and len(where) == 2
    calls.clear(), where.clear()
    parallel.for_blocks(kernel, blocks, max_threads=1)
    assert calls == blocks and where == {threading.get_ident()}     # in order, on the caller


def test_bad_thread_count():
    with pytest.raises(ValueError, match="0"):
        parallel.set_num_threads(0)


def test_keep_freed_memory(monkeypatch):
    import ctypes
    try:
        glibc = hasattr(ctypes.CDLL(None), "mallopt")
    except OSError:
        glibc = False
    assert parallel.keep_freed_memory() == glibc
    monkeypatch.setenv("NUMPY_GPT_KEEP_MEMORY", "0")
    assert parallel.keep_freed_memory() is False


def test_first_forward_keeps_freed_memory_with_one_thread_too(threads, monkeypatch):
    """One thread starts no pool, so the model itself asks malloc to keep freed blocks, once."""
    threads(1)
    calls = []
    monkeypatch.setattr(parallel, "keep_freed_memory", lambda: calls.append(1) or True)
    monkeypatch.setitem(parallel._state, "kept", None)
    model = GPT(GPTConfig(vocab_size=10, block_size=8, n_layer=1, n_head=1, n_embd=4), seed=0)
    idx = np.zeros((2, 8), dtype=np.int64)
    for _ in range(3):
        model.forward(idx, idx)
        model.backward()
    assert calls == [1]


def test_one_thread_runs_blas_and_kernels_on_the_caller(threads):
    import threading
    threads(2)
    blas = threadpoolctl.ThreadpoolController().select(user_api="blas")
    seen = set()

    def kernel(lo, hi):
        seen.add(threading.get_ident())
    with blas.limit(limits=2):
        with parallel.one_thread():
            assert blas.info()[0]["num_threads"] == 1
            parallel.for_row_blocks(kernel, 1000, 4096)
        assert blas.info()[0]["num_threads"] == 2
    assert seen == {threading.get_ident()}
    parallel.for_row_blocks(kernel, 1000, 4096)       # outside: the pool takes a share
    assert len(seen) == 2


@pytest.mark.real_row_blocks
def test_one_block_is_one_call(threads):
    calls = []
    threads(2)
    parallel.for_row_blocks(lambda lo, hi: calls.append((lo, hi)), 3, 4096)
    assert calls == [(0, 3)]


def test_generation_holds_blas_at_one_thread_between_small_steps_and_restores_it(threads):
    threads(2)
    cfg = GPTConfig(vocab_size=20, block_size=8, n_layer=1, n_head=2, n_embd=8)
    model = GPT(cfg, seed=0)
    blas = threadpoolctl.ThreadpoolController().select(user_api="blas")
    seen = []

    def record(tokens):
        seen.append(blas.info()[0]["num_threads"])
        if len(seen) == 100:
            raise KeyboardInterrupt
    with blas.limit(limits=2):
        # 8 tokens after 3, block_size 8: token 1 from a prefill, 2-6 from steps (positions 3-7),
        # then the context is full and each token comes from a prefill of the cropped context
        model.generate(np.zeros((1, 3), int), 8, greedy=True, on_token=record)
        assert seen == [2, 1, 1, 1, 1, 1, 2, 2]
        assert blas.info()[0]["num_threads"] == 2
        seen[:] = [0] * 97                              # the 100th token (a step) raises
        with pytest.raises(KeyboardInterrupt):
            model.generate(np.zeros((1, 3), int), 5, greedy=True, on_token=record)
        assert seen[-1] == 1 and blas.info()[0]["num_threads"] == 2


def test_generation_leaves_blas_its_threads_for_steps_whose_weights_do_not_stay_in_the_cache(threads, monkeypatch):
    # Past ONE_THREAD_MAX_BYTES of weights a step reads memory at every token, and two cores draw
    # more of it: the steps keep BLAS's threads. The line is moved below this model's 7,424 bytes.
    from numpy_gpt import generation
    threads(2)
    cfg = GPTConfig(vocab_size=20, block_size=8, n_layer=1, n_head=2, n_embd=8)
    model = GPT(cfg, seed=0, dtype=np.float64)
    assert generation.step_weight_bytes(cfg, 8) == 7424         # (4*8*8 + 2*8*32 + 20*8) * 8
    blas = threadpoolctl.ThreadpoolController().select(user_api="blas")
    seen = []
    with blas.limit(limits=2):
        monkeypatch.setattr(generation, "ONE_THREAD_MAX_BYTES", 7423)
        model.generate(np.zeros((1, 3), int), 4, greedy=True, on_token=lambda t: seen.append(blas.info()[0]["num_threads"]))
        monkeypatch.setattr(generation, "ONE_THREAD_MAX_BYTES", 7424)
        model.generate(np.zeros((1, 3), int), 4, greedy=True, on_token=lambda t: seen.append(blas.info()[0]["num_threads"]))
    assert seen == [2, 2, 2, 2] + [2, 1, 1, 1]
    monkeypatch.setattr(generation, "ONE_THREAD_MAX_BYTES", 10**9)
    assert generation.one_thread_rows(cfg, 8) == 8                    # up to 8 rows; 0 past the line
    monkeypatch.setattr(generation, "ONE_THREAD_MAX_BYTES", 7423)
    assert generation.one_thread_rows(cfg, 8) == 0


def test_the_benchmark_configs_decode_on_the_side_of_the_line_their_measurements_put_them():
    # docs/decoding.md: level with 2 threads at small (13.6 MB in float32, 27.3 in float64) and
    # tiny, 1.24x at medium (83 MB): the suite's generation section (small, tiny) stays on one thread.
    from benchmarks.workloads import CONFIGS
    from numpy_gpt.generation import one_thread_rows
    assert one_thread_rows(CONFIGS["tiny"].config(), 8) == 8
    assert one_thread_rows(CONFIGS["small"].config(), 4) == one_thread_rows(CONFIGS["small"].config(), 8) == 8
    assert one_thread_rows(CONFIGS["medium"].config(), 4) == 0


def test_beam_search_steps_leave_one_thread_when_the_beams_grow_past_eight_rows(threads, monkeypatch):
    # Vocabulary 3, 9 beams: the first step after the prompt has 3 beams, the next ones 9 rows.
    from numpy_gpt import decode
    threads(2)
    model = GPT(GPTConfig(vocab_size=3, block_size=8, n_layer=1, n_head=2, n_embd=8), seed=0)
    blas = threadpoolctl.ThreadpoolController().select(user_api="blas")
    seen, real = [], decode.DecodeStep.__call__
    monkeypatch.setattr(decode.DecodeStep, "__call__", lambda self, tokens, caches, pos: seen.append(
        (len(tokens), blas.info()[0]["num_threads"])) or real(self, tokens, caches, pos))
    with blas.limit(limits=2):
        model.generate(np.zeros((1, 2), int), 4, beam_width=9)
        assert blas.info()[0]["num_threads"] == 2
    assert seen == [(3, 1), (9, 2), (9, 2)]


@pytest.mark.parametrize("tie, mlp", [(True, True), (False, True), (True, False), (False, False)])
def test_step_weight_bytes_counts_the_matrices_a_decoding_step_multiplies(tie, mlp):
    cfg = GPTConfig(vocab_size=11, block_size=5, n_layer=3, n_head=2, n_embd=6, tie_weights=tie, mlp=mlp)
    for dtype in (np.float32, np.float64):
        p = GPT(cfg, seed=0, dtype=dtype).params
        blocks = sum(a.nbytes for name, a in p.items() if name.startswith("h.") and a.ndim == 2)
        head = p["wte.weight" if tie else "lm_head.weight"].nbytes
        from numpy_gpt.generation import step_weight_bytes
        assert step_weight_bytes(cfg, np.dtype(dtype).itemsize) == blocks + head


_REFAULT_PROBE = """
import resource, sys
import numpy as np
from numpy_gpt import GPT, GPTConfig, parallel
parallel.set_num_threads(2)
cfg = GPTConfig(vocab_size=4096, block_size=128, n_layer=2, n_head=4, n_embd=512)
model = GPT(cfg, seed=0)
idx = np.random.default_rng(0).integers(0, cfg.vocab_size, (2, cfg.block_size))
faults = []
for _ in range(16):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    model.forward(idx, idx)
    model.backward()
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(int(np.median(faults[1:])))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc, Linux page faults")
def test_a_two_thread_step_reuses_its_pages():
    """Once warm, a 2-thread training step touches no page afresh.

    The second shard runs on a pool thread. With an arena of its own, glibc
    unmapped each of its 64 MB sub-heaps once free, and every step faulted
    about 500 to 2500 pages (2 to 10 MB) back in on this model; keep_freed_memory's
    one arena keeps them. The first step faults the memory in. Later steps fault
    nothing, except now and then a step whose arrays no longer fit the heap's free
    blocks (it grows by up to about 1300 pages, 1 in 10 steps over 8 runs), so the
    median of steps 2 to 16 is checked. Without the one-arena setting that median
    read 2564 pages in 5 of 6 runs and 1 page in the sixth, where the pool thread's
    arena happened to settle: this test catches a regression most of the time, not always.
    """
    import ctypes
    import subprocess
    if not hasattr(ctypes.CDLL(None), "mallopt") or parallel._blas_controller() is None:
        pytest.skip("needs glibc, and threadpoolctl for batch shards")
    env = child_env(NUMPY_GPT_KEEP_MEMORY="1")
    out = subprocess.run([sys.executable, "-c", _REFAULT_PROBE], check=True, capture_output=True,
                         text=True, env=env).stdout
    assert int(out) < 100, f"a warm step faulted {out.strip()} pages (median of steps 2-16)"


@pytest.mark.parametrize("M, K, N", [(40, 7, 9), (9, 7, 40), (33, 5, 33), (32, 3, 5), (100, 64, 48), (31, 3, 5),
                                     (1, 3, 5), (5, 3, 1)])
def test_matmul_shares_products_out_and_matches_one_product(threads, monkeypatch, M, K, N):
    """Inside share_products, matmul cuts rows (M >= N) or columns among the threads, none of
    them empty; each entry sums over the whole K, so it equals one BLAS product to rounding.
    Below 16 rows or columns per thread, and outside share_products, it is a @ b itself."""
    import threading
    r = np.random.default_rng(0)
    a, b = r.standard_normal((M, K)), r.standard_normal((N, K)).T    # b a transposed view, as w.T
    want = a @ b
    threads(2)
    assert np.array_equal(parallel.matmul(a, b), want)                # outside: a @ b itself
    calls = []                                                       # (thread, rows, columns) per BLAS call
    real = np.matmul
    monkeypatch.setattr(parallel, "SPLIT_MACS", 0)
    monkeypatch.setattr(parallel.np, "matmul",
                        lambda x, y, **k: calls.append((threading.get_ident(), x.shape[0], y.shape[1])) or real(x, y, **k))
    with parallel.share_products(1 << 20):
        got = parallel.matmul(a, b)
    monkeypatch.undo()
    assert got.shape == (M, N) and got.dtype == want.dtype
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-13)
    if max(M, N) >= 32:
        assert len({t for t, _, _ in calls}) == 2                    # the caller and one pool thread
        assert all(m > 0 and n > 0 for _, m, n in calls)             # neither of them idle
    else:
        assert calls == [] and np.array_equal(got, want)             # a @ b, uncut


def test_matmul_inside_one_thread_stays_on_the_caller(threads, monkeypatch):
    """one_thread() (a shard, or a decoding step) means the calling thread alone, sharing or not."""
    import threading
    threads(2)
    monkeypatch.setattr(parallel, "SPLIT_MACS", 0)
    seen, real = set(), np.matmul
    monkeypatch.setattr(parallel.np, "matmul", lambda *x, **k: seen.add(threading.get_ident()) or real(*x, **k))
    a = np.ones((64, 8))
    with parallel.share_products(1 << 20):
        with parallel.one_thread():
            np.testing.assert_array_equal(parallel.matmul(a, a.T), np.full((64, 64), 8.0))
        assert seen == set()                                         # a @ b itself, no cut at all
        parallel.matmul(a, a.T)
    assert len(seen) == 2


def test_share_products_holds_blas_at_one_thread_and_only_where_it_can_share(threads):
    threads(2)
    blas = threadpoolctl.ThreadpoolController().select(user_api="blas")
    with blas.limit(limits=2):
        with parallel.share_products(parallel.SHARE_MIN_ROWS - 1):   # a short step: BLAS's threads do it
            assert blas.info()[0]["num_threads"] == 2
            assert parallel.shares(4, 1 << 30) == [slice(0, 4)]
        with parallel.share_products(parallel.SHARE_MIN_ROWS):
            assert blas.info()[0]["num_threads"] == 1
            assert parallel.shares(4, 1 << 30) == [slice(0, 2), slice(2, 4)]
            assert parallel.shares(4, 10) == [slice(0, 4)]            # too little work to hand out
            with parallel.one_thread():                               # a shard inside: no sharing
                assert parallel.shares(4, 1 << 30) == [slice(0, 4)]
        assert blas.info()[0]["num_threads"] == 2
        assert parallel.shares(4, 1 << 30) == [slice(0, 4)]          # outside: the caller's thread
    threads(1)
    with parallel.share_products(1 << 20):
        assert parallel.shares(4, 1 << 30) == [slice(0, 4)]


def test_a_one_sequence_step_on_two_threads_agrees_with_one_thread(threads, monkeypatch):
    """A batch of one cannot be cut into shards: its products and heads are shared instead
    (all of them here: these are far below the size from which they are cut otherwise)."""
    monkeypatch.setattr(parallel, "SPLIT_MACS", 0)
    monkeypatch.setattr(parallel, "SHARE_MIN_ROWS", 0)
    l1, p1, _ = train_steps(1, batch=1)
    l2, p2, _ = train_steps(2, batch=1)
    np.testing.assert_allclose(l2, l1, rtol=SHARDED_LOSS)
    for k in p1:
        np.testing.assert_allclose(p2[k], p1[k], **SHARDED_PARAMS_THREADS, err_msg=k)


@pytest.mark.parametrize("how", ["for_row_blocks", "map_shards"])
def test_pool_threads_follow_the_callers_errstate(threads, how):
    # np.errstate is per context: the CLI silences overflow while training (a diverging run is
    # reported in one line), and kernels on the pool's threads must be silenced with it. Only
    # the rows the pool's thread takes overflow here, so the caller's own share proves nothing.
    import warnings
    threads(2)
    x = np.ones((4096, 64), np.float32)
    row_bytes = x[:1].nbytes
    rows = max(1, parallel._BLOCK_BYTES // row_bytes)         # rows per block; blocks alternate between threads
    pool_rows = (np.arange(x.shape[0]) // rows) % 2 == 1 if how == "for_row_blocks" else np.arange(x.shape[0]) >= 2048

    def overflow(lo, hi):
        x[lo:hi] *= np.float32(1e30)
    run = ((lambda: parallel.for_row_blocks(overflow, x.shape[0], row_bytes)) if how == "for_row_blocks"
           else (lambda: parallel.map_shards(lambda s: overflow(s.start, s.stop), [slice(0, 2048), slice(2048, 4096)])))

    def fill():
        x[...] = 1.0
        x[pool_rows] = 1e30
    fill()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(over="ignore"):
            run()
    assert np.isinf(x[pool_rows]).all() and np.isfinite(x[~pool_rows]).all()
    fill()
    with np.errstate(over="raise"), pytest.raises(FloatingPointError):
        run()


@pytest.mark.parametrize("value", ["abc", "-1", "0", "1.5"])
def test_a_bad_thread_count_in_the_environment_is_a_config_error_naming_it(monkeypatch, value):
    from numpy_gpt import ConfigError
    monkeypatch.setenv("NUMPY_GPT_NUM_THREADS", value)
    with pytest.raises(ConfigError, match=f"NUMPY_GPT_NUM_THREADS.*{value!r}"):
        parallel._threads_from_env()
    monkeypatch.setenv("NUMPY_GPT_NUM_THREADS", " 3 ")
    assert parallel._threads_from_env() == 3
    monkeypatch.delenv("NUMPY_GPT_NUM_THREADS")
    assert parallel._threads_from_env() == (os.cpu_count() or 1)


def test_for_blocks_refuses_a_thread_limit_below_one():
    with pytest.raises(ValueError, match="max_threads must be >= 1 or None, got 0"):
        parallel.for_blocks(lambda: None, [()], max_threads=0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("b_view", [False, True])
@pytest.mark.parametrize("M", [1, 2, 3, 4])
def test_matmul_runs_two_or_three_rows_one_row_at_a_time(monkeypatch, M, b_view, dtype):
    """2 or 3 rows times a b of at least ROW_BY_ROW_MIN entries: one BLAS call per row, each row
    equal bit for bit to the product of that row alone (which a @ b's rows are not: the sgemm
    kernel sums in another order), into out when given. 1 or 4 rows, or a smaller b: a @ b itself."""
    r = np.random.default_rng(2)
    K, N = 128, 384
    assert K * N >= parallel.ROW_BY_ROW_MIN > 64 * 64
    a = r.standard_normal((M, K)).astype(dtype)
    b = r.standard_normal((N, K)).astype(dtype).T if b_view else r.standard_normal((K, N)).astype(dtype)
    small = b[:64, :64]
    calls, real = [], np.matmul
    monkeypatch.setattr(parallel.np, "matmul", lambda x, y, **k: calls.append(x.shape) or real(x, y, **k))
    got = parallel.matmul(a, b)
    assert calls == ([(1, K)] * M if M in (2, 3) else [])
    assert got.shape == (M, N) and got.dtype == dtype
    if M < 4:
        for i in range(M):
            np.testing.assert_array_equal(got[i], (a[i:i + 1] @ b)[0])
        np.testing.assert_allclose(got, a @ b, rtol=1e-5, atol=1e-5)
    else:
        np.testing.assert_array_equal(got, a @ b)
    out = np.full((M, N), np.nan, dtype)
    assert parallel.matmul(a, b, out=out) is out
    np.testing.assert_array_equal(out, got)
    calls.clear()
    np.testing.assert_array_equal(parallel.matmul(a[:, :64], small), a[:, :64] @ small)
    assert calls == []
    edge = b[:, :parallel.ROW_BY_ROW_MIN // K]                      # exactly ROW_BY_ROW_MIN entries
    parallel.matmul(a, edge)
    parallel.matmul(a, edge[:, :-1])                                # one column fewer: below it
    assert calls == ([(1, K)] * M if M in (2, 3) else [])
    if M in (2, 3):                                                 # an out that overlaps a, one row down
        both = np.zeros((M + 1, N), dtype)
        both[:M, :K] = a
        parallel.matmul(both[:M, :K], b, out=both[1:])
        np.testing.assert_allclose(both[1:], a @ b, rtol=1e-5, atol=1e-5)
        with pytest.raises(ValueError):                             # an out of another shape is refused
            parallel.matmul(a, b, out=np.empty((M + 1, N), dtype))


@pytest.mark.parametrize("M, K, N", [(40, 7, 9), (9, 7, 40), (1, 3, 5)])
def test_matmul_writes_into_out_shared_or_not(threads, monkeypatch, M, K, N):
    """matmul(a, b, out=) puts the product in out and returns out, whether the product is cut
    among the threads (inside share_products) or not."""
    r = np.random.default_rng(1)
    a, b = r.standard_normal((M, K)), r.standard_normal((K, N))
    threads(2)
    monkeypatch.setattr(parallel, "SPLIT_MACS", 0)
    for sharing in (False, True):
        out = np.full((M, N), np.nan)
        with parallel.share_products(1 << 20) if sharing else contextlib.nullcontext():
            got = parallel.matmul(a, b, out=out)
        assert got is out
        np.testing.assert_allclose(out, a @ b, rtol=1e-13, atol=1e-13)
