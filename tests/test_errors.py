"""Every bad input gets a typed error (one hierarchy under NumpyGPTError) whose message names the
bad value and what was expected; through the CLI, one line on stderr and a non-zero exit, with
nothing the user saved touched."""
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import numpy_gpt
from numpy_gpt import GPT, GPTConfig, errors
from numpy_gpt.cli import main
from numpy_gpt.data import (CorpusDecodeError, CorpusNotFoundError, DataTooShortError, EmptyCorpusError,
                            get_batch, load_text)
from numpy_gpt.generation import check_sampling
from numpy_gpt.tokenizers import TokenizerFormatError, UnknownTokenError, WordTokenizer, tokenizer_from_dict
from numpy_gpt.train import Trainer, TrainConfig, TrainingDivergedError
from tests import child_env

TINY = ["--n-layer", "1", "--n-head", "2", "--n-embd", "8", "--block-size", "8", "--batch-size", "2",
        "--no-progress", "--no-plot", "--eval-interval", "0"]


def test_one_hierarchy_and_the_builtin_kinds_users_expect():
    kinds = [errors.UsageError, errors.ConfigError, errors.InputError, UnknownTokenError, errors.DataError,
             CorpusNotFoundError, CorpusDecodeError, EmptyCorpusError, DataTooShortError, errors.FormatError,
             TokenizerFormatError, errors.CheckpointError, errors.CheckpointNotFoundError,
             errors.CheckpointCorruptError, errors.CheckpointMismatchError, errors.StateDictError,
             TrainingDivergedError, errors.DependencyError]
    assert all(issubclass(k, numpy_gpt.NumpyGPTError) for k in kinds)
    assert issubclass(CorpusNotFoundError, FileNotFoundError) and issubclass(errors.CheckpointNotFoundError,
                                                                             FileNotFoundError)
    for k in (CorpusDecodeError, EmptyCorpusError, DataTooShortError, UnknownTokenError, TokenizerFormatError,
              errors.ConfigError, errors.InputError, errors.StateDictError, errors.CheckpointCorruptError):
        assert issubclass(k, ValueError), k
    assert issubclass(UnknownTokenError, errors.InputError) and issubclass(errors.DependencyError, ImportError)
    assert issubclass(TrainingDivergedError, FloatingPointError)


def test_a_missing_optional_package_is_named_and_a_broken_module_is_not_blamed_on_it(tmp_path, monkeypatch):
    with pytest.raises(errors.DependencyError, match="plotting needs the no_such_pkg_q7 package: pip install q7"):
        errors.require("no_such_pkg_q7.sub", "plotting", "pip install q7")
    # A package that is there but fails on an import of its own: that is its bug, reported as it is.
    (tmp_path / "broken_pkg_q7.py").write_text("import another_missing_pkg_q7\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError) as e:
        errors.require("broken_pkg_q7", "plotting", "pip install q7")
    assert e.value.name == "another_missing_pkg_q7" and not isinstance(e.value, errors.DependencyError)
    assert errors.require("json", "reading", "nothing") is json


# ------------------------------------------------------------------------------ the API
CFG = GPTConfig(vocab_size=5, block_size=4, n_layer=1, n_head=1, n_embd=4)


@pytest.mark.parametrize("idx, words", [
    (np.array([[0, 5]]), "token id 5 in idx is outside [0, 5)"),
    (np.array([[-1, 2]]), "token id -1"),
    (np.array([[0.0, 1.0]]), "must hold integers, got dtype float64"),
    (np.array([0, 1, 2]), "must be 2-D (batch, time), got shape (3,)"),
    (np.zeros((1, 5), dtype=int), "sequence length 5 exceeds block_size 4"),
])
def test_bad_token_ids(idx, words):
    with pytest.raises(errors.InputError) as e:
        GPT(CFG).forward(idx)
    assert words in str(e.value)


@pytest.mark.parametrize("bad", [-1, -5, -101, 5])
def test_bad_target_ids(bad):
    # A negative id would otherwise index the logits from the end: a wrong loss, no error.
    idx, targets = np.zeros((2, 3), np.int64), np.ones((2, 3), np.int64)
    targets[1, 2] = bad
    with pytest.raises(errors.InputError, match=rf"target id {bad} is outside \[0, 5\)"):
        GPT(CFG).forward(idx, targets)
    targets[1, 2] = -100                                   # the ignore index is not an error
    assert np.isfinite(GPT(CFG).forward(idx, targets)[1])


@pytest.mark.parametrize("shape", [(3, 2), (2, 2), (6,)])
def test_targets_shaped_unlike_the_token_ids(shape):
    # (3, 2) has idx's size: flattened, it would pair each token with another's target.
    with pytest.raises(errors.InputError, match=re.escape(f"targets shape {shape} differs from idx shape (2, 3)")):
        GPT(CFG).forward(np.zeros((2, 3), np.int64), np.ones(shape, np.int64))


def test_parameters_of_another_dtype_or_of_mixed_dtypes():
    params = GPT(CFG, dtype=np.float64).params
    with pytest.raises(errors.InputError, match="dtype float32 differs from the parameters' dtype float64"):
        GPT(CFG, dtype=np.float32, params=params)
    mixed = {**params, "wte.weight": params["wte.weight"].astype(np.float32)}
    with pytest.raises(errors.InputError, match=r"one floating dtype, got \['float32', 'float64'\]"):
        GPT(CFG, params=mixed)
    ints = {k: v.astype(np.int64) for k, v in params.items()}
    with pytest.raises(errors.InputError, match=r"got \['int64'\]"):
        GPT(CFG, params=ints)


def test_a_training_sequence_longer_than_block_size():
    model = GPT(CFG)
    trainer = Trainer(model, None, None, TrainConfig(steps=1, batch_size=1, eval_interval=0),
                      batch_fn=lambda rng: (np.zeros((1, 6), int), np.zeros((1, 6), int)))
    with pytest.raises(errors.InputError, match="sequence length 6 exceeds block_size 4"):
        trainer.run(progress=False)


@pytest.mark.parametrize("kwargs, words", [
    (dict(n_embd=10, n_head=3), "n_embd=10 is not divisible by n_head=3"),
    (dict(n_layer=0), "n_layer must be a positive integer, got 0"),
    (dict(n_embd=-4), "n_embd must be a positive integer, got -4"),
    (dict(block_size=0), "block_size"),
    (dict(dropout=1.0), "dropout must be in [0, 1), got 1.0"),
    (dict(dropout=-0.1), "dropout must be in [0, 1), got -0.1"),
    (dict(norm="side"), "norm must be one of pre, post, none; got 'side'"),
    (dict(n_layer=True), "n_layer must be a positive integer, got True"),     # a bool is an int to Python
    (dict(vocab_size=65.0), "vocab_size must be a positive integer, got 65.0"),
])
def test_bad_model_settings(kwargs, words):
    with pytest.raises(errors.ConfigError) as e:
        GPTConfig(**{**CFG.to_dict(), **kwargs})
    assert words in str(e.value)


def test_a_config_dict_with_an_unknown_key():
    # from_dict reads configs from checkpoints and files: a misspelt key must not be a TypeError.
    with pytest.raises(errors.ConfigError, match="unknown config keys: n_layers, width"):
        GPTConfig.from_dict({**CFG.to_dict(), "n_layers": 2, "width": 8})
    assert GPTConfig.from_dict(CFG.to_dict()) == CFG


def test_kv_cache_positions_past_the_block():
    model = GPT(CFG)
    model.training = False
    caches = model.new_kv_caches(1)
    with pytest.raises(errors.InputError, match="positions up to 5 exceed block_size 4"):
        model.forward(np.zeros((1, 2), np.int64), kv_caches=caches, pos0=3)


@pytest.mark.parametrize("kwargs, words", [
    (dict(steps=0), "steps must be a positive integer, got 0"),
    (dict(steps=-3), "got -3"),
    (dict(batch_size=0), "batch_size must be a positive integer, got 0"),
    (dict(seed=-1), "seed must be an integer >= 0, got -1"),
    (dict(seed=2 ** 63), "seed must be an integer from 0 to 2**63 - 1, got 9223372036854775808"),
])
def test_bad_training_settings(kwargs, words):
    with pytest.raises(errors.ConfigError, match=None) as e:
        TrainConfig(**kwargs)
    assert words in str(e.value)


@pytest.mark.parametrize("kwargs, words", [
    (dict(temperature=0), "temperature must be > 0, got 0"),
    (dict(temperature=-1.0), "temperature must be > 0"),
    (dict(top_k=0), "top_k must be an integer >= 1, got 0"),
    (dict(top_p=0.0), "top_p must be in (0, 1], got 0.0"),
    (dict(top_p=1.5), "top_p must be in (0, 1], got 1.5"),
    (dict(beam_width=0), "beam width must be an integer >= 1, got 0"),
    (dict(max_new_tokens=-1), "max_new_tokens must be a non-negative integer, got -1"),
])
def test_bad_sampling_settings(kwargs, words):
    with pytest.raises(errors.ConfigError) as e:
        check_sampling(**kwargs)
    assert words in str(e.value)
    kwargs = {"max_new_tokens": 3, **kwargs}
    with pytest.raises(errors.ConfigError, match=re.escape(words)):
        GPT(CFG).generate(np.zeros((1, 2), int), **kwargs)


def test_corpus_errors(tmp_path):
    with pytest.raises(CorpusNotFoundError) as e:
        load_text(tmp_path / "missing.txt")
    assert "missing.txt" in str(e.value)
    (tmp_path / "empty.txt").write_bytes(b"")
    with pytest.raises(EmptyCorpusError, match="empty.txt is empty"):
        load_text(tmp_path / "empty.txt")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    with pytest.raises(CorpusDecodeError, match=r"latin1.txt is not valid UTF-8.*byte offset 3"):
        load_text(tmp_path / "latin1.txt")
    with pytest.raises(DataTooShortError, match="data has 3 tokens"):
        get_batch(np.arange(3), 4, 1, np.random.default_rng(0))


def test_a_word_outside_the_vocabulary_and_a_bad_tokenizer():
    with pytest.raises(UnknownTokenError, match="unknown word 'banana'") as e:
        WordTokenizer(["what", "is"]).encode("what is banana")
    assert e.value.token == "banana"
    with pytest.raises(TokenizerFormatError, match="'klingon'"):
        tokenizer_from_dict({"kind": "klingon"})


@pytest.mark.filterwarnings("ignore::RuntimeWarning")   # the NaN and overflow it makes on purpose
def test_nan_in_the_loss_or_the_parameters_stops_training_naming_the_step():
    model = GPT(GPTConfig(vocab_size=5, block_size=4, n_layer=1, n_head=1, n_embd=4), dtype=np.float64)
    data = np.arange(100) % 5
    trainer = Trainer(model, data, None, TrainConfig(steps=6, batch_size=2, eval_interval=0))
    trainer.run(steps=3, progress=False)
    model.params["wte.weight"][0, 0] = np.inf
    with np.errstate(all="ignore"), pytest.raises(TrainingDivergedError, match="at step 3"):
        trainer.run(progress=False)


# ------------------------------------------------------------------------- the command line
@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A small word-level checkpoint, as a user would have saved it."""
    d = tmp_path_factory.mktemp("saved")
    (d / "words.txt").write_text("what is apple <EOS> healthy <EOS>\n" * 30)
    ckpt = str(d / "words.safetensors")
    assert main(["train", "--data", str(d / "words.txt"), "--tokenizer", "word", "--out", ckpt,
                 "--steps", "2", *TINY]) == 0
    return d, ckpt


def run_cli(capsys, *argv):
    rc = main(list(argv))
    err = capsys.readouterr().err
    return rc, err


def snapshot(folder):
    return {p: (os.path.getmtime(os.path.join(folder, p)), open(os.path.join(folder, p), "rb").read())
            for p in sorted(os.listdir(folder))}


@pytest.mark.parametrize("argv, rc, words", [
    (["frobnicate"], 2, "invalid choice: 'frobnicate'"),
    (["train", "--norm", "sideways"], 2, "argument --norm: invalid choice: 'sideways'"),
    (["train", "--steps", "many"], 2, "argument --steps: invalid int value: 'many'"),
    (["train", "--bogus"], 2, "unrecognized arguments: --bogus (see 'numpy-gpt train --help')"),
    (["check", "ffn", "--bogus"], 2, "unrecognized arguments: --bogus (see 'numpy-gpt check --help')"),
    (["--bogus"], 2, "unrecognized arguments: --bogus; expected a COMMAND first"),
    (["bench", "--nonsense"], 2, "unrecognized arguments: --nonsense (see 'numpy-gpt bench --help')"),
    (["bench", "--configs", "huge"], 2, "unknown config(s) ['huge']"),
    (["bench", "--threads", "two"], 2, "--threads 'two': expected thread counts separated by commas"),
    (["generate", "--prompt", "x"], 2, "one of the arguments --checkpoint --gpt2 is required"),
    (["train", "--n-embd", "10", "--n-head", "3"], 1, "n_embd=10 is not divisible by n_head=3"),
    (["train", "--n-layer", "0"], 1, "n_layer must be a positive integer, got 0"),
    (["train", "--block-size", "-8"], 1, "block_size must be a positive integer, got -8"),
    (["train", "--steps", "0"], 1, "steps must be a positive integer, got 0"),
    (["train", "--batch-size", "-1"], 1, "batch_size must be a positive integer, got -1"),
    (["train", "--dropout", "1"], 1, "dropout must be in [0, 1), got 1.0"),
    (["train", "--dropout", "-0.5"], 1, "dropout must be in [0, 1), got -0.5"),
    (["train", "--weight-decay", "-1"], 1, "weight_decay must be a finite number >= 0, got -1.0"),
    (["train", "--data", "{d}/missing.txt"], 1, "corpus file not found: {d}/missing.txt"),
    (["train", "--data", "{d}"], 1, "corpus is a folder, not a text file: {d}"),
    (["demo", "--steps", "0", "--no-torch"], 1, "steps must be a positive integer, got 0"),
    (["generate", "--gpt2", "{d}/nothing.safetensors", "--prompt", "x"], 1,
     "GPT-2 weights {d}/nothing.safetensors not found"),
    (["train", "--data", "{d}/empty.txt"], 1, "empty.txt is empty"),
    (["train", "--data", "{d}/latin1.txt"], 1, "latin1.txt is not valid UTF-8: invalid continuation byte at "
                                             "byte offset 3"),
    (["train", "--data", "{d}/short.txt"], 1, "short.txt gives 5 training tokens with the char tokenizer, "
                                            "but block_size=64 needs at least 65"),
    (["train", "--config", "{d}/missing.toml"], 1, "config file {d}/missing.toml not found"),
    (["train", "--config", "{d}/bad.toml"], 1, "unknown setting 'n_layers'"),
    (["generate", "--checkpoint", "{ckpt}", "--prompt", "what is banana"], 1, "unknown word 'banana'"),
    (["generate", "--checkpoint", "{ckpt}", "--prompt", "what", "--temperature", "0"], 1,
     "temperature must be > 0, got 0.0"),
    (["generate", "--checkpoint", "{ckpt}", "--prompt", "what", "--top-k", "0"], 1, "top_k must be an integer >= 1"),
    (["generate", "--checkpoint", "{ckpt}", "--prompt", "what", "--top-p", "1.01"], 1, "top_p must be in (0, 1]"),
    (["generate", "--checkpoint", "{ckpt}", "--prompt", "what", "--beam-width", "0"], 1,
     "beam width must be an integer >= 1, got 0"),
    (["generate", "--checkpoint", "{ckpt}", "--prompt", "what", "--max-new-tokens", "-5"], 1,
     "max_new_tokens must be a non-negative integer, got -5"),
    (["generate", "--checkpoint", "{d}/nothing.safetensors", "--prompt", "x"], 1,
     "checkpoint {d}/nothing.safetensors not found"),
    (["generate", "--checkpoint", "{d}/truncated.safetensors", "--prompt", "x"], 1, "is truncated"),
    (["generate", "--checkpoint", "{d}/corrupt.safetensors", "--prompt", "x"], 1, "is corrupt"),
    (["train", "--resume", "{ckpt}", "--n-layer", "2", "--steps", "5"], 1,
     "was made for n_layer=1, but --n-layer 2 was given"),
    (["parity", "--checkpoint", "{ckpt}", "--n-embd", "16"], 1, "was made for n_embd=8, but --n-embd 16"),
    (["train", "--out", "{ckpt}"], 2, "already exists: pass --resume"),
    (["train", "--out", "{d}/short.txt/model.safetensors"], 1,       # found before the training, not after
     "cannot write {d}/short.txt/model.safetensors: {d}/short.txt is a file, not a folder"),
    (["train", "--data", "{d}/missing.txt", "--out", "{d}/new/model.safetensors"], 1,  # and no folder made
     "corpus file not found"),
    (["generate", "--gpt2", "{d}/gpt2_bad.safetensors", "--prompt", "x"], 1, "missing transformer.h.0.mlp.c_fc.bias"),
    (["train", "--val-fraction", "1"], 1, "--val-fraction must be in [0, 1), got 1.0"),
    (["train", "--resume", "{ckpt}", "--steps", "2"], 1, "is already at step 2; pass --steps above it"),
    (["gradcheck", "--samples", "-1"], 1, "--samples must be >= 0 (0 checks every entry), got -1"),
    (["train", "--save-interval", "-1"], 1, "--save-interval must be >= 0 (0: only at the end), got -1"),
    (["generate", "--checkpoint", "{ckpt}", "--prompt", ""], 1, "the prompt is empty"),
    (["train", "--resume", "{ckpt}", "--steps", "5", "--optimizer", "sgd"], 1,
     "holds adamw's optimizer state, but this run's optimizer is sgd: resume it with adamw (--optimizer adamw)"),
    (["train", "--resume", "{ckpt}", "--steps", "5", "--optimizer", "adam", "--backend", "torch"], 1,
     "holds adamw's optimizer state, but this run's optimizer is adam"),
    (["train", "--resume", "{ckpt}", "--out", "{d}/short.txt", "--steps", "5"], 2,       # another file: kept
     "{d}/short.txt already exists and is not the checkpoint resumed ({ckpt}): pass --force"),
    (["train", "--plot", "{d}/curve.txt"], 2,                          # refused before the training, not after
     "--plot {d}/curve.txt: the loss curve is written as .png, .pdf, .svg"),
    (["train", "--plot", "{d}/curve"], 2, "--plot {d}/curve: the loss curve is written as"),
    (["train", "--plot", "{d}/short.txt/curve.png"], 1, "cannot write {d}/short.txt/curve.png"),
    (["train", "--seed", "9223372036854775808"], 2,
     "argument --seed: must be an integer from 0 to 2**63 - 1, got 9223372036854775808"),
    (["generate", "--checkpoint", "{ckpt}", "--prompt", "what", "--seed", "-1"], 2,
     "argument --seed: must be an integer from 0 to 2**63 - 1, got -1"),
    (["parity", "--seed", "-1"], 2, "argument --seed: must be an integer"),
    (["gradcheck", "--seed", "-1"], 2, "argument --seed: must be an integer"),
    (["demo", "--seed", "-1"], 2, "argument --seed: must be an integer"),
])
def test_each_bad_input_is_one_line_on_stderr_and_leaves_saved_files_alone(saved, capsys, monkeypatch, tmp_path,
                                                                            argv, rc, words):
    d, ckpt = saved
    monkeypatch.chdir(tmp_path)                      # the default --out is relative
    for name, data in [("empty.txt", b""), ("latin1.txt", "caf\xe9 au lait".encode("latin-1")),
                       ("short.txt", b"abcde"), ("bad.toml", b"n_layers = 2\n")]:
        if not (d / name).exists():
            (d / name).write_bytes(data)
    if not (d / "truncated.safetensors").exists():
        raw = open(ckpt, "rb").read()
        (d / "truncated.safetensors").write_bytes(raw[: len(raw) // 2])
        (d / "corrupt.safetensors").write_bytes(raw[:-10] + bytes(10))
        from numpy_gpt.gpt2 import to_gpt2
        from safetensors.numpy import save_file
        model = GPT(GPTConfig(vocab_size=7, block_size=4, n_layer=1, n_head=1, n_embd=64, pos_encoding="learned"))
        sd = {k: np.ascontiguousarray(v) for k, v in to_gpt2(model).items()}
        del sd["transformer.h.0.mlp.c_fc.bias"]
        save_file(sd, str(d / "gpt2_bad.safetensors"))
    before = snapshot(d)
    argv = [a.format(d=d, ckpt=ckpt) for a in argv]
    code, err = run_cli(capsys, *argv)
    assert code == rc
    assert err.count("\n") == 1 and err.startswith("numpy-gpt: error: "), err
    assert words.format(d=d, ckpt=ckpt) in err
    assert "Traceback" not in err
    assert snapshot(d) == before, "a failed command touched the user's files"


# The NaN and overflow it makes on purpose are the one-line error's to report: no NumPy warning
# may escape, from the calling thread or from the pool's (np.errstate reaches both).
@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_divergence_keeps_the_last_good_checkpoint(tmp_path, capsys, threads):
    threads(2)
    out = str(tmp_path / "run.safetensors")
    argv = ["train", "--out", out, "--optimizer", "sgd", "--lr", "1e30", "--grad-clip", "0", "--schedule",
            "constant", "--steps", "20", "--save-interval", "1", *TINY]
    code, err = run_cli(capsys, *argv)
    assert code == 1 and err.count("\n") == 1
    assert "training diverged at step" in err and f"the last good checkpoint, {out} (step" in err
    from numpy_gpt.checkpoint import load_checkpoint
    ckpt = load_checkpoint(out)
    assert f"(step {ckpt.step})" in err
    assert all(np.isfinite(v).all() for v in ckpt.params.values())


def test_debug_shows_the_traceback_and_the_console_script_does_not(tmp_path, capsys):
    with pytest.raises(errors.ConfigError):
        main(["--debug", "train", "--steps", "0"])
    env = child_env(OPENBLAS_NUM_THREADS="1")
    plain = subprocess.run([sys.executable, "-m", "numpy_gpt", "train", "--steps", "0"], capture_output=True,
                           text=True, cwd=tmp_path, env=env)
    assert plain.returncode == 1 and plain.stderr == "numpy-gpt: error: steps must be a positive integer, got 0\n"
    debug = subprocess.run([sys.executable, "-m", "numpy_gpt", "train", "--steps", "0", "--debug"],
                           capture_output=True, text=True, cwd=tmp_path, env=env)
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "ConfigError" in debug.stderr
