"""Elementwise kernels over row blocks, on a few threads.

A NumPy ufunc runs on one core. It releases the GIL inside its loop, though,
so threads applying the same kernel to disjoint blocks of rows run truly in
parallel. Blocks of a few hundred KB also keep a kernel's several passes in
cache instead of streaming a 4 MB array through memory once per pass.

Only kernels whose rows are independent go through here (GELU, softmax rows,
cross-entropy rows, optimizer updates): each row is computed exactly as it
would be alone, so results are bit-identical whatever the thread count.
Matrix products do not: BLAS has its own threads (threadpoolctl sets them).

The thread count defaults to the machine's cores, or NUMPY_GPT_NUM_THREADS;
set_num_threads(n) changes it (benchmarks give numpy and torch the same n).
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

_BLOCK_BYTES = 256 * 1024           # per block: fits a core's L2 with room for a few temporaries
_state: dict = {"n": None, "pool": None}


def get_num_threads() -> int:
    if _state["n"] is None:
        _state["n"] = max(1, int(os.environ.get("NUMPY_GPT_NUM_THREADS", os.cpu_count() or 1)))
    return _state["n"]


def set_num_threads(n: int) -> None:
    """Use n threads for elementwise kernels (1 runs them inline, with no pool at all)."""
    if n < 1:
        raise ValueError(f"thread count must be >= 1, got {n}")
    if _state["pool"] is not None and n != _state["n"]:
        _state["pool"].shutdown(wait=True)
        _state["pool"] = None
    _state["n"] = n


def for_row_blocks(kernel, n_rows: int, row_bytes: int) -> None:
    """Call kernel(lo, hi) on consecutive row ranges covering [0, n_rows).

    Ranges hold about _BLOCK_BYTES each and are shared out among the threads.
    """
    rows = max(1, _BLOCK_BYTES // max(row_bytes, 1))
    blocks = [(lo, min(lo + rows, n_rows)) for lo in range(0, n_rows, rows)]
    n = min(get_num_threads(), len(blocks))
    if n <= 1:
        for lo, hi in blocks:
            kernel(lo, hi)
        return
    if _state["pool"] is None:
        _state["pool"] = ThreadPoolExecutor(max_workers=get_num_threads() - 1, thread_name_prefix="numpy_gpt")

    def worker(i):
        for lo, hi in blocks[i::n]:
            kernel(lo, hi)
    futures = [_state["pool"].submit(worker, i) for i in range(1, n)]
    worker(0)                               # the calling thread takes the first share itself
    for f in futures:
        f.result()
