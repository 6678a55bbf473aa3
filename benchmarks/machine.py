"""What machine and libraries ran the benchmarks, and the matmul peak they are measured against."""
from __future__ import annotations

import os
import platform
import sys
import time

import numpy as np

from .timing import thread_limit


def _cpuinfo() -> dict[str, str]:
    """The first processor's fields from /proc/cpuinfo ({} where there is none)."""
    info: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if not line.strip():
                    break
                key, _, value = line.partition(":")
                info[key.strip()] = value.strip()
    except OSError:
        pass
    return info


def _meminfo_gb() -> float | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 1024 ** 2
    except OSError:
        pass
    return None


def available_cores() -> int:
    """Cores this process may run on (the affinity mask, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


# What OpenBLAS's AVX-512 kernels (SkylakeX and its successors) need of the CPU.
AVX512_FLAGS = frozenset({"avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"})
OPENBLAS_AVX512_KERNELS = frozenset({"skylakex", "cooperlake", "sapphirerapids"})
OPENBLAS_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")      # read by OpenBLAS when NumPy loads it


def blas_kernel_note(desc: dict) -> str | None:
    """A warning when OpenBLAS runs AVX2-or-older kernels on a CPU that has AVX-512, else None.

    OpenBLAS picks its kernels from the CPU's family and model when it loads, unless
    OPENBLAS_CORETYPE names them. Some machines set that variable (with OPENBLAS_L2_SIZE) for older
    OpenBLAS builds that misbehave on their CPU; with a current NumPy it can halve the matmul.
    """
    if not desc.get("avx512_kernels_usable"):
        return None
    pinned = desc.get("openblas_env", {})
    for pool in desc.get("threadpools", []):
        arch = str(pool.get("architecture") or "")
        if pool.get("internal_api") != "openblas" or not arch or arch.lower() in OPENBLAS_AVX512_KERNELS:
            continue
        if "OPENBLAS_CORETYPE" in pinned:
            return (f"OPENBLAS_CORETYPE={pinned['OPENBLAS_CORETYPE']} in the environment holds OpenBLAS to its "
                    f"{arch} kernels on a CPU that has AVX-512. To measure the kernels OpenBLAS would choose "
                    f"itself, run with `env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE`. torch's BLAS is not affected.")
        return (f"OpenBLAS chose its {arch} kernels on a CPU that has AVX-512; `OPENBLAS_CORETYPE=SkylakeX` "
                f"before the run selects its AVX-512 kernels, which may be faster. torch's BLAS is not affected.")
    return None


def describe() -> dict:
    """CPU model, cores, memory, Python/NumPy/torch versions, BLAS and thread-pool info."""
    from threadpoolctl import threadpool_info
    cpu = _cpuinfo()
    flags = set(cpu.get("flags", "").split())
    desc = {
        "cpu_model": cpu.get("model name", platform.processor() or "unknown"),
        "cpu_mhz": cpu.get("cpu MHz"),
        "cpu_family_model": f"{cpu.get('cpu family', '?')}/{cpu.get('model', '?')}",   # which host, in a VM
        "simd": sorted(f for f in flags if f in {"avx", "avx2", "fma", "avx512f", "avx512_bf16",
                                                 "avx512_vnni", "amx_tile"}),
        "cores_available": available_cores(),
        "cpu_count": os.cpu_count(),
        "memory_gb": _meminfo_gb(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "threadpools": threadpool_info(),
        "loadavg_at_start": os.getloadavg(),
        "openblas_env": {k: os.environ[k] for k in OPENBLAS_ENV if k in os.environ},   # kernels chosen by hand
        "avx512_kernels_usable": AVX512_FLAGS <= flags,
    }
    try:
        import torch
        desc["torch"] = torch.__version__
        desc["torch_parallel_info"] = torch.__config__.parallel_info()
    except ImportError:
        desc["torch"] = None
    return desc


def matmul_fn(n: int, dtype, lib: str = "numpy"):
    """(call, flops): a zero-argument (n, n) @ (n, n) matmul into a preallocated output, and its 2 n^3 flops.

    lib: "numpy" (its BLAS) or "torch".
    """
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(dtype)
    b = rng.standard_normal((n, n)).astype(dtype)
    out = np.empty_like(a)
    if lib == "torch":
        import torch
        a, b, out = torch.from_numpy(a), torch.from_numpy(b), torch.from_numpy(out)
        return (lambda: torch.matmul(a, b, out=out)), 2.0 * n ** 3
    return (lambda: np.matmul(a, b, out=out)), 2.0 * n ** 3


def matmul_gflops(n: int, dtype, threads: int, repeats: int = 5, lib: str = "numpy") -> dict:
    """GFLOP/s of an (n, n) @ (n, n) matmul (2 n^3 flops) at `threads` threads.

    Returns the best and the median over the repeats (the best is the run's
    "peak" in the peak table); lib as in matmul_fn.
    """
    mm, flops = matmul_fn(n, dtype, lib)
    times = []
    with thread_limit(threads):
        time.sleep(0.15)                                  # let the other library's threads stop spinning
        mm()                                              # warm-up: threads, page faults
        for _ in range(repeats):
            t0 = time.perf_counter()
            mm()
            times.append(time.perf_counter() - t0)
    return {"n": n, "dtype": np.dtype(dtype).name, "threads": threads, "lib": lib,
            "times_s": times, "peak_gflops": flops / min(times) / 1e9,
            "median_gflops": flops / float(np.median(times)) / 1e9}
