"""Peak resident memory of a few training steps, for one implementation and one config.

    python -m benchmarks.memory --impl numpy --config small [--dtype float32] [--steps 3] [--threads N]

Run in its own process, because ru_maxrss is a high-water mark of the whole process: in the
main benchmark it would mix every implementation and config. Prints one JSON line:
    baseline_mb  resident memory after the imports (numpy_gpt, and numpy_gpt.processes for procs;
                 torch and torch_gpt for torch impls)
    peak_mb      peak RSS (VmHWM, else ru_maxrss) after building the model and optimizer and running --steps steps
    delta_mb     peak_mb - baseline_mb: weights, gradients, AdamW state, activations, workspace,
                 and the library's runtime, which starts at its first step (thread pools, BLAS buffers)
    warm_baseline_mb, warm_delta_mb
                 the same after a warm-up that starts that runtime first: two training steps of
                 WARM_UP, a model of 15k parameters, and a 512^3 matmul, on the same threads,
                 after which the heap's free memory goes back to the kernel. warm_delta_mb is the model's own memory: what the implementation
                 keeps and allocates for this config, without either library's fixed costs.
                 (torch's runtime took about 86 MB in the run at 12cb0ba, numpy_gpt's about 9.)
On Linux the high-water mark is reset after the imports and again after the warm-up (writing 5
to /proc/self/clear_refs), so a transient peak during `import torch` cannot hide a smaller
model's peak; where that is not possible the baseline is ru_maxrss after the imports instead
("method" says which), and warm_delta_mb is left out.
For --impl compile, the peak includes torch.compile's own work in this process (its worker
subprocesses are not counted). For --impl procs (numpy_gpt with shard processes), each shard
worker's memory above its own imports is added as this process's is counted: its high-water mark
is reset once it has started (imports done, model built on the shared blocks), and its peak less
its resident memory then is its part; the shared parameter and gradient blocks, which this
process's peak already holds, are taken out of it, and so are the pages of library code that
its first step maps in (files this process maps too, whose pages its warm-up made resident).
"""
from __future__ import annotations

import argparse
import gc
import json
import re
import resource
import sys

import numpy as np

from .workloads import IMPLS, PROCS, Workload

# The warm-up before warm_baseline_mb: a model of 15k parameters, two shards at two threads.
WARM_UP = Workload("warm-up", vocab_size=64, block_size=16, n_embd=32, n_layer=1, n_head=2, batch_size=4)


def _status_mb(field: str, pid: str = "self") -> float | None:
    """A field of /proc/<pid>/status (VmRSS, VmHWM) in MiB, or None off Linux."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


_LIBRARY = re.compile(r"\.so(\.[\w.]+)?$")        # a shared library's file: libopenblas.so, _multiarray_umath...so.1


def library_rss_mb(pid: str = "self") -> float | None:
    """Resident MiB of the shared libraries (.so files) a process maps, from /proc/<pid>/smaps:
    their code and read-only data, the pages every process that maps the same file shares. A
    data file mapped with np.memmap, or the shared parameter blocks, are not among them. None off
    Linux."""
    try:
        with open(f"/proc/{pid}/smaps") as f:
            total, library = 0, False
            for line in f:
                head = line.split()
                if not head:
                    continue
                if "-" in head[0] and not head[0].endswith(":"):      # a mapping's header line
                    library = len(head) >= 6 and bool(_LIBRARY.search(head[-1]))
                elif library and head[0] == "Rss:":
                    total += int(head[1])
            return total / 1024
    except OSError:
        return None


def maxrss_mb() -> float:
    """This process's peak resident set size so far, in MiB.

    VmHWM where /proc has it: ru_maxrss of a child of a large process starts at the
    parent's RSS at fork time (Linux carries it across exec), which would hide our peak.
    """
    hwm = _status_mb("VmHWM")
    if hwm is not None:
        return hwm
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024 if sys.platform != "darwin" else kb / 1024 ** 2


RESET = "peak reset"        # how reset_peak's method begins where the reset worked


def reset_peak(pid: str = "self", when: str = "after imports") -> tuple[float, str]:
    """Reset the RSS high-water mark of process pid if the kernel allows; return (baseline MiB, method)."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
        rss = _status_mb("VmRSS", pid)
        if rss is not None:
            return rss, f"{RESET} {when} (clear_refs 5); baseline = VmRSS"
    except OSError:
        pass
    if pid != "self":
        return _status_mb("VmHWM", pid) or 0.0, "baseline = VmHWM after imports"
    return maxrss_mb(), "baseline = ru_maxrss after imports"


def measure(impl: str, config: str, dtype: str = "float32", steps: int = 3, threads: int | None = None
            ) -> dict:
    """Build impl's model for config, run `steps` training steps; return the RSS figures."""
    from .timing import thread_limit
    from .workloads import CONFIGS, make_step
    if impl not in ("numpy", PROCS):
        import torch  # noqa: F401 - the baseline includes torch for the torch implementations
        import torch_gpt  # noqa: F401
    if impl == PROCS:
        import numpy_gpt.processes  # noqa: F401 - as torch_gpt for torch: the module is in the baseline
    from numpy_gpt.parallel import keep_freed_memory

    from .machine import available_cores
    if impl in ("numpy", PROCS):
        keep_freed_memory()                   # as numpy_gpt's first forward would; torch keeps malloc's defaults
    baseline, method = reset_peak()
    with thread_limit(threads or available_cores()):
        _warm_up(impl, np.dtype(dtype))
        warm_baseline, warm_method = reset_peak(when="after the warm-up")
        step, _ = make_step(impl, CONFIGS[config], np.dtype(dtype))
        started = _worker_baselines() if impl == PROCS else None      # the workers are up, no step yet
        losses = [step() for _ in range(steps)]
        workers = _worker_peaks(started, CONFIGS[config], np.dtype(dtype)) if impl == PROCS else None
        step.close()
    peak = maxrss_mb()
    out = {"impl": impl, "config": config, "dtype": dtype, "steps": steps,
           "baseline_mb": baseline, "peak_mb": peak, "delta_mb": peak - baseline, "method": method,
           "last_loss": losses[-1]}
    if warm_method.startswith(RESET):
        out.update(warm_baseline_mb=warm_baseline, warm_delta_mb=peak - warm_baseline)
    if workers is not None:
        deltas, shared_mb, worker_method = workers
        out.update(workers_delta_mb=deltas, shared_mb=shared_mb,
                   delta_mb=peak - baseline + sum(deltas),
                   method=f"{method}; plus each shard worker's peak above its start ({worker_method}), "
                          "less the shared blocks this process holds")
        if "warm_delta_mb" in out:                  # the workers' own runtime is not warmed up
            out["warm_delta_mb"] += sum(deltas)
    return out


def _warm_up(impl: str, dtype) -> None:
    """Start impl's runtime (see the module docstring): WARM_UP's steps and a 512^3 matmul."""
    from .workloads import make_step
    step, _ = make_step(impl if impl != PROCS else "numpy", WARM_UP, dtype)
    for _ in range(2):
        step()
    step.close()
    a = np.ones((512, 512), dtype)
    if impl in ("numpy", PROCS):
        a @ a
    else:
        import torch
        t = torch.from_numpy(a)
        t @ t
        del t
    del a, step
    gc.collect()
    _trim_heap()


def _trim_heap() -> None:
    """Give the heap's free memory back to the kernel (glibc's malloc_trim), where there is one.

    Without it the warm-up's freed arrays would stay resident, in the baseline, and the model's
    first arrays would reuse them without raising the peak: more so for numpy_gpt, whose
    malloc keeps freed blocks (numpy_gpt.parallel.keep_freed_memory)."""
    from numpy_gpt.parallel import trim_freed_memory
    trim_freed_memory()


def _worker_baselines() -> dict[str, tuple[float, float, float, str]]:
    """For each running child (the shard workers, started and idle): reset its high-water mark
    and return {pid: (resident MiB, of which shared memory MiB, of which shared libraries MiB, method)}."""
    from .timing import child_pids
    out = {}
    for pid in child_pids():
        rss, method = reset_peak(pid)
        out[pid] = (rss, _status_mb("RssShmem", pid) or 0.0, library_rss_mb(pid) or 0.0, method)
    return out


def _worker_peaks(started, w, dtype) -> tuple[list[float], float, str]:
    """(each worker's peak above its start, less the shared blocks and the shared libraries' pages
    it touched since, in MiB; the MiB of shared blocks one worker maps; how the baselines were taken).

    The shared blocks are the parameters and the gradients (numpy_gpt.processes): a worker
    reads all of the one and writes all of the other, and this process holds both already.
    The libraries' pages are the code that the worker's first step runs (OpenBLAS's kernels,
    NumPy's loops: 0.7 MB at tiny; only .so mappings, library_rss_mb, so that a data file a
    worker might map would still count): pages of the files this process has mapped too,
    resident once for both, and part of the runtime, which this process's warm-up puts in
    its baseline. They are counted at the end: a library's code stays resident."""
    from .workloads import n_params
    shared = 2 * n_params(w) * dtype.itemsize / 2 ** 20
    deltas = []
    for pid, (rss, shmem, libs, _) in started.items():
        hwm = _status_mb("VmHWM", pid)
        if hwm is not None:
            now = library_rss_mb(pid)
            libs_touched = max((libs if now is None else now) - libs, 0.0)
            deltas.append(max(hwm - rss - max(shared - shmem, 0.0) - libs_touched, 0.0))
    methods = sorted({m for *_, m in started.values()})
    return deltas, shared, "; ".join(methods) or "no workers found"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--impl", choices=(*IMPLS, PROCS), required=True)
    p.add_argument("--config", required=True)
    p.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--threads", type=int, default=None)
    a = p.parse_args(argv)
    print(json.dumps(measure(a.impl, a.config, a.dtype, a.steps, a.threads)))


if __name__ == "__main__":
    main()
