"""The numpy-gpt command line: every command, its flags, its output and its exit code."""
import json
import os
import subprocess
import sys
import types

import numpy as np
import pytest

import numpy_gpt.cli as cli
from numpy_gpt import GPTConfig, parity_report
from numpy_gpt.checkpoint import load_checkpoint
from numpy_gpt.cli import main
from tests import child_env, tolerances

TINY = ["--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--block-size", "16", "--batch-size", "4",
        "--no-plot", "--no-progress"]
ENV = child_env(OPENBLAS_NUM_THREADS="1")


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)                   # the default out/ folder lands here


@pytest.fixture(scope="module")
def ckpt64(tmp_path_factory):
    """A float64 character model trained for a few steps on the demo corpus."""
    path = str(tmp_path_factory.mktemp("c") / "m.safetensors")
    assert main(["train", "--out", path, "--steps", "6", "--dtype", "float64", "--eval-interval", "3", *TINY]) == 0
    return path


def test_help_on_every_command(capsys):
    for argv in ([], ["train"], ["generate"], ["parity"], ["gradcheck"], ["demo"]):
        with pytest.raises(SystemExit) as e:
            main([*argv, "--help"])
        assert e.value.code == 0
        out = capsys.readouterr().out
        assert out.startswith(f"usage: numpy-gpt {' '.join(argv)}".rstrip())
    for flag in ("--data", "--tokenizer", "--n-layer", "--n-head", "--n-embd", "--block-size", "--pos-encoding",
                 "--norm", "--activation", "--dropout", "--config", "--backend", "--steps", "--batch-size", "--lr",
                 "--schedule", "--eval-interval", "--out", "--seed", "--resume"):
        assert flag in cli.build_parser()._subparsers._group_actions[0].choices["train"].format_help(), flag


def test_console_script_and_python_m(tmp_path):
    script = os.path.join(os.path.dirname(sys.executable), "numpy-gpt")
    for cmd in ([script, "--help"], [sys.executable, "-m", "numpy_gpt", "gradcheck", "--help"]):
        r = subprocess.run(cmd, capture_output=True, text=True, env=ENV)
        assert r.returncode == 0 and r.stdout.startswith("usage: numpy-gpt"), r.stderr
    r = subprocess.run([script, "train", "--steps", "3", "--eval-interval", "0", *TINY], capture_output=True,
                       text=True, cwd=tmp_path, env=ENV)
    assert r.returncode == 0, r.stderr
    assert load_checkpoint(tmp_path / "out" / "model.safetensors").step == 3
    assert "torch" not in r.stderr


@pytest.mark.parametrize("terminal", [True, False])
def test_train_prints_progress_saves_a_checkpoint_and_a_loss_curve(tmp_path, capsys, monkeypatch, terminal):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: terminal)       # capsys's stderr, for this test
    assert main(["train", "--steps", "8", "--eval-interval", "4", "--eval-batches", "1",
                 *[a for a in TINY if a not in ("--no-plot", "--no-progress")]]) == 0
    out, err = capsys.readouterr()
    assert "train: numpy backend, float32" in out and "demo corpus, char tokenizer" in out
    # A bar on a terminal; into a file or a pipe, its redraws would fill the log: none there.
    assert ("loss=" in err and "tok_s=" in err) == terminal
    assert out.count("step 4: train") == 1 and "val " in out and "ppl" in out  # each evaluation once
    assert "done: step 8, train loss" in out and "tokens/s" in out
    c = load_checkpoint("out/model.safetensors")
    assert c.step == 8 and c.tokenizer.kind == "char" and c.run["data"] is None and c.run["backend"] == "numpy"
    assert os.path.getsize("out/model_loss.png") > 1000


def test_with_or_without_the_progress_bar_the_losses_printed_are_the_evaluations(tmp_path, capsys):
    # The step lines and the done line print the same train loss (the mean over the eval batches),
    # with the progress bar or without; the last training batch's loss is only ever named as such.
    lines = {}
    for bar in (True, False):
        argv = ["train", "--steps", "8", "--eval-interval", "4", "--out", str(tmp_path / f"{bar}.safetensors"),
                *[a for a in TINY if a != "--no-progress" or not bar]]
        assert main(argv) == 0
        out = capsys.readouterr().out
        lines[bar] = [line for line in out.splitlines() if line.startswith(("step ", "done:"))]
    same = [[line.rsplit(", ", 1)[0] if line.startswith("done:") else line for line in lines[bar]] for bar in (True, False)]
    assert same[0] == same[1]                                         # all but the tokens/s
    step8, done = lines[False][-2:]
    train8 = step8.split("train ")[1].split()[0]
    assert step8.startswith("step 8: train ") and done.startswith(f"done: step 8, train loss {train8}, val loss ")
    assert main(["train", "--steps", "3", "--eval-interval", "0", "--out", str(tmp_path / "x.safetensors"), *TINY]) == 0
    assert "done: step 3, last batch loss " in capsys.readouterr().out


def test_config_files_json_and_toml_and_flags_win(tmp_path):
    (tmp_path / "c.json").write_text(json.dumps({"model": {"n_layer": 1, "n_embd": 24, "n_head": 3,
                                                           "block_size": 8, "norm": "post"},
                                                 "train": {"steps": 3, "batch_size": 2, "eval_interval": 0}}))
    (tmp_path / "c.toml").write_text('n_layer = 1\nn_embd = 12\nn_head = 2\nblock_size = 8\nactivation = "relu"\n'
                                     "[train]\nsteps = 2\nbatch_size = 2\neval_interval = 0\noptimizer = 'sgd'\n")
    assert main(["train", "--config", "c.json", "--out", "a.safetensors", "--no-plot", "--no-progress"]) == 0
    a = load_checkpoint("a.safetensors")
    assert (a.config.n_embd, a.config.norm, a.step, a.train_config.batch_size) == (24, "post", 3, 2)
    assert main(["train", "--config", "c.toml", "--n-embd", "16", "--steps", "4", "--out", "b.safetensors",
                 "--no-plot", "--no-progress"]) == 0
    b = load_checkpoint("b.safetensors")
    assert (b.config.n_embd, b.config.activation, b.step, b.train_config.optimizer) == (16, "relu", 4, "sgd")


def test_train_on_a_file_with_each_tokenizer(tmp_path):
    (tmp_path / "t.txt").write_text("the cat sat on the mat <EOS> the dog sat on the log <EOS>\n" * 20)
    for tok in ("char", "word", "bpe"):
        assert main(["train", "--data", "t.txt", "--tokenizer", tok, "--bpe-vocab-size", "270", "--steps", "2",
                     "--eval-interval", "0", "--out", f"{tok}.safetensors", *TINY]) == 0
        c = load_checkpoint(f"{tok}.safetensors")
        assert c.tokenizer.kind == {"bpe": "byte_bpe"}.get(tok, tok)
        assert c.run["data"] == str(tmp_path / "t.txt")


def test_train_in_numpy_continue_in_torch_and_back_from_the_command_line(tmp_path):
    common = ["--no-plot", "--no-progress"]
    assert main(["train", "--steps", "3", "--out", "r.safetensors", "--eval-interval", "0", *TINY]) == 0
    assert main(["train", "--resume", "r.safetensors", "--backend", "torch", "--steps", "6", *common]) == 0
    c = load_checkpoint("r.safetensors")
    assert c.step == 6 and c.run["backend"] == "torch" and len(c.trainer_state["history"]["loss"]) == 6
    assert main(["train", "--resume", "r.safetensors", "--backend", "numpy", "--steps", "9", *common]) == 0
    c = load_checkpoint("r.safetensors")
    assert c.step == 9 and c.run["backend"] == "numpy" and len(c.trainer_state["history"]["loss"]) == 9


def test_a_resumed_run_overwrites_another_existing_file_only_with_force(tmp_path, capsys):
    # Resuming into its own file is the point of --resume; into another that exists, the other
    # file is the user's and stays unless --force says otherwise (the refusal: tests/test_errors.py).
    TINY_PLOT = [a for a in TINY if a != "--no-plot"]
    assert main(["train", "--steps", "2", "--out", "a.safetensors", "--eval-interval", "0", *TINY]) == 0
    assert main(["train", "--steps", "1", "--out", "b.safetensors", "--eval-interval", "0", "--seed", "7", *TINY]) == 0
    assert main(["train", "--resume", "a.safetensors", "--out", "b.safetensors", "--steps", "3", *TINY]) == 2
    assert load_checkpoint("b.safetensors").step == 1
    assert main(["train", "--resume", "a.safetensors", "--out", "b.safetensors", "--steps", "3", "--force",
                 "--plot", "curve.PDF", *TINY_PLOT]) == 0
    assert load_checkpoint("b.safetensors").step == 3 and load_checkpoint("a.safetensors").step == 2
    assert "  loss curve: curve.PDF" in capsys.readouterr().out
    assert open("curve.PDF", "rb").read(5) == b"%PDF-"                   # written in the format its name says


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_a_float32_run_resumes_in_float64(tmp_path, backend):
    # The checkpoint's float32 parameters are read as float64 (load_checkpoint's dtype) and the
    # model takes them as they are; the run goes on in float64 and is saved so.
    assert main(["train", "--steps", "3", "--out", "r.safetensors", "--eval-interval", "0", *TINY]) == 0
    before = load_checkpoint("r.safetensors").params
    assert main(["train", "--resume", "r.safetensors", "--backend", backend, "--dtype", "float64", "--steps", "5",
                 "--no-plot", "--no-progress"]) == 0
    c = load_checkpoint("r.safetensors")
    assert c.step == 5 and c.metadata["dtype"] == "float64" and len(c.trainer_state["history"]["loss"]) == 5
    assert all(v.dtype == np.float64 and not np.array_equal(v, before[k]) for k, v in c.params.items() if k != "wpe.weight")


def test_a_resumed_run_keeps_its_tokenizer_dtype_and_validation_split(tmp_path, capsys):
    # Nothing about the data is said again on resuming (but the tokenizer's name, which must agree).
    (tmp_path / "t.txt").write_text("the cat sat on the mat; the dog sat on the log.\n" * 20)
    first = ["train", "--data", "t.txt", "--tokenizer", "bpe", "--bpe-vocab-size", "270", "--dtype", "float64",
             "--val-fraction", "0.3", "--steps", "2", "--eval-interval", "0", "--out", "r.safetensors", *TINY]
    assert main(first) == 0
    # "  data: t.txt, byte_bpe tokenizer (270 tokens), 252 train / 108 validation tokens" (the path resumed
    # is the absolute one the checkpoint records).
    data_line = next(line for line in capsys.readouterr().out.splitlines() if "  data: " in line)
    tokens = data_line.split(", ", 1)[1]
    assert main(["train", "--resume", "r.safetensors", "--tokenizer", "bpe", "--steps", "4",
                 "--no-plot", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert f"  data: {tmp_path / 't.txt'}, {tokens}" in out.splitlines()     # the same tokens, the same split
    c = load_checkpoint("r.safetensors")
    assert c.step == 4 and c.tokenizer.kind == "byte_bpe"
    assert c.run["val_fraction"] == 0.3 and c.run["dtype"] == "float64"
    assert {v.dtype.name for v in c.params.values()} == {"float64"}


@pytest.mark.parametrize("steps, interval, saves", [(6, 5, [5, 6]), (6, 3, [3, 6]), (6, 6, [6]), (6, 0, [6])])
def test_save_interval_saves_on_its_multiples_and_at_the_end_once(monkeypatch, steps, interval, saves):
    import numpy_gpt.checkpoint as checkpoint
    at, real = [], checkpoint.save
    monkeypatch.setattr(checkpoint, "save", lambda path, model, trainer, *a: (at.append(trainer.step),
                                                                              real(path, model, trainer, *a))[1])
    assert main(["train", "--steps", str(steps), "--save-interval", str(interval), "--eval-interval", "0",
                 *TINY]) == 0
    assert at == saves and load_checkpoint("out/model.safetensors").step == steps


def test_eos_ids_by_tokenizer():
    from numpy_gpt.tokenizers import ByteBPETokenizer, CharTokenizer, WordTokenizer
    assert cli.eos_id(ByteBPETokenizer(special_tokens={"<|endoftext|>": 256})) == 256
    assert cli.eos_id(ByteBPETokenizer()) is None
    assert cli.eos_id(WordTokenizer(["a", "b"])) == 2            # <EOS> after the words
    assert cli.eos_id(CharTokenizer.from_text("ab")) is None


class Recorder:
    def __init__(self):
        self.writes = []

    def write(self, s):
        self.writes.append(s)

    def flush(self):
        pass

    def isatty(self):
        return False


def test_generate_streams_each_token_as_it_comes(ckpt64, monkeypatch):
    rec = Recorder()
    monkeypatch.setattr(sys, "stdout", rec)
    assert main(["generate", "--checkpoint", ckpt64, "--prompt", "Once ", "--max-new-tokens", "12",
                 "--temperature", "0.9", "--top-k", "5", "--top-p", "0.95", "--seed", "3"]) == 0
    assert rec.writes[0] == "Once " and rec.writes[-1] == "\n"
    assert len(rec.writes) == 1 + 12 + 1 and all(len(w) == 1 for w in rec.writes[1:-1])


def test_generate_greedy_and_beams_agree_across_backends(ckpt64, capsys):
    texts = {}
    for be in ("numpy", "torch"):
        for how in (["--greedy"], ["--beam-width", "3"]):
            assert main(["generate", "--checkpoint", ckpt64, "--prompt", "The ", "--max-new-tokens", "10",
                         "--backend", be, *how]) == 0
            texts[be, how[0]] = capsys.readouterr().out
    assert texts["numpy", "--greedy"] == texts["torch", "--greedy"]
    assert texts["numpy", "--beam-width"] == texts["torch", "--beam-width"]
    assert all(t.startswith("The ") and len(t) == len("The ") + 10 + 1 for t in texts.values())
    # A prompt longer than the block (16): beams, printed at the end, are the new tokens too.
    prompt = "The cat sat on the mat and then "
    for be in ("numpy", "torch"):
        assert main(["generate", "--checkpoint", ckpt64, "--prompt", prompt, "--max-new-tokens", "10",
                     "--backend", be, "--beam-width", "2"]) == 0
        out = capsys.readouterr().out
        assert out.startswith(prompt) and len(out) == len(prompt) + 10 + 1, out


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_sampled_text_follows_the_seed(ckpt64, capsys, backend):
    texts = []
    for seed in (1, 1, 2):
        assert main(["generate", "--checkpoint", ckpt64, "--prompt", "The ", "--max-new-tokens", "40",
                     "--backend", backend, "--seed", str(seed)]) == 0
        texts.append(capsys.readouterr().out)
    assert texts[0] == texts[1] != texts[2]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_both_backends_start_a_new_model_from_the_same_weights(dtype):
    from torch_gpt.cli import BACKEND as TORCH
    cfg = GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=8)
    ours = cli.NumpyBackend().new_model(cfg, 7, dtype).params
    theirs = TORCH.params(TORCH.new_model(cfg, 7, dtype))
    assert ours.keys() == theirs.keys()
    for k in ours:
        assert theirs[k].dtype == ours[k].dtype == dtype, k
        np.testing.assert_array_equal(theirs[k], ours[k], err_msg=k)
    assert not np.array_equal(ours["h.0.attn.c_attn.weight"],
                              cli.NumpyBackend().new_model(cfg, 8, dtype).params["h.0.attn.c_attn.weight"])


def test_parity_reports_every_activation_and_gradient(ckpt64, capsys):
    assert main(["parity", "--checkpoint", ckpt64, "--color", "never"]) == 0
    out = capsys.readouterr().out
    names = ["emb", "h.0.ln_1", "h.0.attn", "h.0.ln_2", "h.0.mlp", "h.0", "ln_f", "logits", "loss",
             *load_checkpoint(ckpt64).params]
    for name in names:
        assert f"\n  {name} " in out, name
    assert "float64" in out and "0 FAIL" in out and "\033[" not in out
    assert f"weights: checkpoint {ckpt64} (step 6)" in out          # read with weights_only: the step from its metadata
    assert main(["parity", "--n-layer", "1", "--n-embd", "8", "--n-head", "2", "--block-size", "6",
                 "--norm", "post", "--dropout", "0.2", "--untied", "--dtype", "float32", "--color", "always"]) == 0
    out = capsys.readouterr().out
    assert "shared dropout masks" in out and "\033[32mclose\033[0m" in out and "lm_head.weight" in out


@pytest.mark.parametrize("n, shift, said", [(1, 0.0, None),
                                            (2, 1e-14, "note: the activation trace ran the batch whole, model.forward in 2 shards "
                                                       "(one per thread): their logits agree within rounding"),
                                            (1, 1e-14, "note: the activation trace and model.forward's logits agree "
                                                       "within rounding"),
                                            (1, 1e-3, "warning: the traced activations do not reproduce"),
                                            (2, 0.0, "note")])    # as it comes: bitwise or within rounding
def test_parity_says_how_its_activation_trace_compares_with_the_model(threads, monkeypatch, capsys, n, shift, said):
    # The trace runs the whole batch; on 2 threads model.forward runs a shard per thread, whose
    # products round differently: a note, not a warning. A trace that is off is a warning.
    import torch_gpt.parity as tp
    threads(n)
    real = tp.numpy_activations

    def trace(*a, **k):
        acts = real(*a, **k)
        acts["logits"] = acts["logits"] * (1 + shift)
        acts["loss"] = acts["loss"] * (1 + shift * 1e-11)       # a loss within rounding beside logits that are off
        return acts
    monkeypatch.setattr(tp, "numpy_activations", trace)
    assert main(["parity", "--n-layer", "1", "--n-embd", "64", "--n-head", "4", "--block-size", "64",
                 "--color", "never"]) == 0
    notes = [line.strip() for line in capsys.readouterr().out.splitlines() if line.strip().startswith(("note", "warn"))]
    if n == 2 and shift == 0.0:
        assert notes == [] or (len(notes) == 1 and notes[0].startswith(said)), notes
    else:
        assert (notes == []) if said is None else (len(notes) == 1 and notes[0].startswith(said)), notes


SMALL = ["--n-layer", "1", "--n-embd", "8", "--n-head", "2", "--block-size", "6", "--color", "never"]


def test_parity_over_training_steps_reports_each_step_then_every_tensor(ckpt64, capsys):
    # numpy-gpt parity --steps: both training loops from the same weights on the same batches.
    assert main(["parity", *SMALL, "--steps", "4", "--dropout", "0.1"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    steps = [line.split() for line in lines if len(line.split()) == 6 and line.split()[0].isdigit()]
    assert [s[0] for s in steps] == ["1", "2", "3", "4"] and all(s[-1] in ("exact", "close") for s in steps)
    assert all(float(s[1]) == pytest.approx(float(s[2]), rel=1e-9) for s in steps)      # the two losses
    cfg = GPTConfig(vocab_size=65, block_size=6, n_layer=1, n_head=2, n_embd=8)
    from numpy_gpt.model import param_shapes
    for name in param_shapes(cfg):
        assert f"\n  {name} " in out and f"\n  exp_avg.{name} " in out and f"\n  exp_avg_sq.{name} " in out, name
    assert "dropout off (each side would draw its own masks)" in out and "4 steps: " in out and "0 FAIL; " in out
    assert out.rstrip().endswith(", 0 FAIL")
    assert main(["parity", "--checkpoint", ckpt64, "--steps", "2", "--color", "never"]) == 0
    assert "settings from the checkpoint, a fresh optimizer" in capsys.readouterr().out


def test_parity_over_training_steps_fails_from_the_step_that_parts(monkeypatch, capsys):
    import torch
    import torch_gpt.parity as tp

    class Nudged(tp.Trainer):                  # after its second step, one parameter moves by 1e-6
        def train_step(self):
            loss = super().train_step()
            if self.step == 2:
                with torch.no_grad():
                    self.model.wte.weight.mul_(1 + 1e-6)
            return loss
    monkeypatch.setattr(tp, "Trainer", Nudged)
    assert main(["parity", *SMALL, "--steps", "4"]) == 1
    out = capsys.readouterr().out
    status = {line.split()[0]: line.split()[-1] for line in out.splitlines()
              if len(line.split()) == 6 and line.split()[0].isdigit()}
    assert status["1"] in ("exact", "close") and status["2"] in ("exact", "close") and status["3"] == "FAIL"
    verdict = {line.split()[0]: line.split()[-1] for line in out.splitlines() if line.startswith("  ")}
    assert verdict["wte.weight"] == verdict["exp_avg.wte.weight"] == "FAIL"       # moved, and AdamW's buffers with it
    assert " 0 FAIL" not in out.splitlines()[-1]


def test_parity_over_training_steps_fails_on_a_step_alone(monkeypatch, capsys):
    # Losses that part while every tensor still agrees (here torch's side records its loss a
    # little off): the steps' FAIL alone makes the exit status 1.
    import torch_gpt.parity as tp

    class Misreported(tp.Trainer):
        def finish_step(self, loss, lr, norm, layer_norms):
            return super().finish_step(loss * (1 + 1e-6), lr, norm, layer_norms)
    monkeypatch.setattr(tp, "Trainer", Misreported)
    assert main(["parity", *SMALL, "--steps", "2"]) == 1
    last = capsys.readouterr().out.rstrip().splitlines()[-1]
    assert last.startswith("2 steps: 0 exact, 0 close, 2 FAIL; ") and last.endswith(", 0 FAIL"), last


@pytest.mark.parametrize("argv, code, said", [(["--dtype", "float32"], 2, "--steps compares training runs in float64 only"),
                                              (["--seq-len", "4"], 2, "--seq-len goes with one batch"),
                                              (["--steps", "-1"], 1, "--steps must be >= 0")])
def test_parity_over_training_steps_refuses(capsys, argv, code, said):
    assert main(["parity", *SMALL, "--steps", "2", *argv]) == code     # 2: options that do not go together
    assert said in capsys.readouterr().err


def test_parity_over_training_steps_takes_the_checkpoints_optimizer_and_settings(tmp_path, capsys):
    # An SGD run without momentum (no buffers at all) with its own learning rate and clipping.
    (tmp_path / "sgd.toml").write_text("[train]\noptimizer = 'sgd'\nmomentum = 0.0\nlr = 0.02\ngrad_clip = 0.5\n"
                                       "warmup_steps = 3\n")
    assert main(["train", "--config", str(tmp_path / "sgd.toml"), "--steps", "3", "--out", "s.safetensors",
                 "--eval-interval", "0", *TINY]) == 0
    capsys.readouterr()
    assert main(["parity", "--checkpoint", "s.safetensors", "--steps", "3", "--color", "never"]) == 0
    out = capsys.readouterr().out
    assert "training: sgd, lr 0.02 (cosine, warmup 3, min 0.0003), weight decay 0.1, grad clip 0.5" in out
    assert "momentum_buffer." not in out and out.rstrip().endswith(", 0 FAIL")


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_both_backends_record_the_optimizers_steps_and_last_learning_rate_alike(tmp_path, optimizer):
    # torch's SGD counts no steps (its checkpoints said 0) and torch's param groups hold the next
    # step's learning rate once the scheduler has moved; the file records what numpy_gpt's does.
    import json
    meta = {}
    for be in ("numpy", "torch"):
        assert main(["train", "--backend", be, "--optimizer", optimizer, "--steps", "3", "--out", f"{be}.safetensors",
                     "--eval-interval", "0", *TINY]) == 0
        c = load_checkpoint(f"{be}.safetensors")
        meta[be] = json.loads(c.metadata["optimizer"])
        assert meta[be]["step"] == 3 and meta[be]["lr"] == c.trainer_state["history"]["lr"][-1]
    assert meta["numpy"]["lr"] == meta["torch"]["lr"]


def test_parity_over_training_steps_sets_the_free_key_bias_apart(tmp_path, capsys):
    # The key bias's gradient is rounding noise. Adam's L2 weight decay feeds the bias back into its
    # own gradient, and while that stays under eps each step multiplies the bias by about
    # lr * weight_decay / eps (3e4 here): from the noise, each side's key bias grows to about lr,
    # with signs of its own (a helper's review found this FAIL). Judged apart, it is "free".
    assert main(["train", "--steps", "1", "--optimizer", "adam", "--dtype", "float64", "--out", "a.safetensors",
                 "--eval-interval", "0", *TINY]) == 0
    capsys.readouterr()
    assert main(["parity", "--checkpoint", "a.safetensors", "--steps", "8", "--color", "never"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[-1].startswith("8 steps: ") and " 0 FAIL; " in out and ", 0 FAIL, " in out
    assert not [line for line in out.splitlines() if line.endswith("FAIL")]
    free = [line.split()[0] for line in out.splitlines() if line.endswith("  free")]
    assert free and all(name.endswith("attn.c_attn.bias[key]") for name in free), free
    assert "h.0.attn.c_attn.bias[query, value]" in out and "free: the attention's key bias" in out


def test_torch_training_with_dropout_is_the_same_run_for_the_same_seed(tmp_path):
    # Dropout's masks come from torch's global RNG, which the CLI seeds from --seed.
    import torch
    argv = ["train", "--backend", "torch", "--dropout", "0.2", "--seed", "3", "--steps", "3", "--eval-interval", "0",
            "--no-plot", "--no-progress", "--force", *TINY]
    losses = []
    for run in range(2):
        torch.manual_seed(run)                                      # whatever state the process is in
        assert main([*argv, "--out", "d.safetensors"]) == 0
        losses.append(load_checkpoint("d.safetensors").trainer_state["history"]["loss"])
    assert losses[0] == losses[1]


@pytest.mark.parametrize("kind, name", [("gradient", "h.0.attn.c_proj.bias"), ("activation", "h.0.attn")])
def test_parity_fails_loudly(monkeypatch, capsys, kind, name):
    import torch_gpt.parity as tp
    real = tp.torch_run

    def off_by_a_bit(*a, **k):
        acts, grads = real(*a, **k)
        which = grads if kind == "gradient" else acts
        which[name] = which[name] * 1.001
        return acts, grads
    monkeypatch.setattr(tp, "torch_run", off_by_a_bit)
    assert main(["parity", "--n-layer", "1", "--n-embd", "8", "--n-head", "2", "--block-size", "4",
                 "--color", "always"]) == 1
    out = capsys.readouterr().out
    lines = out.splitlines()
    failed = [i for i, line in enumerate(lines) if "\033[1;31mFAIL\033[0m" in line]
    assert len(failed) == 1 and lines[failed[0]].split()[0] == name, out
    assert [h for h in lines[:failed[0]] if h in ("activations", "gradients")][-1] == kind + "s"
    assert "1 FAIL" in out


def test_gradcheck_passes_and_fails(monkeypatch, capsys):
    assert main(["gradcheck", "--samples", "3"]) == 0
    out = capsys.readouterr().out
    for name in ("linear dw", "layernorm dx", "attention dc_attn_w", "ffn.gelu dx", "cross_entropy dlogits",
                 "block.post dln_2.weight", "embedding dwte", "model wte.weight", "model ln_f.bias"):
        assert name in out, name
    assert " 0 FAIL" in out
    real = parity_report.layernorm_backward
    monkeypatch.setattr(parity_report, "layernorm_backward",
                        lambda d, c: tuple(g * 1.01 if g is not None else g for g in real(d, c)))
    monkeypatch.setattr(parity_report, "model_gradcheck", lambda *a, **kw: [])      # the layers are enough here
    assert main(["gradcheck", "--color", "never"]) == 1
    assert "layernorm dx" in capsys.readouterr().out


def test_gradcheck_samples_0_checks_every_entry(capsys):
    assert main(["gradcheck", "--model-only", "--samples", "0", "--n-layer", "1", "--n-embd", "4", "--n-head", "1",
                 "--block-size", "2", "--vocab-size", "3", "--color", "never"]) == 0
    out = capsys.readouterr().out
    assert "every entry" in out and " 0 FAIL" in out


def test_gradcheck_checks_a_training_step_with_its_dropout_masks_held(monkeypatch, capsys):
    argv = ["gradcheck", "--model-only", "--training", "--dropout", "0.3", "--samples", "2", "--color", "never"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "a training step (dropout 0.3, its masks held for every nudge)" in out and " 0 FAIL" in out
    # A dropout backward without its 1 / (1 - p) scale: only a training step can see it.
    from numpy_gpt import model as model_module
    monkeypatch.setattr(model_module, "dropout_backward", lambda d, c: d if c is None else d * c[0])
    assert main(argv) == 1
    assert main(argv[:2] + argv[3:]) == 0                   # an evaluation drops nothing


def test_bench_dispatches_to_the_benchmark_suite(monkeypatch, capsys):
    seen = []
    fake = types.ModuleType("benchmarks.run")
    fake.main = lambda argv, **kw: seen.append(argv) or {}
    monkeypatch.setitem(sys.modules, "benchmarks.run", fake)
    assert main(["bench", "--quick", "--threads", "1"]) == 0
    assert main(["--debug", "bench", "--help"]) == 0
    assert seen == [["--quick", "--threads", "1"], ["--help"]]

    def missing(name, *a):
        raise ModuleNotFoundError(f"No module named {name!r}", name="benchmarks")
    monkeypatch.setattr(cli.importlib, "import_module", missing)
    assert main(["bench"]) == 1
    assert "benchmarks live in the source tree" in capsys.readouterr().err


def test_without_torch_the_torch_commands_say_so_in_one_line(monkeypatch, capsys):
    real = cli.importlib.import_module

    def no_torch(name, *a):
        if name.startswith("torch_gpt"):
            raise ModuleNotFoundError("No module named 'torch'", name="torch")
        return real(name, *a)
    monkeypatch.setattr(cli.importlib, "import_module", no_torch)
    for argv in (["parity"], ["train", "--backend", "torch"]):
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert err == ("numpy-gpt: error: this needs PyTorch, which is not installed: pip install torch==2.13.0 "
                       "(or, in the numpy-gpt checkout, pip install -e '.[torch]')\n")


def test_plugin_commands_register_themselves_when_their_module_exists(monkeypatch, capsys):
    import importlib.util
    present = [n for n in cli.PLUGINS if importlib.util.find_spec(f"numpy_gpt.{n}") is not None]
    assert set(present) <= set(cli.build_parser()._subparsers._group_actions[0].choices)
    plugin = types.ModuleType("numpy_gpt.fancy")

    def register(sub):
        p = sub.add_parser("fancy", help="follow every number")
        p.add_argument("--seed-problem", default="apple")
        p.set_defaults(func=lambda args: print("tracing", args.seed_problem) or 0)
    plugin.register = register
    monkeypatch.setattr(cli, "PLUGINS", ("not_written_yet", "fancy"))
    monkeypatch.setitem(sys.modules, "numpy_gpt.fancy", plugin)
    assert main(["fancy", "--seed-problem", "cnn"]) == 0
    assert capsys.readouterr().out == "tracing cnn\n"
    choices = cli.build_parser()._subparsers._group_actions[0].choices
    assert "fancy" in choices and "not_written_yet" not in choices


def test_demo_keeps_its_flags():
    demo = cli.build_parser()._subparsers._group_actions[0].choices["demo"]
    args = demo.parse_args([])
    assert (args.steps, args.out, args.seed, args.no_torch, args.no_processes, args.func) == \
        (500, "out", 0, False, False, cli._demo)


def test_report_thresholds_are_the_test_suites():
    assert parity_report.PARITY_TOL == tolerances.MODEL_PARITY
    assert parity_report.TRAJECTORY_TOL == tolerances.TRAJECTORY
    assert parity_report.SCALE_FLOOR == tolerances.SCALE_FLOOR
    assert (parity_report.FD_STEP, parity_report.FD_TOL) == (tolerances.FD_STEP, tolerances.FD)


def test_the_demo_says_when_other_processes_keep_the_cpu_busy():
    from numpy_gpt import demo
    assert demo.busy_note(None) is None and demo.busy_note(0.1) is None
    assert "other processes are using 60% of the CPU" in demo.busy_note(0.6)
    share = demo.other_load(0.05)                          # this machine now, whatever it is
    assert share is None or 0.0 <= share <= 1.0


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_generate_reads_only_the_parameters_and_the_model_takes_them_as_read(tmp_path, monkeypatch, capsys, backend):
    # generate asks for the parameters alone (weights_only: AdamW's buffers stay in the file) and
    # the model takes the arrays read (copy=False): one copy of the weights in memory, not three.
    from numpy_gpt import checkpoint
    assert main(["train", "--steps", "2", "--out", "g.safetensors", "--eval-interval", "0", *TINY]) == 0
    loads, used = [], []
    real_load = checkpoint.load_checkpoint
    monkeypatch.setattr(checkpoint, "load_checkpoint", lambda *a, **k: loads.append((k, real_load(*a, **k))) or loads[-1][1])
    be = cli.NumpyBackend if backend == "numpy" else type(cli.torch_cli().BACKEND)
    real_generate = be.generate
    monkeypatch.setattr(be, "generate", lambda self, model, *a, **k: used.append(model) or real_generate(self, model, *a, **k))
    assert main(["generate", "--checkpoint", "g.safetensors", "--prompt", "a", "--max-new-tokens", "2",
                 "--backend", backend]) == 0
    capsys.readouterr()
    (kwargs, ckpt), = loads
    assert kwargs.get("weights_only") is True and ckpt.trainer_state is None
    if backend == "numpy":
        assert all(used[0].params[k] is v for k, v in ckpt.params.items())
    else:                                       # torch_gpt.model.adopt: the same memory
        t = dict(used[0].named_parameters())
        assert all(t[k].data_ptr() == v.ctypes.data for k, v in ckpt.params.items())
