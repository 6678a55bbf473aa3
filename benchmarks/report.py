"""Markdown tables and matplotlib plots from the results dictionary that run.py builds."""
from __future__ import annotations

import itertools
import math
from pathlib import Path

from .machine import blas_kernel_note
from .timing import fmt_ms, fmt_ratio, fmt_threads
from .workloads import FLOPS_FORMULA, IMPL_LABELS, IMPLS, PROCS

SPEEDUP_CAPTION = (
    "**speedup** = torch time / numpy_gpt time, computed pair by pair within each interleaved "
    "round and reported as median [min-max] over the rounds: **> 1 means numpy_gpt is faster**, "
    "< 1 means torch is faster (0.25 = numpy_gpt takes 4x as long).")


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _load(r: dict) -> str:
    """Other processes' share of the machine's CPU during the measurement, in percent."""
    return _num(None if r.get("foreign_load") is None else 100 * r["foreign_load"], "{:.0f}")


LOAD_NOTE = ("**other load %** = CPU time other processes used during the measurement, as a share of "
             "all cores (from /proc/stat); rows with more than a few percent ran beside other work and may be slower and noisier.")


def _num(x: float | None, fmt: str = "{:.3g}") -> str:
    return "n/a" if x is None or not math.isfinite(x) else fmt.format(x)


def foreign_loads(res: dict) -> list[float]:
    """Every measurement's share of the CPU that other processes took, over all sections."""
    return [r["foreign_load"] for key in ("step", "products", "layers", "generate", "scaling") for r in res.get(key, [])
            if r.get("foreign_load") is not None]


def machine_section(res: dict) -> str:
    m, s = res["machine"], res["settings"]
    blas = [f"{p.get('internal_api')} {p.get('version')} ({p.get('architecture', '')}, {p.get('prefix')})"
            for p in m["threadpools"] if p.get("user_api") == "blas"]
    lines = [
        f"**Machine:** {m['cpu_model']}" + (f" (family/model {m['cpu_family_model']})" if m.get("cpu_family_model")
                                              else "") + f", {m['cores_available']} cores available, "
        f"{_num(m['memory_gb'], '{:.0f}')} GB; SIMD {', '.join(m['simd']) or '?'}.  ",
        f"**Software:** Python {m['python']}, NumPy {m['numpy']} (BLAS: {'; '.join(blas) or '?'}), "
        f"torch {m.get('torch')}" + (f"; numpy-gpt commit {s['commit']}" if s.get("commit") else "") + ".  ",
        f"**Settings:** dtype {s['dtype']}, threads {s['threads']} (NumPy BLAS via threadpoolctl and "
        f"torch.set_num_threads, the same count on both sides), {s['repeats']} interleaved repeats after "
        f"{s['warmup']} warm-up runs, >= {s['min_time_s']} s per sample, {s['cooldown_s']} s pause "
        f"before each sample at > 1 thread (OpenBLAS workers spin ~0.1 s after a call)"
        + (f", then {s['rewarm_s']} s of untimed calls of the implementation about to be timed"
           if s.get("rewarm_s") else "") + "; "
        f"1-min load average at start {m['loadavg_at_start'][0]:.2f}"
        + "".join(f"; {k}={v} in the environment (NumPy's OpenBLAS only)"
                  for k, v in m.get("openblas_env", {}).items()) + ".",
    ]
    note = blas_kernel_note(m)
    if note:
        lines[-1] += f"  \n**BLAS kernels:** {note}"
    loads = foreign_loads(res)
    if loads:
        busy = sum(x > s.get("max_load", 0.1) for x in loads)
        lines[-1] += (f"  \n**Other processes** used a median {100 * sorted(loads)[len(loads) // 2]:.0f}% "
                      f"(max {100 * max(loads):.0f}%) of the CPU during the measurements; {busy} of {len(loads)} "
                      f"measurements ran beside more than {100 * s.get('max_load', 0.1):.0f}% other load.")
    pace = _pace_note(res)
    if pace:
        lines[-1] += "  \n" + pace
    return "\n".join(lines)


def peak_table(res: dict) -> str:
    rows = []
    for p in res["matmul_peak"]:
        rows.append([str(p["threads"]), f"{p['numpy']['n']}^3 {p['numpy']['dtype']}",
                     f"{p['numpy']['peak_gflops']:.1f}", _num(p.get("torch", {}).get("peak_gflops"), "{:.1f}")])
    text = ("### Matmul peak (best of the repeats, before the sections; the step table times it again in every round)\n\n"
            + _table(["threads", "matmul", "NumPy BLAS GFLOP/s", "torch GFLOP/s"], rows))
    slow = slow_peaks(res)
    if slow:
        text += ("\n\n**Not scaled with its threads:** " + "; ".join(s["text"] for s in slow) + ". A BLAS that "
                 "uses its threads runs this product at nearly threads x its 1-thread speed, so through every "
                 "repeat of this best-of it did not: the library ran fewer threads, or the host held a core back "
                 "(the run does not record which). The step table's shares of the peak do not rest on this "
                 "figure: they take each round's own matmul, and the faster library's best-of.")
    return text


LIB_NAMES = {"numpy": "NumPy's BLAS", "torch": "torch"}


def _round_matmul_max(res: dict, lib: str, threads: int) -> float | None:
    """The fastest matmul `lib` ("numpy" or "torch") ran in any step round at `threads` threads
    (GFLOP/s), or None."""
    best = [((r.get("round_matmul_gflops") or {}).get(lib) or {}).get("max") for r in res.get("step", [])
            if r.get("threads") == threads]
    best = [g for g in best if _positive(g)]
    return max(best) if best else None


SLOW_SCALING = 0.6   # a peak-table figure below this x threads x its 1-thread one did not use its threads


def slow_peaks(res: dict) -> list[dict]:
    """Peak-table figures at more than one thread that did not scale with the threads: below
    SLOW_SCALING x threads x the same library's 1-thread figure (1.2x it at 2 threads). A BLAS
    that uses its threads runs the square matmul at nearly threads x its 1-thread speed, so such a
    figure says the library ran fewer threads or the host held a core back while it was timed
    (the run does not tell which). On 2026-12-06 NumPy's read 96.8 GFLOP/s at 2 threads, 1.04x its
    1-thread 92.8, in five repeats within 1% of each other, and up to 183-186 in the same run's
    step rounds. Each: {"lib", "threads", "gflops", "ratio", "rounds_max", "text"}."""
    peaks = {p.get("threads"): p for p in res.get("matmul_peak", [])}
    out = []
    for t, p in sorted(peaks.items()):
        if not t or t <= 1 or 1 not in peaks:
            continue
        for lib in ("numpy", "torch"):
            one, many = ((peaks[1].get(lib) or {}).get("peak_gflops"), (p.get(lib) or {}).get("peak_gflops"))
            if not (_positive(one) and _positive(many)) or many >= SLOW_SCALING * t * one:
                continue
            rounds = _round_matmul_max(res, lib, t)
            text = (f"{LIB_NAMES[lib]} at {t} threads read {many:.1f} GFLOP/s, only {many / one:.2f}x its 1-thread "
                    f"{one:.1f}" + (f" (its fastest step round at {t} threads: {rounds:.0f})" if rounds else ""))
            out.append({"lib": lib, "threads": t, "gflops": many, "ratio": many / one, "rounds_max": rounds,
                        "text": text})
    return out


def _compile_cell(r: dict, value: str | None = None) -> str:
    """A row's torch.compile figure (value; its time by default), or n/a with the reason it has none."""
    error = (r.get("errors") or {}).get("compile")
    if error:
        return f"n/a ({error[:60]})"
    return fmt_ms(_seconds(r["median_s"], "compile")) if value is None else value


def _timed_compile(rows: list[dict]) -> bool:
    """Whether torch.compile ran in any of these generation or scaling rows (timed, or failed)."""
    return any("compile" in (r.get("tokens_per_s") or {}) or (r.get("errors") or {}).get("compile") for r in rows)


def step_table(res: dict) -> str:
    rows = []
    mem = {(r["config"], r["impl"]): r for r in res.get("memory", [])}
    for r in res["step"]:
        med = r["median_s"]
        gf = " / ".join(_num(r["gflops"].get(i), "{:.2f}") for i in IMPLS)
        pct, round_peak = _round_peak_cells(r)
        warm, rss, whole = (" / ".join(_num(mem.get((r["config"], i), {}).get(key), "{:.0f}") for i in IMPLS)
                            for key in ("warm_delta_mb", "delta_mb", "peak_mb"))
        compile_cell = _compile_cell(r)
        rows.append([r["config"], str(r["threads"]), f"{r['params'] / 1e6:.2f}M", str(r["tokens"]),
                     fmt_ms(med["numpy"]), fmt_ms(med["torch"]), compile_cell,
                     fmt_ratio(r["speedup_vs_torch"]), fmt_ratio(r["speedup_vs_compile"]), gf, round_peak, pct, warm, rss, whole, _load(r)])
    header = ["config", "threads", "params", "tokens/step", "numpy_gpt ms/step", "torch eager ms/step",
              "torch.compile ms/step", "speedup vs eager", "speedup vs compile",
              "GFLOP/s (np / eager / compile)", "faster matmul GFLOP/s in the same rounds",
              "% of that peak (np [min-max] / eager / compile)",
              "peak RSS above a warmed-up runtime MB (np / eager / compile)",
              "peak RSS above imports MB (np / eager / compile)",
              "whole-process peak RSS MB (np / eager / compile)", "other load %"]
    compile_times = [f"{r['config']}@{r['threads']}t {r['compile_time_s']:.0f} s" for r in res["step"]
                     if r.get("compile_time_s") is not None]
    notes = [
        "### Training step (forward + backward + AdamW), GPT-2 style, one fixed batch",
        "",
        _table(header, rows),
        "",
        SPEEDUP_CAPTION,
        f"GFLOP/s = model FLOPs per step / median step time, FLOPs = {FLOPS_FORMULA}. "
        "% of peak: every round of a step measurement also times the peak table's square matmul, in NumPy's "
        "BLAS and in torch's (same threads), and each round's step GFLOP/s is divided by the faster of the "
        "two in that round (median [min-max] over the rounds): every implementation is judged against the "
        "machine's best matmul, timed in the same stretch of the run. On a shared machine the two still "
        "move apart from round to round, hence the wide ranges; the share of the peak table's best-of is "
        "GFLOP/s divided by that table's faster figure.",
        "Peak RSS above imports = the process's peak resident memory (VmHWM) over building the model and "
        "optimizer and 3 steps, minus its resident memory after the imports (the high-water mark is reset "
        "there): the model's weights, gradients, optimizer state and activations, plus whatever the library "
        "allocates once it first runs (for torch, its thread pools and kernel workspaces, which the imports "
        "do not start). Above a warmed-up runtime = the same peak less the resident memory after a warm-up "
        "that starts that runtime first (two steps of a 15k-parameter model and a 512^3 matmul, the high-water "
        "mark reset after it): the model's own memory, without either library's fixed costs; the targets "
        "table judges memory on it. Whole-process peak = the same VmHWM with the imports' own memory left in (the "
        "interpreter, NumPy, and torch for the torch columns). Each (implementation, config) runs in its "
        "own subprocess (`python -m benchmarks.memory`), at all cores; there torch keeps glibc malloc's "
        "default settings, and numpy_gpt sets its own as its first forward does (numpy_gpt.parallel."
        "keep_freed_memory; in the timed rounds that setting holds for the whole process, torch included).",
        LOAD_NOTE,
    ]
    disturbed = _disturbed_rounds(res)
    if disturbed:
        notes.append("**Rounds with the matmul at one-core speed:** " + "; ".join(disturbed) + ". The same-round "
                     "matmul uses every thread, so in such a round something else held a core for a while; that "
                     "round's times and ratios are suspect, and the medians rest on the other rounds.")
    if compile_times:
        notes.append("torch.compile first call, compile included (inductor's on-disk cache may be warm from an "
                     "earlier run, which makes it far shorter than a cold compile): " + ", ".join(compile_times) + ".")
    return "\n".join(notes)


def procs_table(res: dict) -> str:
    """numpy_gpt with its opt-in shard processes, timed in the same rounds as the step table's rows."""
    mem = {(r["config"], r["impl"]): r for r in res.get("memory", [])}
    rows = []
    for r in res["step"]:
        if PROCS not in r:
            continue
        med, sp = r["median_s"], r[PROCS]
        if r[PROCS].get("error"):
            rows.append([r["config"], str(r["threads"]), f"n/a ({r[PROCS]['error'][:60]})"] + [""] * 7)
            continue
        pct = (r.get("pct_round_peak") or {}).get(PROCS)
        rows.append([r["config"], str(r["threads"]), fmt_ms(med.get(PROCS, math.nan)), fmt_ms(med["numpy"]),
                     fmt_ratio(sp.get("speedup_vs_numpy")), fmt_ratio(sp.get("speedup_vs_torch")),
                     fmt_ratio(sp.get("speedup_vs_compile")),
                     f"{pct['median']:.1f}" if pct else "n/a",
                     " / ".join(_num(mem.get((r["config"], PROCS), {}).get(k), "{:.0f}")
                                for k in ("warm_delta_mb", "delta_mb")), _load(r)])
    if not rows:
        return ""
    return ("### Training step with shard processes (numpy_gpt.processes, opt-in)\n\n"
            + _table(["config", "threads", "numpy_gpt + processes ms/step", "numpy_gpt threads ms/step",
                      "speedup vs numpy_gpt threads", "speedup vs eager", "speedup vs compile",
                      "% of the same-round matmul", "peak memory MB, all processes (above a warmed-up runtime / above imports)", "other load %"], rows)
            + "\n\nThe same training step, timed in the same interleaved rounds as the table above, with "
            "`ShardProcesses(model)`: every shard after the first runs in a worker process instead of a thread, "
            "so the shards do not hand Python's lock to each other at every NumPy call. The results are bit for "
            "bit the threaded step's (tests/test_processes.py). Speedups are paired per round as above, > 1 "
            "meaning the process version is faster. Peak memory = this process's peak above its imports (or "
            "above its warmed-up runtime) as in the table above, plus each worker's peak above its own start "
            "(its imports done, its runtime not warmed up), less the shared parameter and gradient blocks "
            "that this process already counts and the library code its first step maps in "
            "(benchmarks/memory.py). Worker CPU time counts as the step's own, not as other load.")


SLOW_ROUND = 0.6     # a round's matmul below this share of the fastest seen (same threads) ran short of a core


def _disturbed_rounds(res: dict) -> list[str]:
    """Step rows at > 1 thread where some round's matmul read below SLOW_ROUND of the fastest this
    BLAS ran it at that thread count, in the peak table or in any step round (a peak table timed
    while a core was held back would set the bar too low: slow_peaks), as "small@2t: 1 of 7
    rounds (107 GFLOP/s against 205)"."""
    peaks = {p["threads"]: max(p["numpy"]["peak_gflops"], _round_matmul_max(res, "numpy", p["threads"]) or 0.0)
             for p in res.get("matmul_peak", []) if p.get("numpy")}
    if not peaks:
        return []
    flops = 2 * _peak_n(res) ** 3                       # of one n^3 matmul, as run.py's matmul_fn counts it
    out = []
    for r in res.get("step", []):
        samples = ((r.get("raw") or {}).get("samples_s") or {}).get("matmul")
        peak = peaks.get(r["threads"])
        if r["threads"] <= 1 or not samples or not peak:
            continue
        rates = [flops / s / 1e9 for s in samples]
        slow = [g for g in rates if g < SLOW_ROUND * peak]
        if slow:
            out.append(f"{r['config']}@{r['threads']}t: {len(slow)} of {len(rates)} rounds "
                       f"({', '.join(f'{g:.0f}' for g in slow)} GFLOP/s against {peak:.0f})")
    return out


SLOW_PACE = 0.85    # a step row whose rounds' matmul ran below this share of the run's fastest: the host slowed


def _positive(x) -> bool:
    return isinstance(x, (int, float)) and x > 0


def host_pace(res: dict) -> dict:
    """How fast the machine ran through the run, from the square matmul it times in every step
    round: each step row's rounds' median (the faster library's matmul in each round) as a share of
    the fastest round's at its thread count, and the peak table's best-of, taken before the
    sections, as a share of that same fastest round.

    {"best": {threads: GFLOP/s}, "peak": {threads: share}, "step": {(config, threads): share}}.
    A host can run slow for minutes with no other process in sight (the VM's neighbours, power or
    heat): other load reads ~0, and only this matmul shows it. Paired ratios are taken within rounds,
    so a slow stretch moves them less than the absolute times. The yardstick is the rounds' own
    fastest, not the peak table's: on the Xeon host (2026-12-02) the peak table read 2-17% above
    the fastest round in every run, an offset of the protocol, not a slow host.
    """
    best, rows = {}, {}
    for r in res.get("step", []):
        rp, t = r.get("round_peak_gflops") or {}, r.get("threads")
        if t is not None and _positive(rp.get("median")) and _positive(rp.get("max")):
            rows[r["config"], t] = rp["median"]
            best[t] = max(best.get(t, 0.0), rp["max"])
    read = {}
    for p in res.get("matmul_peak", []):
        g = max([x for x in ((p.get(lib) or {}).get("peak_gflops") for lib in ("numpy", "torch")) if _positive(x)],
                default=None)
        if g is not None and p.get("threads") in best:
            read[p["threads"]] = g
    return {"best": best, "peak": {t: g / best[t] for t, g in read.items()},
            "step": {k: g / best[k[1]] for k, g in rows.items()}}


def _pct(share: float) -> str:
    """A share as a whole percent, rounded down (84.6% is "84%", so nothing below a line reads as on it)."""
    return f"{math.floor(100 * share + 1e-9)}%"          # 0.57 * 100 is 56.99999999999999


def _pace_note(res: dict) -> str | None:
    """The machine section's line on host_pace: the slowest step row and the peak table's reading,
    and which readings fell below SLOW_PACE (None when the run timed no matmul in its rounds, or
    is a --quick run, whose few 10 ms samples and 3-repeat peak measure nothing: its 2-thread peak
    table has read 31% of its rounds' fastest)."""
    pace = host_pace(res)
    if not pace["step"] or res.get("settings", {}).get("mode") == "quick":
        return None
    slow = [f"{c}@{t}t {_pct(x)}" for (c, t), x in pace["step"].items() if x < SLOW_PACE]
    slow += [f"the peak table at {t}t {_pct(x)}" for t, x in pace["peak"].items() if x < SLOW_PACE]
    (c, t), low = min(pace["step"].items(), key=lambda kv: kv[1])
    text = (f"**Host pace:** the matmul timed in every step round ran, row by row (median of the rounds), at "
            f"{_pct(low)} ({c}@{t}t) to {_pct(max(pace['step'].values()))} of the fastest round's at the same "
            f"thread count ({', '.join(f'{g:.0f} GFLOP/s at {t}t' for t, g in sorted(pace['best'].items()))}); "
            f"the peak table's best-of read {', '.join(f'{_pct(x)} of it at {t}t' for t, x in sorted(pace['peak'].items()))}.")
    if slow:
        text += (f" Below {100 * SLOW_PACE:.0f}%: {'; '.join(slow)}. The host ran slower there with no other "
                 "process in sight (other load counts this VM's processes and steal time only): those times "
                 "are slow for this machine; paired ratios, taken within rounds, move less.")
    return text


def _peak_n(res: dict) -> int:
    """The side of the square matmul the run timed (the peak table's n)."""
    return next(p["numpy"]["n"] for p in res["matmul_peak"] if p.get("numpy"))


def _round_peak_cells(r: dict) -> tuple[str, str]:
    """(% of the same-round matmul per implementation, that matmul's GFLOP/s) for a step row.

    Results from before the matmul joined the rounds have only the run's best-of peak
    (pct_peak); those show it, marked "(run peak)".
    """
    paired = r.get("pct_round_peak")
    if paired is None:
        pct = " / ".join(_num(r["pct_peak"].get(i), "{:.1f}") for i in IMPLS)
        return pct + " (run peak)", "n/a"
    cells = []
    for i in IMPLS:
        st = paired.get(i)
        if not st:
            cells.append("n/a")
        elif i == "numpy":
            cells.append(f"{st['median']:.1f} [{st['min']:.0f}-{st['max']:.0f}]")
        else:
            cells.append(f"{st['median']:.1f}")
    rp = r.get("round_peak_gflops")
    return " / ".join(cells), f"{rp['median']:.1f} [{rp['min']:.0f}-{rp['max']:.0f}]" if rp else "n/a"


def _seconds(medians: dict | None, impl: str) -> float:
    """A median in seconds, NaN where the implementation has none (None after the JSON round trip)."""
    x = (medians or {}).get(impl)
    return math.nan if x is None else x


def _one_thread_steps(res: dict) -> dict[str, dict]:
    """The step table's 1-thread rows by config: what the products section is set beside."""
    return {r["config"]: r for r in res.get("step", []) if r["threads"] == 1}


def products_rest(r: dict, steps: dict[str, dict]) -> tuple[dict | None, dict[str, float], dict | None]:
    """(the whole step's speedup, each side's rest of the step in seconds, the rests' speedup) for
    a products row: paired round by round where the section timed the steps in its own rounds
    (rest_s), else from the step table's 1-thread row less the products' median (older runs: two
    measurements, so the rest carries both one's noise, and no ratio of rests is given)."""
    if "rest_s" in r:                                   # the section timed the steps (even if neither ran)
        medians = {i: stats.get("median") for i, stats in r["rest_s"].items()}
        return r.get("speedup_step"), {i: _seconds(medians, i) for i in ("numpy", "torch")}, r.get("speedup_rest")
    st = steps.get(r["config"])
    rest = {i: _seconds(st and st["median_s"], i) - _seconds(r["median_s"], i) for i in ("numpy", "torch")}
    return (st["speedup_vs_torch"] if st else None), rest, None


def products_table(res: dict) -> str:
    """The step's linear-layer products alone, NumPy's BLAS against torch's, beside the 1-thread step."""
    steps = _one_thread_steps(res)
    rows = []
    for r in res["products"]:
        med = {i: _seconds(r["median_s"], i) for i in ("numpy", "torch")}
        step_ratio, rest, rest_ratio = products_rest(r, steps)
        rows.append([r["config"], _num(r["flops"] / 1e9, "{:.1f}"), fmt_ms(med["numpy"]), fmt_ms(med["torch"]),
                     _num(r["gflops"].get("numpy"), "{:.0f}"), _num(r["gflops"].get("torch"), "{:.0f}"),
                     fmt_ratio(r["speedup"]), fmt_ratio(step_ratio), fmt_ms(rest["numpy"]), fmt_ms(rest["torch"]),
                     fmt_ratio(rest_ratio), _load(r)])
    return ("### The step's matrix products alone: NumPy's BLAS vs torch's, 1 thread\n\n"
            + _table(["config", "GFLOP per step", "NumPy BLAS ms", "torch ms", "NumPy BLAS GFLOP/s", "torch GFLOP/s",
                      "speedup, products", "speedup, whole step",
                      "rest of the step, numpy_gpt ms", "rest of the step, torch eager ms",
                      "speedup, rest of the step", "other load %"], rows)
            + "\n\nEvery linear-layer product of one training step, on the config's whole batch in the layouts "
            "the layers use (forward x @ w, dx g @ w^T, dw x^T @ g, the tied head's gradient g^T @ x as (V, C); "
            "each block layer's n_layer times, the head's once; `python -m benchmarks.gemm_shapes` times them one by one), run by NumPy's BLAS and "
            "by torch's, alternating. They are the 6 N tokens part of the step's FLOPs; where they are most of its "
            "time (compare the rest of the step), the whole step's speedup cannot stray far from theirs. Theirs is "
            "the part of the ratio that the two BLAS libraries set between themselves, which no NumPy code "
            "changes. **rest of the step** = the 1-thread step less its products: attention's "
            "own products, the elementwise layers, the loss and AdamW, plus whatever each side pays around "
            "its products; each side's own code, apart from its BLAS. Both steps are timed in the same "
            "rounds as the products, so each round gives each side's rest and the rests' ratio "
            "(**speedup, rest of the step**, paired like the others), and **speedup, whole step** comes from "
            "these rounds too (runs before 2026-12-06's last took the step from the step table and "
            "subtracted its median from the products', two measurements, and gave no ratio of rests). Here each layer's products run back to back on the same arrays, so their operands "
            "are warmer in the caches than in a step; the difference falls into the rest, on both sides. 1 thread only: at more threads numpy_gpt runs one shard per thread with one-thread "
            "BLAS, which no single product call stands for. " + SPEEDUP_CAPTION + " " + LOAD_NOTE)


def layer_table(res: dict) -> str:
    rows = []
    compiled = any(r.get("speedup_vs_compile") or (r.get("errors") or {}).get("compile") for r in res["layers"])
    for r in res["layers"]:
        row = [r["config"], r["layer"], r["shape"], str(r["threads"]), r["pass"],
               fmt_ms(_seconds(r["median_s"], "numpy")), fmt_ms(_seconds(r["median_s"], "torch"))]
        if compiled:
            row.append(_compile_cell(r))
        row.append(fmt_ratio(r["speedup"]))
        if compiled:
            row.append(fmt_ratio(r.get("speedup_vs_compile")))
        rows.append(row + [_load(r)])
    header = ["sizes", "layer", "input", "threads", "pass", "numpy_gpt ms", "torch ms"]
    header += ["torch.compile ms", "speedup vs eager", "speedup vs compile"] if compiled else ["speedup"]
    title = "numpy_gpt vs torch eager and torch.compile" if compiled else "numpy_gpt vs torch eager"
    return (f"### Layers: {title} (ms per call)\n\n"
            + _table(header + ["other load %"], rows)
            + "\n\nforward = training forward (numpy_gpt keeps its cache, torch records the autograd graph); "
            "fwd+bwd adds the backward for a fixed upstream gradient (torch.autograd.grad). torch.compile "
            "compiles each torch layer function on its own (static shapes, default inductor), anew for each "
            "thread count; its first call, compile included, is part of the warm-up. Each numpy_gpt layer "
            "is called alone on the whole batch, with the row's thread count for BLAS and for its row-block "
            "kernels (numpy_gpt.parallel); in a training step the same code runs once per batch shard, one "
            "shard per thread, each on one thread. softmax is "
            "numpy_gpt/softmax.py, the plain reference the trace and the parity report use; the model's "
            "attention has its own in-place, blockwise softmax (inside the attention rows). " + SPEEDUP_CAPTION
            + " " + LOAD_NOTE)


def generate_table(res: dict) -> str:
    compiled = _timed_compile(res["generate"])
    rows = []
    for r in res["generate"]:
        row = [r["config"], str(r["threads"]), "yes" if r["use_cache"] else "no",
               _num(r["tokens_per_s"].get("numpy"), "{:.0f}"), _num(r["tokens_per_s"].get("torch"), "{:.0f}")]
        if compiled:
            row.append(_compile_cell(r, _num(r["tokens_per_s"].get("compile"), "{:.0f}")))
        row.append(fmt_ratio(r["speedup"]))
        if compiled:
            row.append(fmt_ratio(r.get("speedup_vs_compile")))
        same = "yes" if r["same_tokens"] else "no"
        if compiled and r.get("same_tokens_compile") is not None:
            same += " / " + ("yes" if r["same_tokens_compile"] else "no")
        rows.append(row + [same, _load(r)])
    if not rows:
        return ""
    g = res["generate"][0]
    header = ["config", "threads", "KV cache", "numpy_gpt tokens/s", "torch eager tokens/s"]
    header += ["torch.compile tokens/s"] if compiled else []
    header += ["speedup vs eager"] + (["speedup vs compile"] if compiled else [])
    header += ["same tokens" + (" (eager / compile)" if compiled else ""), "other load %"]
    note = ""
    times = [f"{fmt_threads(r['threads'])}, {'cache' if r['use_cache'] else 'no cache'}: {r['compile_time_s']:.0f} s"
             for r in res["generate"] if r.get("compile_time_s") is not None]
    if times:
        note = (" torch.compile runs torch_gpt's generate on the compiled model, compiled anew for each "
                "thread count (two graphs: the prompt's forward and one decoding step); its first call, "
                "compile included, is not timed: " + "; ".join(times) + ".")
    rounds = (res.get("settings") or {}).get("generate_repeats") or (g.get("speedup") or {}).get("n")
    return (f"### Generation: greedy, batch 1, {g['new_tokens']} new tokens after a {g['prompt_len']}-token prompt"
            + (f", {rounds} interleaved rounds" if rounds else "") + "\n\n"
            + _table(header, rows) + "\n\n" + SPEEDUP_CAPTION + " " + LOAD_NOTE + note)


def scaling_table(res: dict) -> str:
    compiled = _timed_compile(res["scaling"])
    rows = []
    for r in res["scaling"]:
        tps = r["tokens_per_s"]
        gflop = r.get("flops_per_step")
        attn = r.get("attention_flops")
        row = [r["sweep"], str(r["value"]), r["shape"], str(r["threads"]),
               _num(gflop / 1e9 if gflop else None, "{:.1f}"),
               _num(100 * attn / gflop if attn is not None and gflop else None, "{:.0f}%"),
               fmt_ms(r["median_s"]["numpy"]), fmt_ms(r["median_s"]["torch"])]
        if compiled:
            row.append(_compile_cell(r) if (r.get("errors") or {}).get("compile") or "compile" in tps else "-")
        row += [_num(tps.get("numpy"), "{:.0f}"), _num(tps.get("torch"), "{:.0f}"), fmt_ratio(r["speedup"])]
        if compiled:
            row.append(fmt_ratio(r.get("speedup_vs_compile")) if "compile" in tps else "-")
        rows.append(row + [_load(r)])
    if not rows:
        return ""
    header = ["sweep", "value", "B x T, C, L", "threads", "model GFLOP/step", "attention's share",
              "numpy_gpt ms/step", "torch ms/step"] + (["torch.compile ms/step"] if compiled else [])
    header += ["numpy_gpt tokens/s", "torch tokens/s", "speedup"] + (["speedup vs compile"] if compiled else [])
    header += ["other load %"]
    note = (" torch.compile is timed at the run's most threads only (each point is a new shape, so a "
            "compile of its own; its first step, compile included, is not timed); \"-\" marks the "
            "other thread counts." if compiled else "")
    return (f"### Scaling: training-step throughput, numpy_gpt vs torch eager{' and torch.compile' if compiled else ''}\n\n"
            + _table(header, rows)
            + "\n\nThe T sweep keeps B x T fixed, so the weights' products are the same at every T and only "
            "attention's own work grows: T^2 per sequence, B = tokens / T sequences, so in proportion to T "
            "per step. attention's share = its term of the model FLOPs (12 n_layer T n_embd tokens, the causal "
            "mask not subtracted; both implementations skip or mask the upper half, so the time grows more "
            "slowly than this). Until that share is large, the step time moves little with T, and "
            "measurement noise of a few percent can make it dip from one point to the next. "
            + SPEEDUP_CAPTION + " " + LOAD_NOTE + note)


# The project's targets (issue 4), as the report checks them: at all cores, float32.
STEP_VS_EAGER, STEP_VS_COMPILE, MEDIUM_PEAK_PCT, DECODE_VS_EAGER = 1.2, 1.0, 70.0, 1.5


QUICK_VERDICT = "not judged (--quick)"


def _verdict(value: float | None, goal: float, higher_is_better: bool = True) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return "yes" if (value >= goal if higher_is_better else value <= goal) else "no"


def _rounds(stats: dict | None, goal: float) -> str:
    """ "; 5 of 7 rounds >= 1.2x": how many of a paired ratio's rounds reach the goal (results
    from before 2026-12-05 keep no rounds: "")."""
    rounds = (stats or {}).get("rounds")
    if not rounds:
        return ""
    return f" ({sum(x >= goal for x in rounds)} of {len(rounds)} rounds >= {goal:g}x)"


def _busy(r: dict, res: dict) -> str | None:
    """A verdict in place of a speed verdict when other processes used more than --max-load of the
    CPU through every attempt at this measurement: its ratio is shown but not judged."""
    load, most = r.get("foreign_load"), res["settings"].get("max_load", 0.1)
    if load is not None and load > most:
        return f"not judged ({100 * load:.0f}% other load)"
    return None


def _both_ways(threads: str, procs: str | None) -> str:
    """One verdict from numpy_gpt's threaded step's and (if measured) its shard processes' verdicts."""
    if procs in (None, "n/a") or procs == threads:
        return threads
    if threads == "yes":
        return "with threads only"
    return "with shard processes only" if procs == "yes" else threads


def _error(errors) -> str:
    text = "; ".join(f"{k}: {v}" for k, v in errors.items()) if isinstance(errors, dict) else str(errors)
    return f"n/a (failed: {text[:80]})"


def _same_step_in_scaling(res: dict, step_row: dict) -> list[float]:
    """The paired medians of the scaling points that train exactly step_row's workload at its
    thread count (the sweeps pass through their base config): the same measurement taken again
    later in the run, which shows the spread between runs that one cell's [min-max] does not."""
    def shape(w):
        return {k: v for k, v in (w or {}).items() if k != "name"}
    want = shape(step_row.get("workload"))
    return [s["speedup"]["median"] for s in res.get("scaling", [])
            if want and s["threads"] == step_row["threads"] and shape(s.get("workload")) == want
            and (s.get("speedup") or {}).get("median") is not None]


def targets_table(res: dict) -> str:
    """Each target of the project, the number this run measured for it, and whether it is met.

    Speeds are the paired medians of the tables below, at the run's largest thread count (the
    targets are stated at all cores). A target whose section or config was not run is left out;
    one that failed is listed as n/a with the error.
    """
    top = max(res["settings"]["threads"])
    quick = res["settings"].get("mode") == "quick"

    def speed(verdict: str) -> str:
        """A speed verdict, unless this is a --quick run (a few short rounds, no retry of a busy one)."""
        return QUICK_VERDICT if quick and verdict != "n/a" else verdict

    rows = []
    step_rows = [r for r in res.get("step", []) if r["threads"] == top]
    paces = host_pace(res)["step"]
    speed_targets = [(STEP_VS_EAGER, "speedup_vs_torch", "torch", "torch eager"),
                     (STEP_VS_COMPILE, "speedup_vs_compile", "compile", "torch.compile")]
    for (goal, key, impl, label), r in itertools.product(speed_targets, step_rows):
        name = f"training step >= {goal:.1f}x {label}"
        threads = (r.get(key) or {}).get("median")
        if threads is None:
            errors = {k: v for k, v in (r.get("errors") or {}).items()
                      if not str(v).startswith("skipped")}            # --no-compile, --quick: left out
            ran = impl in (r.get("median_s") or {}) or impl in errors
            failed = {k: v for k, v in errors.items() if k in ("numpy", impl)}
            if ran and failed:
                rows.append([name, r["config"], _error(failed), "n/a"])
            continue
        measured, procs_verdict = _num(threads, "{:.2f}x") + _rounds(r.get(key), goal), None
        procs = r.get(PROCS)
        if procs and procs.get("error"):
            measured += f"; shard processes {_error(procs['error'])}"
        elif procs and (procs.get(key) or {}).get("median") is not None:
            measured += f"; with shard processes {procs[key]['median']:.2f}x" + _rounds(procs[key], goal)
            procs_verdict = _verdict(procs[key]["median"], goal)
        pace = paces.get((r["config"], r["threads"]))
        if pace is not None and pace < SLOW_PACE and not quick:
            measured += f"; host at {_pct(pace)} pace (the matmul in these rounds)"
        if key == "speedup_vs_torch":
            again = _same_step_in_scaling(res, r)
            if again:
                measured += "; the same step in the scaling sweeps " + ", ".join(f"{x:.2f}x" for x in again)
        rows.append([name, r["config"], measured,
                     _busy(r, res) or speed(_both_ways(_verdict(threads, goal), procs_verdict))])
    for r in step_rows:
        if r["config"] == "medium":
            pct = ((r.get("pct_round_peak") or {}).get("numpy") or {}).get("median")
            measured = _error(r["errors"]) if pct is None and r.get("errors") else _num(pct, "{:.1f}%")
            rows.append([f"model FLOPs >= {MEDIUM_PEAK_PCT:g}% of the matmul in the same rounds", "medium",
                         measured, speed(_verdict(pct, MEDIUM_PEAK_PCT))])
    for g in res.get("generate", []):
        if g["threads"] == top and g["use_cache"] and g["config"] == "small":
            sp = (g.get("speedup") or {}).get("median")
            measured = (_error(g["errors"]) if sp is None and g.get("errors")
                        else _num(sp, "{:.2f}x") + _rounds(g.get("speedup"), DECODE_VS_EAGER))
            rows.append([f"KV-cache generation >= {DECODE_VS_EAGER:.1f}x torch eager tokens/s", "small",
                         measured, _busy(g, res) or speed(_verdict(sp, DECODE_VS_EAGER))])
    mem = {(m["config"], m["impl"]): m for m in res.get("memory", [])}
    for config in dict.fromkeys(m["config"] for m in res.get("memory", [])):
        ours, theirs, procs = (mem.get((config, i), {}) for i in ("numpy", "torch", PROCS))
        failed = {i: m["error"] for i, m in (("numpy", ours), ("torch", theirs)) if m.get("error")}
        if failed:
            rows.append(["peak memory <= torch eager's", config, _error(failed), "n/a"])
            continue
        if ours.get("delta_mb") is None or theirs.get("delta_mb") is None:
            continue
        # The verdict's measure: above a warmed-up runtime where both sides have it (the stricter,
        # without torch's runtime), else above imports.
        key = "warm_delta_mb" if ours.get("warm_delta_mb") is not None and theirs.get("warm_delta_mb") is not None \
            else "delta_mb"
        if key == "warm_delta_mb":
            measured = (f"{ours[key]:.0f} vs {theirs[key]:.0f} MB above a warmed-up runtime; "
                        f"{ours['delta_mb']:.0f} vs {theirs['delta_mb']:.0f} above imports")
        else:
            measured = f"{ours['delta_mb']:.0f} vs {theirs['delta_mb']:.0f} MB above imports"
        if ours.get("peak_mb") is not None and theirs.get("peak_mb") is not None:
            measured += f" (whole process {ours['peak_mb']:.0f} vs {theirs['peak_mb']:.0f})"
        procs_verdict = None
        if procs.get("error"):
            measured += f"; shard processes {_error(procs['error'])}"
        elif procs.get(key) is not None:
            measured += f"; with shard processes {procs[key]:.0f} MB"
            procs_verdict = _verdict(procs[key], theirs[key], higher_is_better=False)
        rows.append(["peak memory <= torch eager's", config, measured,
                     _both_ways(_verdict(ours[key], theirs[key], higher_is_better=False), procs_verdict)])
    if not rows:
        return ""
    cores = (res.get("machine") or {}).get("cores_available")
    caveat = (f" This run's largest thread count, {top}, is below the machine's {cores} cores, and the "
              "targets are stated at all cores." if cores and top < cores else "")
    return (f"### Targets at {fmt_threads(top)}\n\n" + _table(["target", "config", "measured", "met?"], rows)
            + "\n\nThe project's targets, checked against this run: speeds are the paired medians of the "
            "tables below (> 1x means numpy_gpt is faster); memory is judged on the step table's peak RSS "
            "above a warmed-up runtime, where both sides have it (else above the imports). Where a scaling sweep passes through the same config, its "
            "point trains the very same step again later in the run; those ratios are listed too, as a "
            "measure of how far one cell's ratio moves between measurements, but the verdict is the step "
            "table's. "
            "\"with shard processes only\" means the threaded step misses the target and the opt-in "
            "`ShardProcesses` meets it; \"with threads only\", the other way round. Targets whose config "
            "or section this run left out are not listed." + caveat
            + (" This is a --quick run: its few short rounds, none measured again when the machine was "
               "busy, keep the suite from rotting but cannot judge a speed, so the speed targets say "
               f"\"{QUICK_VERDICT}\"; `make bench` (the full run) judges them." if quick else ""))


def markdown(res: dict) -> str:
    """The whole report: machine, peak, and every table that has rows."""
    parts = [f"## numpy_gpt vs PyTorch on the CPU ({res['settings']['mode']} run)", "", machine_section(res)]
    targets = targets_table(res)
    if targets:
        parts += ["", targets]
    if res.get("matmul_peak"):
        parts += ["", peak_table(res)]
    for key, fn in (("step", step_table), ("step", procs_table), ("products", products_table),
                    ("layers", layer_table), ("generate", generate_table),
                    ("scaling", scaling_table)):
        text = fn(res) if res.get(key) else ""
        if text:
            parts += ["", text]
    return "\n".join(parts) + "\n"


# ------------------------------------------------------------------------------ plots
COLORS = {"numpy": "tab:blue", "torch": "tab:orange", "compile": "tab:green", PROCS: "tab:purple"}


def plots(res: dict, out: Path, stem: str) -> list[Path]:
    """Write the PNGs (Agg backend); returns their paths."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    written = []
    for key, fn in (("step", _plot_step), ("products", _plot_products), ("layers", _plot_layers),
                    ("scaling", _plot_scaling), ("generate", _plot_generate)):
        if res.get(key):
            fig = fn(res, plt)
            path = out / f"{stem}_{key}.png"
            fig.savefig(path, dpi=110, bbox_inches="tight")
            plt.close(fig)
            written.append(path)
    return written


def _err(stats: dict | None, med: float) -> tuple[float, float]:
    if not stats:
        return (0.0, 0.0)
    return (max(med - stats["min"] * 1e3, 0.0), max(stats["max"] * 1e3 - med, 0.0))


def _plot_step(res, plt):
    """One panel per (thread count, config), each on its own linear axis from 0, so bar
    heights compare as the times do (a shared log axis would let 10% look like 2x)."""
    threads = sorted({r["threads"] for r in res["step"]})
    configs = list(dict.fromkeys(r["config"] for r in res["step"]))
    fig, axes = plt.subplots(len(threads), len(configs), figsize=(max(3.6 * len(configs), 5.0), 3.2 * len(threads)),
                             squeeze=False)
    for a, n in enumerate(threads):
        for b, config in enumerate(configs):
            ax = axes[a][b]
            r = next((r for r in res["step"] if r["threads"] == n and r["config"] == config), None)
            if r is None:
                ax.set_axis_off()
                continue
            impls = [i for i in (IMPLS[0], PROCS, *IMPLS[1:]) if math.isfinite(_seconds(r["median_s"], i))]
            for j, impl in enumerate(impls):
                med = r["median_s"][impl] * 1e3
                lo, hi = _err(r["stats"].get(impl), med)
                ax.bar(j, med, 0.7, color=COLORS[impl], yerr=[[lo], [hi]], capsize=2)
            ax.set_xticks(range(len(impls)), [IMPL_LABELS[i].replace(" + ", "\n+ ") for i in impls], fontsize=7)
            ax.set_ylim(bottom=0)
            ax.set_ylabel("ms per step")
            ax.set_title(f"{config}, {fmt_threads(n)}: "
                         f"{_num((r.get('speedup_vs_torch') or {}).get('median'), '{:.2f}x')} of eager", fontsize=9)
    fig.suptitle("training step (forward + backward + AdamW), median with min-max\n"
                 "(in each title: torch eager's time / numpy_gpt's, paired by round)", fontsize=10)
    fig.tight_layout()
    return fig


def _plot_products(res, plt):
    """Per config, each side's 1-thread step as its linear-layer products plus the rest."""
    from matplotlib.patches import Patch
    step_rows = _one_thread_steps(res)
    rows = res["products"]
    fig, axes = plt.subplots(1, len(rows), figsize=(3.2 * len(rows), 4), squeeze=False)
    for ax, r in zip(axes[0], rows):
        step_ratio, rest, _ = products_rest(r, step_rows)
        for j, impl in enumerate(("numpy", "torch")):
            products = _seconds(r["median_s"], impl) * 1e3
            if math.isfinite(products):
                ax.bar(j, products, 0.6, color=COLORS[impl])
                if math.isfinite(rest[impl]):
                    ax.bar(j, max(rest[impl] * 1e3, 0.0), 0.6, bottom=products, color=COLORS[impl], alpha=0.45,
                           hatch="//")
        ax.set_xticks([0, 1], ["numpy_gpt\n(NumPy BLAS)", "torch eager\n(torch's BLAS)"])
        ax.set_ylabel("ms, 1 thread")
        title = f"{r['config']}: products {_num((r.get('speedup') or {}).get('median'), '{:.2f}x')}"
        if step_ratio:
            title += f", step {_num(step_ratio.get('median'), '{:.2f}x')}"
        ax.set_title(title)
    fig.legend([Patch(color="0.35"), Patch(facecolor="0.35", alpha=0.45, hatch="//")],
               ["linear-layer products", "rest of the step (step less products)"],
               loc="lower center", ncol=2, bbox_to_anchor=(0.5, -0.06))
    fig.suptitle("one training step, 1 thread: the BLAS's share and the rest (speedup = torch / numpy_gpt)")
    fig.tight_layout()
    return fig


def _plot_layers(res, plt):
    """Per (config, thread count), each layer's forward and backward time, one bar per
    implementation: numpy_gpt, torch eager and, where it ran, torch.compile."""
    configs = list(dict.fromkeys(r["config"] for r in res["layers"]))
    threads = sorted({r["threads"] for r in res["layers"]})
    fig, axes = plt.subplots(len(configs), len(threads), figsize=(6 * len(threads), 3.6 * len(configs)),
                             squeeze=False)
    for a, cfg in enumerate(configs):
        for b, n in enumerate(threads):
            ax = axes[a][b]
            rows = [r for r in res["layers"] if r["config"] == cfg and r["threads"] == n]
            names = list(dict.fromkeys(r["layer"] for r in rows))
            get = {(r["layer"], r["pass"]): r["median_s"] for r in rows}
            # compile only where it timed some layer (a layer it failed on gets no bar)
            impls = [i for i in IMPLS if any(math.isfinite(_seconds(m, i)) for m in get.values())]
            width = 0.8 / len(impls)
            for j, impl in enumerate(impls):
                fwd = [_seconds(get[(nm, "forward")], impl) * 1e3 for nm in names]
                bwd = [max(_seconds(get[(nm, "fwd+bwd")], impl) * 1e3 - f, 0.0) for nm, f in zip(names, fwd)]
                xs = [i + (j - (len(impls) - 1) / 2) * width for i in range(len(names))]
                ax.bar(xs, fwd, width, color=COLORS[impl], label=f"{IMPL_LABELS[impl]} forward")
                ax.bar(xs, bwd, width, bottom=fwd, color=COLORS[impl], alpha=0.45, hatch="//",
                       label=f"{IMPL_LABELS[impl]} backward (fwd+bwd - fwd)")
            ax.set_xticks(range(len(names)), names, rotation=20)
            ax.set_ylabel("ms per call")
            ax.set_title(f"{cfg} sizes, {fmt_threads(n)}")
    legend = {}                                  # one legend for all panels, below them (compile may miss some)
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(label, handle)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    fig.legend(legend.values(), legend.keys(), loc="lower center", ncol=max(1, len(legend) // 2), fontsize=8,
               bbox_to_anchor=(0.5, 0))
    return fig


def _plot_scaling(res, plt):
    sweeps = list(dict.fromkeys(r["sweep"] for r in res["scaling"]))
    threads = sorted({r["threads"] for r in res["scaling"]})
    fig, axes = plt.subplots(1, len(sweeps), figsize=(5 * len(sweeps), 4), squeeze=False)
    for ax, sweep in zip(axes[0], sweeps):
        for n in threads:
            rows = [r for r in res["scaling"] if r["sweep"] == sweep and r["threads"] == n]
            xs = [r["value"] for r in rows]
            for impl in ("numpy", "torch", "compile"):
                points = [(x, r["tokens_per_s"][impl]) for x, r in zip(xs, rows) if impl in r["tokens_per_s"]]
                if points:
                    ax.plot(*zip(*points), marker="o", color=COLORS[impl],
                            linestyle="-" if n == max(threads) else "--", label=f"{IMPL_LABELS[impl]}, {n} thr")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel(sweep + (" (B x T fixed)" if sweep == "T" else ""))
        ax.set_ylabel("training tokens / s (log)")
        ax.set_title(f"step throughput vs {sweep}")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _plot_generate(res, plt):
    rows = res["generate"]
    labels = [f"{r['config']}\n{r['threads']} thr, {'cache' if r['use_cache'] else 'no cache'}" for r in rows]
    fig, ax = plt.subplots(figsize=(1.8 * len(rows) + 2, 4))
    impls = [i for i in ("numpy", "torch", "compile") if any(i in r["tokens_per_s"] for r in rows)]
    width = 0.8 / len(impls)
    for j, impl in enumerate(impls):
        xs = [i + (j - (len(impls) - 1) / 2) * width for i in range(len(rows))]
        ax.bar(xs, [r["tokens_per_s"].get(impl, 0.0) for r in rows], width, color=COLORS[impl], label=IMPL_LABELS[impl])
    ax.set_xticks(range(len(rows)), labels, fontsize=8)
    ax.set_ylabel("generated tokens / s")
    ax.set_title("greedy generation, batch 1")
    ax.legend()
    return fig
