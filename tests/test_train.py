"""Training trajectories: numpy_gpt's loop against torch_gpt's (autograd + torch.optim),
from the same weights on the same batches, step for step."""
import dataclasses
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

import torch_gpt
from numpy_gpt import GPT, GPTConfig, ConfigError
from numpy_gpt.data import get_batch
from numpy_gpt.train import Trainer, TrainConfig, TrainingDivergedError
from tests.model_strategies import configs, randomized
from tests.parity import assert_close
from tests.tolerances import LR_SCHEDULE, MODEL_PARITY, TRAJECTORY
from torch_gpt.train import Trainer as TorchTrainer

# A learnable stream: a fixed cycle of the 11 ids with 10% of positions replaced by noise.
_r = np.random.default_rng(0)
DATA = np.where(_r.random(500) < 0.1, _r.integers(0, 11, 500), np.arange(500) * 3 % 11)


def run_both(cfg: GPTConfig, tcfg: TrainConfig, seed=0, data=DATA, val=DATA[:200], model=None):
    model = model or GPT(cfg, seed=seed, dtype=np.float64)
    tmodel = torch_gpt.GPT(cfg).double()
    tmodel.load_state_dict(torch_gpt.from_numpy(model.params))
    trainer, ttrainer = Trainer(model, data, val, tcfg), TorchTrainer(tmodel, data, val, tcfg)
    return model, tmodel, trainer.run(progress=False), ttrainer.run(progress=False), (trainer, ttrainer)


def check_trajectory(name, model, tmodel, h, th, tol, trainers=None):
    """Step by step: learning rates, losses, gradient norms, each layer's gradient norm; at the
    end, every parameter and, given the two trainers, every optimizer buffer (m and v, momentum)."""
    np.testing.assert_allclose(h.lr, th.lr, rtol=LR_SCHEDULE)
    assert_close(name, "losses", np.array(h.loss), np.array(th.loss), tol)
    assert_close(name, "grad norms", np.array(h.grad_norm), np.array(th.grad_norm), tol)
    assert [list(n) for n in h.layer_grad_norms] == [list(n) for n in th.layer_grad_norms]
    for layer in h.layer_grad_norms[0]:
        assert_close(name, f"grad norms of {layer}", np.array([n[layer] for n in h.layer_grad_norms]),
                     np.array([n[layer] for n in th.layer_grad_norms]), tol)
    final = torch_gpt.to_numpy(tmodel.state_dict())
    for k, v in model.params.items():
        assert_close(name, "final params", v, final[k], tol)
    if trainers is not None:
        ours, theirs = trainers[0].optimizer, trainers[1].optimizer
        t_params = dict(tmodel.named_parameters())
        for buf in ours.buffers:
            for k in model.params:
                t_state = theirs.state[t_params[k]]
                assert_close(name, f"final {buf}", getattr(ours, buf)[k], t_state[buf].detach().numpy(), tol)
    assert [e.get("val_loss") for e in h.eval] == pytest.approx([e.get("val_loss") for e in th.eval], rel=tol)


GPT2ISH = GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=8, pos_encoding="learned",
                    norm="pre", tie_weights=True)


def test_adamw_50_steps_with_clipping_schedule_and_decay_groups():
    # Clip at 0.5 so most steps are clipped; warmup 10 then cosine over 50; decay 0.1 on matrices only.
    tcfg = TrainConfig(steps=50, batch_size=4, optimizer="adamw", lr=1e-2, min_lr=1e-3, warmup_steps=10,
                       weight_decay=0.1, grad_clip=0.5, eval_interval=10, eval_batches=2)
    model, tmodel, h, th, trainers = run_both(GPT2ISH, tcfg)
    assert sum(n > 0.5 for n in h.grad_norm) > 10, "the test should exercise clipping"
    assert h.loss[-1] < h.loss[0] - 0.3, "and actually train"
    for n, layers in zip(h.grad_norm, h.layer_grad_norms):   # clipping used the norm the layers' add up to,
        assert n == math.sqrt(sum(v * v for v in layers.values()))   # to the bit (its own differs in the last bits)
    check_trajectory("train[adamw]", model, tmodel, h, th, TRAJECTORY, trainers)


@pytest.mark.parametrize("clip", [1e-3, 0.0], ids=["clipped", "unclipped"])
def test_a_float32_run_records_the_float64_norm_its_layers_add_up_to(clip):
    model = GPT(GPT2ISH, seed=0, dtype=np.float32)
    h = Trainer(model, DATA, None, TrainConfig(steps=3, batch_size=4, grad_clip=clip, eval_interval=0)).run(
        progress=False)
    for n, layers in zip(h.grad_norm, h.layer_grad_norms):
        assert n == math.sqrt(sum(v * v for v in layers.values())) != float(np.float32(n))


def test_an_evaluation_lets_go_of_its_forwards_cache_at_once():
    # No backward follows an evaluation; its cache (a whole batch's activations) would otherwise
    # stay until the next training forward, through a checkpoint save at the same step.
    model = GPT(GPT2ISH, seed=0)
    trainer = Trainer(model, DATA, DATA[:100], TrainConfig(steps=2, batch_size=4, eval_interval=2, eval_batches=1))
    trainer.run(progress=False)
    assert len(trainer.history.eval) >= 1 and model._cache is None


@pytest.mark.parametrize("clip", [1.0, 0.0], ids=["clipped", "unclipped"])
@pytest.mark.parametrize("norm,said", [(1e39, "inf"), (float("nan"), "nan")], ids=["past-float32", "nan"])
def test_a_gradient_norm_float32_cannot_hold_stops_a_float32_run(monkeypatch, clip, norm, said):
    # The layers' float64 norm can be finite where float32's is not: clipping could not scale by
    # it, and AdamW's squares would overflow. The step stops, as with a norm taken in float32
    # (torch's), with or without clipping; a NaN norm is reported as NaN.
    from numpy_gpt import train as train_module
    model = GPT(GPT2ISH, seed=0, dtype=np.float32)
    monkeypatch.setattr(train_module, "layer_grad_norms", lambda grads: {"all": norm})
    before = {k: v.copy() for k, v in model.params.items()}
    with pytest.raises(TrainingDivergedError, match=f"gradient norm {said};"):
        Trainer(model, DATA, None, TrainConfig(steps=1, batch_size=4, grad_clip=clip, eval_interval=0)).run(
            progress=False)
    assert all(np.array_equal(model.params[k], v) for k, v in before.items())


def test_adamw_50_steps_in_float32_are_as_close_to_the_truth_as_torchs():
    # float32 on both sides, with torch in float64 from the same float32 start as the truth: over 50
    # steps the two float32 runs drift apart by rounding, so each of numpy_gpt's losses and final
    # parameters must be within MODEL_PARITY of torch float32's, or as close to the truth (tests.parity).
    tcfg = TrainConfig(steps=50, batch_size=4, optimizer="adamw", lr=1e-2, min_lr=1e-3, warmup_steps=10,
                       weight_decay=0.1, grad_clip=0.5, eval_interval=0)
    model = GPT(GPT2ISH, seed=0, dtype=np.float32)
    t32, t64 = torch_gpt.GPT(GPT2ISH), torch_gpt.GPT(GPT2ISH).double()
    for t in (t32, t64):
        t.load_state_dict(torch_gpt.from_numpy(model.params))
    h = Trainer(model, DATA, None, tcfg).run(progress=False)
    th32, th64 = (TorchTrainer(t, DATA, None, tcfg).run(progress=False) for t in (t32, t64))
    assert h.loss[-1] < h.loss[0] - 0.3
    tol = MODEL_PARITY[np.dtype(np.float32)]
    assert_close("train[adamw]", "losses", np.array(h.loss, np.float32), np.array(th32.loss, np.float32), tol,
                 truth=np.array(th64.loss))
    final32, final64 = (torch_gpt.to_numpy(t.state_dict()) for t in (t32, t64))
    for k, v in model.params.items():
        assert v.dtype == np.float32
        assert_close("train[adamw]", "final params", v, final32[k], tol, truth=final64[k])


# Adam runs without its L2 decay here. The key bias of attention has a gradient of exactly 0
# (softmax ignores a shift shared by all keys), so with g = wd * p alone and |g| << eps, Adam's
# step is p -= lr/(1-b1^t) * (1-b1) * wd * p / eps: a factor of about -1000 per step at these
# settings. Rounding noise of 1e-22 then grows to 1e-3 in five steps, in torch as in numpy, and
# the two chaotic trajectories part. L2 decay in Adam is checked step by step in test_optim.py.
@pytest.mark.parametrize("optimizer, extra", [("sgd", dict(momentum=0.9, lr=0.3, weight_decay=0.01)),
                                              ("adam", dict(lr=1e-2, weight_decay=0.0))])
def test_sgd_and_adam_50_steps(optimizer, extra):
    tcfg = TrainConfig(steps=50, batch_size=4, optimizer=optimizer, warmup_steps=5,
                       grad_clip=1.0, eval_interval=25, **{"min_lr": 1e-4, **extra})
    model, tmodel, h, th, trainers = run_both(GPT2ISH, tcfg)
    assert h.loss[-1] < h.loss[0]
    check_trajectory(f"train[{optimizer}]", model, tmodel, h, th, TRAJECTORY, trainers)


@settings(max_examples=10)
@given(cfg=configs(), optimizer=st.sampled_from(["sgd", "adam", "adamw"]), seed=st.integers(0, 1000))
def test_short_trajectories_match_on_drawn_configs(cfg, optimizer, seed):
    # Drawn configs (post-LN, no norm, relu, no bias, untied head...) from random weights, not
    # GPT-2's init (its zero biases and unit norm weights would hide bugs that multiply by them),
    # compared as the long runs are: every step's losses and norms, every final parameter and buffer.
    # Adam without its L2 decay, for the reason given above test_sgd_and_adam_50_steps.
    tcfg = TrainConfig(steps=8, batch_size=2, optimizer=optimizer, lr=1e-2, warmup_steps=2, grad_clip=1.0,
                       eval_interval=0, **({"weight_decay": 0.0} if optimizer == "adam" else {}))
    data = np.random.default_rng(1).integers(0, cfg.vocab_size, 100)
    model, tmodel, h, th, trainers = run_both(cfg, tcfg, data=data, val=None,
                                              model=randomized(cfg, seed, np.float64))
    check_trajectory("train[drawn]", model, tmodel, h, th, TRAJECTORY, trainers)


def test_nan_stops_training_naming_the_step_and_keeps_the_parameters():
    model = GPT(GPT2ISH, dtype=np.float64)
    trainer = Trainer(model, DATA, None, TrainConfig(steps=5, batch_size=2, eval_interval=0))
    trainer.run(steps=2, progress=False)
    good = {k: v.copy() for k, v in model.params.items()}
    model.params["h.0.attn.c_attn.weight"][0, 0] = np.nan
    with pytest.raises(TrainingDivergedError, match="step 2"):
        trainer.run(progress=False)
    good["h.0.attn.c_attn.weight"][0, 0] = np.nan
    assert all(np.array_equal(v, good[k], equal_nan=True) for k, v in model.params.items())


@pytest.mark.parametrize("grad_clip", [0.0, 1.0])
def test_an_inf_gradient_with_a_finite_loss_stops_training_too(monkeypatch, grad_clip):
    # The loss can stay finite while one gradient overflows; the step must not reach the optimizer.
    model = GPT(GPT2ISH, dtype=np.float64)
    trainer = Trainer(model, DATA, None, TrainConfig(steps=5, batch_size=2, eval_interval=0, grad_clip=grad_clip))
    trainer.run(steps=2, progress=False)
    good = {k: v.copy() for k, v in model.params.items()}
    right_backward = GPT.backward

    def overflowed(self, *args, **kwargs):
        grads = right_backward(self, *args, **kwargs)
        grads["h.1.mlp.c_fc.bias"][3] = np.inf
        return grads
    monkeypatch.setattr(GPT, "backward", overflowed)
    with np.errstate(over="ignore", invalid="ignore"), pytest.raises(TrainingDivergedError, match="step 2"):
        trainer.run(progress=False)
    assert all(np.array_equal(v, good[k]) for k, v in model.params.items())


@pytest.mark.parametrize("dropout", [0.0, 0.2])
def test_resume_from_state_dict_is_bit_identical(dropout):
    # With dropout the model's own generator (its masks) must resume where it stopped too.
    cfg = dataclasses.replace(GPT2ISH, dropout=dropout)
    tcfg = TrainConfig(steps=20, batch_size=4, eval_interval=5)
    straight = GPT(cfg, seed=3)
    Trainer(straight, DATA, DATA, tcfg).run(progress=False)

    first = GPT(cfg, seed=3)
    t1 = Trainer(first, DATA, DATA, tcfg)
    t1.run(steps=7, progress=False)
    saved_params = {k: v.copy() for k, v in first.params.items()}
    saved_state = t1.state_dict()
    resumed = GPT(cfg, seed=99, params=saved_params)
    t2 = Trainer(resumed, DATA, DATA, tcfg)
    t2.load_state_dict(saved_state)
    h2 = t2.run(progress=False)
    assert all(np.array_equal(resumed.params[k], v) for k, v in straight.params.items())
    assert h2.loss == Trainer(GPT(cfg, seed=3), DATA, DATA, tcfg).run(progress=False).loss


def test_layer_of_and_the_evaluations_steps_and_perplexity():
    from numpy_gpt.train import layer_of
    assert [layer_of(k) for k in ("h.3.attn.c_attn.weight", "h.12.ln_1.bias", "wte.weight", "ln_f.bias")] == \
        ["h.3", "h.12", "wte", "ln_f"]
    h = Trainer(GPT(GPT2ISH, seed=3), DATA, DATA[:200], TrainConfig(steps=5, batch_size=4, eval_interval=2)).run(
        progress=False)
    assert [ev["step"] for ev in h.eval] == [2, 4, 5]              # every 2 steps, and the last one
    for ev in h.eval:
        assert ev["val_ppl"] == pytest.approx(np.exp(ev["val_loss"]), rel=1e-12)
        assert ev["val_loss"] != ev["train_loss"]


def test_without_clipping_the_recorded_gradient_norm_is_torchs():
    # With or without clipping, the recorded norm is the root of the sum of the layers' squared norms.
    tcfg = TrainConfig(steps=6, batch_size=4, optimizer="adamw", lr=1e-2, warmup_steps=2, grad_clip=0.0,
                       eval_interval=0)
    model, tmodel, h, th, trainers = run_both(GPT2ISH, tcfg)
    check_trajectory("train[no clip]", model, tmodel, h, th, TRAJECTORY, trainers)
    # And the first step's norm against torch's own global norm of the same gradients.
    x, y = get_batch(DATA, GPT2ISH.block_size, 4, np.random.default_rng(0))
    t = torch_gpt.GPT(GPT2ISH).double()
    t.load_state_dict(torch_gpt.from_numpy(GPT(GPT2ISH, seed=0, dtype=np.float64).params))
    t(torch.from_numpy(x), torch.from_numpy(y))[1].backward()
    norm = torch.nn.utils.clip_grad_norm_(t.parameters(), float("inf"), norm_type=2.0)
    assert h.grad_norm[0] == pytest.approx(float(norm), rel=1e-12)


def test_validation_data_of_exactly_one_window_is_evaluated():
    # T + 1 tokens hold one window (x = data[:T], y = data[1:]); T tokens hold none.
    T = GPT2ISH.block_size
    model = GPT(GPT2ISH, seed=3, dtype=np.float64)
    tcfg = TrainConfig(steps=1, batch_size=3, eval_batches=2)
    ev = Trainer(model, DATA, DATA[:T + 1], tcfg).evaluate()
    window = DATA[:T + 1]
    assert ev["val_loss"] == pytest.approx(float(model.forward(window[None, :T], window[None, 1:])[1]), rel=1e-12)
    assert "val_loss" not in Trainer(model, DATA, DATA[:T], tcfg).evaluate()


@pytest.mark.parametrize("kwargs, word", [
    (dict(steps=0), "steps"), (dict(batch_size=-2), "batch_size"), (dict(batch_size=2.0), "batch_size"),
    (dict(optimizer="lion"), "optimizer"), (dict(lr=0), "lr"), (dict(lr=float("nan")), "lr"),
    (dict(schedule="linear"), "schedule"), (dict(min_lr=-1e-4), "min_lr"), (dict(lr=1e-3, min_lr=1e-2), "min_lr"),
    (dict(weight_decay=-0.1), "weight_decay"), (dict(weight_decay=float("nan")), "weight_decay"),
    (dict(momentum=-0.5), "momentum"), (dict(grad_clip=-1.0), "grad_clip"), (dict(betas=(0.9,)), "betas"),
    (dict(betas=(0.9, 1.0)), "betas"), (dict(warmup_steps=-1), "warmup_steps"),
    (dict(eval_interval=-5), "eval_interval"), (dict(eval_batches=0), "eval_batches"), (dict(seed=-1), "seed")])
# (min_lr above lr is fine with the constant schedule, which never uses it)
def test_bad_training_settings_are_config_errors(kwargs, word):
    with pytest.raises(ConfigError, match=word) as e:
        TrainConfig(**kwargs)
    assert repr(kwargs[word]) in str(e.value)              # the message names the bad value


def test_the_progress_bar_is_drawn_on_a_terminal_or_in_jupyter_only(monkeypatch):
    import sys
    import types
    from numpy_gpt.train import _progress
    pytest.importorskip("tqdm")
    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)
    monkeypatch.setattr(sys, "stderr", types.SimpleNamespace(isatty=lambda: False, write=sys.stderr.write,
                                                             flush=lambda: None))
    assert _progress(10, 0, True) is None                          # a file or a pipe: lines instead
    monkeypatch.setitem(sys.modules, "ipykernel", types.ModuleType("ipykernel"))
    bar = _progress(10, 0, True)                                    # a notebook: tqdm.auto's widget
    assert bar is not None
    bar.close()
    assert _progress(10, 0, False) is None
    monkeypatch.delitem(sys.modules, "ipykernel")
    monkeypatch.setattr(sys, "stderr", None)                        # pythonw: no stderr at all
    assert _progress(10, 0, True) is None
