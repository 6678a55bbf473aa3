"""numpy_gpt.parallel splits elementwise kernels into row blocks on threads; each row is
computed as it would be alone, so a training step must not depend on the thread count."""
import numpy as np
import pytest

from numpy_gpt import GPT, GPTConfig, parallel
from numpy_gpt.optim import AdamW


def train_steps(n_threads, steps=3):
    parallel.set_num_threads(n_threads)
    cfg = GPTConfig(vocab_size=50, block_size=64, n_layer=2, n_head=2, n_embd=64, pos_encoding="learned")
    model = GPT(cfg, seed=0)
    opt = AdamW(model.params, lr=1e-3)
    r = np.random.default_rng(0)
    x, y = r.integers(0, 50, (8, 64)), r.integers(0, 50, (8, 64))   # arrays of 0.5-1 MB: several blocks
    losses = []
    for _ in range(steps):
        _, loss = model.forward(x, y)
        opt.step(model.backward())
        losses.append(float(loss))
    return losses, model.params


def test_results_are_bit_identical_for_any_thread_count():
    before = parallel.get_num_threads()
    try:
        l1, p1 = train_steps(1)
        l3, p3 = train_steps(3)
    finally:
        parallel.set_num_threads(before)
    assert l1 == l3
    assert all(np.array_equal(p1[k], p3[k]) for k in p1)


def test_blocks_cover_every_row_once():
    seen = np.zeros(1000, int)

    def kernel(lo, hi):
        seen[lo:hi] += 1
    before = parallel.get_num_threads()
    try:
        parallel.set_num_threads(2)
        parallel.for_row_blocks(kernel, 1000, 4096)      # 64 rows a block: 16 blocks
    finally:
        parallel.set_num_threads(before)
    assert (seen == 1).all()


def test_bad_thread_count():
    with pytest.raises(ValueError, match="0"):
        parallel.set_num_threads(0)
