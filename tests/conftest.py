"""Hypothesis profiles and the end-of-run table of worst parity errors.

Profiles, chosen with the HYPOTHESIS_PROFILE environment variable:
    fast      (default) 30 examples per test; derandomized when CI is set
    thorough  1000 examples per test, for a long run before a release
"""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, settings

from tests import parity

_common = dict(deadline=None, print_blob=True,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("fast", max_examples=30, derandomize=bool(os.environ.get("CI")), **_common)
settings.register_profile("thorough", max_examples=1000, **_common)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "fast"))

# One thread each keeps the runs reproducible and fair on a 2-core CI machine.
torch.set_num_threads(1)
# numpy_gpt's own thread count decides whether a batch is cut into shards (one per thread), and
# it defaults to the machine's cores: on a 1-core runner no model test would take the sharded
# path. Two threads on every machine; tests that need another count set it (the threads fixture).
from numpy_gpt import parallel as _parallel  # noqa: E402

_parallel.set_num_threads(2)
torch.use_deterministic_algorithms(True)
np.seterr(over="raise", invalid="raise", divide="raise", under="ignore")

# OpenBLAS's float32 products now and then set the "invalid" flag on finite inputs with finite
# results (seen in 2 of about 6 whole-suite thorough runs on the Zen 4 host, OpenBLAS 0.3.31, never
# in float64; numpy#13173 and numpy#24067 are earlier OpenBLAS bugs of this kind). NumPy turns the
# flag into FloatingPointError("invalid value encountered in matmul"). A test that fails with that
# alone runs once more, exactly as before: nothing is switched off, so a NaN that a product really
# makes fails it again (Hypothesis replays the saved failing example first). The end of the run
# lists every test that ran twice. The second run reuses the first one's fixtures.
SPURIOUS_MATMUL = "invalid value encountered in matmul"
RERUN_AFTER_SPURIOUS_MATMUL: list[str] = []


def spurious_matmul_flag(exc: BaseException) -> bool:
    """Whether exc is, or is a group (hypothesis's FlakyFailure, say) made only of,
    FloatingPointError(SPURIOUS_MATMUL)."""
    if isinstance(exc, BaseExceptionGroup):
        return bool(exc.exceptions) and all(spurious_matmul_flag(e) for e in exc.exceptions)
    return isinstance(exc, FloatingPointError) and str(exc) == SPURIOUS_MATMUL


@pytest.hookimpl(wrapper=True, trylast=True)      # innermost: output capture is still on for the second run
def pytest_runtest_call(item):
    try:
        return (yield)
    except BaseException as exc:
        if not spurious_matmul_flag(exc):
            raise
    RERUN_AFTER_SPURIOUS_MATMUL.append(item.nodeid)
    return item.runtest()


# Kernels that work in row blocks (numpy_gpt.parallel.for_row_blocks: GELU, attention's softmax
# rows, cross-entropy; the optimizers through for_blocks) cut an array into blocks of
# _BLOCK_BYTES (256 KB; optim.BLOCK_BYTES, 512 KB, for Adam and AdamW). The tests' arrays are a
# few KB, so at that size every kernel would run as one block and a slip in the block arithmetic
# (a block reading its neighbour's rows, say) would pass every parity test. Blocks of 256 bytes
# cut them as a real step cuts its MB arrays: into many blocks, shared out among the threads
# (an optimizer's update too, however few its bytes); the smallest draws still fit in one. Tests
# marked real_row_blocks keep the real sizes: those comparing this process with shard worker
# processes, which import numpy_gpt afresh (a row's rounding can depend on where it sits in its
# block, so both sides must cut alike).
TEST_BLOCK_BYTES = 256


@pytest.fixture(autouse=True)
def small_row_blocks(request, monkeypatch):
    if request.node.get_closest_marker("real_row_blocks") is None:
        from numpy_gpt import optim, parallel
        monkeypatch.setattr(parallel, "_BLOCK_BYTES", TEST_BLOCK_BYTES)
        monkeypatch.setattr(optim, "BLOCK_BYTES", TEST_BLOCK_BYTES)
        monkeypatch.setattr(optim, "SHARE_MIN_BYTES", 0)


# The model recomputes the MLP's activation in the backward from 6 MB hidden layers up
# (numpy_gpt.block.RECOMPUTE_MIN_BYTES), which no test's model reaches; from 0 bytes every model
# test with tanh GELU or ReLU takes that path (the parent decides for its shard workers too).
# test_model checks it against the path that keeps everything, bit for bit.
@pytest.fixture(autouse=True)
def recompute_in_every_model(monkeypatch):
    from numpy_gpt import block
    monkeypatch.setattr(block, "RECOMPUTE_MIN_BYTES", 0)


@pytest.fixture
def threads():
    """numpy_gpt.parallel.set_num_threads, for setting the thread count inside a test; restored after it."""
    from numpy_gpt import parallel
    before = parallel.get_num_threads()
    yield parallel.set_num_threads
    parallel.set_num_threads(before)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if RERUN_AFTER_SPURIOUS_MATMUL:
        terminalreporter.section("re-run after a spurious 'invalid value encountered in matmul'")
        terminalreporter.write_line(f"{len(RERUN_AFTER_SPURIOUS_MATMUL)} test(s) ran a second time, unchanged "
                                    "(tests/conftest.py, docs/parity_tests.md); a failure of the second run "
                                    "is reported above as usual:")
        for nodeid in RERUN_AFTER_SPURIOUS_MATMUL:
            terminalreporter.write_line(f"  {nodeid}")
    if not parity.WORST:
        return
    rows = sorted(parity.WORST.items())
    tr = terminalreporter
    tr.section("worst relative error per layer, tensor, dtype and oracle")
    # Each column as wide as its longest entry or its heading, and two spaces.
    wl, wt, wo = (max(len(head), *(len(r[0][i]) for r in rows)) + 2
                  for i, head in ((0, "layer"), (1, "tensor"), (3, "oracle")))
    tr.write_line(f"{'layer':<{wl}}{'tensor':<{wt}}{'dtype':<9}{'oracle':<{wo}}"
                  f"{'worst rel error':>15}{'limit':>10}{'headroom':>10}")
    for (layer, tensor, dtype, oracle), (err, limit) in rows:
        tr.write_line(f"{layer:<{wl}}{tensor:<{wt}}{dtype:<9}{oracle:<{wo}}{err:>15.2e}"
                      f"{'' if limit is None else f'{limit:.1e}':>10}{_headroom(err, limit):>10}")
    tr.write_line("limit: the bound that draw was held to (torch: the test's tolerance for the dtype; float64 truth: 4x "
                  "torch float32's own error, at most 1e-2; finite diff: 1e-6). headroom: limit / error.")
    tr.write_line("finite diff errors count only the part above the differences' own rounding noise, so "
                  "0 means within it (docs/parity_tests.md).")
    for dtype in sorted({k[2] for k in parity.WORST}):
        judged = [(err / limit, k) for k, (err, limit) in parity.WORST.items() if k[2] == dtype and limit]
        if judged:
            share, (layer, tensor, _, oracle) = max(judged)
            tr.write_line(f"{dtype}: {len(judged)} rows judged, all within their limits; the closest, "
                          f"{layer} {tensor} against {oracle}, reached {share:.2g} of its limit"
                          if share <= 1 else f"{dtype}: {layer} {tensor} against {oracle} is over its limit")
    path = os.environ.get("NUMPY_GPT_ERROR_TABLE")
    if path:
        with open(path, "w") as f:
            json.dump([dict(layer=l, tensor=t, dtype=d, oracle=o, worst_rel_error=e, limit=lim)
                       for (l, t, d, o), (e, lim) in rows], f, indent=1)
        tr.write_line(f"written to {path}")


def _headroom(err: float, limit: float | None) -> str:
    if limit is None:
        return ""
    return "inf" if err == 0 else f"{limit / err:.3g}x"
