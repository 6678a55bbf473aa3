"""Every full benchmark run in this checkout's git history, one line each.

    python -m benchmarks.history              # markdown table on stdout, newest run first
    python -m benchmarks.history --all-runs   # also runs whose largest thread count is not 2

Each full run (`python -m benchmarks.run`) rewrites benchmarks/results/full.json, and every
version of that file that was committed is a run on some host at some commit. The project's VM
moves between hosts, and the answer to "is numpy_gpt faster than torch?" moves with it, mostly
with how fast each side's BLAS runs on that CPU. This table puts the runs side by side: which
CPU and BLAS kernels, the matmul each library reached, and numpy_gpt's speed relative to torch
eager for the training step and for KV-cache generation. A file with uncommitted changes is
listed first, as "working tree". Quick runs (`--quick`) are never listed, and a run that
stopped before its last section is marked "(incomplete)".

Nothing here measures anything: it reads the stored JSON. Runs whose JSON lacks a field show
"—" there (older runs did not record the CPU's family and model, nor the measured commit).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from .report import _table
from .workloads import PROCS

ROOT = Path(__file__).resolve().parent.parent
RESULTS = "benchmarks/results/full.json"
CONFIGS = ("tiny", "small", "medium")
DASH = "—"


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
          "medium, % of the same rounds' matmul (most threads)"]


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
                     DASH if x["medium_pct"] is None else f"{x['medium_pct']:.0f}%"])
    return _table(HEADER, rows)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--all-runs", action="store_true",
                   help="also list runs whose largest thread count is not 2 (the targets are stated at 2)")
    a = p.parse_args(argv)
    runs = git_runs()
    if not runs:
        sys.exit(f"no full run found: neither {RESULTS} nor its git history")
    print(history_table(runs, threads=None if a.all_runs else 2))
    print("\nRatios are torch's time over numpy_gpt's, the paired median of each run's rounds: "
          "> 1 means numpy_gpt is faster. float32.")


if __name__ == "__main__":
    main()
