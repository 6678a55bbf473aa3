"""benchmarks/history.py: the table of every committed full run.

It measures nothing; these check that each column shows the figure its header names, taken from
the right row of the stored results, and that the runs are found in git history.
"""
from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from benchmarks.history import (DECODE_TARGET, ROOT, committed_runs, git_runs, history_table, latest_full_run,
                                readme_run_notes, readme_step_table, readme_targets_table, run_date, steadiness_table,
                                summarize, target_runs)
from tests.test_benchmark_stats import _med


def _run(commit="abc1234", top=2, quick=False, **extra):
    """A results dictionary shaped like benchmarks.run's, with distinct numbers in every cell."""
    step = []
    for i, config in enumerate(("tiny", "small", "medium")):
        step.append({"config": config, "threads": 1, "speedup_vs_torch": _med(1.1 + i / 10)})
        row = {"config": config, "threads": top, "speedup_vs_torch": _med(0.6 + i / 10),
               "procs": {"speedup_vs_torch": _med(1.4 + i / 10), "error": None}}
        if config == "medium":
            row["pct_round_peak"] = {"numpy": _med(71.6), "torch": _med(50.0)}
        # The rounds' matmul: tiny's fastest round (121) beats the peak table (110) and is the run's
        # best at `top` threads; medium's median is the slowest row's: 84 / 121 = 69.4%.
        row["round_peak_gflops"] = {"median": {"tiny": 99.0, "small": 105.0, "medium": 84.0}[config],
                                    "max": {"tiny": 121.0, "small": 108.0, "medium": 90.0}[config]}
        step.append(row)
    products = [{"config": c, "threads": 1, "speedup": _med(1.01 + i / 100)} for i, c in enumerate(("tiny", "small", "medium"))]
    res = {
        "machine": {"cpu_model": "Some CPU", "cpu_family_model": "25/1", "simd": ["avx2", "fma"],
                    "threadpools": [{"user_api": "blas", "internal_api": "openblas", "architecture": "Haswell"},
                                    {"user_api": "openmp", "internal_api": "openmp"}],
                    "openblas_env": {"OPENBLAS_CORETYPE": "Haswell"}},
        "settings": {"threads": [1, top], "dtype": "float32", "commit": commit,
                     "mode": "quick" if quick else "full"},                 # as benchmarks.run writes it
        "matmul_peak": [{"threads": 1, "numpy": {"peak_gflops": 67.6}, "torch": {"peak_gflops": 40.4}},
                        {"threads": top, "numpy": {"peak_gflops": 110.0}, "torch": {"peak_gflops": 68.0}}],
        "step": step,
        "products": products,
        "generate": [{"threads": 1, "use_cache": False, "speedup": _med(9.0)},
                     {"threads": 1, "use_cache": True, "speedup": _med(1.66)},
                     {"threads": top, "use_cache": True, "speedup": _med(1.35)}],
    }
    res.update(extra)
    return res


def _rows(table: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("|").split("|")] for line in table.splitlines()[2:]]


def test_each_column_holds_the_figure_its_header_names():
    (row,) = _rows(history_table([("def5678", "2026-12-02", _run())]))
    assert row == ["def5678", "2026-12-02", "abc1234", "Some CPU 25/1", "openblas Haswell (OPENBLAS_CORETYPE=Haswell)",
                   "68 / 40", "1.10 / 1.20 / 1.30", "1.01 / 1.02 / 1.03", "0.60 / 0.70 / 0.80", "1.40 / 1.50 / 1.60",
                   "1.66 / 1.35", "72%", "69%"]


def test_quick_runs_and_other_thread_counts_are_left_out_unless_asked():
    runs = [("a", "d", _run(quick=True)), ("b", "d", _run(top=4)), ("c", "d", _run())]
    assert [r[0] for r in _rows(history_table(runs))] == ["c"]
    assert [r[0] for r in _rows(history_table(runs, threads=None))] == ["b", "c"]


def test_a_run_that_stopped_early_is_marked():
    assert _rows(history_table([("a", "d", _run(complete=False))]))[0][0] == "a (incomplete)"
    assert _rows(history_table([("a", "d", _run(complete=True))]))[0][0] == "a"


def test_an_older_run_without_the_newer_fields_shows_dashes():
    res = _run(commit=None)
    del res["machine"]["cpu_family_model"], res["machine"]["openblas_env"], res["generate"], res["products"]
    for r in res["step"]:
        r.pop("procs", None), r.pop("pct_round_peak", None), r.pop("round_peak_gflops", None)
    x = summarize(res)
    assert x["family_model"] is None and x["decode"] == (None, None) and x["medium_pct"] is None
    (row,) = _rows(history_table([("old", "2026-11-23", res)]))
    assert row[2:5] == ["—", "Some CPU", "openblas Haswell"]
    assert row[7] == "—" and row[9:] == ["—", "—", "—", "—"]


def test_a_missing_config_is_a_dash_among_the_others():
    res = _run()
    res["step"] = [r for r in res["step"] if r["config"] != "small"]
    assert summarize(res)["step_top"] == [0.6, None, 0.8]
    assert _rows(history_table([("x", "d", res)]))[0][8] == "0.60 / — / 0.80"


needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def _git(cwd, *args):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def _repo_with_runs(repo, project="."):
    """A git repository whose file project/r.json was committed three times, once not as JSON."""
    repo.mkdir(parents=True, exist_ok=True)
    _git(repo, "init", "-q")
    _git(repo, "config", "user.email", "t@example.com")
    _git(repo, "config", "user.name", "t")
    root = repo / project
    root.mkdir(parents=True, exist_ok=True)
    for i, text in enumerate([json.dumps({"n": 1}), "not json", json.dumps({"n": 3})]):
        (root / "r.json").write_text(text)
        _git(repo, "add", "-A")
        _git(repo, "commit", "-qm", f"run {i}")
    return root


@needs_git
def test_git_runs_reads_every_committed_version_and_an_uncommitted_one(tmp_path):
    root = _repo_with_runs(tmp_path)
    runs = git_runs(root, "r.json")
    assert [r[2] for r in runs] == [{"n": 3}, {"n": 1}]          # newest first; the non-JSON one skipped
    assert all(len(label) >= 7 and date.count("-") == 2 for label, date, _ in runs)
    (root / "r.json").write_text(json.dumps({"n": 4}))            # a new run, not yet committed
    assert [(r[0], r[2]) for r in git_runs(root, "r.json")[:2]] == [("working tree", {"n": 4}),
                                                                   (runs[0][0], {"n": 3})]


@needs_git
def test_a_project_inside_a_larger_repository_keeps_its_history(tmp_path):
    root = _repo_with_runs(tmp_path, "sub/project")
    assert [r[2] for r in git_runs(root, "r.json")] == [{"n": 3}, {"n": 1}]


@needs_git
def test_a_shallow_clone_says_its_history_is_cut_short(tmp_path, capsys):
    _repo_with_runs(tmp_path / "full")
    _git(tmp_path, "clone", "-q", "--depth", "1", (tmp_path / "full").as_uri(), "shallow")
    runs = git_runs(tmp_path / "shallow", "r.json")
    assert [r[2] for r in runs] == [{"n": 3}]
    assert "shallow" in capsys.readouterr().err


def test_outside_git_the_file_alone_is_listed(tmp_path, capsys):
    (tmp_path / "r.json").write_text(json.dumps({"n": 1}))
    assert git_runs(tmp_path, "r.json") == [("working tree", "—", {"n": 1})]
    assert "no git history" in capsys.readouterr().err


def test_the_command_line_prints_the_table_and_filters_by_threads(monkeypatch, capsys):
    from benchmarks import history
    runs = [("a", "d", _run(top=4)), ("b", "d", _run())]
    monkeypatch.setattr(history, "git_runs", lambda: runs)
    history.main([])
    assert [r[0] for r in _rows(capsys.readouterr().out.split("\n\n")[0])] == ["b"]
    history.main(["--all-runs"])
    assert [r[0] for r in _rows(capsys.readouterr().out.split("\n\n")[0])] == ["a", "b"]
    monkeypatch.setattr(history, "git_runs", lambda: [])
    with pytest.raises(SystemExit, match="no full run found"):
        history.main([])


# ------------------------------------------------------------------ --targets: steadiness
def _with_targets(eager_tiny, cpu="25/1", memory=None, commit=None, **kw):
    """_run() with tiny's 2-thread ratio to eager set, and (optionally) memory rows in MB
    as {(config, impl): warm_delta_mb}; no measured commit unless given."""
    res = _run(commit=commit, **kw)
    res["machine"]["cpu_family_model"] = cpu
    top = max(res["settings"]["threads"])
    next(r for r in res["step"] if r["config"] == "tiny" and r["threads"] == top)["speedup_vs_torch"] = _med(eager_tiny)
    res["memory"] = [{"config": c, "impl": i, "warm_delta_mb": mb} for (c, i), mb in (memory or {}).items()]
    return res


def _target_rows(table: str) -> dict[tuple[str, str, str], list[str]]:
    return {tuple(r[:3]): r[3:] for r in _rows(table)}


def test_targets_give_the_newest_figure_the_range_and_how_often_met():
    # measured at a commit git cannot place: counted for the KV-cache target as well
    runs = [(name, "d", _with_targets(ratio, commit="feed000")) for name, ratio in (("new", 0.9), ("mid", 1.25),
                                                                                     ("old", 1.3))]
    rows = _target_rows(steadiness_table(runs))
    assert rows[("training step >= 1.2x torch eager", "tiny", "threads")] == ["0.90x, 1.25x, 1.30x", "0.90x - 1.30x",
                                                                                      "2 of 3"]
    # small's threaded ratio is 0.70 in every run, its shard processes' 1.50
    assert rows[("training step >= 1.2x torch eager", "small", "threads")] == ["0.70x, 0.70x, 0.70x", "0.70x - 0.70x",
                                                                                       "0 of 3"]
    assert rows[("training step >= 1.2x torch eager", "small", "shard processes")] == ["1.50x, 1.50x, 1.50x",
                                                                                               "1.50x - 1.50x", "3 of 3"]
    assert rows[("model FLOPs >= 70% of the same rounds' matmul", "medium", "threads")][0] == "72%, 72%, 72%"
    assert rows[("KV-cache generation >= 1.5x torch eager", "small", "threads")] == ["1.35x, 1.35x, 1.35x",
                                                                                      "1.35x - 1.35x", "0 of 3"]
    assert not any("torch.compile" in key[0] for key in rows)        # no run timed it: no row


def test_targets_count_only_complete_full_runs_on_the_newest_runs_cpu():
    runs = [("quick", "d", _with_targets(5.0, quick=True)), ("new", "d", _with_targets(1.0)),
            ("other cpu", "d", _with_targets(9.0, cpu="6/167")), ("cut", "d", _with_targets(9.0, complete=False)),
            ("four threads", "d", _with_targets(9.0, top=4)), ("old", "d", _with_targets(1.4))]
    table = steadiness_table(runs)
    assert "newest 2 runs, newest first (new, old)" in table and "all 2 runs on CPU 25/1" in table
    runs[1] = ("stored in", "d", _with_targets(1.0, commit="measured at"))
    assert "(measured at, old)" in steadiness_table(runs)                # the commit measured, where known
    assert _target_rows(table)[("training step >= 1.2x torch eager", "tiny", "threads")] == ["1.00x, 1.40x",
                                                                                            "1.00x - 1.40x", "1 of 2"]


def test_memory_is_judged_as_a_ratio_to_torch_over_the_runs_that_measured_it():
    runs = [("new", "d", _with_targets(1.0, memory={("tiny", "numpy"): 13.0, ("tiny", "torch"): 14.5 + 0.5,
                                                     ("tiny", "procs"): 18.0})),
            ("old", "d", _with_targets(1.0, memory={("tiny", "numpy"): 16.0, ("tiny", "torch"): 16.0})),
            ("older", "d", _with_targets(1.0))]                        # before the measure existed
    rows = _target_rows(steadiness_table(runs))
    memory = "peak memory <= torch eager's (ours / torch's)"
    assert rows[(memory, "tiny", "threads")] == ["0.87x, 1.00x, —", "0.87x - 1.00x", "2 of 2"]
    assert rows[(memory, "tiny", "shard processes")] == ["1.20x, —, —", "1.20x - 1.20x", "0 of 1"]
    assert (memory, "small", "threads") not in rows


def test_the_command_line_prints_the_targets_table(monkeypatch, capsys):
    from benchmarks import history
    monkeypatch.setattr(history, "git_runs", lambda: [("a", "d", _with_targets(1.3))])
    history.main(["--targets"])
    assert _target_rows(capsys.readouterr().out.split("\n\n")[0])[
        ("training step >= 1.2x torch eager", "tiny", "threads")] == ["1.30x", "1.30x - 1.30x", "1 of 1"]
    monkeypatch.setattr(history, "git_runs", lambda: [("q", "d", _with_targets(1.3, quick=True))])
    with pytest.raises(SystemExit, match="no complete full run"):
        history.main(["--targets"])


def test_targets_list_the_newest_five_runs_and_count_them_all():
    runs = [(f"r{i}", "d", _with_targets(1.0 + i / 10)) for i in range(7)]       # r0 newest: 1.00x
    table = steadiness_table(runs)
    assert "newest 5 runs, newest first (r0, r1, r2, r3, r4)" in table and "all 7 runs" in table
    assert _target_rows(table)[("training step >= 1.2x torch eager", "tiny", "threads")] == [
        "1.00x, 1.10x, 1.20x, 1.30x, 1.40x", "1.00x - 1.60x", "5 of 7"]


def test_targets_on_a_cpu_named_on_the_command_line(monkeypatch, capsys):
    from benchmarks import history
    runs = [("new", "d", _with_targets(1.0)), ("zen4", "d", _with_targets(1.3, cpu="25/17")),
            ("older zen4", "d", _with_targets(1.1, cpu="25/17"))]
    table = steadiness_table(runs, cpu="25/17")
    assert "newest 2 runs, newest first (zen4, older zen4)" in table and "all 2 runs on CPU 25/17" in table
    assert _target_rows(table)[("training step >= 1.2x torch eager", "tiny", "threads")] == ["1.30x, 1.10x",
                                                                                            "1.10x - 1.30x", "1 of 2"]
    assert steadiness_table(runs, cpu="6/167") == ""
    monkeypatch.setattr(history, "git_runs", lambda: runs)
    history.main(["--targets", "--cpu", "25/17"])
    assert "all 2 runs on CPU 25/17" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="no complete full run at 2 threads on CPU 6/167"):
        history.main(["--targets", "--cpu", "6/167"])
    with pytest.raises(SystemExit):
        history.main(["--cpu", "25/17"])                      # without --targets: a usage error
    assert "--cpu goes with --targets" in capsys.readouterr().err


@needs_git
def test_the_kv_cache_target_counts_only_runs_of_torchs_lean_step_or_later(tmp_path):
    repo = tmp_path / "repo"
    _repo_with_runs(repo)                                        # three commits in a line
    first, lean, last = subprocess.run(["git", "log", "--reverse", "--format=%h"], cwd=repo, check=True,
                                       capture_output=True, text=True).stdout.split()
    runs = [(f"r{i}", "d", _with_targets(1.0, commit=commit)) for i, commit in enumerate((last, lean, first, None))]
    cpu, names, rows = target_runs(runs, root=repo, since={DECODE_TARGET: lean})
    assert names == [last, lean, first, "r3"]
    (kv,) = [values for target, *_, values, _, _ in rows if target == DECODE_TARGET]
    assert kv == [1.35, 1.35, None, None]                      # before `lean`, and a run that named no commit
    eager = next(values for target, config, how, values, *_ in rows
                 if target.endswith("torch eager") and config == "tiny" and how == "threads")
    assert eager == [1.0] * 4                                   # the other targets count every run
    table = readme_targets_table(runs, root=repo, since={DECODE_TARGET: lean})
    assert "1.35× (1.35-1.35× in the 2 runs since torch got its lean step, 0 of 2): missed" in table
    assert "KV-cache generation >= 1.5x torch eager | small | threads | 1.35x, 1.35x, —, —" in steadiness_table(
        runs, root=repo, since={DECODE_TARGET: lean})


def test_readme_targets_table_marks_each_figure_met_missed_or_missed_in_this_run():
    memory = {("tiny", "numpy"): 9.0, ("tiny", "torch"): 10.0, ("tiny", "procs"): 12.0}
    runs = [("new", "d", _with_targets(1.1, memory=memory)), ("old", "d", _with_targets(1.3, memory=memory))]
    rows = _rows(readme_targets_table(runs, since={}))
    assert rows[0] == ["training step ≥ 1.2× torch eager", "tiny", "1.10× (1.10-1.30×, 1 of 2): missed in this run",
                       "**1.40×** (1.40-1.40×, 2 of 2)"]
    assert rows[1] == ["", "small", "0.70× (0.70-0.70×, 0 of 2): missed", "**1.50×** (1.50-1.50×, 2 of 2)"]
    assert ["model FLOPs ≥ 70% of the same rounds' matmul", "medium", "**72%** (72-72%, 2 of 2)", ""] in rows
    assert ["KV-cache generation ≥ 1.5× torch eager", "small", "1.35× (1.35-1.35×, 0 of 2): missed", ""] in rows
    assert ["peak memory ≤ torch eager's (ours / torch's)", "tiny", "**0.90×** (0.90-0.90×, 2 of 2)",
            "1.20× (1.20-1.20×, 0 of 2): missed"] in rows
    assert not any("torch.compile" in r[0] for r in rows)       # no run timed it: no row
    assert readme_targets_table([("q", "d", _with_targets(1.0, quick=True))]) == ""


def _step_row(config, threads, eager, compiled, pct):
    return {"config": config, "threads": threads, "median_s": {"numpy": 0.0204, "torch": 0.0235, "compile": None},
            "speedup_vs_torch": {"median": eager, "min": eager - 0.1, "max": eager + 0.1},
            "speedup_vs_compile": {"median": compiled, "min": 0.5, "max": 1.5},
            "gflops": {"numpy": 36.4}, "pct_round_peak": {"numpy": {"median": pct, "min": 34.2, "max": 95.0}}}


def test_readme_step_table_bolds_only_the_figures_that_meet_a_target_at_two_threads():
    res = {"step": [_step_row("tiny", 1, 1.3, 1.1, 40.4), _step_row("tiny", 2, 1.19, 1.0, 80.0),
                    _step_row("medium", 2, 1.2, 0.99, 70.0), _step_row("medium", 1, 1.5, 1.5, 90.0),
                    _step_row("small", 2, 1.0, 1.0, 60.0)],
           "memory": [{"config": "tiny", "impl": "numpy", "warm_delta_mb": 13.6},
                      {"config": "tiny", "impl": "torch", "warm_delta_mb": 13.6},
                      {"config": "medium", "impl": "numpy", "warm_delta_mb": 500.2},
                      {"config": "medium", "impl": "torch", "warm_delta_mb": 499.9}]}
    rows = _rows(readme_step_table(res))
    assert rows[0] == ["tiny", "1", "20.4", "23.5", "n/a", "1.30 [1.20-1.40]", "1.10 [0.50-1.50]", "36 (40% [34-95])",
                       "14 / 14"]                                   # 1 thread: nothing judged
    assert rows[1][5:] == ["1.19 [1.09-1.29]", "**1.00** [0.50-1.50]", "36 (80% [34-95])", "**14** / 14"]
    assert rows[2][5:] == ["**1.20** [1.10-1.30]", "0.99 [0.50-1.50]", "36 (**70%** [34-95])", "500.2 / 499.9"]
    assert rows[3][5:] == ["1.50 [1.40-1.60]", "1.50 [0.50-1.50]", "36 (90% [34-95])", "500 / 500"]
    assert rows[4][7:] == ["36 (60% [34-95])", "—"]                  # 70% is judged at medium only; no memory rows


def _tables(markdown: str) -> list[list[list[str]]]:
    """Every table in a markdown text, as rows of stripped cells (header and rule included)."""
    tables, rows = [], []
    for line in markdown.splitlines() + [""]:
        if line.startswith("|"):
            rows.append([c.strip() for c in line.strip().strip("|").split("|")])
        elif rows:
            tables.append(rows)
            rows = []
    return tables


def _full_history() -> bool:
    """Whether this checkout has git and its whole history (a shallow clone cuts off older runs)."""
    try:
        done = subprocess.run(["git", "rev-parse", "--is-shallow-repository"], cwd=ROOT, capture_output=True,
                              text=True, timeout=60)
    except OSError:
        return False
    return done.returncode == 0 and done.stdout.strip() == "false"


def _readme_misses(readme: str, runs: list) -> list[str]:
    """What README.md lacks of `python -m benchmarks.history --readme`'s output for these runs."""
    shown, flat = _tables(readme), " ".join(readme.split())
    run = latest_full_run(runs)
    misses = [] if _tables(readme_step_table(run[2]))[0] in shown else ["the latest run's table"]
    misses += [f"this paragraph: {note}" for note in readme_run_notes(run[2], run_date(run))
               if " ".join(note.split()) not in flat]
    if _tables(readme_targets_table(runs))[0] not in shown:
        misses.append("the targets table")
    if f"latest full run ({run[2]['settings']['commit']}," not in flat:
        misses.append(f"'latest full run ({run[2]['settings']['commit']},' above the targets table")
    return misses


def test_the_readme_shows_the_newest_runs_tables_and_figures():
    """README.md's benchmark tables and the latest run's figures in words are what `python -m
    benchmarks.history --readme` prints, for the newest committed run or for an uncommitted one in
    the working tree (the README may be updated before or after the run is committed): a run
    committed without them, or a figure edited by hand, fails here."""
    readme = (ROOT / "README.md").read_text()
    if not _full_history():                                          # the file alone: its step table
        latest = json.loads((ROOT / "benchmarks/results/full.json").read_text())
        assert _tables(readme_step_table(latest))[0] in _tables(readme)
        pytest.skip("no whole git history here: the targets table counts every committed run")
    candidates = [committed_runs(), git_runs()]
    misses = [_readme_misses(readme, runs) for runs in candidates]
    assert not all(misses), ("README.md is behind benchmarks/results/full.json (`python -m benchmarks.history "
                             "--readme` prints what it should show); it lacks " + "; ".join(misses[0]))


def test_the_command_line_prints_the_readmes_tables(monkeypatch, capsys):
    from benchmarks import history
    memory = {("tiny", "numpy"): 9.0, ("tiny", "torch"): 10.0}
    run, new = _with_targets(1.1, memory=memory, commit="feed000"), _with_targets(1.3, memory=memory, commit="beef000")
    for r in run["step"] + new["step"]:
        r.update(median_s={"numpy": 0.02, "torch": 0.02, "compile": None}, gflops={"numpy": 30.0})
    monkeypatch.setattr(history, "git_runs", lambda root=ROOT: [("abc", "2026-12-05", run)])
    history.main(["--readme"])
    out = capsys.readouterr().out
    targets, step = _tables(out)
    assert targets[2][:3] == ["training step ≥ 1.2× torch eager", "tiny", "1.10× (1.10-1.10×, 0 of 1): missed"]
    assert [r[:2] for r in step[2:]] == [["tiny", "1"], ["tiny", "2"], ["small", "1"], ["small", "2"],
                                         ["medium", "1"], ["medium", "2"]]
    assert "(the newest run: feed000)" in out and "with the KV cache numpy_gpt made" not in out  # no figures: no words
    # a run made since (`make bench`) and not committed yet: the README's new figures are its own
    monkeypatch.setattr(history, "git_runs", lambda root=ROOT: [("working tree", "—", new), ("abc", "2026-12-05", run)])
    history.main(["--readme"])
    targets, step = _tables(out := capsys.readouterr().out)
    assert "(the newest run: beef000)" in out
    assert targets[2][2] == "**1.30×** (1.10-1.30×, 1 of 2)" and step[3][5].startswith("**1.30**")
    with pytest.raises(SystemExit):
        history.main(["--readme", "--targets"])
    monkeypatch.setattr(history, "git_runs", lambda root=ROOT: [("working tree", "—", _with_targets(5.0, quick=True))])
    with pytest.raises(SystemExit, match="no complete full run at 2 threads, neither in"):
        history.main(["--readme"])


def _notes_run(same_compile=True):
    """A run with the figures README's paragraphs give in words (two thread counts, shard processes at 2)."""
    res = _run(commit="feed000")
    res["machine"].update(cores_available=2, torch="2.13.0+cpu", torch_parallel_info="Intel(R) oneAPI Math Kernel "
                          "Library Version 2024.2", simd=["avx", "avx2", "fma"])
    res["machine"]["threadpools"][0]["version"] = "0.3.31.188.0"
    res["wall_time_s"] = 1599.4
    res["settings"]["generate_repeats"] = 21
    for p, times in zip(res["matmul_peak"], ([0.2] * 5, [0.1] * 5)):
        for lib in ("numpy", "torch"):
            p[lib].update(n=2048, times_s=times)
    for r, (procs, ratio) in zip([r for r in res["step"] if r["threads"] == 2],
                                 ((0.0179, 1.19), (0.2428, 0.99), (0.9772, 1.07))):
        r["median_s"] = {"numpy": 0.02, "torch": 0.02, "compile": 0.02, "procs": procs}
        r["procs"]["speedup_vs_torch"] = _med(ratio)
        r["foreign_load"] = 0.012
    res["memory"] = [{"config": c, "impl": i, "warm_delta_mb": mb} for (c, i), mb in {
        ("tiny", "procs"): 14.9, ("small", "procs"): 136.6, ("medium", "procs"): 559.0,
        ("tiny", "torch"): 15.8, ("small", "torch"): 148.0, ("medium", "torch"): 581.0}.items()]
    res["generate"] = [{"config": "small", "threads": t, "use_cache": cache, "prompt_len": 8, "new_tokens": 64,
                        "same_tokens": True, "same_tokens_compile": same_compile, "speedup": _med(ratio),
                        "tokens_per_s": {"numpy": ours, "torch": theirs, "compile": compiled}}
                       for t, cache, ratio, ours, theirs, compiled in (
                           (1, False, 1.06, 166, 156, 168), (2, False, 1.10, 191, 175, 205),
                           (1, True, 1.4252, 940.04, 666.8, 618.2), (2, True, 1.3176, 946.7, 679.1, 557.6))]
    return res


def test_the_latest_runs_figures_in_words():
    machine, pace, procs, generation = readme_run_notes(_notes_run(), "2026-12-06")
    assert machine == ("`make bench` at commit feed000 on 2026-12-06 (1599 s): 2 cores of a Some CPU, family 25, "
                       "model 1 (Zen 3), AVX2 without AVX-512; NumPy's OpenBLAS 0.3.31 ran its Haswell kernels, torch "
                       "2.13.0+cpu its MKL. The 2048³ float32 matmul, best of 5: 67.6 and 110.0 GFLOP/s at 1 and 2 "
                       "threads in NumPy, 40.4 and 68.0 in torch. Other processes took at most 1% of the CPU during "
                       "any measurement.")
    # the rounds' matmul medians 99, 105 and 84 against the fastest round, 121 (tests above)
    assert pace == ("The host ran tiny's 2-thread rounds at 81% and medium's 2-thread rounds at 69% of its pace "
                    "(their matmul against the run's fastest), the others at 86%.")
    assert procs == ("With shard processes (numpy_gpt's shards after the first in worker processes), in the same "
                     "rounds at 2 threads: tiny 17.9 ms a step (1.19× of eager, paired by round as above), small 243 "
                     "ms (0.99×), medium 977 ms (1.07×), and 15, 137 and 559 MB for all processes together (torch "
                     "eager: 16, 148 and 581).")
    assert generation == ("Generation (greedy, batch 1, 64 new tokens after a prompt of 8, small config, 21 "
                          "rounds): with the KV cache numpy_gpt made 940 tokens/s at 1 thread against torch eager's "
                          "667 and torch.compile's 618 (1.43× of eager, paired by round), and 947 against 679 and "
                          "558 at 2 threads (1.32×); without the cache, 1.06× and 1.10× of eager. All three "
                          "produce the same tokens.")
    res = _notes_run()
    res["matmul_peak"][1]["numpy"]["peak_gflops"] = 70.0                 # 1.04x its 1-thread 67.6
    res["step"][1]["round_matmul_gflops"] = {"numpy": {"max": 131.0}}
    assert readme_run_notes(res, "d")[0].endswith(
        "40.4 and 68.0 in torch. NumPy's 2-thread figure did not scale with its threads (1.04× its 1-thread one: the "
        "library ran fewer threads or the host held a core back while it was timed; up to 131 in the step rounds). "
        "Other processes took at most 1% of the CPU during any measurement.")
    del res["machine"]["cpu_model"]
    assert "2 cores of an unnamed CPU, family 25" in readme_run_notes(res, "d")[0]
    assert readme_run_notes(_notes_run(same_compile=False), "d")[-1].endswith(
        "numpy_gpt and torch eager produce the same tokens; torch.compile's differ.")
    res = _notes_run()
    for g in res["generate"]:
        g["tokens_per_s"]["compile"] = None                    # a run with --no-compile
    assert readme_run_notes(res, "d")[-1] == (
        "Generation (greedy, batch 1, 64 new tokens after a prompt of 8, small config, 21 rounds): with the KV "
        "cache numpy_gpt made 940 tokens/s at 1 thread against torch eager's 667 (1.43×, paired by round), and 947 "
        "tokens/s at 2 threads against torch eager's 679 (1.32×); without the cache, 1.06× and 1.10× of eager. "
        "numpy_gpt and torch eager produce the same tokens.")


def test_a_run_is_dated_as_it_recorded_else_by_the_commit_that_stored_it():
    assert run_date(("abc", "2026-12-05", {"settings": {"date": "2026-12-04"}})) == "2026-12-04"
    assert run_date(("abc", "2026-12-05", {"settings": {}})) == "2026-12-05"
    today = run_date(("working tree", "—", {}))
    assert len(today) == 10 and today.startswith("20") and today.count("-") == 2   # an uncommitted old run: today


def test_no_figure_is_rounded_onto_a_line_it_misses():
    # tiny's ratio 1.197 against 1.2: "1.20x" would read as met
    memory = {("tiny", "numpy"): 15.04, ("tiny", "torch"): 15.0}                  # 1.003x of torch's: a miss
    runs = [("new", "d", _with_targets(1.197, memory=memory)), ("old", "d", _with_targets(1.1, memory=memory))]
    run = runs[0][2]
    next(r for r in run["step"] if r["config"] == "medium" and r["threads"] == 2)["pct_round_peak"] = {
        "numpy": {"median": 69.6, "min": 60.0, "max": 75.0}}
    rows = _rows(readme_targets_table(runs, since={}))
    assert rows[0][2] == "1.19× (1.10-1.19×, 0 of 2): missed"
    assert ["model FLOPs ≥ 70% of the same rounds' matmul", "medium", "69% (69-72%, 1 of 2): missed in this run",
            ""] in rows
    assert rows[-1][2] == "1.01× (1.01-1.01×, 0 of 2): missed"                   # memory: rounded up, not to 1.00
    steady = _target_rows(steadiness_table(runs, since={}))
    assert steady[("training step >= 1.2x torch eager", "tiny", "threads")][:2] == ["1.19x, 1.10x", "1.10x - 1.19x"]
    for r in run["step"]:
        r.update(median_s={"numpy": 0.02, "torch": 0.02, "compile": None}, gflops={"numpy": 30.0})
    run["step"][1]["speedup_vs_torch"] = {"median": 1.197, "min": 0.9, "max": 10.5}
    run["step"][3]["speedup_vs_torch"] = {"median": 10.5, "min": 9.0, "max": 12.0}      # a median of 5 characters
    step = _rows(readme_step_table(run))
    assert step[1][5] == "1.19 [0.90-10.50]" and step[3][5] == "**10.50** [9.00-12.00]"
    assert step[1][8] == "15.0 / 15.0" and step[5][7] == "30 (69% [60-75])"      # a tie in whole MB shows tenths


@needs_git
def test_a_run_of_uncommitted_changes_counts_by_the_commit_it_started_from(tmp_path):
    repo = tmp_path / "repo"
    _repo_with_runs(repo)
    first, lean, last = subprocess.run(["git", "log", "--reverse", "--format=%h"], cwd=repo, check=True,
                                       capture_output=True, text=True).stdout.split()
    runs = [("a", "d", _with_targets(1.0, commit=f"{first} with uncommitted changes")),
            ("b", "d", _with_targets(1.0, commit=f"{last} with uncommitted changes"))]
    _, names, rows = target_runs(runs, root=repo, since={DECODE_TARGET: lean})
    assert names == [f"{first} with uncommitted changes", f"{last} with uncommitted changes"]
    assert next(values for target, *_, values, _, _ in rows if target == DECODE_TARGET) == [None, 1.35]
