"""How the benchmarks measure: samples, thread limits, the load check, the matmul peak and memory
(benchmarks/timing.py, machine.py, memory.py and numpy_gpt.parallel's /proc readings).

Speed is never asserted here. Clocks, /proc files and worker peaks are replaced by hand-made
ones, so every expected figure below is worked out by hand from the numbers fed in.
"""
from __future__ import annotations

import contextlib
import gc
import io
import math
import os
import statistics
import threading
import time
import types

import numpy as np
import pytest

threadpoolctl = pytest.importorskip("threadpoolctl")

from benchmarks import machine, memory, timing  # noqa: E402
from benchmarks.timing import ForeignLoad, Measurement, fmt_ratio, paired_ratio, summarize  # noqa: E402
from benchmarks.workloads import CONFIGS  # noqa: E402
from numpy_gpt import parallel  # noqa: E402


class FakeClock:
    """A perf_counter that moves only when told to: work done by a fake fn takes exactly the
    seconds it adds, and the timing code's own bookkeeping takes none."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def _blas_threads() -> int:
    """Threads of the first BLAS NumPy loaded, as threadpoolctl reports them."""
    return next(p["num_threads"] for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas")


def test_the_median_of_an_implementation_is_the_middle_sample_and_nan_when_it_has_none():
    # 1, 2, 9: the middle one is 2; the mean would be 4.
    m = Measurement(samples={"a": [1.0, 2.0, 9.0], "failed": []})
    assert m.median("a") == 2.0
    assert math.isnan(m.median("missing"))
    assert math.isnan(m.median("failed"))          # dropped after an error: an empty list


def test_summarize_gives_the_quartiles_as_the_interquartile_range():
    # statistics.quantiles with method="inclusive" interpolates between the sorted values as
    # np.percentile's default does: for 1..5 the quartiles are 2 and 4, for a skewed list
    # wherever it puts them.
    st = summarize([1, 2, 3, 4, 5])
    assert (st["q1"], st["median"], st["q3"]) == (2.0, 3.0, 4.0)
    assert (st["min"], st["max"], st["n"]) == (1.0, 5.0, 5)
    skewed = [1.0, 2.0, 4.0, 8.0, 16.0, 100.0]
    st = summarize(skewed)
    assert (st["q1"], st["median"], st["q3"]) == pytest.approx(statistics.quantiles(skewed, n=4, method="inclusive"))


def test_foreign_load_is_other_processes_cpu_as_a_share_of_all_cores(monkeypatch):
    # A snapshot is (busy CPU seconds of the whole machine, CPU seconds of this process and its
    # children, wall clock). Over 2 s of wall time the machine was busy 4 CPU seconds, 1 of them
    # ours: other processes used 3 CPU seconds out of 2 cores x 2 s = 4, a share of 0.75.
    # Not dividing by the cores would give 1.5; not taking out our own second, 4 / 4 = 1.0.
    snapshots = iter([(100.0, 10.0, 0.0), (104.0, 11.0, 2.0)])
    monkeypatch.setattr(ForeignLoad, "_snapshot", staticmethod(lambda: next(snapshots)))
    monkeypatch.setattr(timing.os, "cpu_count", lambda: 2)
    assert ForeignLoad().share() == pytest.approx(0.75)


def test_interleaved_samples_are_seconds_per_call_whatever_the_calls_per_sample(monkeypatch):
    # "a" takes 1 ms a call and "b" 3 ms, on a clock that moves only when they run. With
    # min_time 10 ms, calibration gives "a" about 10 calls per sample and "b" 4, so a sample that
    # kept the whole sample's time (not divided by its calls) would be ~10-12 ms for both.
    clock = FakeClock()
    monkeypatch.setattr(timing, "time", types.SimpleNamespace(perf_counter=clock, sleep=lambda s: None))
    monkeypatch.setattr(timing, "gc", types.SimpleNamespace(      # a full collection is slow with torch loaded
        collect=lambda: 0, disable=gc.disable, enable=gc.enable))
    fns = {"a": lambda: clock.advance(0.001), "b": lambda: clock.advance(0.003)}
    m = timing.interleaved(fns, repeats=3, warmup=1, min_time=0.01)
    assert m.number["a"] > m.number["b"] > 1                      # the test needs several, unequal counts
    assert m.samples["a"] == pytest.approx([0.001] * 3, rel=1e-6)
    assert m.samples["b"] == pytest.approx([0.003] * 3, rel=1e-6)
    assert paired_ratio(m, "b", "a")["median"] == pytest.approx(3.0, rel=1e-6)


def test_after_each_cooldown_the_implementation_runs_untimed_for_rewarm_seconds(monkeypatch):
    # "a" takes 4 ms a call on the fake clock, "b" 1 ms. With rewarm 9.5 ms, every sample is
    # preceded by the pause and then untimed calls until 9.5 ms have passed (a: 3 calls, 12 ms;
    # b: 10), and the sample's own calls are the only ones timed. The log is the order in which
    # things happened.
    clock, log = FakeClock(), []
    monkeypatch.setattr(timing, "time", types.SimpleNamespace(perf_counter=clock,
                                                              sleep=lambda s: log.append(("sleep", s))))
    monkeypatch.setattr(timing, "gc", types.SimpleNamespace(
        collect=lambda: 0, disable=lambda: log.append("timed"), enable=gc.enable))

    def fn(name, seconds):
        def call():
            log.append(name)
            clock.advance(seconds)
        return call
    fns = {"a": fn("a", 0.004), "b": fn("b", 0.001)}
    m = timing.interleaved(fns, repeats=2, warmup=0, min_time=0.002, cooldown=0.5, rewarm=0.0095)
    assert (m.number["a"], m.number["b"]) == (1, 2)               # calibration: one call each (untimed), then these
    samples = log[2:]                                           # after the two calibration calls
    pause = ("sleep", 0.5)
    # round 0 in the order a, b; round 1 rotated: b, a. Before each: the pause, then the rewarm.
    assert samples == [pause, "a", "a", "a", "timed", "a",
                       pause, *["b"] * 10, "timed", "b", "b",
                       pause, *["b"] * 10, "timed", "b", "b",
                       pause, "a", "a", "a", "timed", "a"]
    assert m.samples["a"] == pytest.approx([0.004, 0.004]) and m.samples["b"] == pytest.approx([0.001, 0.001])
    # No cooldown, no rewarm: the pause is what the calls are warmed up after.
    log.clear()
    timing.interleaved(fns, repeats=1, warmup=0, min_time=0.002, cooldown=0.0, rewarm=0.0095)
    assert log[2:] == ["timed", "a", "timed", "b", "b"]


def test_an_implementation_that_fails_while_rewarming_is_reported_and_dropped(monkeypatch):
    # "a" raises on its third call: the first calibrates, the second and third are the first
    # round's rewarm. It is dropped with its error, and "b" goes on to its two samples.
    clock = FakeClock()
    monkeypatch.setattr(timing, "time", types.SimpleNamespace(perf_counter=clock, sleep=lambda s: None))
    monkeypatch.setattr(timing, "gc", types.SimpleNamespace(collect=lambda: 0, disable=gc.disable, enable=gc.enable))
    calls = []

    def a():
        calls.append("a")
        if len(calls) == 3:
            raise RuntimeError("out of memory")
        clock.advance(0.004)
    m = timing.interleaved({"a": a, "b": lambda: clock.advance(0.004)}, repeats=2, warmup=0, min_time=0.002,
                           cooldown=0.5, rewarm=0.0095)
    assert m.errors["a"] == "RuntimeError: out of memory" and m.samples["a"] == []
    assert len(m.samples["b"]) == 2 and gc.isenabled()


def test_after_pause_gives_the_median_of_each_call_position_over_the_pauses(monkeypatch):
    # benchmarks.after_pause: the step's i-th call after each pause is timed, and the median over
    # the pauses is taken per position. Here a call takes 5 ms, but the first after a sleep 20 ms
    # and the second 8 ms, except after the second sleep (30 ms); the medians are 20, 8, 5.
    from benchmarks import after_pause
    clock, slept = FakeClock(), []
    monkeypatch.setattr(after_pause, "time", types.SimpleNamespace(
        perf_counter=clock, sleep=lambda s: (slept.append(s), state.update(since=0, n=state["n"] + 1))))
    state = {"since": 99, "n": 0}

    def step():
        extra = {0: 0.015 if state["n"] != 2 else 0.025, 1: 0.003}.get(state["since"], 0.0)
        clock.advance(0.005 + extra)
        state["since"] += 1
    ms = after_pause.call_times(step, "sleep", 0.15, calls=3, rounds=3)
    assert slept == [0.15] * 3
    assert ms == pytest.approx([0.020, 0.008, 0.005])
    assert after_pause.call_times(step, "none", 0.15, calls=2, rounds=2) == pytest.approx([0.005, 0.005])
    assert slept == [0.15] * 3                                  # no pause, no sleep


def test_steady_blocks_time_back_to_back_calls_after_an_untimed_run_in_in_rotated_order(monkeypatch):
    # benchmarks.after_pause --steady: "a" takes 5 ms a call, "b" 10 and "c" 4, but the first call after
    # each pause 50 ms (a waking thread); the run-in absorbs it, so each block reads 5 and 10 ms.
    from benchmarks import after_pause
    clock, slept, order = FakeClock(), [], []
    monkeypatch.setattr(after_pause, "time", types.SimpleNamespace(
        perf_counter=clock, sleep=lambda s: (slept.append(s), state.update(woke=True))))
    state = {"woke": False}

    def step(name, ms):
        def call():
            clock.advance(0.050 if state["woke"] else ms / 1e3)
            state["woke"] = False
            if not order or order[-1] != name:
                order.append(name)
        return call
    per_call = after_pause.steady_blocks({"a": step("a", 5), "b": step("b", 10), "c": step("c", 4)}, blocks=3,
                                         seconds=0.1, pause=0.15, run_in=0.06)
    assert per_call == {"a": pytest.approx([0.005] * 3), "b": pytest.approx([0.010] * 3),
                        "c": pytest.approx([0.004] * 3)}
    assert order == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]      # rotated block by block
    assert slept == [0.15] * 9 and gc.isenabled()
    after_pause.steady_blocks({"a": step("a", 5)}, blocks=2, seconds=0.1, pause=0.0, run_in=0.0)
    assert slept == [0.15] * 9                                         # 1 thread: no pause, as run.py


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads /proc")
def test_trainer_memory_counts_the_save_in_its_after_save_figure(monkeypatch, threads):
    # benchmarks.trainer_memory: a save that holds 64 MB must show in the figure after it and not
    # in the one before; the steps and evaluations run as the Trainer runs them.
    from benchmarks import trainer_memory
    from numpy_gpt import checkpoint
    saved = []

    def fat_save(path, model, trainer):
        ballast = np.ones(16 << 20, np.float32)                  # 64 MB, every page touched
        saved.append((os.path.exists(os.path.dirname(path)), trainer.step, len(trainer.history.eval)))
        del ballast
    monkeypatch.setattr(checkpoint, "save", fat_save)
    threads(1)
    # Earlier tests in this process (test_docs_code's, say) can leave 64 MB and more freed in the
    # heap, which malloc keeps (parallel.keep_freed_memory): the ballast would fit in resident
    # pages and raise no mark. They go back to the kernel first, as the tool's fresh process has none.
    from numpy_gpt.parallel import trim_freed_memory
    trim_freed_memory()
    r = trainer_memory.measure("tiny", steps=2, eval_interval=1, save=True, processes=False, threads=1)
    assert saved == [(True, 2, 2)]                                 # after the 2 steps and their 2 evaluations
    assert r["after_save_mb"] - r["after_steps_mb"] >= 60, r
    # 0 is a true reading here: after other tests (test_gpt2's, say) the heap holds freed memory
    # that a tiny run can fit in without touching a new page.
    assert 0 <= r["after_steps_mb"] < 60 and r["save_s"] > 0 and "workers_mb" not in r


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads /proc")
def test_load_memory_runs_every_way_and_counts_what_a_load_holds(tmp_path, monkeypatch, capsys):
    # benchmarks.load_memory: each way of loading runs on the files it writes (a tiny config here),
    # and a load that holds 64 MB shows in the child's figure.
    from benchmarks import load_memory
    from numpy_gpt import GPT, GPTConfig
    from numpy_gpt.gpt2 import save_gpt2
    files = load_memory.make_files(str(tmp_path), "tiny", gpt2=False)
    files["gpt2"] = save_gpt2(GPT(GPTConfig(vocab_size=23, block_size=16, n_layer=1, n_head=2, n_embd=16)),
                              str(tmp_path / "model.safetensors"))
    for way, (f, _) in load_memory.WAYS.items():
        load_memory._load(way, files[f])
    monkeypatch.setattr(load_memory, "_load", lambda way, path: np.ones(16 << 20, np.float32).sum())
    from numpy_gpt.parallel import trim_freed_memory
    trim_freed_memory()                      # as in the test above: no freed heap for the ballast to fit in
    load_memory.child("generate", files["checkpoint"])
    mb, s = capsys.readouterr().out.split()
    assert 60 <= float(mb) < 100 and float(s) > 0


def test_thread_limit_sets_every_pool_and_restores_each_after(threads):
    torch = pytest.importorskip("torch")
    threads(2)
    torch_before = torch.get_num_threads()
    torch.set_num_threads(2)                  # the tests' conftest holds torch at 1; 1 would prove nothing
    blas_before = _blas_threads()
    # threadpoolctl's OpenMP limit reaches torch's count on this thread only (OpenMP keeps it per
    # thread); torch's own setting, which every thread that starts torch work takes up, changes
    # only through torch.set_num_threads. So torch is asked on this thread and on a new one.
    def on_a_new_thread():
        seen = []
        t = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
        t.start()
        t.join()
        return seen[0]
    try:
        with timing.thread_limit(1):
            assert parallel.get_num_threads() == 1
            assert _blas_threads() == 1
            assert torch.get_num_threads() == 1
            assert on_a_new_thread() == 1
        assert parallel.get_num_threads() == 2
        assert torch.get_num_threads() == 2
        assert on_a_new_thread() == 2
        assert _blas_threads() == blas_before
    finally:
        torch.set_num_threads(torch_before)


def test_a_ratio_prints_as_median_then_min_to_max():
    assert fmt_ratio({"median": 1.0, "min": 0.5, "max": 2.0}) == "1.00 [0.50-2.00]"
    assert fmt_ratio(None) == "n/a"


@pytest.mark.parametrize("lib", ["numpy", "torch"])
def test_matmul_fn_counts_two_n_cubed_flops_and_multiplies_its_two_matrices(lib):
    if lib == "torch":
        pytest.importorskip("torch")
    n = 16
    fn, flops = machine.matmul_fn(n, np.float64, lib)
    assert flops == 2 * 16 * 16 * 16                  # a multiply and an add per term: 8192
    # The matrices the call multiplies are the ones it closed over; the product is checked
    # against NumPy's, in float64, from those.
    cells = dict(zip(fn.__code__.co_freevars, (c.cell_contents for c in fn.__closure__)))
    a, b = (np.asarray(cells[k]) for k in ("a", "b"))
    assert a.shape == b.shape == (n, n) and not np.array_equal(a, b)
    out = np.asarray(fn())
    np.testing.assert_allclose(out, a @ b, rtol=1e-12, atol=1e-12)


def test_the_matmul_peak_is_the_fastest_repeat_and_the_median_the_middle_one(monkeypatch):
    # 1 GFLOP in 0.5, 0.25 and 1.0 s: 2, 4 and 1 GFLOP/s; the best is 4, the median 2.
    clock = FakeClock()
    durations = iter([0.0, 0.5, 0.25, 1.0])          # the first call is the untimed warm-up

    monkeypatch.setattr(machine, "matmul_fn", lambda n, dtype, lib: (lambda: clock.advance(next(durations)), 1e9))
    monkeypatch.setattr(machine, "time", types.SimpleNamespace(perf_counter=clock, sleep=lambda s: None))
    monkeypatch.setattr(machine, "thread_limit", lambda n: contextlib.nullcontext())
    r = machine.matmul_gflops(64, np.float32, threads=1, repeats=3)
    assert r["times_s"] == pytest.approx([0.5, 0.25, 1.0])
    assert r["peak_gflops"] == pytest.approx(4.0)
    assert r["median_gflops"] == pytest.approx(2.0)


def test_status_fields_in_kb_are_read_as_mib(monkeypatch):
    # /proc/<pid>/status gives kB (KiB): 2048 kB is 2 MiB.
    opened = []

    def fake_open(path, *args, **kwargs):
        opened.append(path)
        return io.StringIO("Name:\tpython\nVmRSS:\t1024 kB\nVmHWM:\t2048 kB\n")
    monkeypatch.setattr(memory, "open", fake_open, raising=False)
    assert memory._status_mb("VmHWM") == 2.0
    assert memory._status_mb("VmRSS", "42") == 1.0
    assert opened == ["/proc/self/status", "/proc/42/status"]


def test_a_workers_peak_leaves_out_the_shared_parameter_and_gradient_blocks(monkeypatch):
    # tiny (V 65, T 64, C 64, 2 layers, biases, tied head), counted by hand as GPT-2 is:
    # wte V C + wpe T C + per layer (two norms 4 C, attention 3 C^2 + 3 C + C^2 + C,
    # MLP 4 C^2 + 4 C + 4 C^2 + C) + the final norm 2 C.
    w = CONFIGS["tiny"]
    V, T, C, L = 65, 64, 64, 2
    assert (w.vocab_size, w.block_size, w.n_embd, w.n_layer) == (V, T, C, L)
    n = V * C + T * C + L * (12 * C * C + 13 * C) + 2 * C
    assert n == 108_352
    # The worker maps the parameters and the gradients, 4 bytes each in float32; it started at
    # 100 MiB with no shared memory resident, and peaked at 150 MiB.
    shared = 2 * n * 4 / 2 ** 20
    monkeypatch.setattr(memory, "_status_mb",
                        lambda field, pid="self": 150.0 if (field, pid) == ("VmHWM", "42") else None)
    deltas, shared_mb, method = memory._worker_peaks({"42": (100.0, 0.0, 20.0, "m")}, w, np.dtype(np.float32))
    assert shared_mb == pytest.approx(shared, rel=1e-12)
    assert deltas == [pytest.approx(50.0 - shared, rel=1e-12)]
    assert method == "m"


def test_a_workers_peak_leaves_out_the_library_code_its_first_step_maps_in(monkeypatch):
    # The same worker, whose shared libraries' resident pages went from 20 to 20.75 MiB in its
    # steps: the libraries' code, which this process's warm-up has made resident here already.
    w = CONFIGS["tiny"]
    monkeypatch.setattr(memory, "_status_mb",
                        lambda field, pid="self": 150.0 if (field, pid) == ("VmHWM", "42") else None)
    monkeypatch.setattr(memory, "library_rss_mb", lambda pid="self": 20.75 if pid == "42" else None)
    deltas, shared_mb, _ = memory._worker_peaks({"42": (100.0, 0.0, 20.0, "m")}, w, np.dtype(np.float32))
    assert deltas == [pytest.approx(50.0 - shared_mb - 0.75, rel=1e-12)]


@pytest.mark.skipif(not os.path.exists("/proc/self/smaps"), reason="reads /proc")
def test_library_pages_leave_out_a_data_file_mapped_into_memory(tmp_path):
    # What _worker_peaks leaves out is the shared libraries' pages alone: 16 MiB of a data file
    # mapped and written (np.memmap) are file pages too (RssFile), but not a library's.
    before_lib, before_file = memory.library_rss_mb(), memory._status_mb("RssFile")
    data = np.memmap(tmp_path / "data.bin", dtype=np.float32, mode="w+", shape=(4 * 2 ** 20,))
    data[:] = 1.0
    assert memory._status_mb("RssFile") - before_file > 15.0
    assert memory.library_rss_mb() - before_lib < 1.0
    assert memory.library_rss_mb() > 1.0                   # NumPy's own libraries are mapped here
    del data


def test_machine_busy_seconds_leave_out_idle_iowait_and_the_guest_time_counted_already(monkeypatch):
    # /proc/stat's first line: user nice system idle iowait irq softirq steal guest guest_nice, in
    # ticks (100 a second here). Busy: 100 + 0 + 50 + 5 + 5 + 10 = 170 ticks, 1.7 s; idle (1000) and
    # iowait (30) are not busy, and guest time (7) is inside user time already.
    monkeypatch.setattr(parallel, "open", lambda path, *a, **k: io.StringIO("cpu  100 0 50 1000 30 5 5 10 7 0\n"
                                                                          "cpu0 50 0 25 500 15 2 2 5 3 0\n"),
                        raising=False)
    real_sysconf = os.sysconf
    monkeypatch.setattr(parallel.os, "sysconf", lambda name: 100 if name == "SC_CLK_TCK" else real_sysconf(name))
    assert parallel.machine_busy_seconds() == pytest.approx(1.7)


def test_the_pool_grows_when_the_thread_count_does(threads):
    # Three blocks whose kernel waits until all three are running: at 3 threads they must run
    # on 3 threads at once. A pool made for 2 threads (one worker beside the caller) and kept
    # would run only two of them at a time, and the barrier would time out.
    threads(2)
    parallel.for_blocks(lambda i: None, [(0,), (1,)])             # the pool starts, sized for 2
    threads(3)
    barrier = threading.Barrier(3, timeout=5)
    seen = set()

    def kernel(i):
        barrier.wait()
        seen.add(threading.get_ident())
    parallel.for_blocks(kernel, [(0,), (1,), (2,)])
    assert len(seen) == 3


def test_trace_peak_gives_the_step_s_peak_and_the_function_that_reached_it():
    # benchmarks.trace_peak: an 8 MiB array made inside `widest` is the peak of this "step",
    # above the 1 MiB one made before it and freed; the stack (innermost first, NumPy's own
    # Python functions among them) passes through `widest`, then `step`.
    from benchmarks.trace_peak import trace

    def widest():
        a = np.ones(2 ** 20)                           # 8 MiB of float64
        return float(a[0])

    def step():
        first = np.ones(2 ** 17)                       # 1 MiB, let go before widest runs
        del first
        widest()
    peak, stack = trace(step)
    assert 8.0 <= peak < 8.5
    names = [line.rsplit(" ", 1)[-1] for line in stack]
    assert "widest" in names and names.index("widest") < names.index("step")


def test_inference_memory_sees_what_an_evaluation_without_grad_lets_go():
    from tests import ROOT
    # benchmarks.inference_memory, each way in a fresh process: at the small config an evaluation
    # that keeps its cache peaked 78 MB above the model, 31 with grad=False (2026-12-05).
    import re
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-m", "benchmarks.inference_memory", "--config", "small", "--repeats", "1"],
                         capture_output=True, text=True, check=True, cwd=ROOT).stdout
    peak = {m[0]: float(m[1]) for m in re.findall(r"^(.+?)\s+peak (\d+)-\d+ MB above the model", out, re.M)}
    assert set(peak) == {"eval, grad=True", "eval, grad=False", "prefill, all logits", "prefill, last_only"}, out
    assert peak["eval, grad=False"] < 0.6 * peak["eval, grad=True"], out


def test_numpy_gpts_memory_measurement_keeps_torch_out_of_its_process():
    # thread_limit once imported torch to limit its threads; in benchmarks.memory's numpy_gpt
    # processes that put torch's import (~190 MB) into the figures above the imports.
    import subprocess
    import sys
    from tests import ROOT
    code = ("import sys; from benchmarks.memory import measure; m = measure('numpy', 'tiny', steps=1, threads=1); "
            "print('torch' in sys.modules, round(m['delta_mb']))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    imported, delta = out.split()
    assert imported == "False" and int(delta) < 100, out


def test_decode_parts_times_one_and_the_same_step_on_each_side_and_every_weight_product():
    pytest.importorskip("torch")
    from benchmarks.decode_parts import decode_fns
    fns, megabytes, n = decode_fns("tiny", 5)
    first, again = fns["numpy step"](), fns["numpy step"]()
    assert np.array_equal(first, again)             # the caches are set back: every call does the same work
    np.testing.assert_allclose(fns["torch step"]().numpy(), first, rtol=1e-4, atol=1e-5)   # same weights, same cache
    w = CONFIGS["tiny"]
    assert n == 4 * w.n_layer + 1                   # four weights per block and the head
    from numpy_gpt.model import param_shapes
    weights = sum(int(np.prod(s)) for k, s in param_shapes(w.config()).items() if len(s) == 2 and k != "wpe.weight")
    assert megabytes == 4 * weights / 1e6           # float32, wpe not multiplied
    fns["numpy products"](), fns["torch products"]()
    with pytest.raises(ValueError, match="--filled must be in \\[0, 64\\) for tiny, got 64"):
        decode_fns("tiny", 64)
    fns, _, _ = decode_fns("tiny", 5, batch=3)      # three rows, three different tokens
    got = fns["numpy step"]()
    assert got.shape == (3, w.vocab_size) and not np.array_equal(got[0], got[1])
    np.testing.assert_allclose(fns["torch step"]().numpy(), got, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="--batch must be at least 1, got 0"):
        decode_fns("tiny", 5, batch=0)


@pytest.mark.parametrize("threads", [1, 2])
def test_compare_steady_alternates_the_two_ways_and_prints_each_ones_paired_ratios(monkeypatch, capsys, threads):
    # benchmarks.after_pause --steady: pairs of measurements, steady blocks first in even pairs
    # and the suite's protocol first in odd ones; each line gives each implementation's median and
    # torch's time over the others', paired round by round. At 1 thread no pause and no
    # shard processes, as run.py. The figures fed in: torch 12 ms in every round, numpy 10, 8
    # and 12 (ratios 1.2, 1.5, 1.0: median 1.2), shard processes 6 (2.0).
    from benchmarks import after_pause
    from benchmarks.workloads import PROCS
    calls = {}

    @contextlib.contextmanager
    def fake_steps(config, impls):
        assert config == "small"
        yield {i: (lambda i=i: calls.__setitem__(i, calls.get(i, 0) + 1)) for i in impls}
    samples = {"numpy": [0.010, 0.008, 0.012], "torch": [0.012] * 3, PROCS: [0.006] * 3}
    seen = []

    def fake_blocks(steps, blocks, seconds, pause):
        seen.append(("steady", tuple(steps), blocks, seconds, pause))
        return {i: samples[i] for i in steps}

    def fake_interleaved(steps, repeats, warmup, min_time, cooldown, rewarm):
        seen.append(("suite", tuple(steps), repeats, min_time, cooldown))
        return Measurement(samples={i: samples[i] for i in steps}, foreign_load=0.02)

    class FakeLoad:
        def share(self):
            return 0.01
    monkeypatch.setattr(after_pause, "_steps", fake_steps)
    monkeypatch.setattr(after_pause, "thread_limit", lambda n: contextlib.nullcontext())
    monkeypatch.setattr(after_pause, "steady_blocks", fake_blocks)
    monkeypatch.setattr(after_pause, "interleaved", fake_interleaved)
    monkeypatch.setattr(after_pause, "ForeignLoad", FakeLoad)
    after_pause.compare_steady("small", threads, pairs=2, block=3.0, pause=0.15, repeats=3)
    impls = ("numpy", "torch") + ((PROCS,) if threads > 1 else ())
    pause = 0.15 if threads > 1 else 0.0
    assert calls == dict.fromkeys(impls, 2)                      # two warm-up calls each
    assert seen == [("steady", impls, 3, 3.0, pause), ("suite", impls, 3, 0.25, pause),
                    ("suite", impls, 3, 0.25, pause), ("steady", impls, 3, 3.0, pause)]
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["steady", "suite", "suite", "steady"]
    want = "numpy 10.00 ms torch 12.00 ms" + (f" {PROCS} 6.00 ms" if threads > 1 else "") + \
        " | eager/numpy 1.200 [1.000-1.500]" + (f" | eager/{PROCS} 2.000 [2.000-2.000]" if threads > 1 else "")
    assert lines[0] == f"steady {want} | other load 1%"
    assert lines[1] == f"suite  {want} | other load 2%"


def test_decode_parts_loads_an_earlier_decoding_step_beside_todays_and_names_a_missing_revision():
    # --against REV: numpy_gpt as committed at c65a2bc (before the layer norm was written out for
    # rows), the whole package, its decode.py on its own modules; both steps equal the model's
    # forward bit for bit, so their logits are equal too.
    import subprocess
    pytest.importorskip("torch")
    from benchmarks import decode_parts
    from tests import ROOT
    if subprocess.run(["git", "cat-file", "-e", "c65a2bc^{commit}"], cwd=ROOT, capture_output=True).returncode:
        pytest.skip("no git history with c65a2bc here")
    from numpy_gpt import GPT
    from numpy_gpt.decode import DecodeStep
    import sys

    import numpy_gpt.attention
    path = list(sys.path)
    then = decode_parts.decode_step_at("c65a2bc")
    name = "numpy_gpt_at_c65a2bc8a15c"                                         # the commit's 12 digits
    assert then is not DecodeStep and then.__module__ == f"{name}.decode"
    old = sys.modules[f"{name}.decode"]
    assert old._softmax_rows is not numpy_gpt.attention._softmax_rows          # its own attention.py
    assert old._softmax_rows.__module__ == f"{name}.attention"
    copies = len(decode_parts._COPIES)
    assert decode_parts.decode_step_at("c65a2bc8a15c16cdf811c1ac526d8cb9ac2114bb") is then   # the same commit:
    assert len(decode_parts._COPIES) == copies and sys.path == path            # loaded once, sys.path as it was
    model = GPT(CONFIGS["tiny"].config(), seed=0)
    logits = []
    for cls in (then, DecodeStep):
        caches, step = model.new_kv_caches(2), cls(model)
        logits.append([step(np.array([3, 5]), caches, pos) for pos in range(4)])
    assert all(np.array_equal(a, b) for a, b in zip(*logits))
    per_step = decode_parts.compare_revision("tiny", "c65a2bc", rounds=2, positions=5)
    assert sorted(per_step) == ["now", "then", "torch"] and all(len(v) == 2 and min(v) > 0 for v in per_step.values())
    with pytest.raises(SystemExit, match="'no-such-rev' is not a commit of this repository"):
        decode_parts.decode_step_at("no-such-rev")
    with pytest.raises(SystemExit, match="numpy_gpt at '82809c3~1' has no decode.py"):   # before the fast step
        decode_parts.decode_step_at("82809c3~1")
    with pytest.raises(SystemExit, match="'--output=x' is not a git revision"):    # not passed to git
        decode_parts.decode_step_at("--output=x")
    with pytest.raises(ValueError, match="--rounds must be at least 1, got 0"):
        decode_parts.compare_revision("tiny", "c65a2bc", rounds=0)


def test_split_decode_cuts_a_step_across_two_processes_into_the_same_function(monkeypatch, capsys):
    # benchmarks.split_decode, the experiment of docs/decoding.md: the two-process step's logits
    # equal the one-process step's up to the rounding of sums cut in two (float64: ~1e-16 of the
    # largest logit; a half left out, or added twice, is off by far more), and it times both.
    from benchmarks import split_decode
    why = split_decode.can_run()
    if why:
        pytest.skip(why)
    r = split_decode.compare("tiny", steps=5, rounds=2, dtype=np.float64)
    assert r["max_diff"] < 1e-12
    assert len(r["one"]) == len(r["two"]) == 2 and min(r["one"] + r["two"]) > 0
    from numpy_gpt.decode import DecodeStep
    with split_decode.TwoProcessStep("tiny", np.float32, jitter=0.05) as two:   # non-zero biases as well
        assert all(np.abs(p).max() > 0 for p in two.model.params.values())
        one, caches = DecodeStep(two.model), two.model.new_kv_caches(1)
        for pos, token in enumerate([3, 3, 7]):                           # repeated ids too
            np.testing.assert_allclose(two(token, pos), one(np.array([token]), caches, pos), rtol=1e-5, atol=1e-6)
        two.park()                                                        # blocked on its pipe, not spinning
        state = lambda: open(f"/proc/{two.proc.pid}/stat").read().rsplit(")", 1)[1].split()[0]
        deadline = time.monotonic() + 5
        while state() != "S" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert state() == "S"
        got = two(5, 0)                                                   # woken; a new run, from position 0
        np.testing.assert_allclose(got, one(np.array([5]), two.model.new_kv_caches(1), 0), rtol=1e-5, atol=1e-6)
        with pytest.raises(ValueError, match="position 2: this run's next is 1"):
            two(5, 2)
        with pytest.raises(ValueError, match=r"token 65 is outside \[0, 65\)"):
            two(65, 1)
        two.park()
    assert two.proc.poll() == 0                                           # the worker left when asked, parked
    with split_decode.TwoProcessStep("tiny", np.float32) as two:
        two(1, 0)
    assert two.proc.poll() == 0                                           # and spinning
    split_decode.main(["--config", "tiny", "--steps", "3", "--rounds", "2"])
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "tiny, batch 1, float32, runs of 3 steps from an empty cache, 2 rounds, 1 BLAS thread per process"
    assert out[1].startswith("one process: ") and out[2].startswith("two processes: ")
    assert out[3].startswith("one / two, paired run by run: median ") and out[4].startswith("logits: largest difference ")
    with pytest.raises(ValueError, match="--steps and --rounds must be at least 1, got 0 and 2"):
        split_decode.compare("tiny", steps=0, rounds=2)
    # the one-process step always runs with the worker parked (a spinning worker takes a core)
    events, TwoProcessStep = [], split_decode.TwoProcessStep

    class Spy(DecodeStep):
        def __call__(self, *args):
            events.append("one")
            return super().__call__(*args)
    park, call = TwoProcessStep.park, TwoProcessStep.__call__
    monkeypatch.setattr(TwoProcessStep, "park", lambda self: (events.append("park"), park(self))[1])
    monkeypatch.setattr(TwoProcessStep, "__call__", lambda self, *a: (events.append("two"), call(self, *a))[1])
    monkeypatch.setattr(split_decode, "DecodeStep", Spy)
    r = split_decode.compare("tiny", steps=100, rounds=3)
    assert r["steps"] == 64 and events.count("one") == events.count("two") == 4 * 64   # capped at block_size
    parked = False
    for e in events:
        assert e != "one" or parked
        parked = e == "park" or (parked and e == "one")
    monkeypatch.setattr(split_decode.platform, "machine", lambda: "aarch64")
    assert split_decode.can_run() == "needs x86-64 (spinning on shared memory relies on its store order), not aarch64"
    with pytest.raises(SystemExit, match="split_decode needs x86-64"):
        split_decode.compare("tiny", steps=1, rounds=1)
