"""No result of numpy_gpt depends on memory it never wrote.

The fast paths allocate with np.empty and fill the arrays piece by piece: attention's query
blocks, the blocked softmax and GELU, AdamW's packs of small parameters, the KV cache and its
beam reordering, the shards' gradients. A piece left unwritten would hold whatever the allocator
handed back, usually harmless zeros from a fresh page, now and then old numbers, so such a bug
shows up only sometimes. Here every np.empty and np.empty_like hands back NaN instead: NaN
spreads through any arithmetic that reads it, so a run whose results are finite and equal, bit
for bit, to a run without the poison read nothing it had not written.
"""
from __future__ import annotations

import numpy as np
import pytest

from numpy_gpt import GPT, GPTConfig
from numpy_gpt.attention import MIN_BLOCKED_T
from numpy_gpt.optim import AdamW

_EMPTY, _EMPTY_LIKE = np.empty, np.empty_like


def _nan(a):
    if a.dtype.kind in "fc":
        a.fill(np.nan)
    return a


@pytest.fixture
def poisoned(monkeypatch):
    """np.empty and np.empty_like return NaN-filled float arrays for the duration of a test."""
    def on():
        monkeypatch.setattr(np, "empty", lambda *a, **k: _nan(_EMPTY(*a, **k)))
        monkeypatch.setattr(np, "empty_like", lambda *a, **k: _nan(_EMPTY_LIKE(*a, **k)))
    return on


def test_the_poison_reaches_numpy_gpt_and_is_caught(poisoned):
    from numpy_gpt.attention import KVCache
    poisoned()
    cache = KVCache(1, 2, 4, 3, np.float32)           # numpy_gpt's own np.empty, not yet written
    assert np.isnan(cache.k).all() and np.isnan(np.empty_like(cache.v)).all()

    def forgets_the_last_entry():
        a = np.empty(4, np.float32)
        a[:3] = 1.0
        return a.sum()
    assert np.isnan(forgets_the_last_entry())   # the kind of bug the test below would see


def _train_and_decode(T: int, dtype=np.float32):
    """Two AdamW steps on sequences of T tokens with small (packed) parameters, then decoding."""
    cfg = GPTConfig(vocab_size=37, block_size=T + 3, n_layer=2, n_head=2, n_embd=16,
                    pos_encoding="learned", activation="gelu", norm="pre", bias=True, tie_weights=True)
    model = GPT(cfg, seed=3, dtype=dtype)
    opt = AdamW(model.params, lr=1e-2, weight_decay=0.1)
    rng = np.random.default_rng(0)
    idx = rng.integers(0, cfg.vocab_size, size=(3, T))
    targets = rng.integers(0, cfg.vocab_size, size=(3, T))
    losses = []
    for _ in range(2):
        _, loss = model.forward(idx, targets)
        opt.step(model.backward())
        losses.append(float(loss))
    greedy = model.generate(idx[:2, :5], 6, greedy=True)        # KV cache, two rows
    beams = model.generate(idx[:1, :5], 4, beam_width=3)        # KV-cache rows reordered
    return losses, greedy, beams, {k: v.copy() for k, v in model.params.items()}


# MIN_BLOCKED_T + 5: query-blocked attention, its last block shorter than the others; 8: the
# reference attention, whose backward writes into the layer's dqkv buffer.
@pytest.mark.parametrize("T", [MIN_BLOCKED_T + 5, 8], ids=["blocked", "short"])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_training_and_decoding_never_read_unwritten_memory(poisoned, threads, n_threads, T):
    threads(n_threads)                        # 2: the batch in shards, their gradients summed
    clean = _train_and_decode(T)
    poisoned()
    dirty = _train_and_decode(T)
    for a, b in zip(clean[:3], dirty[:3]):
        np.testing.assert_array_equal(a, b)
    for k in clean[3]:
        np.testing.assert_array_equal(clean[3][k], dirty[3][k], err_msg=k)
