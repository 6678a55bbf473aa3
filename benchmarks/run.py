"""numpy_gpt vs PyTorch on the CPU, side by side in one run.

    python -m benchmarks.run [--quick] [--threads 1,2] [--configs tiny,small,medium]
                             [--dtype float32|float64] [--repeats N] [--no-compile]
                             [--out DIR] [--only SECTION[,SECTION...]]

Sections (all by default):
    peak      the machine's matmul peak (NumPy BLAS, n^3, at each thread count): always measured
    step      a training step (forward + backward + AdamW) per config: numpy_gpt, torch eager,
              torch.compile; GFLOP/s and % of peak; peak RSS from one subprocess per (impl, config)
    products  the step's linear-layer matrix products alone, NumPy's BLAS against torch's, at
              1 thread: how much of the step's ratio the two BLAS libraries set by themselves
    layers    every layer's forward and forward + backward at each config's sizes
    generate  greedy generation tokens/s, batch 1, with and without the KV cache (on "small"):
              numpy_gpt, torch eager, torch.compile
    scaling   step throughput vs n_embd, vs T (B x T fixed), vs batch size: numpy_gpt, torch
              eager, and torch.compile at the most threads

Every section but products runs at each thread count, NumPy's BLAS and torch limited alike. Output: a
markdown report on stdout and in OUT/<mode>.md, every raw timing and the machine description
in OUT/<mode>.json, and plots OUT/<mode>_{step,products,layers,generate,scaling}.png, where <mode> is
"full" or "quick" (so a CI --quick run does not overwrite the full results).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from numpy_gpt.parallel import keep_freed_memory

from . import report
from .machine import available_cores, describe, matmul_fn, matmul_gflops
from .timing import (best_per_round, error_text, fmt_threads, interleaved, paired_rate_ratio, paired_ratio,
                     ratio_stats, summarize, thread_limit)
from .workloads import (CONFIGS, FLOPS_FORMULA, IMPLS, PROCS, Workload, attention_flops, make_generate, make_step,
                        n_params, step_flops)

SECTIONS = ("step", "products", "layers", "generate", "scaling")
MATMULS = ("matmul", "matmul_torch")   # the square matmul timed in every step round, NumPy's BLAS and torch's
MIN_REPEATS = 5                # timed rounds per measurement, at the least
ROOT = Path(__file__).resolve().parent.parent


def log(msg: str) -> None:
    """Progress goes to stderr, so stdout holds only the report."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None, prog: str = "python -m benchmarks.run",
               parser: type = argparse.ArgumentParser) -> argparse.Namespace:
    """prog and parser: `numpy-gpt bench` passes its own, whose errors are one line."""
    p = parser(prog=prog, description="numpy_gpt vs PyTorch on the CPU.")
    p.add_argument("--quick", action="store_true",
                   help="CI smoke run: tiny config, small sizes, torch.compile in the step section at "
                        "the fewest threads only (< 2 min)")
    p.add_argument("--threads", default=None,
                   help="comma-separated thread counts (default: 1 and all cores, so that --quick also "
                        "runs the multi-thread paths and numpy_gpt's shard processes)")
    p.add_argument("--configs", default=None,
                   help=f"comma-separated configs from {','.join(CONFIGS)} (default: all; --quick: tiny)")
    p.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    p.add_argument("--repeats", type=int, default=None,
                   help="timed rounds per measurement, at least 5 (default 7; --quick 5)")
    p.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"), help="output directory")
    p.add_argument("--only", default=None,
                   help=f"comma-separated sections to run, from {','.join(SECTIONS)} (the peak is always measured)")
    p.add_argument("--cooldown", type=float, default=None,
                   help="seconds to pause before each timed sample when threads > 1, so the other "
                        "library's spinning worker threads go to sleep (default 0.15: OpenBLAS's "
                        "workers here burn ~0.11 s of CPU after each call; 0 turns it off)")
    p.add_argument("--rewarm", type=float, default=None,
                   help="seconds of untimed calls after each cooldown pause, before the sample, so the "
                        "sample times calls at speed, not the slow ones just after the pause (default "
                        "0.1; --quick 0.01)")
    p.add_argument("--min-time", type=float, default=None,
                   help="seconds each timed sample lasts at least, in back-to-back calls (default 0.25; "
                        "--quick 0.01)")
    p.add_argument("--max-load", type=float, default=0.10,
                   help="re-measure when other processes used more than this share of all cores (default 0.10)")
    p.add_argument("--retries", type=int, default=2, help="re-measurements of a busy cell (default 2; --quick 0)")
    p.add_argument("--retry-wait", type=float, default=10.0, help="seconds to wait before re-measuring")
    p.add_argument("--retry-budget", type=float, default=300.0,
                   help="total seconds of waiting for a quiet machine in the whole run (default 300)")
    a = p.parse_args(argv)
    cores = available_cores()
    try:
        a.threads = sorted({int(t) for t in a.threads.split(",")}) if a.threads else sorted({1, cores})
    except ValueError:
        p.error(f"--threads {a.threads!r}: expected thread counts separated by commas, such as 1,2")
    if min(a.threads) < 1:
        p.error(f"--threads {','.join(map(str, a.threads))}: thread counts must be at least 1")
    a.configs = a.configs.split(",") if a.configs else (["tiny"] if a.quick else list(CONFIGS))
    unknown = [c for c in a.configs if c not in CONFIGS]
    if unknown:
        p.error(f"unknown config(s) {unknown}; choose from {list(CONFIGS)}")
    a.repeats = (5 if a.quick else 7) if a.repeats is None else a.repeats
    if a.repeats < MIN_REPEATS:
        p.error(f"--repeats {a.repeats}: at least {MIN_REPEATS} rounds, so a median and a spread mean something")
    a.warmup = 1 if a.quick else 2
    a.min_time = (0.01 if a.quick else 0.25) if a.min_time is None else a.min_time
    a.compile = not (a.no_compile or a.quick)
    a.cooldown = 0.15 if a.cooldown is None else a.cooldown
    a.rewarm = (0.01 if a.quick else 0.1) if a.rewarm is None else a.rewarm
    for flag, value in (("--cooldown", a.cooldown), ("--rewarm", a.rewarm), ("--min-time", a.min_time)):
        if not value >= 0:                                        # NaN too
            p.error(f"{flag} {value}: seconds, 0 or more")
    a.retries = 0 if a.quick else a.retries
    a.mode = "quick" if a.quick else "full"
    if a.only is not None:
        wanted = a.only.split(",")
        unknown = [x for x in wanted if x not in SECTIONS]
        if unknown:                                                # "" splits to [""]: unknown too
            p.error(f"unknown section(s) {unknown} in --only; choose from {list(SECTIONS)}")
        a.only = [x for x in SECTIONS if x in wanted]             # in the suite's own order
    return a


# The generation section times this many times the run's rounds. Its calls are short (a KV-cache
# call of small takes ~60 ms, the section ~80 s in all), and its rounds spread widely: paired
# ratios from 0.94x to 1.60x within one cell's 7 rounds on the Zen 3 host (2026-12-06). More
# rounds steady the median.
GENERATE_ROUNDS = 3


def _time(a, fns: dict, threads: int, repeats: int | None = None):
    """interleaved() with this run's settings (`repeats` rounds, the run's --repeats by default);
    the cooldown only matters with worker threads.

    If other processes used more than --max-load of the machine during the measurement, wait
    and measure again (up to --retries times, while the run's --retry-budget of waiting lasts)
    and keep the quietest attempt; every attempt's foreign load is kept in m.attempts.
    """
    best, loads = None, []
    for attempt in range(a.retries + 1):
        if attempt:
            if a.retry_budget < a.retry_wait:
                log(f"  other processes used {100 * loads[-1]:.0f}% of the CPU; retry budget spent, keeping it")
                break
            a.retry_budget -= a.retry_wait
            log(f"  other processes used {100 * loads[-1]:.0f}% of the CPU; waiting {a.retry_wait:.0f} s "
                f"and measuring again ({attempt}/{a.retries})")
            time.sleep(a.retry_wait)
        m = interleaved(fns, repeats or a.repeats, a.warmup, a.min_time, a.cooldown if threads > 1 else 0.0,
                        a.rewarm)
        load = m.foreign_load if m.foreign_load is not None else 0.0
        loads.append(load)
        if best is None or load < (best.foreign_load or 0.0):
            best = m
        if load <= a.max_load:
            break
    best.attempts = loads
    return best


def _row_stats(m) -> dict:
    impls = IMPLS + ((PROCS,) if PROCS in m.samples else ())
    return {"median_s": {i: m.median(i) for i in impls}, "stats": {i: summarize(s) for i, s in m.samples.items() if s},
            "errors": dict(m.errors), "foreign_load": m.foreign_load, "raw": m.to_json()}


def _commit() -> str | None:
    """The checkout's commit, marked when tracked files differ from it; None outside a git checkout."""
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                             timeout=10)
        changed = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                                 capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if rev.returncode != 0:
        return None
    return rev.stdout.strip() + (" with uncommitted changes" if changed.stdout.strip() else "")


def _with_procs(threads: int) -> bool:
    """Whether numpy_gpt's opt-in shard processes run too: they need a second shard (Linux only)."""
    return threads > 1 and sys.platform.startswith("linux")


# ------------------------------------------------------------------------- sections
def _peak_n(a) -> int:
    """Side of the square matmul that stands for the machine's peak."""
    return 1024 if a.quick else 2048


def run_peak(a) -> list[dict]:
    n = _peak_n(a)
    out = []
    for t in a.threads:
        log(f"matmul peak {n}^3 {a.dtype}, {fmt_threads(t)}")
        row = {"threads": t, "numpy": matmul_gflops(n, a.dtype, t, repeats=3 if a.quick else 5)}
        try:
            row["torch"] = matmul_gflops(n, a.dtype, t, repeats=3 if a.quick else 5, lib="torch")
        except Exception as exc:                                  # noqa: BLE001
            row["torch"] = {"error": repr(exc)}
        out.append(row)
    return out


def _start(impls, make) -> tuple[dict, dict, dict, float | None]:
    """Make each implementation's zero-argument callable with make(impl), and call it once (the
    first call of "compile" compiles; it is timed apart, never in the rounds).

    Returns ({impl: callable}, {impl: its first call's result}, {impl: error} for those that failed
    and are left out, to be reported as n/a, and torch.compile's first call in seconds or None).
    """
    fns, first, errors, compile_time = {}, {}, {}, None
    for impl in impls:
        try:
            fn = make(impl)
            t0 = time.perf_counter()
            try:
                first[impl] = fn()
            except BaseException:
                getattr(fn, "close", lambda: None)()     # a step's shard workers stop here too
                raise
            if impl == "compile":
                compile_time = time.perf_counter() - t0
                log(f"  torch.compile first call {compile_time:.1f} s")
            fns[impl] = fn
        except Exception as exc:                          # noqa: BLE001 - reported as n/a
            errors[impl] = error_text(exc)
            log(f"  {impl} n/a: {errors[impl]}")
    return fns, first, errors, compile_time


def step_compiles(a, t: int) -> bool:
    """Whether the step section times torch.compile at t threads: at every thread count in a
    full run; in --quick at the fewest threads only, one compile (16-17 s with an empty
    inductor cache), so that CI runs the compiled path end to end without doubling its time."""
    if a.no_compile:
        return False
    return a.compile or (a.quick and t == min(a.threads))


def run_step(a, peaks: dict[int, float]) -> list[dict]:
    rows = []
    for name in a.configs:
        w = CONFIGS[name]
        flops = step_flops(w)
        for t in a.threads:
            impls = IMPLS if step_compiles(a, t) else IMPLS[:2]
            row_impls = impls + ((PROCS,) if _with_procs(t) else ())
            log(f"step {name}, {fmt_threads(t)}: {', '.join(row_impls)}")
            info = {}

            def make(impl):
                step, info[impl] = make_step(impl, w, np.dtype(a.dtype))
                return step
            with thread_limit(t):
                fns, first_loss, errors, compile_time = _start(row_impls, make)
                # The peak again, in NumPy's BLAS and in torch's, as two more entries in every
                # round: % of peak is then taken round by round against the faster of the two in
                # that round (drift hits all alike).
                fns["matmul"], mm_flops = matmul_fn(_peak_n(a), a.dtype)
                fns["matmul_torch"], _ = matmul_fn(_peak_n(a), a.dtype, "torch")
                try:
                    m = _time(a, fns, t)
                finally:
                    for impl in row_impls:
                        if impl in fns:
                            fns[impl].close()                    # shard workers stop here
            m.errors.update(errors)
            if not step_compiles(a, t):
                m.errors.setdefault("compile", "skipped (--no-compile)" if a.no_compile else
                                    "skipped in --quick, which compiles at its fewest threads only")
            row = {"config": name, "threads": t, "workload": w.__dict__, "params": n_params(w), "tokens": w.tokens,
                   "flops_per_step": flops, **_row_stats(m), "compile_time_s": compile_time,
                   "first_step_loss": first_loss, "info": info,
                   "speedup_vs_torch": paired_ratio(m, "torch", "numpy"),
                   "speedup_vs_compile": paired_ratio(m, "compile", "numpy")}
            if PROCS in row_impls:
                row[PROCS] = {f"speedup_vs_{i}": paired_ratio(m, i, PROCS) for i in impls}
                row[PROCS]["error"] = m.errors.get(PROCS)
            row["gflops"] = {i: flops / s / 1e9 for i, s in row["median_s"].items() if math.isfinite(s)}
            row["pct_peak"] = {i: 100 * g / peaks[t] for i, g in row["gflops"].items() if t in peaks}
            row["pct_round_peak"] = {i: paired_rate_ratio(m, i, flops, MATMULS, mm_flops) for i in row_impls}
            mms = [m.samples[k] for k in MATMULS if m.samples.get(k)]
            row["round_peak_gflops"] = summarize([mm_flops / s / 1e9 for s in best_per_round(mms)]) if mms else None
            row["round_matmul_gflops"] = {lib: summarize([mm_flops / s / 1e9 for s in m.samples[k]])
                                          for lib, k in zip(("numpy", "torch"), MATMULS) if m.samples.get(k)}
            log("  ms/step " + ", ".join(f"{i} {s * 1e3:.1f}" for i, s in row["median_s"].items() if math.isfinite(s)))
            rows.append(row)
    return rows


STEPS = {"numpy": "numpy step", "torch": "torch step"}     # the products section's step entries


def run_products(a) -> list[dict]:
    """Each config's linear-layer products (benchmarks.gemm_shapes.step_products), 1 thread only,
    and each side's whole training step timed in the same rounds: the rest of the step (the step
    less its products) is then taken round by round, each side's own code apart from its BLAS,
    and so is its ratio.

    At 1 thread both steps run every product on one core, as timed here; at more threads
    numpy_gpt runs one batch shard per thread with one-thread BLAS, which no single product call
    stands for. Rows of a run without 1 thread are left out.
    """
    from .gemm_shapes import step_products
    rows = []
    if 1 not in a.threads:
        log("products: skipped (the section runs at 1 thread, and --threads leaves it out)")
        return rows
    for name in a.configs:
        w = CONFIGS[name]
        log(f"products {name}, 1 thread: NumPy BLAS, torch, and both steps")
        with thread_limit(1):
            np_fn, torch_fn, flops = step_products(w, np.dtype(a.dtype))
            fns, _, errors, _ = _start(tuple(STEPS), lambda impl: make_step(impl, w, np.dtype(a.dtype))[0])
            try:
                m = _time(a, {"numpy": np_fn, "torch": torch_fn, **{STEPS[i]: f for i, f in fns.items()}}, 1)
            finally:
                for f in fns.values():
                    f.close()
        m.errors.update({STEPS[i]: e for i, e in errors.items()})
        rows.append(products_row(name, flops, m))
        log("  ms " + ", ".join(f"{i} {s * 1e3:.1f}" for i, s in rows[-1]["median_s"].items() if math.isfinite(s)))
    return rows


def products_row(name: str, flops: float, m) -> dict:
    """The products section's row for one config from its measurement: the products' medians and
    paired speedup, and, where the steps were timed beside them, each round's rest of the step
    (step less products) per side, its median, and the paired speedup of the rests."""
    row = {"config": name, "threads": 1, "flops": flops, **_row_stats(m), "speedup": paired_ratio(m, "torch", "numpy")}
    row["gflops"] = {i: flops / s / 1e9 for i, s in row["median_s"].items() if math.isfinite(s)}
    rest = {}
    for impl, step in STEPS.items():
        steps, products = m.samples.get(step), m.samples.get(impl)
        if steps and products:
            rest[impl] = [s - p for s, p in zip(steps, products)]
    row["step_median_s"] = {impl: m.median(step) for impl, step in STEPS.items() if m.samples.get(step)}
    row["speedup_step"] = paired_ratio(m, STEPS["torch"], STEPS["numpy"])
    row["rest_s"] = {impl: summarize(r) for impl, r in rest.items()}
    positive = all(x > 0 for r in rest.values() for x in r)      # a rest <= 0 (a round's noise) has no ratio
    row["speedup_rest"] = ratio_stats(rest.get("torch"), rest.get("numpy")) if positive else None
    return row


def run_memory(a) -> list[dict]:
    rows = []
    impls = IMPLS if a.compile else IMPLS[:2]
    if _with_procs(max(a.threads)):
        impls += (PROCS,)
    for name in a.configs:
        for impl in impls:
            log(f"memory {name} {impl} (subprocess)")
            cmd = [sys.executable, "-m", "benchmarks.memory", "--impl", impl, "--config", name,
                   "--dtype", a.dtype, "--threads", str(max(a.threads))]
            try:
                proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=1800)
                if proc.returncode != 0:
                    raise RuntimeError(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed")
                rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            except Exception as exc:                              # noqa: BLE001
                rows.append({"impl": impl, "config": name, "error": f"{type(exc).__name__}: {exc}"})
    return rows


def run_layers(a) -> list[dict]:
    from .layers import layer_cases
    rows = []
    for name in a.configs:
        w = CONFIGS[name]
        cases = layer_cases(w, np.dtype(a.dtype))
        for t in a.threads:
            log(f"layers at {name} sizes, {fmt_threads(t)}")
            with thread_limit(t):
                if a.compile:
                    import torch
                    torch._dynamo.reset()            # compiled kernels bake in the thread count
                for case in cases:
                    c_fwd, c_fwdbwd = case.compiled() if a.compile else (None, None)
                    for pass_, fns in (("forward", {"numpy": case.numpy_fwd, "torch": case.torch_fwd,
                                                    "compile": c_fwd}),
                                       ("fwd+bwd", {"numpy": case.numpy_fwdbwd, "torch": case.torch_fwdbwd,
                                                    "compile": c_fwdbwd})):
                        m = _time(a, {k: f for k, f in fns.items() if f is not None}, t)
                        rows.append({"config": name, "layer": case.name, "shape": case.shape, "threads": t,
                                     "pass": pass_, **_row_stats(m), "speedup": paired_ratio(m, "torch", "numpy"),
                                     "speedup_vs_compile": paired_ratio(m, "compile", "numpy")})
    return rows


def run_generate(a) -> list[dict]:
    name = "tiny" if a.quick else "small"
    w = CONFIGS[name]
    prompt_len, new_tokens = 8, (16 if a.quick else 64)
    impls = IMPLS if a.compile else IMPLS[:2]
    rows = []
    for use_cache in (False, True):
        for t in a.threads:
            log(f"generate {name}, {new_tokens} tokens, cache={use_cache}, {fmt_threads(t)}: {', '.join(impls)}")
            with thread_limit(t):
                fns, tokens, errors, compile_time = _start(
                    impls, lambda impl: make_generate(impl, w, np.dtype(a.dtype), prompt_len, new_tokens, use_cache))
                m = _time(a, fns, t, repeats=GENERATE_ROUNDS * a.repeats)
            m.errors.update(errors)
            same = {i: bool(np.array_equal(tokens["numpy"], tokens[i])) for i in tokens if i != "numpy"} \
                if "numpy" in tokens else {}
            rows.append({"config": name, "threads": t, "use_cache": use_cache, "prompt_len": prompt_len,
                         "new_tokens": new_tokens, "same_tokens": same.get("torch", False),
                         "same_tokens_compile": same.get("compile"), "compile_time_s": compile_time,
                         **_row_stats(m),
                         "tokens_per_s": {i: new_tokens / s for i, s in
                                          ((i, m.median(i)) for i in impls) if math.isfinite(s)},
                         "speedup": paired_ratio(m, "torch", "numpy"),
                         "speedup_vs_compile": paired_ratio(m, "compile", "numpy")})
    return rows


def scaling_points(a) -> list[tuple[str, int, Workload]]:
    """(sweep, value, workload): ~4 points per sweep around "small" (3 around "tiny" in --quick)."""
    if a.quick:
        base, embd, Ts, batches, tokens = CONFIGS["tiny"], (32, 64, 128), (32, 64, 128), (4, 8, 16), 1024
    else:
        base, embd, Ts, batches, tokens = (CONFIGS["small"], (64, 128, 256, 512), (64, 128, 256, 512, 1024),
                                           (2, 4, 8, 16), 1024)
    pts = [("n_embd", c, base.with_(name=f"C{c}", n_embd=c)) for c in embd]
    pts += [("T", T, base.with_(name=f"T{T}", block_size=T, batch_size=tokens // T)) for T in Ts]
    pts += [("batch", b, base.with_(name=f"B{b}", batch_size=b)) for b in batches]
    return pts


def scaling_compiles(a, t: int) -> bool:
    """Whether the scaling sweeps time torch.compile at t threads: at the run's most threads
    only. Every point is a new model shape, so a compile each (about 15-20 s with an empty
    inductor cache); at every thread count the sweeps would take twice as many."""
    return a.compile and t == max(a.threads)


def run_scaling(a) -> list[dict]:
    rows = []
    for sweep, value, w in scaling_points(a):
        for t in a.threads:
            impls = IMPLS if scaling_compiles(a, t) else IMPLS[:2]
            log(f"scaling {sweep}={value}, {fmt_threads(t)}: {', '.join(impls)}")
            with thread_limit(t):
                fns, _, errors, compile_time = _start(impls, lambda impl: make_step(impl, w, np.dtype(a.dtype))[0])
                m = _time(a, fns, t)
            m.errors.update(errors)
            rows.append({"sweep": sweep, "value": value, "threads": t, "workload": w.__dict__,
                         "shape": f"{w.batch_size} x {w.block_size}, {w.n_embd}, {w.n_layer}",
                         "flops_per_step": step_flops(w), "attention_flops": attention_flops(w), **_row_stats(m),
                         "compile_time_s": compile_time,
                         "tokens_per_s": {i: w.tokens / s for i, s in
                                          ((i, m.median(i)) for i in impls) if math.isfinite(s)},
                         "speedup": paired_ratio(m, "torch", "numpy"),
                         "speedup_vs_compile": paired_ratio(m, "compile", "numpy")})
    return rows


# ----------------------------------------------------------------------------- main
def _clean(x):
    """NaN/inf -> None, tuples -> lists, so the JSON file is strict JSON."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, np.generic):
        return _clean(x.item())
    return x


def run_settings(a, argv: list[str] | None, keep_memory: bool) -> dict:
    """What a run records of how it was made: its options, the command, the commit and the day (UTC)."""
    return {
        "mode": a.mode, "sections": a.only or list(SECTIONS), "threads": a.threads, "configs": a.configs,
        "dtype": a.dtype, "repeats": a.repeats, "warmup": a.warmup, "min_time_s": a.min_time, "cooldown_s": a.cooldown,
        "rewarm_s": a.rewarm, "generate_repeats": GENERATE_ROUNDS * a.repeats,
        "max_load": a.max_load, "retries": a.retries, "retry_budget_s": a.retry_budget,
        "compile": a.compile, "malloc_keeps_freed_memory": keep_memory, "flops_formula": FLOPS_FORMULA, "speedup": report.SPEEDUP_CAPTION,
        "command": " ".join([Path(sys.executable).name, "-m", "benchmarks.run", *(argv or sys.argv[1:])]),
        "commit": _commit(), "date": time.strftime("%Y-%m-%d", time.gmtime())}


def main(argv: list[str] | None = None, **parse_kwargs) -> dict:
    a = parse_args(argv, **parse_kwargs)
    import torch  # noqa: F401 - loaded up front so describe() and thread_limit() see its pools
    # numpy_gpt's thread pool tells glibc's malloc to keep freed blocks (numpy_gpt.parallel);
    # that is process-wide, so set it before anything runs: torch gets it in every cell too.
    keep_memory = keep_freed_memory()
    started = time.perf_counter()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    res: dict = {"machine": describe(), "settings": run_settings(a, argv, keep_memory)}
    sections = res["settings"]["sections"]
    log(f"{a.mode} run: sections {sections}, threads {a.threads}, configs {a.configs}, {a.dtype}")
    res["complete"] = False
    res["matmul_peak"] = run_peak(a)
    # The machine's peak at each thread count: the faster library's best-of.
    peaks = {p["threads"]: max(p[lib]["peak_gflops"] for lib in ("numpy", "torch")
                               if (p.get(lib) or {}).get("peak_gflops"))
             for p in res["matmul_peak"]}
    runners = {"step": lambda: run_step(a, peaks), "products": lambda: run_products(a), "layers": lambda: run_layers(a),
               "generate": lambda: run_generate(a), "scaling": lambda: run_scaling(a)}
    for section in sections:
        res[section] = runners[section]()
        if section == "step":
            res["memory"] = run_memory(a)
        res["wall_time_s"] = time.perf_counter() - started
        save(res, out, a.mode)                        # after every section: a killed run keeps its data
    res["complete"] = True
    res["machine"]["loadavg_at_end"] = list(os.getloadavg())
    md = save(res, out, a.mode)
    pngs = report.plots(res, out, a.mode)
    print(md)
    log(f"wrote {out / (a.mode + '.md')}, {out / (a.mode + '.json')}, " + ", ".join(p.name for p in pngs))
    problem = incomplete(res, sections, a.threads, out, a.mode)
    if problem:                                   # CI runs --quick to catch this
        sys.exit(f"benchmarks.run: {problem}")
    return res


def incomplete(res: dict, sections: list[str], threads: list[int], out: Path, mode: str) -> str | None:
    """What a finished run is missing: a section that measured nothing, or a report, JSON file
    or plot that is absent or empty in out."""
    skipped = set() if 1 in threads else {"products"}         # products runs at 1 thread only
    empty = [s for s in sections if not res.get(s) and s not in skipped]
    files = [f"{mode}.md", f"{mode}.json"] + [f"{mode}_{s}.png" for s in sections if res.get(s)]
    missing = [f for f in files if not (out / f).is_file() or (out / f).stat().st_size == 0]
    if empty or missing:
        return f"incomplete run: sections with no results {empty}, files missing or empty {missing}"
    return None


def save(res: dict, out: Path, mode: str) -> str:
    """Write OUT/<mode>.md and OUT/<mode>.json from what has been measured so far; return the markdown."""
    md = report.markdown(res) + f"\nWall time of this run: {res.get('wall_time_s', 0):.0f} s"
    md += ".\n" if res.get("complete") else " so far (incomplete run: later sections missing).\n"
    (out / f"{mode}.md").write_text(md)
    (out / f"{mode}.json").write_text(json.dumps(_clean(res), indent=1))
    return md


if __name__ == "__main__":
    main()
