"""The two-process experiment behind README's "What limits the training step" (benchmarks/process_shards.py).

Its timings are only printed; this checks that what it times is the same step: the
loss and gradients of half a batch here and half in a worker process, added with
their shares, equal one process's over the whole batch.
"""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("threadpoolctl")

from benchmarks.process_shards import ProcessShards  # noqa: E402
from benchmarks.timing import thread_limit  # noqa: E402
from benchmarks.workloads import CONFIGS, fixed_batch, numpy_model  # noqa: E402
from numpy_gpt.gradcheck import rel_error  # noqa: E402
from tests.tolerances import parity_tol  # noqa: E402


def test_two_processes_give_the_whole_batch_gradients():
    w = CONFIGS["tiny"]
    with thread_limit(1):
        whole = numpy_model(w, np.float64)
        _, loss = whole.forward(*fixed_batch(w))
        grads = whole.backward()
        with ProcessShards("tiny", np.float64) as shards:
            shard_loss, shard_grads = shards.gradients()
    assert shard_loss == pytest.approx(float(loss), rel=parity_tol(np.float64))
    assert shard_grads.keys() == grads.keys()
    worst = max(rel_error(shard_grads[k], grads[k]) for k in grads)
    assert worst < parity_tol(np.float64), worst
