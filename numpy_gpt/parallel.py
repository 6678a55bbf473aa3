"""Elementwise kernels over row blocks, on a few threads.

A NumPy ufunc runs on one core. It releases the GIL inside its loop, though,
so threads applying the same kernel to disjoint blocks of rows run truly in
parallel. Blocks of a few hundred KB also keep a kernel's several passes in
cache instead of streaming a 4 MB array through memory once per pass.

Only kernels whose rows are independent go through here (GELU, softmax rows,
cross-entropy rows, optimizer updates): no row's result depends on another
row's values. (It may depend on where the row sits in its block: BLAS sums
rows for reductions.py in groups of a few.) Blocks are cut by size, not by
thread count, so results are bit-identical whatever the thread count.
Matrix products do not: BLAS has its own threads (threadpoolctl sets them).

A training step goes one level up (map_shards): the batch is cut into one
shard per thread, and each thread runs the whole forward and backward of its
shard with single-threaded kernels and single-threaded BLAS; the model adds
the shards' gradients (data parallelism, as across GPUs, here across cores).
Each core then works on its own data from start to end: no hand-over between
threads at every matrix product, and no BLAS worker spinning on a core that
an elementwise kernel wants. Shards need threadpoolctl (to give BLAS one
thread); without it the batch stays whole. The sum over shards rounds
differently from one big matrix product, so a step with n threads agrees
with a step with 1 thread to rounding, not bit for bit; with the same n it
is the same every run.

A batch of one sequence cannot be cut that way (a batch of two or more is
cut into min(threads, B) shards). A long enough step of one sequence runs
inside share_products(): BLAS keeps one thread, and the pool's threads share out
each big matrix product (matmul, one block of rows or columns per thread)
and attention's heads (shares). Why not let BLAS's own threads do the
products? After a product they spin, waiting for the next one, for a while;
an elementwise kernel or a group of heads running on the pool's threads in
that time finds its core taken (attention's core at T = 1024 took as long on
2 threads as on 1). A short step keeps BLAS's threads (share_products says
where the line lies, and why).

The thread count defaults to the machine's cores, or NUMPY_GPT_NUM_THREADS;
set_num_threads(n) changes it (benchmarks give numpy and torch the same n).

Memory: a step allocates and frees hundreds of arrays. glibc's malloc hands
big freed blocks back to the kernel (munmap), and the next step asks for them
again; with several threads each munmap also interrupts the other cores to
flush their TLBs, which is slow in a virtual machine. keep_freed_memory()
tells malloc to keep such blocks for reuse, in one heap shared by all threads
(the process's peak memory does not change; its memory between steps stays
near the peak). A model calls it once, at its first forward (with one thread
as with several); setting NUMPY_GPT_KEEP_MEMORY=0 turns that off.
"""
from __future__ import annotations

import contextlib
import contextvars
import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np

from .errors import ConfigError

_BLOCK_BYTES = 256 * 1024           # per block: fits a core's L2 with room for a few temporaries
_state: dict = {"n": None, "pool": None, "blas": None, "kept": None}


class _ThreadState(threading.local):
    """Each thread's own flags, False until set. (As class defaults they read in 0.08 us; a
    getattr(local, name, False) of a flag never set took 0.6, raising and catching inside.)"""
    serial = False                  # this thread runs its kernels inline (a shard worker, one_thread())
    sharing = False                 # inside share_products()


_local = _ThreadState()

SPLIT_MACS = 1 << 22               # matmul cuts products of at least this many multiply-adds (~50 us)
SHARE_MIN_ROWS = 512                # share_products() shares the products of steps of at least this many tokens
ROW_BY_ROW = (2, 3)                 # matmul runs products of this many rows of a one row at a time,
ROW_BY_ROW_MIN = 1 << 15            # when b holds at least this many entries (see matmul)


def machine_busy_seconds() -> float | None:
    """CPU seconds the whole machine has spent busy since boot (all cores, less idle and iowait),
    from /proc/stat; None where there is none. The difference of two readings over a wall time,
    less this process's own CPU time, is the load of other processes."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)          # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")        # user..steal


def get_num_threads() -> int:
    if _state["n"] is None:
        _state["n"] = _threads_from_env()
    return _state["n"]


def _threads_from_env() -> int:
    """NUMPY_GPT_NUM_THREADS if set (a positive integer, else ConfigError), else the machine's cores."""
    value = os.environ.get("NUMPY_GPT_NUM_THREADS", "").strip()
    if not value:
        return os.cpu_count() or 1
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise ConfigError(f"NUMPY_GPT_NUM_THREADS must be a positive integer, got {value!r}")
    return n


def set_num_threads(n: int) -> None:
    """Use n threads for elementwise kernels (1 runs them inline, with no pool at all)."""
    if n < 1:
        raise ValueError(f"thread count must be >= 1, got {n}")
    if _state["pool"] is not None and n != _state["n"]:
        _state["pool"].shutdown(wait=True)
        _state["pool"] = None
    _state["n"] = n


def block_rows(row_bytes: int, block_bytes: int | None = None) -> int:
    """Rows of row_bytes each in one block of about block_bytes (_BLOCK_BYTES by default; at least 1 row)."""
    return max(1, (_BLOCK_BYTES if block_bytes is None else block_bytes) // max(row_bytes, 1))


def row_blocks(n_rows: int, row_bytes: int, block_bytes: int | None = None) -> list[tuple[int, int]]:
    """Consecutive (lo, hi) row ranges covering [0, n_rows), of about block_bytes each (as block_rows)."""
    rows = block_rows(row_bytes, block_bytes)
    return [(lo, min(lo + rows, n_rows)) for lo in range(0, n_rows, rows)]


def for_row_blocks(kernel, n_rows: int, row_bytes: int) -> None:
    """Call kernel(lo, hi) on consecutive row ranges covering [0, n_rows).

    Ranges hold about _BLOCK_BYTES each and are shared out among the threads.
    """
    if n_rows <= block_rows(row_bytes):     # one block (a decoding step, say): no bookkeeping
        kernel(0, n_rows)
        return
    for_blocks(kernel, row_blocks(n_rows, row_bytes))


def for_blocks(kernel, blocks: list[tuple], max_threads: int | None = None) -> None:
    """Call kernel(*args) for every args tuple in blocks, shared out among the threads
    (at most max_threads of them, when given).

    The calls must be independent of each other (they may run in any order, at
    the same time). One call of this for many small arrays' blocks (an
    optimizer's update of every parameter) wakes the threads once, not once per array.
    """
    if max_threads is not None and max_threads < 1:
        raise ValueError(f"max_threads must be >= 1 or None, got {max_threads}")
    n = 1 if _local.serial else min(get_num_threads(), len(blocks), max_threads or len(blocks))
    if n <= 1:
        for args in blocks:
            kernel(*args)
        return

    def worker(i):
        for args in blocks[i::n]:
            kernel(*args)
    futures = [_submit(worker, i) for i in range(1, n)]
    try:
        worker(0)                           # the calling thread takes the first share itself
    finally:
        wait(futures)                       # never return while a share still writes
    for f in futures:
        f.result()


def keep_freed_memory() -> bool:
    """Ask glibc's malloc to keep freed blocks up to 32 MB for reuse rather than unmap them.

    Three settings, process-wide (they also help anything else in the process
    that allocates big blocks, torch included):
      - blocks up to 32 MB come from malloc's heap, not from their own mmap;
      - the heap is not trimmed (given back to the kernel) below 1 GB;
      - every thread allocates from the one main heap (one arena). A thread
        would otherwise get an arena of its own, made of 64 MB sub-heaps that
        glibc unmaps as soon as one is free, whatever the trim setting: at
        medium that re-faulted about 7000 pages (27 MB) in each training step's
        second shard. Threads that already have an arena keep it, so this must
        run before the pool starts.
    Returns False where it does not apply (not glibc) or NUMPY_GPT_KEEP_MEMORY=0.
    """
    if os.environ.get("NUMPY_GPT_KEEP_MEMORY", "1") == "0":
        return False
    try:
        import ctypes
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_ARENA_MAX = -1, -3, -8    # glibc's <malloc.h>
    return all([mallopt(M_MMAP_THRESHOLD, 32 << 20), mallopt(M_TRIM_THRESHOLD, 1 << 30),
                mallopt(M_ARENA_MAX, 1)])


def trim_freed_memory() -> bool:
    """Give the heap's free memory back to the kernel (glibc's malloc_trim); False where there is none.

    The other side of keep_freed_memory: for a moment when no training step is near,
    such as the end of a run, so that what is allocated next can take those pages
    rather than new ones. A later step faults its pages in again, once."""
    try:
        import ctypes
        ctypes.CDLL(None).malloc_trim(0)
        return True
    except (OSError, AttributeError):
        return False


def keep_freed_memory_once() -> None:
    """keep_freed_memory(), the first time only (GPT.forward calls this every time)."""
    if _state["kept"] is None:
        _state["kept"] = keep_freed_memory()


def _pool() -> ThreadPoolExecutor:
    if _state["pool"] is None:
        keep_freed_memory_once()
        _state["pool"] = ThreadPoolExecutor(max_workers=get_num_threads() - 1, thread_name_prefix="numpy_gpt")
    return _state["pool"]


def _submit(fn, *args, **kwargs):
    """_pool().submit(fn, ...), run in a copy of the caller's context: NumPy (2.0 on) keeps
    np.errstate in a context variable, so a kernel on a pool thread warns, raises or stays
    quiet as it would on the caller."""
    return _pool().submit(contextvars.copy_context().run, fn, *args, **kwargs)


def _blas_controller():
    """threadpoolctl's handle on the BLAS libraries loaded, or None without threadpoolctl."""
    if _state["blas"] is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:
            _state["blas"] = False
        else:
            _state["blas"] = ThreadpoolController().select(user_api="blas")
    return _state["blas"] or None


def batch_shards(batch: int) -> list[slice]:
    """How map_shards cuts a batch of `batch` rows: one contiguous slice per thread.

    One slice (no sharding) with one thread, inside a shard already, or
    without threadpoolctl to keep BLAS to one thread per shard.
    """
    n = min(get_num_threads(), batch)
    if n <= 1 or _local.serial or _blas_controller() is None:
        return [slice(0, batch)]
    edges = [batch * i // n for i in range(n + 1)]
    return [slice(lo, hi) for lo, hi in zip(edges[:-1], edges[1:])]


@contextlib.contextmanager
def _serial():
    before = _local.serial
    _local.serial = True
    try:
        yield
    finally:
        _local.serial = before


def _one_blas_thread():
    """A context in which BLAS uses one thread (no-op without threadpoolctl)."""
    blas = _blas_controller()
    return blas.limit(limits=1) if blas is not None else contextlib.nullcontext()


@contextlib.contextmanager
def one_thread():
    """Run the body on the calling thread alone: BLAS on one thread, kernels inline.

    For work too small to share out, such as one decoding step of a few rows,
    where handing a matrix-vector product to a second BLAS thread costs more
    than it saves (and leaves that thread spinning afterwards).
    """
    with _serial(), _one_blas_thread():
        yield


def _run_serial(fn, item):
    with _serial():
        return fn(item)


def map_shards(fn, items: list) -> list:
    """[fn(item) for item in items], one item per thread, all at once.

    Inside, BLAS has one thread and for_row_blocks runs inline, so each item
    keeps one core to itself. Use with batch_shards: at most one item per thread.
    """
    if len(items) == 1:
        return [fn(items[0])]
    if len(items) > get_num_threads():
        raise ValueError(f"{len(items)} shards for {get_num_threads()} threads")
    with _one_blas_thread():
        futures = [_submit(_run_serial, fn, item) for item in items[1:]]
        try:
            first = _run_serial(fn, items[0])        # the calling thread takes the first shard
        finally:
            wait(futures)                            # never leave a shard running on an error
        return [first] + [f.result() for f in futures]


@contextlib.contextmanager
def share_products(rows: int):
    """Run the body with BLAS on one thread, and big products and attention's heads shared
    out among the pool's threads instead (matmul, shares). For a step of `rows` tokens whose
    batch is not cut into shards: one sequence (batch_shards cuts any other batch).

    A no-op with one thread, inside a shard, without threadpoolctl, or for fewer than
    SHARE_MIN_ROWS tokens. In a short step each product takes a fraction of a
    millisecond, and waking a sleeping pool thread for it costs more than it saves,
    where BLAS's own threads spin ready. Measured on small's layers, one sequence, 2
    threads, the step with sharing against the step without in alternating rounds: 0.84-0.86x
    as fast at T = 64 and 128, 0.93x at 256, level at 512, 1.06-1.28x at 1024, 1.17x at 2048.
    """
    if (rows < SHARE_MIN_ROWS or get_num_threads() <= 1 or _local.serial or _local.sharing
            or _blas_controller() is None):
        yield
        return
    _local.sharing = True
    try:
        with _one_blas_thread():
            yield
    finally:
        _local.sharing = False


def shares(n: int, macs: int) -> list[slice]:
    """n independent items (attention heads) that take `macs` multiply-adds in all, cut as
    batch_shards cuts a batch: one slice per thread inside share_products(), for at least
    SPLIT_MACS of work. Otherwise a single slice: the caller's thread does them all."""
    if not _local.sharing or macs < SPLIT_MACS:
        return [slice(0, n)]
    return batch_shards(n)


def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """a @ b for 2-D a (M, K) and b (K, N); a new (M, N) array, or written into out.

    Inside share_products() (and not inside a shard or one_thread()) a product
    of at least SPLIT_MACS multiply-adds, with at least 16 rows or columns per
    thread, is cut into one block per thread, along the longer of M and N (rows
    of a, or columns of b), each block a one-thread BLAS product written
    straight into its part of the result. Every entry still sums over the
    whole K, in BLAS's order for its block.

    A product of 2 or 3 rows (ROW_BY_ROW) with a b of at least ROW_BY_ROW_MIN
    entries is done one row at a time: a KV-cache step decoding 2 or 3
    sequences (or beams) is such a product for every weight. OpenBLAS's sgemm
    takes about twice as long for 2 or 3 rows as one matrix-vector product per
    row, and 3 rows take longer than 4 (Zen 3 host, 2026-12-06, 1 and 2
    threads, float32 and float64, b from 128 x 384 to 512 x 4096; for smaller b
    the extra calls cost more than they save). Each row's result is then the
    one a batch of that row alone gets. (An out of another shape, or one that
    may overlap a, goes to np.matmul, which refuses the one and buffers the other.)
    """
    M, N = a.shape[0], b.shape[1]
    if (M in ROW_BY_ROW and b.size >= ROW_BY_ROW_MIN
            and (out is None or (out.shape == (M, N) and not np.may_share_memory(out, a)))):
        if out is None:
            out = np.empty((M, N), dtype=np.result_type(a, b))
        for i in range(M):
            np.matmul(a[i:i + 1], b, out=out[i:i + 1])
        return out
    n = 1 if (not _local.sharing or _local.serial) else get_num_threads()   # 1: the usual case
    if n <= 1 or M * N * a.shape[1] < SPLIT_MACS or max(M, N) < 16 * n:
        return a @ b if out is None else np.matmul(a, b, out=out)
    if out is None:
        out = np.empty((M, N), dtype=np.result_type(a, b))
    size = max(M, N)
    edges = [size * i // n // 16 * 16 for i in range(n)] + [size]     # multiples of 16 (whole SIMD tiles), none empty
    if M >= N:
        parts = [(a[lo:hi], b, out[lo:hi]) for lo, hi in zip(edges[:-1], edges[1:])]
    else:
        parts = [(a, b[:, lo:hi], out[:, lo:hi]) for lo, hi in zip(edges[:-1], edges[1:])]
    futures = [_submit(np.matmul, x, y, out=o) for x, y, o in parts[1:]]
    try:
        np.matmul(*parts[0][:2], out=parts[0][2])           # the calling thread takes the first block
    finally:
        wait(futures)
    for f in futures:
        f.result()
    return out
