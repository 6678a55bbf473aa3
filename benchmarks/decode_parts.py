"""Where a KV-cache decoding step's time goes: its weight products, and everything else.

    python -m benchmarks.decode_parts [--config small] [--filled 40] [--repeats 15] [--batch 1]

A decoding step (numpy_gpt/decode.py, torch_gpt/decode.py) multiplies one row per sequence by
every weight matrix of the model: four per block and the head. This times, on one thread and a
batch of --batch rows (sequences or beams; 1 by default), in float32, each side's whole step with
`--filled` positions already in the KV cache (the cache is set back to that length before every
call, so each call does the same work), and the same products alone (the batch's rows times each
weight matrix, the head included, no bias) as each side's step makes them: numpy_gpt's through
parallel.matmul (so 2 or 3 rows go one at a time), torch's with @. What the step takes beyond its
products is the rest: layer norms, attention over the cache, GELU, biases, residual adds, and the
calls that run them.

Best of --repeats samples of 20 calls each, the four functions alternating sample by sample
(benchmarks.timing.best_of): a look at one shape, not the suite's method; `python -m
benchmarks.run --only generate` is the comparison the targets are judged on.

    python -m benchmarks.decode_parts --against c65a2bc [--config small] [--rounds 21]

sets numpy_gpt's decoding step as it was at a git revision beside today's and torch's lean step,
in one process: each runs a greedy loop of 72 steps (or the config's block, if shorter) from an
empty cache twice per round, the three in an order rotated round by round, on one thread; it
prints each one's median time per step and the ratios paired round by round (--filled and
--repeats are not used). The revision's whole numpy_gpt package is loaded, under another name,
from `git archive` (its decode.py imports its own attention.py, parallel.py, ...; its threads set
to 1), and its DecodeStep runs on a model made by today's: what is measured is every change to
what a step runs, except the KV caches (KVCache.append) and the token checks (GPT.check_idx),
which are today's model's in both loops. Both steps must pick the same tokens.
"""
from __future__ import annotations

import argparse
import importlib
import io
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

from numpy_gpt.parallel import matmul

from .timing import Measurement, best_of, paired_ratio, thread_limit
from .workloads import CONFIGS, numpy_model, torch_model

ROOT = Path(__file__).resolve().parent.parent


def weight_matrices(model) -> list[np.ndarray]:
    """numpy_gpt's weights that a decoding step multiplies a row by, in the step's order; the head
    as the step uses it (wte seen transposed when tied)."""
    cfg, p = model.config, model.params
    names = ["attn.c_attn.weight", "attn.c_proj.weight"] + (
        ["mlp.c_fc.weight", "mlp.c_proj.weight"] if cfg.mlp else [])
    mats = [p[f"h.{i}.{n}"] for i in range(cfg.n_layer) for n in names]
    return mats + [(p["wte.weight"] if cfg.tie_weights else p["lm_head.weight"]).T]


def decode_fns(config: str, filled: int, batch: int = 1) -> tuple[dict, float, int]:
    """Zero-argument functions (each side's step for `batch` rows at `filled` cached positions, and
    its products), the weights' megabytes and the number of weight matrices."""
    import torch

    import torch_gpt.decode
    from numpy_gpt.decode import DecodeStep
    w = CONFIGS[config]
    if not 0 <= filled < w.block_size:
        raise ValueError(f"--filled must be in [0, {w.block_size}) for {config}, got {filled}")
    if batch < 1:
        raise ValueError(f"--batch must be at least 1, got {batch}")
    model, tmodel = numpy_model(w, np.float32), torch_model(w, np.float32)
    step, tstep = DecodeStep(model), torch_gpt.decode.DecodeStep(tmodel)
    caches, tcaches = model.new_kv_caches(batch), tmodel.new_kv_caches(batch)
    rng = np.random.default_rng(0)
    for c, tc in zip(caches, tcaches):                     # the positions before: any numbers
        c.k[...] = rng.standard_normal(c.k.shape)
        c.v[...] = rng.standard_normal(c.v.shape)
        tc.k.copy_(torch.from_numpy(c.k))
        tc.v.copy_(torch.from_numpy(c.v))
    token = np.arange(1, batch + 1) % w.vocab_size
    ttoken = torch.from_numpy(token)

    def numpy_step():
        for c in caches:
            c.length = filled
        return step(token, caches, filled)

    def torch_step():
        for c in tcaches:
            c.length = filled
        with torch.inference_mode():
            return tstep(ttoken, tcaches, filled)

    mats = weight_matrices(model)
    rows = [rng.standard_normal((batch, m.shape[0])).astype(np.float32) for m in mats]
    tmats = [torch.from_numpy(m) for m in mats]            # the same layouts: the head a transposed view
    trows = [torch.from_numpy(r) for r in rows]

    def numpy_products():
        for r, m in zip(rows, mats):
            matmul(r, m)

    def torch_products():
        with torch.inference_mode():
            for r, m in zip(trows, tmats):
                r @ m
    megabytes = sum(m.nbytes for m in mats) / 1e6
    return {"numpy step": numpy_step, "torch step": torch_step,
            "numpy products": numpy_products, "torch products": torch_products}, megabytes, len(mats)


_COPIES: list[tempfile.TemporaryDirectory] = []     # the revisions' packages, kept until exit


def decode_step_at(rev: str) -> type:
    """The DecodeStep class of numpy_gpt as committed at git revision rev: the whole package,
    extracted with `git archive` into a temporary directory as numpy_gpt_at_<the commit's first
    12 hex digits> and imported from there, once per commit, so that its modules import each
    other (its decode.py its own attention.py and parallel.py), not today's."""
    if not rev or rev.startswith("-"):                    # git would read it as an option
        raise SystemExit(f"decode_parts: {rev!r} is not a git revision")
    found = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], cwd=ROOT,
                           capture_output=True, text=True)
    if found.returncode:
        raise SystemExit(f"decode_parts: {rev!r} is not a commit of this repository")
    commit = found.stdout.strip()
    name = f"numpy_gpt_at_{commit[:12]}"
    if name not in sys.modules:
        got = subprocess.run(["git", "archive", "--format=tar", commit, "numpy_gpt"], cwd=ROOT, capture_output=True)
        if got.returncode:
            raise SystemExit(f"decode_parts: cannot read numpy_gpt at {rev!r}: "
                             f"{(got.stderr.decode(errors='replace').strip().splitlines() or ['git failed'])[-1]}")
        copy = tempfile.TemporaryDirectory(prefix="decode_parts_")
        _COPIES.append(copy)
        safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}   # (Python 3.10.12+, 3.11.4+)
        with tarfile.open(fileobj=io.BytesIO(got.stdout)) as tar:
            tar.extractall(copy.name, **safe)
        Path(copy.name, "numpy_gpt").rename(Path(copy.name, name))
        sys.path.insert(0, copy.name)
        try:
            importlib.import_module(name)
        finally:
            sys.path.remove(copy.name)
    try:
        return importlib.import_module(f"{name}.decode").DecodeStep
    except ModuleNotFoundError as e:
        if e.name != f"{name}.decode":
            raise
        raise SystemExit(f"decode_parts: numpy_gpt at {rev!r} has no decode.py (no fast decoding step)") from None


def step_loops(config: str, rev: str, positions: int = 72) -> dict:
    """Zero-argument greedy loops of `positions` decoding steps from an empty cache: numpy_gpt's
    step at rev ("then"), today's ("now"), and torch eager's lean step."""
    import torch

    import torch_gpt.decode
    from numpy_gpt.decode import DecodeStep
    w = CONFIGS[config]
    if positions > w.block_size:
        raise ValueError(f"{positions} positions do not fit {config}'s block of {w.block_size}")
    model, tmodel = numpy_model(w, np.float32), torch_model(w, np.float32)
    then_cls = decode_step_at(rev)
    then_parallel = sys.modules.get(then_cls.__module__.rsplit(".", 1)[0] + ".parallel")
    if then_parallel is not None:                         # its own thread count, as today's in thread_limit
        then_parallel.set_num_threads(1)
    then, now, tstep = then_cls(model), DecodeStep(model), torch_gpt.decode.DecodeStep(tmodel)

    def loop(step):
        def run():
            caches, token, tokens = model.new_kv_caches(1), np.array([1]), []
            for pos in range(positions):
                token = step(token, caches, pos).argmax(-1)
                tokens.append(int(token[0]))
            return tokens
        return run

    def torch_loop():
        caches, token, tokens = tmodel.new_kv_caches(1), torch.tensor([1]), []
        with torch.inference_mode():
            for pos in range(positions):
                token = tstep(token, caches, pos).argmax(-1)
                tokens.append(int(token[0]))
        return tokens
    return {"then": loop(then), "now": loop(now), "torch": torch_loop}


def compare_revision(config: str, rev: str, rounds: int, positions: int = 72) -> dict[str, list[float]]:
    """Seconds per step of each loop of step_loops, one sample per round (two loops each), in an
    order rotated round by round, on one thread."""
    if rounds < 1:
        raise ValueError(f"--rounds must be at least 1, got {rounds}")
    loops = step_loops(config, rev, positions)
    if loops["then"]() != loops["now"]():
        raise SystemExit(f"decode_parts: the step at {rev} and today's pick different tokens")
    names, per_step = list(loops), {name: [] for name in loops}
    with thread_limit(1):
        for fn in loops.values():
            fn()
        for r in range(rounds):
            for name in names[r % 3:] + names[:r % 3]:
                t0 = time.perf_counter()
                loops[name]()
                loops[name]()
                per_step[name].append((time.perf_counter() - t0) / (2 * positions))
    return per_step


def _paired(per_step: dict[str, list[float]], numerator: str, denominator: str) -> str:
    r = paired_ratio(Measurement(samples=per_step), numerator, denominator)
    return f"{r['median']:.3f} [{r['min']:.3f}-{r['max']:.3f}]"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="small", choices=list(CONFIGS))
    ap.add_argument("--filled", type=int, default=40, help="positions already in the KV cache (default 40)")
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--batch", type=int, default=1, help="rows decoded at once (sequences or beams; default 1)")
    ap.add_argument("--against", metavar="REV", help="time numpy_gpt's step at this git revision beside today's")
    ap.add_argument("--rounds", type=int, default=21, help="with --against: rounds (default 21)")
    args = ap.parse_args(argv)
    if args.repeats < 1:
        ap.error(f"--repeats must be at least 1, got {args.repeats}")
    if args.against and args.batch != 1:
        ap.error(f"--against times batch 1 only, got --batch {args.batch}")
    import torch  # noqa: F401  (before thread_limit, so that it sets torch's threads too)
    if args.against:
        positions = min(72, CONFIGS[args.config].block_size)
        try:
            t = compare_revision(args.config, args.against, args.rounds, positions)
        except ValueError as e:
            ap.error(str(e))
        print(f"{args.config}, batch 1, greedy loops of {positions} steps from an empty cache, float32, 1 thread; "
              f"{args.rounds} rounds, ms per step, median [min-max]")
        for name, label in (("then", f"numpy_gpt at {args.against}"), ("now", "numpy_gpt now"),
                            ("torch", "torch eager")):
            print(f"  {label:24s} {1e3 * statistics.median(t[name]):.3f} "
                  f"[{1e3 * min(t[name]):.3f}-{1e3 * max(t[name]):.3f}]")
        print(f"  then / now  {_paired(t, 'then', 'now')}  (> 1: the step got faster)")
        print(f"  torch / then {_paired(t, 'torch', 'then')}   torch / now {_paired(t, 'torch', 'now')}")
        return
    try:
        fns, megabytes, n = decode_fns(args.config, args.filled, args.batch)
    except ValueError as e:
        ap.error(str(e))
    with thread_limit(1):
        best = best_of(fns, args.repeats, calls=20)
    print(f"{args.config}, batch {args.batch}, {args.filled} cached positions, float32, 1 thread; "
          f"{n} weight matrices, {megabytes:.1f} MB; best of {args.repeats} samples of 20 calls, in us")
    print("| | numpy_gpt | torch | torch / numpy_gpt |")
    print("|---|---|---|---|")
    for part in ("step", "products"):
        a, b = best[f"numpy {part}"], best[f"torch {part}"]
        print(f"| {part} | {a * 1e6:.0f} | {b * 1e6:.0f} | {b / a:.2f} |")
    a = best["numpy step"] - best["numpy products"]
    b = best["torch step"] - best["torch products"]
    print(f"| rest (step - products) | {a * 1e6:.0f} | {b * 1e6:.0f} | {b / a:.2f} |")
    print(f"products at {megabytes / 1e3 / best['numpy products']:.1f} GB/s in NumPy's BLAS, "
          f"{megabytes / 1e3 / best['torch products']:.1f} in torch's")


if __name__ == "__main__":
    main()
