"""Every full benchmark run in this checkout's git history, one line each.

    python -m benchmarks.history              # markdown table on stdout, newest run first
    python -m benchmarks.history --all-runs   # also runs whose largest thread count is not 2
    python -m benchmarks.history --targets    # how steady each target's verdict is, run to run
    python -m benchmarks.history --targets --cpu 25/17   # the same on another CPU's runs
    python -m benchmarks.history --readme     # README.md's tables and figures of the newest run

Each full run (`python -m benchmarks.run`) rewrites benchmarks/results/full.json, and every
version of that file that was committed is a run on some host at some commit. The project's VM
moves between hosts, and the answer to "is numpy_gpt faster than torch?" moves with it, mostly
with how fast each side's BLAS runs on that CPU. This table puts the runs side by side: which
CPU and BLAS kernels, the matmul each library reached, and numpy_gpt's speed relative to torch
eager for the training step and for KV-cache generation, and the host's pace (benchmarks.report.
host_pace: the slowest step row's matmul as a share of the run's fastest; below 85% the host
ran slow through part of the run, unseen as other load). A file with uncommitted changes is
listed first, as "working tree". Quick runs (`--quick`) are never listed, and a run that
stopped before its last section is marked "(incomplete)".

--targets answers a different question: one run's verdict on a target that is close to its
line can flip in the next run on the same host. For every target the report checks (at 2
threads), it lists the figures of the newest five runs on the newest run's CPU (family/model;
--cpu names another), the lowest and highest over all runs on that CPU, and in how many of them
the target was met.
The code changed between those runs as well as the measurement, so a target met only lately
shows in the newest figures, not in the count. The KV-cache target counts only the runs that
measured TORCH_LEAN_DECODE or a later commit: before it, torch decoded with its whole module
forward, a slower baseline than the lean step it has had since.

--readme prints what README.md shows under "Where the targets stand" and "The latest run": the
targets table, the latest run's step table and its figures in words (machine, host pace, shard
processes, generation), made from the newest run: a run in the working tree that is not
committed yet counts, so after `make bench` they are the new run's. tests/test_benchmark_history.py
checks that the README holds them as printed (the paragraphs may be wrapped) for the newest
committed run or for the working tree's, so a run committed without them fails the tests.

Nothing here measures anything: it reads the stored JSON. Runs whose JSON lacks a field show
"—" there (older runs did not record the CPU's family and model, nor the measured commit).
"""
from __future__ import annotations

import argparse
import json
import math
import re
import subprocess
import sys
import time
from pathlib import Path

from .report import (DECODE_VS_EAGER, MEDIUM_PEAK_PCT, SLOW_PACE, STEP_VS_COMPILE, STEP_VS_EAGER, _pct, _table,
                     foreign_loads, host_pace, slow_peaks)
from .timing import fmt_ms, fmt_ratio, fmt_threads
from .workloads import PROCS

ROOT = Path(__file__).resolve().parent.parent
RESULTS = "benchmarks/results/full.json"
CONFIGS = ("tiny", "small", "medium")
DASH = "—"


# The commit that gave torch_gpt its own lean decoding step (torch_gpt/decode.py); runs that
# measured older code set numpy_gpt's KV-cache generation against torch's module forward.
TORCH_LEAN_DECODE = "4657380"


def _git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True,
                          timeout=60).stdout


def git_runs(root: Path = ROOT, path: str = RESULTS) -> list[tuple[str, str, dict]]:
    """(label, date, results) for each committed version of `path`, newest first.

    The label is the short hash of the commit that stored the file. The working tree's file
    comes first, labelled "working tree", when it differs from the last committed version.
    Versions that are not valid JSON are skipped. Outside a git checkout: the file alone.
    """
    runs: list[tuple[str, str, dict]] = []
    try:
        log = _git("log", "--format=%h %ad", "--date=short", "--", path, cwd=root)
        if _git("rev-parse", "--is-shallow-repository", cwd=root).strip() == "true":
            print("benchmarks.history: this clone is shallow, so the runs before its oldest commit are "
                  "missing and the oldest one listed may be credited to that commit; "
                  "`git fetch --unshallow` brings the whole history", file=sys.stderr)
    except (OSError, subprocess.SubprocessError) as exc:
        log = ""
        detail = exc.stderr.strip().splitlines()[0] if getattr(exc, "stderr", None) else str(exc)
        print(f"benchmarks.history: no git history ({detail}); listing {path} alone", file=sys.stderr)
    for line in log.splitlines():
        commit, date = line.split()
        try:                                           # ./ : relative to root, even in a larger repository
            runs.append((commit, date, json.loads(_git("show", f"{commit}:./{path}", cwd=root))))
        except (subprocess.SubprocessError, ValueError):
            continue                                   # deleted in that commit, or not JSON
    local = root / path
    if local.exists():
        try:
            current = json.loads(local.read_text())
        except ValueError:
            current = None
        if current is not None and (not runs or current != runs[0][2]):
            runs.insert(0, ("working tree", DASH, current))
    return runs


def _median(x) -> float | None:
    return x.get("median") if isinstance(x, dict) else None


def _ratios(values: list[float | None]) -> str:
    return DASH if all(v is None for v in values) else " / ".join(DASH if v is None else f"{v:.2f}"
                                                                  for v in values)


def summarize(res: dict) -> dict:
    """The figures of one run that the history table shows (None where the run lacks them)."""
    m, s = res.get("machine", {}), res.get("settings", {})
    top = max(s.get("threads") or [1])
    blas = [p for p in m.get("threadpools", []) if p.get("user_api") == "blas"]
    peaks = {p["threads"]: p for p in res.get("matmul_peak", []) if "threads" in p}

    def peak(t, lib):
        return (peaks.get(t, {}).get(lib) or {}).get("peak_gflops")

    def step(config, t, key="speedup_vs_torch", procs=False):
        for r in res.get("step", []):
            if r.get("config") == config and r.get("threads") == t:
                return _median((r.get(PROCS) or {}).get(key) if procs else r.get(key))
        return None

    def products(config):
        for r in res.get("products", []):
            if r.get("config") == config and r.get("threads") == 1:
                return _median(r.get("speedup"))
        return None

    def decode(t):
        for g in res.get("generate", []):
            if g.get("threads") == t and g.get("use_cache"):
                return _median(g.get("speedup"))
        return None

    medium = next((r for r in res.get("step", []) if r.get("config") == "medium" and r.get("threads") == top),
                  {})
    return {
        "cpu": m.get("cpu_model"), "family_model": m.get("cpu_family_model"),
        "avx512": "avx512f" in m.get("simd", []),
        "blas": (f"{blas[0].get('internal_api')} {blas[0].get('architecture') or ''}".strip() if blas else None),
        "openblas_env": m.get("openblas_env") or {},
        "commit": s.get("commit"), "top": top,
        "quick": s.get("mode") == "quick", "complete": res.get("complete", True),
        "matmul_1": (peak(1, "numpy"), peak(1, "torch")),
        "step_1": [step(c, 1) for c in CONFIGS],
        "products_1": [products(c) for c in CONFIGS],
        "step_top": [step(c, top) for c in CONFIGS],
        "procs_top": [step(c, top, procs=True) for c in CONFIGS],
        "decode": (decode(1), decode(top)),
        "medium_pct": _median((medium.get("pct_round_peak") or {}).get("numpy")),
        "pace": min(host_pace(res)["step"].values(), default=None),
    }


def _host(x: dict) -> str:
    cpu = x["cpu"] or DASH
    if x["family_model"]:
        cpu += f" {x['family_model']}"
    return cpu + (", AVX-512" if x["avx512"] else "")


def _blas(x: dict) -> str:
    text = x["blas"] or DASH
    if x["openblas_env"]:
        text += " (" + ", ".join(f"{k}={v}" for k, v in x["openblas_env"].items()) + ")"
    return text


def _pair(a: float | None, b: float | None) -> str:
    return DASH if a is None and b is None else f"{DASH if a is None else f'{a:.0f}'} / {DASH if b is None else f'{b:.0f}'}"


HEADER = ["stored in", "date stored", "measured at", "CPU (family/model)", "NumPy's BLAS kernels",
          "matmul GFLOP/s, 1 thread, best of 5: NumPy / torch",
          "step vs torch eager, 1 thread (tiny / small / medium)",
          "the step's linear-layer products alone, NumPy's BLAS vs torch's, 1 thread", "step vs eager, most threads",
          "with shard processes, most threads", "KV-cache generation vs eager (1 thread / most threads)",
          "medium, % of the same rounds' matmul (most threads)",
          "host pace: the slowest step row's matmul, % of the run's fastest"]


def history_table(runs: list[tuple[str, str, dict]], threads: int | None = 2) -> str:
    """One row per full run; `threads`: keep only runs whose largest thread count ("most
    threads" in the header) is this (None: all)."""
    rows = []
    for label, date, res in runs:
        x = summarize(res)
        if x["quick"] or (threads is not None and x["top"] != threads):
            continue
        if not x["complete"]:
            label += " (incomplete)"
        rows.append([label, date, x["commit"] or DASH, _host(x), _blas(x), _pair(*x["matmul_1"]),
                     _ratios(x["step_1"]), _ratios(x["products_1"]), _ratios(x["step_top"]), _ratios(x["procs_top"]),
                     _ratios(list(x["decode"])),
                     DASH if x["medium_pct"] is None else f"{x['medium_pct']:.0f}%",
                     DASH if x["pace"] is None else _pct(x["pace"])])
    return _table(HEADER, rows)


# ------------------------------------------------------------- how steady each verdict is
MEMORY_TARGET = "peak memory <= torch eager's (ours / torch's)"


def target_values(res: dict, threads: int = 2) -> list[tuple[str, str, str, float | None, float, bool]]:
    """Each target's figure in one run, as the report judges it (benchmarks.report.targets_table):
    (target, config, how numpy_gpt ran, value, goal, higher is better).

    Speeds are paired medians at `threads`; memory is numpy_gpt's peak above a warmed-up runtime
    over torch eager's (goal <= 1), for runs that have that measure. A figure the run lacks is None.
    """
    rows = []
    step = {r.get("config"): r for r in res.get("step", []) if r.get("threads") == threads}
    for goal, key, label in ((STEP_VS_EAGER, "speedup_vs_torch", "torch eager"),
                             (STEP_VS_COMPILE, "speedup_vs_compile", "torch.compile")):
        for config in CONFIGS:
            r = step.get(config, {})
            rows.append((f"training step >= {goal:.1f}x {label}", config, "threads", _median(r.get(key)), goal, True))
            rows.append((f"training step >= {goal:.1f}x {label}", config, "shard processes",
                         _median((r.get(PROCS) or {}).get(key)), goal, True))
    pct = _median((step.get("medium", {}).get("pct_round_peak") or {}).get("numpy"))
    rows.append((f"model FLOPs >= {MEDIUM_PEAK_PCT:g}% of the same rounds' matmul", "medium", "threads", pct,
                 MEDIUM_PEAK_PCT, True))
    decode = next((_median(g.get("speedup")) for g in res.get("generate", [])
                   if g.get("threads") == threads and g.get("use_cache") and g.get("config", "small") == "small"), None)
    rows.append((f"KV-cache generation >= {DECODE_VS_EAGER:.1f}x torch eager", "small", "threads", decode,
                 DECODE_VS_EAGER, True))
    mem = {(m.get("config"), m.get("impl")): m.get("warm_delta_mb") for m in res.get("memory", [])}
    for config in CONFIGS:
        theirs = mem.get((config, "torch"))
        for impl, how in (("numpy", "threads"), (PROCS, "shard processes")):
            ours = mem.get((config, impl))
            ratio = ours / theirs if ours is not None and theirs else None
            rows.append((MEMORY_TARGET, config, how, ratio, 1.0, False))
    return rows


def _met(value: float, goal: float, higher: bool) -> bool:
    return value >= goal if higher else value <= goal


def _judged(value: float, goal: float, higher: bool, digits: int) -> str:
    """value to `digits` decimals, rounded as usual unless that would read as meeting a goal it
    misses (1.197 against 1.2 shows as 1.19, 69.6% against 70% as 69%): then toward the miss."""
    text = f"{value:.{digits}f}"
    if _met(float(text), goal, higher) and not _met(value, goal, higher):
        scaled = value * 10 ** digits
        text = f"{(math.floor(scaled) if higher else math.ceil(scaled)) / 10 ** digits:.{digits}f}"
    return text


def _fmt(target: str, value: float, goal: float, higher: bool, times: str = "x") -> str:
    """A target's figure: a whole percent or a ratio to 2 decimals, never rounded onto its line."""
    return _judged(value, goal, higher, 0) + "%" if "%" in target else _judged(value, goal, higher, 2) + times


DECODE_TARGET = f"KV-cache generation >= {DECODE_VS_EAGER:.1f}x torch eager"


# Targets whose figures count only from a commit on (target_runs' `since`), and why.
SINCE = {DECODE_TARGET: TORCH_LEAN_DECODE}
SINCE_REASONS = {DECODE_TARGET: "since torch got its lean step"}


def _full_run(x: dict, threads: int) -> bool:
    """Whether summarize()'s x is a complete full run whose most threads are `threads`."""
    return not x["quick"] and x["complete"] and x["top"] == threads


def _measured_since(commit: str | None, base: str, root: Path) -> bool:
    """Whether the run that measured `commit` ran `base`'s code or later: git knows `base` as
    `commit` or one of its ancestors. A run that recorded no commit is older than any base named
    here; a commit git cannot place (a shallow or foreign clone) is given the benefit of the doubt."""
    if commit is None:
        return False
    try:
        done = subprocess.run(["git", "merge-base", "--is-ancestor", base, commit], cwd=root,
                              capture_output=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return True
    return done.returncode != 1                   # 0: yes; 1: no; anything else: git could not tell


def target_runs(runs: list[tuple[str, str, dict]], threads: int = 2, cpu: str | None = None,
                root: Path = ROOT, since: dict[str, str] | None = None):
    """The complete full runs at `threads` on one CPU (family/model; by default the newest run's)
    and every target's figure in each of them, newest first: (cpu, names, rows), where names are the
    commits the runs measured (the storing commit where not recorded) and each row is (target,
    config, how numpy_gpt ran, values, goal, higher is better). `since` maps a target to the commit
    whose code its figures must come from (default SINCE: the KV-cache target to TORCH_LEAN_DECODE);
    earlier runs' figures for it are None. (None, [], []) when no such run is found."""
    since = SINCE if since is None else since
    full = []                                     # (name, commit measured, CPU, results) of the complete full runs
    for label, _, res in runs:
        x = summarize(res)
        if _full_run(x, threads):
            measured = x["commit"].split()[0] if x["commit"] else None   # of "<hash> with uncommitted changes"
            full.append((x["commit"] or label, measured, x["family_model"], res))
    if not full:
        return None, [], []
    cpu = full[0][2] if cpu is None else cpu
    same = [(name, commit, res) for name, commit, family_model, res in full if family_model == cpu]
    if not same:
        return cpu, [], []
    table = [target_values(res, threads) for _, _, res in same]
    rows = []
    for i, (target, config, how, *_, goal, higher) in enumerate(table[0]):
        values = [t[i][3] for t in table]
        if target in since:
            values = [v if _measured_since(commit, since[target], root) else None
                      for v, (_, commit, _) in zip(values, same)]
        rows.append((target, config, how, values, goal, higher))
    return cpu, [name for name, _, _ in same], rows


def steadiness_table(runs: list[tuple[str, str, dict]], threads: int = 2, recent: int = 5,
                     cpu: str | None = None, root: Path = ROOT, since: dict[str, str] | None = None) -> str:
    """For each target: its figure in the newest `recent` full runs on one CPU (family/model,
    "25/17"; by default the newest run's) at `threads` threads, its range over all of them, and in
    how many it was met (target_runs). Runs are named by the commit they measured (by the one that
    stored them, where not recorded). "" when no complete full run on that CPU is found."""
    cpu, names, table = target_runs(runs, threads, cpu, root, since)
    if not names:
        return ""
    rows = []
    for target, config, how, values, goal, higher in table:
        known = [v for v in values if v is not None]
        if not known:
            continue
        met = sum(_met(v, goal, higher) for v in known)
        fmt = lambda v: _fmt(target, v, goal, higher)                  # noqa: E731
        rows.append([target, config, how, ", ".join(DASH if v is None else fmt(v) for v in values[:recent]),
                     f"{fmt(min(known))} - {fmt(max(known))}", f"{met} of {len(known)}"])
    header = ["target", "config", "numpy_gpt with",
              f"newest {min(recent, len(names))} runs, newest first ({', '.join(names[:recent])})",
              f"lowest - highest, all {len(names)} runs on CPU {cpu or DASH}", "met in"]
    return _table(header, rows)


# ------------------------------------------------------------- README.md's tables
def _pretty(text: str) -> str:
    """The README's typography: >= as ≥, <= as ≤, 1.2x as 1.2×."""
    return re.sub(r"(\d)x\b", "\\1×", text.replace(">=", "≥").replace("<=", "≤"))


def readme_targets_table(runs: list[tuple[str, str, dict]], threads: int = 2, root: Path = ROOT,
                         since: dict[str, str] | None = None) -> str:
    """README's "Where the targets stand": per target and config, the newest run's figure (bold
    where it meets the target), then the range over all runs on its CPU and in how many of them it
    was met; "missed" when never met, "missed in this run" when met before. A target limited to
    later runs (target_runs' `since`) says over how many. "" when there is no run to show."""
    since = SINCE if since is None else since
    _, names, table = target_runs(runs, threads, root=root, since=since)
    if not names:
        return ""
    cells: dict[tuple[str, str], dict[str, str]] = {}
    for target, config, how, values, goal, higher in table:
        known = [v for v in values if v is not None]
        if not known:
            continue
        latest, met = values[0], sum(_met(v, goal, higher) for v in known)
        fmt = lambda v: _fmt(target, v, goal, higher, "×")             # noqa: E731
        lo, hi = fmt(min(known)), fmt(max(known))
        span = f"{lo.rstrip('%×')}-{hi}"
        if target in since and len(known) < len(names):
            span += f" in the {len(known)} runs {SINCE_REASONS.get(target, f'measured at {since[target]} or later')}"
        span = f"({span}, {met} of {len(known)})"
        if latest is None:
            text = f"{DASH} {span}"
        elif _met(latest, goal, higher):
            text = f"**{fmt(latest)}** {span}"
        else:
            text = f"{fmt(latest)} {span}: " + ("missed in this run" if met else "missed")
        cells.setdefault((target, config), {})[how] = text
    rows, last = [], None
    for (target, config), ways in cells.items():
        rows.append([_pretty(target) if target != last else "", config, ways.get("threads", ""),
                     ways.get("shard processes", "")])
        last = target
    return _table(["target", "config", "numpy_gpt with threads", "with shard processes"], rows)


def readme_step_table(res: dict, threads: int = 2) -> str:
    """README's "The latest run" table: the step table of one run, cut to the columns a reader
    compares (each side's median, the paired speedups, numpy_gpt's GFLOP/s and its share of the
    same rounds' matmul, peak memory above a warmed-up runtime). At `threads`, the threads the
    targets are set at, a figure that meets its target is bold."""
    mem = {(m.get("config"), m.get("impl")): m.get("warm_delta_mb") for m in res.get("memory", [])}
    rows = []
    for r in res.get("step", []):
        judged, config = r["threads"] == threads, r["config"]

        def bold(text: str, ok: bool) -> str:
            return f"**{text}**" if judged and ok else text

        def ratio(stats: dict | None, goal: float) -> str:              # the median bold, not its range
            if not stats:
                return "n/a"
            median = _judged(stats["median"], goal, True, 2) if judged else f"{stats['median']:.2f}"
            return bold(median, stats["median"] >= goal) + " " + fmt_ratio(stats).split(" ", 1)[1]

        pct = (r.get("pct_round_peak") or {}).get("numpy")
        share = DASH if not pct else (
            bold(_judged(pct["median"], MEDIUM_PEAK_PCT, True, 0) + "%", pct["median"] >= MEDIUM_PEAK_PCT)
            if config == "medium" and judged else f"{pct['median']:.0f}%") + f" [{pct['min']:.0f}-{pct['max']:.0f}]"
        ours, theirs = mem.get((config, "numpy")), mem.get((config, "torch"))
        memory = DASH
        if ours is not None and theirs is not None:            # a miss that reads as a tie in MB shows tenths
            digits = 1 if judged and round(ours) == round(theirs) and ours > theirs else 0
            memory = bold(f"{ours:.{digits}f}", ours <= theirs) + f" / {theirs:.{digits}f}"
        med = r["median_s"]
        rows.append([config, str(r["threads"]), fmt_ms(med["numpy"]), fmt_ms(med["torch"]),
                     fmt_ms(med["compile"]) if med.get("compile") is not None else "n/a",
                     ratio(r.get("speedup_vs_torch"), STEP_VS_EAGER), ratio(r.get("speedup_vs_compile"), STEP_VS_COMPILE),
                     f"{r['gflops']['numpy']:.0f} ({share})", memory])
    header = ["config", "threads", "numpy_gpt ms/step", "torch eager", "torch.compile", "speedup vs eager",
              "speedup vs compile", "numpy_gpt GFLOP/s (% of the same rounds' matmul)",
              "peak RSS MB above a warmed-up runtime, numpy / eager"]
    return _table(header, rows)


def latest_full_run(runs: list[tuple[str, str, dict]], threads: int = 2) -> tuple[str, str, dict]:
    """(label, date stored, results) of the newest complete full run at `threads`: the README's."""
    for run in runs:
        if _full_run(summarize(run[2]), threads):
            return run
    raise LookupError(f"no complete full run at {threads} threads")


# AMD's CPU family/model numbers of the hosts this project has run on, and their cores' names.
MICROARCH = {"25/1": "Zen 3", "25/17": "Zen 4", "26/2": "Zen 5"}


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def run_date(run: tuple[str, str, dict]) -> str:
    """The day a run was made: as it recorded it (UTC); for older runs, the date git gives the
    commit that stored it (its author's); for an uncommitted older run, today (UTC)."""
    label, stored, res = run
    return res.get("settings", {}).get("date") or (stored if stored != DASH else time.strftime("%Y-%m-%d", time.gmtime()))


def readme_run_notes(res: dict, date: str) -> list[str]:
    """The figures README.md's "The latest run" gives in words, one paragraph each: the machine
    and its matmul, the host's pace, numpy_gpt with shard processes, and KV-cache generation
    (a paragraph the run has no figures for is left out). The README may wrap their lines."""
    m, s = res.get("machine", {}), res.get("settings", {})
    notes = []
    cpu = m.get("cpu_model") or "unnamed CPU"
    if m.get("cpu_family_model"):
        family, model = m["cpu_family_model"].split("/")
        cpu += f", family {family}, model {model}"
        if m["cpu_family_model"] in MICROARCH:
            cpu += f" ({MICROARCH[m['cpu_family_model']]})"
    simd = m.get("simd", [])
    cpu += ", AVX-512" if "avx512f" in simd else ", AVX2 without AVX-512" if "avx2" in simd else ""
    blas = next((p for p in m.get("threadpools", []) if p.get("user_api") == "blas"), {})
    version = ".".join(str(blas.get("version") or "?").split(".")[:3])
    torch_blas = "MKL" if "Math Kernel Library" in m.get("torch_parallel_info", "") else "BLAS"
    peaks = sorted((p for p in res.get("matmul_peak", []) if all(
        (p.get(lib) or {}).keys() >= {"n", "times_s", "peak_gflops"} for lib in ("numpy", "torch"))),
                   key=lambda p: p["threads"])
    library = {"openblas": "OpenBLAS", "mkl": "MKL", "blis": "BLIS"}.get(blas.get("internal_api"), "BLAS")
    text = (f"`make bench` at commit {s.get('commit', DASH)} on {date} ({res.get('wall_time_s', 0):.0f} s): "
            f"{m.get('cores_available', '?')} cores of {'an' if cpu[:1].lower() in 'aeiou' else 'a'} {cpu}; "
            f"NumPy's {library} {version} "
            f"ran its {blas.get('architecture', '?')} kernels, torch {m.get('torch', '?')} its {torch_blas}.")
    if peaks:
        n, repeats = peaks[0]["numpy"]["n"], len(peaks[0]["numpy"]["times_s"])
        text += (f" The {n}³ float32 matmul, best of {repeats}: "
                 f"{_and([format(p['numpy']['peak_gflops'], '.1f') for p in peaks])} GFLOP/s at "
                 f"{_and([str(p['threads']) for p in peaks])} threads in NumPy, "
                 f"{_and([format(p['torch']['peak_gflops'], '.1f') for p in peaks])} in torch.")
        for sp in slow_peaks(res):
            text += (f" {'NumPy' if sp['lib'] == 'numpy' else 'torch'}'s {sp['threads']}-thread figure did not scale "
                     f"with its threads ({sp['ratio']:.2f}× its 1-thread one: the library ran fewer threads or the "
                     f"host held a core back while it was timed"
                     + (f"; up to {sp['rounds_max']:.0f} in the step rounds" if sp["rounds_max"] else "") + ").")
    loads = foreign_loads(res)
    if loads:
        text += f" Other processes took at most {100 * max(loads):.0f}% of the CPU during any measurement."
    notes.append(text)
    pace = host_pace(res)["step"]
    if pace:
        slow = {k: v for k, v in pace.items() if v < SLOW_PACE}
        rest = [v for k, v in pace.items() if k not in slow]
        span = "" if not rest else (_pct(min(rest)) if _pct(min(rest)) == _pct(max(rest))
                                    else _pct(min(rest))[:-1] + "-" + _pct(max(rest)))
        if slow:
            text = ("The host ran " + _and([f"{c}'s {t}-thread rounds at {_pct(v)}" for (c, t), v in slow.items()])
                    + " of its pace (their matmul against the run's fastest)" + (f", the others at {span}." if rest else "."))
        else:
            text = f"The host ran every row's rounds at {span} of its pace (their matmul against the run's fastest)."
        notes.append(text)
    top = max(s.get("threads") or [1])
    procs = [r for r in res.get("step", []) if r.get("threads") == top and (r.get("median_s") or {}).get(PROCS)]
    if procs:
        mem = {(x.get("config"), x.get("impl")): x.get("warm_delta_mb") for x in res.get("memory", [])}
        cells = [f"{r['config']} {fmt_ms(r['median_s'][PROCS])} ms"
                 + (" a step" if i == 0 else "")
                 + (f" ({r[PROCS]['speedup_vs_torch']['median']:.2f}×"
                    + (" of eager, paired by round as above)" if i == 0 else ")")
                    if (r.get(PROCS) or {}).get("speedup_vs_torch") else "")
                 for i, r in enumerate(procs)]
        text = (f"With shard processes (numpy_gpt's shards after the first in worker processes), in the same "
                f"rounds at {fmt_threads(top)}: {', '.join(cells)}")
        ours = [mem.get((r["config"], PROCS)) for r in procs]
        theirs = [mem.get((r["config"], "torch")) for r in procs]
        if None not in ours and None not in theirs:
            text += (f", and {_and([f'{x:.0f}' for x in ours])} MB for all processes together (torch eager: "
                     f"{_and([f'{x:.0f}' for x in theirs])})")
        notes.append(text + ".")
    timed = [g for g in res.get("generate", []) if (g.get("tokens_per_s") or {}).get("torch") and g.get("speedup")]
    cached = sorted((g for g in timed if g.get("use_cache")), key=lambda g: g["threads"])
    plain = sorted((g for g in timed if not g.get("use_cache")), key=lambda g: g["threads"])
    if cached:
        g0 = cached[0]
        runs = []
        for g in cached:
            rate = g["tokens_per_s"]
            ours, theirs = f"{rate['numpy']:.0f}", f"{rate['torch']:.0f}"
            at, ratio = fmt_threads(g["threads"]), f"{g['speedup']['median']:.2f}×"
            if rate.get("compile") is None:                      # a run without torch.compile
                runs.append(f"{ours} tokens/s at {at} against torch eager's {theirs} ({ratio}"
                            + (", paired by round)" if not runs else ")"))
            elif not runs:
                runs.append(f"{ours} tokens/s at {at} against torch eager's {theirs} and torch.compile's "
                            f"{rate['compile']:.0f} ({ratio} of eager, paired by round)")
            else:
                runs.append(f"{ours} against {theirs} and {rate['compile']:.0f} at {at} ({ratio})")
        text = (f"Generation (greedy, batch 1, {g0['new_tokens']} new tokens after a prompt of {g0['prompt_len']}, "
                f"{g0.get('config', 'small')} config, {s.get('generate_repeats', '?')} rounds): with the KV "
                f"cache numpy_gpt made " + ", and ".join(runs))
        if plain:
            text += f"; without the cache, {_and([format(g['speedup']['median'], '.2f') + '×' for g in plain])} of eager"
        same = all(g.get("same_tokens") for g in cached + plain)
        same_compiled = all(g.get("same_tokens_compile") for g in cached + plain
                            if g["tokens_per_s"].get("compile") is not None)
        compiled = any(g["tokens_per_s"].get("compile") is not None for g in cached + plain)
        text += (". numpy_gpt and torch eager produce the same tokens." if same and not compiled else
                 ". All three produce the same tokens." if same and same_compiled else
                 ". numpy_gpt and torch eager produce the same tokens; torch.compile's differ." if same else
                 ". numpy_gpt's tokens differ from torch eager's.")
        notes.append(text)
    return notes


def committed_runs(root: Path = ROOT) -> list[tuple[str, str, dict]]:
    """git_runs without the working tree's run."""
    return [run for run in git_runs(root) if run[0] != "working tree"]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--all-runs", action="store_true",
                   help="also list runs whose largest thread count is not 2 (the targets are stated at 2)")
    p.add_argument("--targets", action="store_true",
                   help="for each target: its figures in the newest five runs on the newest run's CPU, its "
                        "range over all runs on that CPU, and in how many it was met")
    p.add_argument("--cpu", metavar="FAMILY/MODEL",
                   help="with --targets: the runs on this CPU instead of the newest run's (e.g. 25/17; the "
                        "history table's CPU column names each run's)")
    p.add_argument("--readme", action="store_true",
                   help="print README.md's table of the targets, and the latest run's table and figures in words, "
                        "from the newest run (the working tree's, if it has one not yet committed)")
    a = p.parse_args(argv)
    if a.cpu is not None and not a.targets:
        p.error("--cpu goes with --targets")
    if a.readme and (a.targets or a.all_runs):
        p.error("--readme goes alone")
    if a.readme:
        runs = git_runs()
        targets = readme_targets_table(runs)
        if not targets:
            sys.exit(f"no complete full run at 2 threads, neither in {RESULTS} nor in its git history, to make "
                     "README.md's tables from")
        name = target_runs(runs)[1][0]
        print(f"README.md, \"Where the targets stand\" (the newest run: {name}):\n\n{targets}\n")
        run = latest_full_run(runs)
        latest, notes = run[2], readme_run_notes(run[2], run_date(run))
        print(f"README.md, \"The latest run\" ({name}):\n\n{notes[0]}\n\n{readme_step_table(latest)}\n")
        print("\n\n".join(notes[1:]))
        return
    runs = git_runs()
    if not runs:
        sys.exit(f"no full run found: neither {RESULTS} nor its git history")
    if a.targets:
        table = steadiness_table(runs, cpu=a.cpu)
        if not table:
            on = f" on CPU {a.cpu}" if a.cpu else ""
            sys.exit(f"no complete full run at 2 threads{on} to judge the targets on")
        print(table)
        print("\nSpeeds are torch's time over numpy_gpt's (> 1x: numpy_gpt is faster), paired medians at 2 "
              "threads; memory is numpy_gpt's peak above a warmed-up runtime over torch eager's (< 1x: "
              "numpy_gpt takes less), in the runs that measured it that way. A target is counted over the "
              "runs that have its figure.")
        return
    print(history_table(runs, threads=None if a.all_runs else 2))
    print("\nRatios are torch's time over numpy_gpt's, the paired median of each run's rounds: "
          "> 1 means numpy_gpt is faster. float32.")


if __name__ == "__main__":
    main()
