"""The README's demo (numpy_gpt.demo.run): what it passes on, prints and returns.

One short run (10 steps, a 5-character sample) at seed 3 serves most tests here. torch_gpt's half
is replaced by a stand-in that records what it is given and answers with markers no model would
produce, so a result or a line that shows numpy's answers in torch's place is seen. The load check
(which sleeps) and the loss plot are left out of that run; the load check has a test of its own.
"""
import contextlib
import copy
import inspect
import io
import types

import numpy as np
import pytest

from numpy_gpt import demo
from numpy_gpt.model import GPT
from numpy_gpt.seeds import SEEDS
from numpy_gpt.train import History

SEED = 3
STEPS = 10


def torch_marker(name, prompt):
    return f"TORCH-MARKER {name} {prompt}"


class FakeTorchBackend:
    """Stands in for torch_gpt.demo: records its calls, answers with markers."""

    def __init__(self):
        self.seed_calls, self.init_params = [], []

    def seed_answers(self, name, seed=0):
        self.seed_calls.append((name, seed))
        return {p: torch_marker(name, p) for p in SEEDS[name]["prompts"]}

    def num_threads(self):
        return 1

    def train_char(self, cfg, init_params, train, val, tcfg):
        # A copy: the numpy model trains in place, and the demo could hand over its live arrays.
        self.init_params.append({k: np.array(v, copy=True) for k, v in init_params.items()})
        h = History()
        h.loss, h.eval, h.tokens_per_s = [9.0], [dict(step=1, val_loss=9.0, val_ppl=8103.08)], 1.0
        return h


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    backend = FakeTorchBackend()
    seed_calls, rng_draws = [], []
    real_train_seed, real_generate = demo.train_seed, GPT.generate

    def spy_train_seed(*args, **kwargs):
        bound = inspect.signature(real_train_seed).bind(*args, **kwargs)
        bound.apply_defaults()
        seed_calls.append((bound.arguments["name"], bound.arguments["seed"]))
        return real_train_seed(*args, **kwargs)

    def spy_generate(self, idx, max_new_tokens, **kwargs):
        if kwargs.get("rng") is not None:       # the sample; the seeds' greedy answers take no rng
            rng_draws.append(copy.deepcopy(kwargs["rng"]).random())
        return real_generate(self, idx, max_new_tokens, **kwargs)

    _, _, _, cfg, _ = demo.char_setup(steps=STEPS)
    initial = GPT(cfg, seed=SEED, dtype=np.float32).params
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(demo, "torch_backend", lambda: backend)
        mp.setattr(demo, "train_seed", spy_train_seed)
        mp.setattr(GPT, "generate", spy_generate)
        mp.setattr(demo, "other_load", lambda seconds=0.3: None)
        mp.setattr(demo, "plot_losses", lambda *a, **k: None)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            result = demo.run(out_dir=str(tmp_path_factory.mktemp("demo")), steps=STEPS, sample_chars=5,
                              seed=SEED, processes=False)
    return types.SimpleNamespace(result=result, out=out.getvalue(), backend=backend, seed_calls=seed_calls,
                                 rng_draws=rng_draws, initial=initial)


def test_the_seed_problems_are_trained_at_the_demo_s_seed(demo_run):
    assert sorted(demo_run.seed_calls) == sorted((name, SEED) for name in SEEDS)
    assert sorted(demo_run.backend.seed_calls) == sorted((name, SEED) for name in SEEDS)


def test_the_result_keeps_torch_s_seed_answers_in_torch_s_place(demo_run):
    for name in SEEDS:
        answers, t_answers = demo_run.result["seeds"][name]
        assert t_answers == {p: torch_marker(name, p) for p in SEEDS[name]["prompts"]}
        assert set(answers.values()) == {SEEDS[name]["answer"]}


def test_the_printout_shows_torch_s_answer_after_torch_arrow(demo_run):
    lines = [line for line in demo_run.out.splitlines() if "numpy ->" in line]
    assert len(lines) == sum(len(s["prompts"]) for s in SEEDS.values())
    for name in SEEDS:
        for p in SEEDS[name]["prompts"]:
            line = next(line for line in lines if line.lstrip().startswith(repr(p)))
            numpy_part, torch_part = line.split("torch ->")
            assert torch_part.strip() == repr(torch_marker(name, p))
            assert numpy_part.split("numpy ->")[1].strip() == repr(SEEDS[name]["answer"])


def test_torch_starts_the_char_model_from_numpy_s_initial_weights_at_the_demo_s_seed(demo_run):
    # The weights a fresh float32 GPT draws at the demo's seed, taken before any training.
    (given,) = demo_run.backend.init_params
    assert given.keys() == demo_run.initial.keys()
    for k, v in demo_run.initial.items():
        assert given[k].dtype == np.float32, k
        assert np.array_equal(given[k], v), f"{k}: not the float32 initial weights of seed {SEED}"


def test_the_summary_prints_the_last_evaluation(demo_run):
    evals = demo_run.result["histories"]["numpy"].eval
    assert len(evals) == 5                                # every STEPS // 5 steps
    last, first = evals[-1]["val_loss"], evals[0]["val_loss"]
    assert f"{last:.3f}" != f"{first:.3f}"                # else the test could not tell them apart
    summary = [line for line in demo_run.out.splitlines() if line.lstrip().startswith("numpy:")]
    assert len(summary) == 1 and f"val loss {last:.3f} " in summary[0]
    assert f"perplexity {evals[-1]['val_ppl']:.2f} " in summary[0]


def test_the_sample_is_drawn_from_an_rng_seeded_with_the_demo_s_seed(demo_run):
    assert demo_run.rng_draws == [np.random.default_rng(SEED).random()]
    assert demo_run.rng_draws != [np.random.default_rng(0).random()]


class FakeClock:
    """time for demo.other_load: sleep moves the clock on by exactly the time asked."""

    def __init__(self):
        self.now = 100.0

    def perf_counter(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


@pytest.mark.parametrize("busy_seconds, share", [(1.2, 0.6), (0.4, 0.2)])
def test_other_load_is_a_share_of_all_cores(monkeypatch, busy_seconds, share):
    # Over 0.5 s on 4 cores the machine has 2 core-seconds; other processes busy for 1.2 of
    # them use 60 %, for 0.4 of them 20 %, below the 25 % from which the demo prints a note.
    readings = iter([1000.0, 1000.0 + busy_seconds])
    monkeypatch.setattr("numpy_gpt.parallel.machine_busy_seconds", lambda: next(readings))
    monkeypatch.setattr(demo.os, "cpu_count", lambda: 4)
    monkeypatch.setattr(demo, "time", FakeClock())
    got = demo.other_load(0.5)
    assert got == pytest.approx(share, rel=1e-12)
    note = demo.busy_note(got)
    if share < 0.25:
        assert note is None
    else:
        assert note is not None and "60%" in note
