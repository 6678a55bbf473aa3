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
# Floating-point errors fail the tests: an overflow, a division by zero or a NaN that NumPy
# makes (inf - inf, 0 * inf, ...) stops the test where it happens, instead of flowing quietly into
# a comparison. Overflow and division raise FloatingPointError; "invalid" is turned into a warning
# and every such warning into an error (pytest_configure, below), with one exception: the warning
# from a matrix product. OpenBLAS's float32 products set the processor's "invalid" flag now and then
# on finite operands with finite, correct results (numpy#13173 and numpy#24067 are earlier OpenBLAS
# bugs of this kind), and NumPy turns the flag into "invalid value encountered in matmul". It came in
# stretches: in 2 of about 6 thorough runs on the Zen 4 host, and in one CI run twice in a row in the
# same derandomized test, so running such a test again does not get past it. NumPy itself stops
# reporting a product's flags where the BLAS is known to set them falsely (Accelerate on Apple's M4).
# Nothing real is lost: a product of finite numbers can only make a NaN by overflowing first
# (inf - inf), and overflow still raises; a NaN or inf operand was made by an earlier operation, which
# raised; and every product's result is compared with torch's or with finite differences.
np.seterr(over="raise", divide="raise", invalid="warn", under="ignore")
NAN_IS_AN_ERROR = "error:invalid value encountered in:RuntimeWarning"
EXCEPT_A_PRODUCTS_FLAG = "ignore:invalid value encountered in matmul:RuntimeWarning"


def pytest_configure(config):
    # The later line wins where both match.
    config.addinivalue_line("filterwarnings", NAN_IS_AN_ERROR)
    config.addinivalue_line("filterwarnings", EXCEPT_A_PRODUCTS_FLAG)
    table = os.environ.get("NUMPY_GPT_ERROR_TABLE")
    if table:                                       # said now, not after a 20-minute run
        folder = os.path.dirname(os.path.abspath(table))
        why = ("it is a folder" if os.path.isdir(table) else None if os.path.isdir(folder)
               and os.access(folder, os.W_OK) else f"{folder} is not a folder this user can write to")
        if why:
            raise pytest.UsageError(f"NUMPY_GPT_ERROR_TABLE={table}: cannot write the error table there: {why}")


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
        try:
            with open(path, "w") as f:
                json.dump([dict(layer=l, tensor=t, dtype=d, oracle=o, worst_rel_error=e, limit=lim)
                           for (l, t, d, o), (e, lim) in rows], f, indent=1)
            tr.write_line(f"written to {path}")
        except OSError as e:                       # the tests' own outcome stands
            tr.write_line(f"NUMPY_GPT_ERROR_TABLE: could not write {path}: {e.strerror or e}", red=True)


def _headroom(err: float, limit: float | None) -> str:
    if limit is None:
        return ""
    return "inf" if err == 0 else f"{limit / err:.3g}x"
