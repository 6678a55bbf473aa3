"""The fast decoding step (numpy_gpt/decode.py) against the reference step and torch_gpt.

DecodeStep promises the reference's numbers exactly (GPT.forward with a KV cache, one
position), so the first test compares bit for bit, logits and caches. The second holds it
to torch_gpt directly: the logits of the last position of a full forward, no cache.
"""
import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, strategies as st

from numpy_gpt import GPT, GPTConfig, InputError
from numpy_gpt.decode import DecodeStep
from tests import strategies as S
from tests.model_strategies import configs, randomized, torch_twin
from tests.parity import assert_close
from tests.tolerances import MODEL_PARITY


def prefilled(model, idx, T0):
    """Caches holding positions 0 to T0 - 1 of idx, filled by the reference forward."""
    caches = model.new_kv_caches(idx.shape[0])
    if T0:
        model.forward(idx[:, :T0], kv_caches=caches, pos0=0)
    return caches


def assert_steps_equal_the_reference(model, idx, T0):
    """DecodeStep from position T0 to the end of idx against the reference step, each from its own
    caches prefilled with idx[:, :T0]: logits and caches bit for bit, and the parameters untouched."""
    (B, T), V = idx.shape, model.config.vocab_size
    ref, fast = prefilled(model, idx, T0), prefilled(model, idx, T0)
    step = DecodeStep(model)
    before = {k: v.copy() for k, v in model.params.items()}  # both steps read them: a write would agree
    for pos in range(T0, T):
        want, _ = model.forward(idx[:, pos:pos + 1], kv_caches=ref, pos0=pos)
        got = step(idx[:, pos], fast, pos)
        assert got.shape == (B, V) and got.dtype == model.dtype
        np.testing.assert_array_equal(got, want[:, -1])
        for a, b in zip(fast, ref):
            assert a.length == b.length == pos + 1
            np.testing.assert_array_equal(a.k[:, :, :pos + 1], b.k[:, :, :pos + 1])
            np.testing.assert_array_equal(a.v[:, :, :pos + 1], b.v[:, :, :pos + 1])
    assert all(np.array_equal(model.params[k], v) for k, v in before.items())


@given(data=st.data(), cfg=configs(), dtype=S.DTYPES)
def test_decode_step_equals_the_reference_step_bit_for_bit(data, cfg, dtype):
    model = randomized(cfg, data.draw(st.integers(0, 1000)), dtype)
    model.training = False
    B = data.draw(st.sampled_from([1, 2, 3, 11]), label="B")       # 11 rows: BLAS may use threads
    idx = S.token_ids(data, (B, cfg.block_size), cfg.vocab_size)
    T0 = data.draw(st.integers(0, cfg.block_size - 1), label="prompt length")   # 0: the step fills the cache
    assert_steps_equal_the_reference(model, idx, T0)


@pytest.mark.parametrize("B", [1, 2, 3, 11])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_decode_step_equals_the_reference_step_at_the_benchmarks_width(dtype, B):
    # configs() keeps n_embd small; the benchmarks' small config has rows of 256 (BLAS's row
    # sums and dot products then run their vector kernels over several blocks). Its weights, the
    # head's 256 x 131 among them, are big enough for parallel.matmul to take 2 or 3 rows one at a
    # time (ROW_BY_ROW_MIN entries). One row is generate()'s case: its layer norm's statistics
    # are NumPy scalars.
    cfg = GPTConfig(vocab_size=131, block_size=6, n_layer=2, n_head=4, n_embd=256)
    model = randomized(cfg, 0, dtype)
    model.training = False
    assert_steps_equal_the_reference(model, np.random.default_rng(0).integers(0, 131, (B, 6)), T0=2)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_one_row_equals_the_reference_step_with_every_option(dtype):
    # The step takes another path for one row (the layer norm's statistics as NumPy scalars);
    # the drawn test above may not draw one row with every option, so here is every combination.
    from numpy_gpt.config import ACTIVATIONS, NORMS, POS_ENCODINGS
    options = itertools.product(NORMS, ACTIVATIONS, POS_ENCODINGS, (True, False), (True, False), (True, False))
    for i, (norm, act, pos, mlp, bias, tie) in enumerate(options):
        cfg = GPTConfig(vocab_size=11, block_size=4, n_layer=2, n_head=2, n_embd=8, norm=norm, activation=act,
                        pos_encoding=pos, mlp=mlp, bias=bias, tie_weights=tie)
        model = randomized(cfg, i, dtype)
        model.training = False
        try:
            assert_steps_equal_the_reference(model, np.random.default_rng(i).integers(0, 11, (1, 4)), T0=1)
        except AssertionError as e:
            raise AssertionError(f"{cfg}: {e}") from None


@given(data=st.data(), cfg=configs(), dtype=S.DTYPES)
def test_decode_step_logits_equal_torch(data, cfg, dtype):
    model = randomized(cfg, data.draw(st.integers(0, 1000)), dtype)
    model.training = False
    t = torch_twin(model).eval()
    B = data.draw(st.integers(1, 3), label="B")
    idx = S.token_ids(data, (B, cfg.block_size), cfg.vocab_size)
    T0 = data.draw(st.integers(0, cfg.block_size - 1), label="prompt length")
    caches, step = prefilled(model, idx, T0), DecodeStep(model)
    with torch.no_grad():
        theirs = t(torch.from_numpy(idx))[0].numpy()             # (B, T, V), every position at once
    for pos in range(T0, cfg.block_size):
        assert_close("decode step", "logits", step(idx[:, pos], caches, pos), theirs[:, pos],
                     MODEL_PARITY[model.dtype])


def test_decode_step_reads_parameters_when_made():
    cfg = GPTConfig(vocab_size=9, block_size=4, n_layer=1, n_head=2, n_embd=6)
    model = randomized(cfg, 1, np.float64)
    step = DecodeStep(model)
    before = step(np.array([3]), model.new_kv_caches(1), 0)
    model.params["wte.weight"][3] += 1.0                          # in place: the step sees it
    assert not np.array_equal(step(np.array([3]), model.new_kv_caches(1), 0), before)


@pytest.mark.parametrize("tokens, pos, message", [
    (np.array([9]), 0, "token id 9 in tokens is outside"),
    (np.array([-1]), 0, "token id -1 in tokens is outside"),
    (np.array([[1]]), 0, r"1-D array .* shape \(1, 1\)"),
    (np.array([1.0]), 0, "tokens must hold integers, got dtype float64"),
    ([3.5], 0, "tokens must hold integers, got dtype float64"),                              # a list is taken as an array
    (np.array([1]), 4, "position 4 is outside"),
    (np.array([1]), -1, "position -1 is outside"),
    (np.array([1]), True, "position must be an integer, got True"),
    (np.array([1]), 1.0, "position must be an integer, got 1.0"),
    (np.array([1]), 1, "holds 0 position.* needs 1 position"),     # the caches are empty
    (np.array([1, 2]), 0, "of 1 row.* of 2 row"),                  # the caches have one row
])
def test_bad_input_is_a_typed_error_naming_it(tokens, pos, message):
    cfg = GPTConfig(vocab_size=9, block_size=4, n_layer=1, n_head=2, n_embd=6)
    model = randomized(cfg, 1, np.float32)
    with pytest.raises(InputError, match=message):
        DecodeStep(model)(tokens, model.new_kv_caches(1), pos)


def test_caches_of_another_shape_are_a_typed_error():
    cfg = GPTConfig(vocab_size=9, block_size=4, n_layer=2, n_head=2, n_embd=6)
    model, step = randomized(cfg, 1, np.float32), None
    step = DecodeStep(model)
    short = GPT(GPTConfig(vocab_size=9, block_size=2, n_layer=2, n_head=2, n_embd=6)).new_kv_caches(1)
    for c in short:
        c.length = 2                                              # as if positions 0 and 1 were filled
    with pytest.raises(InputError, match="room for 2; .* room for 3"):
        step(np.array([1]), short, 2)                             # no slot for position 2
    heads = GPT(GPTConfig(vocab_size=9, block_size=4, n_layer=2, n_head=3, n_embd=6)).new_kv_caches(1)
    with pytest.raises(InputError, match="3 head.* 2 head"):
        step(np.array([1]), heads, 0)
    with pytest.raises(InputError, match="1 KV cache.* for 2 layer"):
        step(np.array([1]), model.new_kv_caches(1)[:1], 0)


def test_the_parameters_dtype_decides_not_the_models():
    # GPT(params=...) computes in the arrays' dtype (given no dtype argument); so must the
    # fast step, whose KV caches come from the model.
    cfg = GPTConfig(vocab_size=11, block_size=6, n_layer=1, n_head=3, n_embd=9)
    model = GPT(cfg, params=randomized(cfg, 2, np.float64).params)   # no dtype argument
    model.training = False
    idx = np.array([[1, 2, 3, 4]])
    ref, fast = prefilled(model, idx, 3), prefilled(model, idx, 3)
    want, _ = model.forward(idx[:, 3:], kv_caches=ref, pos0=3)
    np.testing.assert_array_equal(DecodeStep(model)(idx[:, 3], fast, 3), want[:, -1])


# ----------------------------------------------------------- torch_gpt's twin: torch_gpt/decode.py
@given(data=st.data(), cfg=configs(), dtype=S.DTYPES)
def test_torch_decode_step_equals_torch_gpts_reference_step(data, cfg, dtype):
    # Within rounding, not bit for bit: SDPA without a mask is not the masked call's kernel.
    from torch_gpt.decode import DecodeStep as TorchDecodeStep
    model = randomized(cfg, data.draw(st.integers(0, 1000)), dtype)
    t = torch_twin(model).eval()
    B = data.draw(st.integers(1, 3), label="B")
    idx = torch.from_numpy(S.token_ids(data, (B, cfg.block_size), cfg.vocab_size))
    T0 = data.draw(st.integers(0, cfg.block_size - 1), label="prompt length")
    ref, fast = t.new_kv_caches(B), t.new_kv_caches(B)
    step = TorchDecodeStep(t)
    with torch.inference_mode():
        if T0:
            t(idx[:, :T0], kv_caches=ref, pos0=0)
            t(idx[:, :T0], kv_caches=fast, pos0=0)
        for pos in range(T0, cfg.block_size):
            want = t(idx[:, pos:pos + 1], kv_caches=ref, pos0=pos)[0][:, -1]
            got = step(idx[:, pos], fast, pos)
            assert tuple(got.shape) == (B, cfg.vocab_size) and got.dtype == want.dtype
            assert_close("torch decode step", "logits", got.numpy(), want.numpy(), MODEL_PARITY[model.dtype])
            for a, b in zip(fast, ref):
                assert a.length == b.length == pos + 1
                assert_close("torch decode step", "keys", a.k[:, :, :pos + 1].numpy(), b.k[:, :, :pos + 1].numpy(),
                             MODEL_PARITY[model.dtype])


def test_torch_generate_runs_its_fast_step_on_one_thread_after_the_prompt(monkeypatch):
    # As numpy_gpt's generate: the benchmark compares the two fast paths, each at one thread for
    # the matrix-vector work of a step of one row; torch's thread count comes back at the end.
    from torch_gpt import decode as tdecode
    cfg = GPTConfig(vocab_size=7, block_size=16, n_layer=1, n_head=1, n_embd=4)
    t = torch_twin(randomized(cfg, 3, np.float32))
    steps = []
    real = tdecode.DecodeStep.__call__
    monkeypatch.setattr(tdecode.DecodeStep, "__call__", lambda self, tokens, caches, pos: steps.append(
        (pos, torch.get_num_threads())) or real(self, tokens, caches, pos))
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        fast = t.generate(torch.tensor([[1, 2, 3]]), 5, greedy=True)
        assert steps == [(3, 1), (4, 1), (5, 1), (6, 1)] and torch.get_num_threads() == 2
        steps.clear()
        slow = t.generate(torch.tensor([[1, 2, 3]]), 5, greedy=True, fast=False)   # every step through forward
        assert steps == [] and torch.equal(fast, slow)
        from numpy_gpt import generation                 # past numpy_gpt's line too: one thread is torch's best
        monkeypatch.setattr(generation, "ONE_THREAD_MAX_BYTES", generation.step_weight_bytes(cfg, 4) - 1)
        assert torch.equal(t.generate(torch.tensor([[1, 2, 3]]), 5, greedy=True), fast)
        assert steps == [(3, 1), (4, 1), (5, 1), (6, 1)] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("tokens, pos, filled, message", [
    ([9], 0, 0, "token id 9 in tokens is outside"), ([-1], 0, 0, "token id -1 in tokens is outside"),
    ([[1]], 0, 0, r"1-D tensor .* shape \(1, 1\)"), ([1], 4, 4, "position 4 is outside"),
    ([1], 2, 1, r"needs 1 KV cache\(s\) holding 2 position\(s\)")])
def test_torch_decode_step_refuses_what_numpy_gpts_refuses(tokens, pos, filled, message):
    from torch_gpt.decode import DecodeStep as TorchDecodeStep
    cfg = GPTConfig(vocab_size=9, block_size=4, n_layer=1, n_head=2, n_embd=6)
    t = torch_twin(randomized(cfg, 1, np.float64))
    caches = t.new_kv_caches(1)
    caches[0].length = filled
    with pytest.raises(InputError, match=message):
        TorchDecodeStep(t)(torch.tensor(tokens), caches, pos)
