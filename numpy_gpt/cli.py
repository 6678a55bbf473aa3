"""The numpy-gpt command line.  `numpy-gpt COMMAND --help` documents each command.

    numpy-gpt train       train a GPT (numpy or torch), with checkpoints you can resume
    numpy-gpt generate    continue a prompt from a checkpoint (or GPT-2 weights), streaming
    numpy-gpt parity      numpy_gpt against torch autograd, activation by activation, gradient by gradient
    numpy-gpt gradcheck   every layer and the whole model against finite differences (float64)
    numpy-gpt bench       the benchmark suite (benchmarks/run.py, from a source checkout)
    numpy-gpt demo        the README's main job

A bad input (a missing file, an out-of-range setting, a corrupt checkpoint, ...) prints one
line on stderr, "numpy-gpt: error: ...", and exits with 1 (2 for a malformed command line);
--debug shows the traceback instead. Training stopped by Ctrl-C or SIGTERM saves a checkpoint
and exits with 130 or 143.

More commands plug in: a module numpy_gpt/<name>.py for a name in PLUGINS that defines
register(subparsers) gets its command added, if the module exists. register() calls
subparsers.add_parser(name, ...) and sets func=handler(args) -> exit code; the module is
imported each time the parser is built, so it should import heavy things inside the handler.

numpy_gpt never imports torch: commands that need it load torch_gpt.cli on demand.
"""
from __future__ import annotations

import argparse
import codecs
import importlib
import json
import os
import signal
import sys

import numpy as np

from .config import MAX_SEED
from .errors import (CheckpointError, CheckpointMismatchError, ConfigError, DependencyError, InputError,
                     NumpyGPTError, UsageError)

PROG = "numpy-gpt"
PLUGINS = ("trace", "check", "pictures")
EXIT_ERROR, EXIT_USAGE, EXIT_SIGINT, EXIT_SIGTERM = 1, 2, 130, 143
DEFAULT_OUT = os.path.join("out", "model.safetensors")
PLOT_SUFFIXES = (".png", ".pdf", ".svg")            # formats every matplotlib backend for files writes

# Model flags: option name -> GPTConfig field.
MODEL_FLAGS = {"n_layer": "--n-layer", "n_head": "--n-head", "n_embd": "--n-embd", "block_size": "--block-size",
               "pos_encoding": "--pos-encoding", "norm": "--norm", "activation": "--activation",
               "dropout": "--dropout", "mlp": "--no-mlp", "bias": "--no-bias", "tie_weights": "--untied",
               "vocab_size": "--vocab-size"}
# The character model of the demo: what `train` builds when nothing else is said.
TRAIN_MODEL_DEFAULTS = dict(block_size=64, n_layer=2, n_head=4, n_embd=64, pos_encoding="learned", norm="pre",
                            activation="gelu", dropout=0.0, mlp=True, bias=True, tie_weights=True)
# A model small enough for finite differences: 1,848 parameter entries, 8 per tensor checked (the
# default) in about 2 s with the layers, every one (--samples 0) in about 12 s (2-core Zen 3 host).
GRADCHECK_MODEL_DEFAULTS = dict(vocab_size=7, block_size=4, n_layer=2, n_head=2, n_embd=8, pos_encoding="learned")
TRAIN_FLAGS = {"steps": "--steps", "batch_size": "--batch-size", "optimizer": "--optimizer", "lr": "--lr",
               "min_lr": "--min-lr", "warmup_steps": "--warmup-steps", "schedule": "--schedule",
               "weight_decay": "--weight-decay", "grad_clip": "--grad-clip", "eval_interval": "--eval-interval",
               "eval_batches": "--eval-batches"}


class ArgumentParser(argparse.ArgumentParser):
    """argparse, with its errors raised as UsageError (one line, exit 2) instead of printed usage."""

    def error(self, message):
        raise UsageError(f"{message} (see '{self.prog} --help')")


def seed_arg(text: str) -> int:
    """The type of every --seed: an integer that both NumPy's and torch's generators take."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be an integer from 0 to 2**63 - 1, got {value}")
    return value


# ----------------------------------------------------------------------------- backends
class NumpyBackend:
    """What `train` and `generate` need from an implementation; torch_gpt.cli.TorchBackend is its twin."""
    name = "numpy"

    def new_model(self, cfg, seed: int, dtype, params: dict | None = None, copy: bool = True):
        """copy=False: params are the model's own already (a checkpoint's, read packed, in dtype)."""
        from .model import GPT, packed_params
        if params is not None and copy:
            params = packed_params(params, dtype)
        return GPT(cfg, seed=seed, dtype=dtype, params=params)

    def trainer(self, model, train, val, tcfg):
        from .train import Trainer
        return Trainer(model, train, val, tcfg)

    def params(self, model) -> dict[str, np.ndarray]:
        return model.params

    def all_finite(self, model) -> bool:
        return all(np.isfinite(p).all() for p in model.params.values())

    def save(self, path, model, trainer, tokenizer, run) -> str:
        from .checkpoint import save
        return save(path, model, trainer, tokenizer, run)

    def restore(self, trainer, ckpt) -> None:
        from .checkpoint import restore_trainer
        restore_trainer(trainer, ckpt)

    def generate(self, model, ids: list[int], max_new_tokens: int, seed: int, on_token, **kw) -> list[int]:
        out = model.generate(np.array([ids], dtype=np.int64), max_new_tokens, rng=np.random.default_rng(seed),
                             on_token=lambda t: on_token(int(t[0])), **kw)
        return out[0].tolist()


# The pin keeps pip on the CPU wheel (pyproject.toml's torch extra says why); numpy-gpt is
# installed from its checkout, so the extra is named there, not on a package index.
INSTALL_TORCH = "pip install torch==2.13.0 (or, in the numpy-gpt checkout, pip install -e '.[torch]')"


def torch_cli():
    """torch_gpt.cli, or DependencyError when torch is not installed."""
    try:
        return importlib.import_module("torch_gpt.cli")
    except ModuleNotFoundError as e:
        if e.name and e.name.split(".")[0] in ("torch", "torch_gpt"):
            raise DependencyError(f"this needs PyTorch, which is not installed: {INSTALL_TORCH}") from None
        raise


def backend(name: str):
    return NumpyBackend() if name == "numpy" else torch_cli().BACKEND


# ------------------------------------------------------------------------ configuration
def load_config_file(path: str) -> dict:
    """A JSON or TOML file of settings: flat, or in [model] and [train] sections.

    Returns {"model": {...}, "train": {...}} with each key checked against GPTConfig / TrainConfig.
    """
    from .config import GPTConfig
    from .train import TrainConfig
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {path} is a folder") from None
    is_toml = path.endswith(".toml") or (not path.endswith(".json") and not raw.lstrip().startswith(b"{"))
    try:
        if is_toml:
            import tomllib
            data = tomllib.loads(raw.decode("utf-8"))
        else:
            data = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise ConfigError(f"config file {path} is not valid {'TOML' if is_toml else 'JSON'}: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a table of settings, got {type(data).__name__}")
    model_keys = set(GPTConfig.__dataclass_fields__)
    train_keys = set(TrainConfig.__dataclass_fields__) - {"seed"}
    out: dict[str, dict] = {"model": {}, "train": {}}
    for key, value in data.items():
        if key in ("model", "train") and isinstance(value, dict):
            known = model_keys if key == "model" else train_keys
            unknown = sorted(set(value) - known)
            if unknown:
                raise ConfigError(f"config file {path}: unknown [{key}] settings {', '.join(unknown)}; "
                                  f"known: {', '.join(sorted(known))}")
            out[key].update(value)
        elif key in model_keys:
            out["model"][key] = value
        elif key in train_keys:
            out["train"][key] = value
        else:
            raise ConfigError(f"config file {path}: unknown setting {key!r}; known: "
                              f"{', '.join(sorted(model_keys | train_keys))}")
    return out


def _model_overrides(args) -> dict:
    """The model settings given as flags (only those actually given)."""
    d = {}
    for field in ("n_layer", "n_head", "n_embd", "block_size", "pos_encoding", "norm", "activation", "dropout",
                  "vocab_size"):
        if getattr(args, field, None) is not None:
            d[field] = getattr(args, field)
    if getattr(args, "no_mlp", False):
        d["mlp"] = False
    if getattr(args, "no_bias", False):
        d["bias"] = False
    if getattr(args, "untied", False):
        d["tie_weights"] = False
    return d


def model_config(args, defaults: dict, **fixed):
    """GPTConfig from defaults < --config file < flags (< fixed)."""
    from .config import GPTConfig
    file = load_config_file(args.config)["model"] if getattr(args, "config", None) else {}
    return GPTConfig(**{**defaults, **file, **_model_overrides(args), **fixed})


def check_against(ckpt, args) -> None:
    """CheckpointMismatchError if the model settings on the command line (or --config) disagree with ckpt's."""
    asked = {**(load_config_file(args.config)["model"] if getattr(args, "config", None) else {}),
             **_model_overrides(args)}
    have = ckpt.config.to_dict()
    diff = {k: v for k, v in asked.items() if have.get(k) != v}
    if diff:
        raise CheckpointMismatchError(
            f"checkpoint {ckpt.path} was made for "
            + ", ".join(f"{k}={have[k]!r}" for k in diff) + ", but "
            + ", ".join(f"{MODEL_FLAGS.get(k, k)} {v!r}" if not isinstance(v, bool) else MODEL_FLAGS.get(k, k)
                        for k, v in diff.items()) + " was given", ckpt.path)


def train_config(args, base: dict | None = None, seed: int = 0):
    """TrainConfig from base (a checkpoint's, or the defaults) < --config file < flags."""
    from .train import TrainConfig
    d = dict(base) if base else {"seed": seed}
    if getattr(args, "config", None):
        d.update(load_config_file(args.config)["train"])
    for field in TRAIN_FLAGS:
        if getattr(args, field, None) is not None:
            d[field] = getattr(args, field)
    if isinstance(d.get("betas"), list):
        d["betas"] = tuple(d["betas"])          # as JSON and TOML give them back
    return TrainConfig(**d)                    # which checks every value (ConfigError)


# ---------------------------------------------------------------------------- tokenizers
def build_tokenizer(kind: str, text: str, args):
    from .tokenizers import ByteBPETokenizer, CharTokenizer, WordTokenizer
    if kind == "char":
        return CharTokenizer.from_text(text)
    if kind == "word":
        if not text.split():
            raise InputError("the corpus has no words (only whitespace): a word tokenizer needs at least one")
        return WordTokenizer.from_text(text)
    if kind == "bpe":
        if args.bpe_vocab_size < 256:
            raise ConfigError(f"--bpe-vocab-size must be at least 256 (the byte tokens), got {args.bpe_vocab_size}")
        return ByteBPETokenizer.train(text, args.bpe_vocab_size)
    from .gpt2 import gpt2_tokenizer
    if not args.gpt2_vocab:
        raise UsageError("--tokenizer gpt2 needs --gpt2-vocab DIR (a folder with vocab.json and merges.txt)")
    tok = gpt2_tokenizer(args.gpt2_vocab)
    if tok is None:
        raise ConfigError(f"{args.gpt2_vocab} holds no GPT-2 vocabulary: expected vocab.json and merges.txt there")
    return tok


def eos_id(tok) -> int | None:
    if tok.kind == "word":
        return tok.eos_id
    if tok.kind == "byte_bpe":
        return tok.special_tokens.get("<|endoftext|>")
    return None


def token_text(tok):
    """A function id -> the text to print for it, for streaming (bytes of BPE tokens are
    decoded incrementally, so a character split across tokens prints once it is whole)."""
    if tok.kind == "word":
        return lambda i: " " + tok.words[i]
    if tok.kind == "char":
        return lambda i: tok.chars[i]
    dec = codecs.getincrementaldecoder("utf-8")(errors="replace")
    return lambda i: dec.decode(tok.token_bytes[i])


# ------------------------------------------------------------------------------- train
class _Stopped(Exception):
    """Raised from the step callback after a SIGINT or SIGTERM, between two steps."""


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _describe(cfg) -> str:
    return (f"{_plural(cfg.n_layer, 'layer')} x {_plural(cfg.n_head, 'head')} x {cfg.n_embd} channels, "
            f"block {cfg.block_size}, vocab {cfg.vocab_size}, {cfg.pos_encoding} positions, {cfg.norm}-LN, "
            f"{cfg.activation}")


def cmd_train(args) -> int:
    from .checkpoint import check_writable, load_checkpoint
    from .data import DataTooShortError, demo_corpus, load_text, train_val_split
    from .parallel import get_num_threads
    from .train import TrainingDivergedError

    be = backend(args.backend)                       # a missing torch fails before any work
    get_num_threads()                                # a bad NUMPY_GPT_NUM_THREADS, too
    if args.processes and be.name != "numpy":
        raise UsageError(f"--processes works with --backend numpy only, not {be.name}")
    if args.val_fraction is not None and not 0.0 <= args.val_fraction < 1.0:
        raise ConfigError(f"--val-fraction must be in [0, 1), got {args.val_fraction}")
    if args.save_interval < 0:
        raise ConfigError(f"--save-interval must be >= 0 (0: only at the end), got {args.save_interval}")
    if not args.resume:                            # settings first: fail before reading or tokenizing text
        model_config(args, TRAIN_MODEL_DEFAULTS, vocab_size=1)
        train_config(args, None, args.seed)
    ckpt = load_checkpoint(args.resume, dtype=args.dtype) if args.resume else None
    out = args.out or (args.resume if args.resume else DEFAULT_OUT)
    if ckpt is None and os.path.exists(out) and not args.force:
        raise UsageError(f"{out} already exists: pass --resume {out} to continue it, --force to overwrite "
                         "it, or --out for a new file")
    if ckpt is not None and os.path.exists(out) and not os.path.samefile(out, args.resume) and not args.force:
        raise UsageError(f"{out} already exists and is not the checkpoint resumed ({args.resume}): pass "
                         "--force to overwrite it, or another --out")
    check_writable(out)                            # before the training, not after it
    plot = None if args.no_plot else args.plot or os.path.splitext(out)[0] + "_loss.png"
    if plot is not None:
        if os.path.splitext(plot)[1].lower() not in PLOT_SUFFIXES:
            raise UsageError(f"--plot {plot}: the loss curve is written as {', '.join(PLOT_SUFFIXES)}; "
                             "end the name with one of them")
        check_writable(plot)

    # Data and tokenizer: a resumed run keeps its own unless told otherwise.
    run = dict(ckpt.run) if ckpt else {}
    data_path = args.data if args.data is not None else run.get("data")
    text = load_text(data_path) if data_path else demo_corpus()
    if ckpt:
        check_against(ckpt, args)
        if ckpt.tokenizer is None:
            raise CheckpointError(f"checkpoint {ckpt.path} holds no tokenizer, so its corpus cannot be encoded",
                                  ckpt.path)
        if args.tokenizer is not None and args.tokenizer != {"byte_bpe": "bpe"}.get(ckpt.tokenizer.kind,
                                                                                     ckpt.tokenizer.kind):
            raise CheckpointMismatchError(f"checkpoint {ckpt.path} uses a {ckpt.tokenizer.kind} tokenizer, but "
                                          f"--tokenizer {args.tokenizer} was given", ckpt.path)
        tok, cfg = ckpt.tokenizer, ckpt.config
    else:
        tok = build_tokenizer(args.tokenizer or "char", text, args)
        cfg = model_config(args, TRAIN_MODEL_DEFAULTS, vocab_size=tok.vocab_size)
    val_fraction = args.val_fraction if args.val_fraction is not None else run.get("val_fraction", 0.1)
    ids = np.array(tok.encode(text), dtype=np.int64)
    train_ids, val_ids = train_val_split(ids, val_fraction)
    where = data_path or "the demo corpus"
    if len(train_ids) < cfg.block_size + 1:
        raise DataTooShortError(f"{where} gives {len(train_ids)} training tokens with the {tok.kind} tokenizer, "
                                f"but block_size={cfg.block_size} needs at least {cfg.block_size + 1}: use a "
                                "smaller --block-size or more text")
    if len(val_ids) < cfg.block_size + 1:
        val_ids = None

    seed = int(run.get("seed", args.seed)) if ckpt else args.seed
    tcfg = train_config(args, ckpt.train_config.to_dict() if ckpt and ckpt.train_config else None, seed)
    if ckpt and tcfg.steps <= ckpt.step:
        raise ConfigError(f"checkpoint {ckpt.path} is already at step {ckpt.step}; pass --steps above it "
                          f"to train on (got {tcfg.steps})")
    dtype = np.dtype(args.dtype or (next(iter(ckpt.params.values())).dtype.name if ckpt else "float32"))
    if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ConfigError(f"dtype must be float32 or float64, got {dtype}")
    # a checkpoint's parameters were read in dtype, into a block of their own: the model takes them as they are
    model = be.new_model(cfg, seed, dtype, ckpt.params if ckpt else None, copy=False)
    trainer = be.trainer(model, train_ids, val_ids, tcfg)
    if ckpt:
        be.restore(trainer, ckpt)
    run = {"data": os.path.abspath(data_path) if data_path else None, "tokenizer": tok.kind,
           "val_fraction": val_fraction, "seed": seed, "dtype": dtype.name, "backend": be.name}
    n_params = sum(int(np.prod(v.shape)) for v in be.params(model).values())
    print(f"train: {be.name} backend, {dtype.name}, {n_params:,} parameters ({_describe(cfg)})")
    print(f"  data: {where}, {tok.kind} tokenizer ({tok.vocab_size} tokens), {len(train_ids):,} train / "
          f"{0 if val_ids is None else len(val_ids):,} validation tokens")
    print(f"  {tcfg.steps} steps of {tcfg.batch_size} x {cfg.block_size} tokens, {tcfg.optimizer} lr {tcfg.lr:g} "
          f"({tcfg.schedule}), seed {seed}" + (f"; resuming at step {ckpt.step}" if ckpt else ""))
    print(f"  checkpoint: {out}", flush=True)

    saved = {"step": ckpt.step if ckpt and os.path.abspath(out) == os.path.abspath(ckpt.path) else None}
    stop: dict = {"signal": None}

    def save():
        be.save(out, model, trainer, tok, run)
        saved["step"] = trainer.step

    def on_signal(signum, frame):
        if stop["signal"] is not None:             # a second Ctrl-C: quit now, save nothing
            raise KeyboardInterrupt
        stop["signal"] = signum
        print(f"\n{PROG}: {signal.Signals(signum).name}: saving a checkpoint after this step "
              "(Ctrl-C again to quit without saving)", file=sys.stderr, flush=True)

    def on_step(tr):
        if not be.all_finite(model):
            raise TrainingDivergedError(f"training diverged at step {tr.step - 1}: a parameter became NaN or inf")
        if args.save_interval and tr.step % args.save_interval == 0 and tr.step < tcfg.steps:
            save()
        if stop["signal"] is not None:
            raise _Stopped

    workers = None
    if args.processes:
        from .processes import ShardProcesses
        workers = ShardProcesses(model)
        print(f"  shards: this process and {len(workers.workers)} worker process(es)", flush=True)
    handlers = {}
    try:
        for s in (signal.SIGINT, signal.SIGTERM):
            handlers[s] = signal.signal(s, on_signal)
    except ValueError:                             # not the main thread: no signal handling
        pass
    try:
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):   # divergence is reported below
            trainer.run(progress=True if args.progress else "lines", on_step=on_step)
    except _Stopped:
        save()
        name = signal.Signals(stop["signal"]).name
        print(f"{PROG}: stopped by {name} at step {trainer.step}; checkpoint saved to {out}\n"
              f"  resume with: {PROG} train --resume {out}", file=sys.stderr)
        return EXIT_SIGINT if stop["signal"] == signal.SIGINT else EXIT_SIGTERM
    except TrainingDivergedError as e:
        kept = (f"the last good checkpoint, {out} (step {saved['step']}), is kept" if saved["step"] is not None
                else "no checkpoint was written")
        raise TrainingDivergedError(f"{e}; {kept}") from None
    finally:
        for s, h in handlers.items():
            signal.signal(s, h)
        if workers is not None:
            workers.close()
    save()
    h = trainer.history
    last = h.eval[-1] if h.eval and h.eval[-1]["step"] == trainer.step else {}
    # The losses of the last evaluation, as the step lines print them (means over the eval
    # batches); without one, the last training batch's loss, named as such.
    print(f"done: step {trainer.step}, "
          + (f"train loss {last['train_loss']:.4f}" if "train_loss" in last else f"last batch loss {h.loss[-1]:.4f}")
          + (f", val loss {last['val_loss']:.4f} (perplexity {last['val_ppl']:.2f})" if "val_loss" in last else "")
          + f", {h.tokens_per_s:,.0f} tokens/s")
    print(f"  checkpoint: {out}")
    if not args.no_plot:
        from .plots import plot_losses
        png = plot_losses({be.name: h}, plot, f"{PROG} train: {_describe(cfg)}")
        print(f"  loss curve: {png}" if png else "  (no loss curve: matplotlib is not installed)")
    return 0


# ---------------------------------------------------------------------------- generate
def cmd_generate(args) -> int:
    from .generation import check_sampling
    check_sampling(args.temperature, args.top_k, args.top_p, args.beam_width, args.max_new_tokens)
    be = backend(args.backend)
    if args.gpt2:
        from .gpt2 import from_gpt2, gpt2_tokenizer
        np_model = from_gpt2(args.gpt2, dtype=np.float32)
        tok = gpt2_tokenizer(args.gpt2 if os.path.isdir(args.gpt2) else os.path.dirname(os.path.abspath(args.gpt2)))
        if tok is None:
            raise ConfigError(f"no GPT-2 vocabulary beside {args.gpt2}: expected vocab.json and merges.txt there")
        model = np_model if be.name == "numpy" else be.new_model(np_model.config, 0, np.float32, np_model.params,
                                                                 copy=False)
    else:
        from .checkpoint import load_checkpoint
        ckpt = load_checkpoint(args.checkpoint, weights_only=True)
        if ckpt.tokenizer is None:
            raise CheckpointError(f"checkpoint {ckpt.path} holds no tokenizer, so --prompt cannot be encoded",
                                  ckpt.path)
        tok = ckpt.tokenizer
        dtype = next(iter(ckpt.params.values())).dtype
        model = be.new_model(ckpt.config, int(ckpt.run.get("seed", 0)), dtype, ckpt.params, copy=False)
    ids = tok.encode(args.prompt)
    if not ids:
        raise InputError("the prompt is empty: give at least one token of text to continue")
    kw = dict(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, greedy=args.greedy,
              beam_width=args.beam_width, eos_id=None if args.no_eos else eos_id(tok))
    text_of = token_text(tok)
    out = sys.stdout
    out.write(tok.decode(ids))
    out.flush()
    streamed = []

    def on_token(i: int):
        streamed.append(i)
        out.write(text_of(i))
        out.flush()

    result = be.generate(model, ids, args.max_new_tokens, args.seed, on_token, **kw)
    if args.beam_width is not None:                # beams are only known at the end
        new = result[len(ids):]
        out.write("".join(text_of(i) for i in new))
    out.write("\n")
    out.flush()
    return 0


# ------------------------------------------------------------------------------ parity
def cmd_parity(args) -> int:
    from .parity_report import format_rows, perturbed_params, summary, use_color
    tcli = torch_cli()
    dtype = np.dtype(args.dtype)
    if args.checkpoint:
        from .checkpoint import load_checkpoint
        ckpt = load_checkpoint(args.checkpoint, weights_only=True)
        check_against(ckpt, args)
        cfg, source = ckpt.config, f"checkpoint {args.checkpoint} (step {ckpt.step})"
        params = {k: v.astype(dtype) for k, v in ckpt.params.items()}
    else:
        cfg = model_config(args, {"vocab_size": 65})
        source = "GPT-2 initialization, biases and norm weights perturbed"
        params = perturbed_params(cfg, args.seed, dtype)
    if args.batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {args.batch_size}")
    if args.steps:
        return _parity_steps(args, tcli, cfg, params, source, ckpt.train_config if args.checkpoint else None)
    seq_len = args.seq_len if args.seq_len is not None else cfg.block_size
    if not 1 <= seq_len <= cfg.block_size:
        raise ConfigError(f"--seq-len must be in [1, block_size={cfg.block_size}], got {seq_len}")
    rows, info = tcli.parity(cfg, params, args.batch_size, seq_len, args.seed)
    color = use_color(sys.stdout, args.color)
    print(f"parity: numpy_gpt vs torch_gpt (autograd), {info['dtype']}, batch {info['batch'][0]} x "
          f"{info['batch'][1]}{', shared dropout masks' if info['dropout'] else ''}")
    print(f"  model: {_describe(cfg)}; weights: {source}")
    print(f"  exact: bitwise equal; close: rel diff <= {info['tol']:.0e} (the test suite's whole-model "
          "tolerance); rel diff = max|a - b| / max(|a|, |b|)")
    if info["trace"] == "close":                   # the activations listed are the trace's
        who = (f"ran the batch whole, model.forward in {info['shards']} shards (one per thread): their logits"
               if info["shards"] > 1 else "and model.forward's logits")
        print(f"  note: the activation trace {who} agree within rounding (rel diff {info['trace_rel']:.1e}), "
              "not bitwise")
    elif info["trace"] == "FAIL":
        print(f"  warning: the traced activations do not reproduce model.forward's logits (rel diff "
              f"{info['trace_rel']:.1e}): the activations listed may not be the model's")
    print(format_rows(rows, color))
    print(summary(rows))
    return EXIT_ERROR if any(r.status == "FAIL" for r in rows) else 0


def _parity_steps(args, tcli, cfg, params, source, saved_tcfg) -> int:
    """`numpy-gpt parity --steps N`: both training loops, step for step (torch_gpt.parity.run_trajectory)."""
    import dataclasses
    from .parity_report import FREE, FREE_NOTE, format_rows, format_steps, summary, use_color
    from .train import TrainConfig
    if args.steps < 0:
        raise ConfigError(f"--steps must be >= 0 (0: one batch, no training), got {args.steps}")
    if args.seq_len is not None:
        raise UsageError("--seq-len goes with one batch; a training run's batches are block_size long")
    if args.dtype != "float64":
        raise UsageError("--steps compares training runs in float64 only: in float32 the two runs' rounding "
                          "differences grow from step to step (the test suite judges float32 runs against a "
                          "float64 truth instead)")
    run_cfg = dataclasses.replace(cfg, dropout=0.0)
    settings = dict(steps=args.steps, batch_size=args.batch_size, eval_interval=0, seed=args.seed)
    tcfg = dataclasses.replace(saved_tcfg, **settings) if saved_tcfg is not None else TrainConfig(**settings)
    data = np.random.default_rng(args.seed).integers(0, cfg.vocab_size, max(4096, 4 * cfg.block_size))
    steps, rows, info = tcli.trajectory(run_cfg, params, tcfg, data)
    color = use_color(sys.stdout, args.color)
    print(f"parity: numpy_gpt's training loop vs torch_gpt's (autograd, torch.optim), {info['dtype']}, "
          f"{info['steps']} steps of batch {info['batch'][0]} x {info['batch'][1]}, the same batches of random "
          "tokens on both sides")
    print(f"  model: {_describe(run_cfg)}; weights: {source}")
    print(f"  training: {tcfg.optimizer}, lr {tcfg.lr:g} ({tcfg.schedule}, warmup {tcfg.warmup_steps}, min "
          f"{tcfg.min_lr:g}), weight decay {tcfg.weight_decay:g}, grad clip {tcfg.grad_clip:g}"
          f"{'; dropout off (each side would draw its own masks)' if cfg.dropout else ''}"
          f"{'; settings from the checkpoint, a fresh optimizer' if saved_tcfg is not None else ''}")
    print(f"  exact: bitwise equal; close: rel diff <= {info['tol']:.0e} (the test suite's tolerance for "
          "training runs); rel diff = max|a - b| / max(|a|, |b|)")
    print(format_steps(steps, color))
    print(f"after step {info['steps']}")
    print(format_rows(rows, color))
    if any(r.status == FREE for r in rows):
        print(FREE_NOTE)
    counts = {s: sum(r.status == s for r in steps) for s in ("exact", "close", "FAIL")}
    print(f"{len(steps)} steps: {counts['exact']} exact, {counts['close']} close, {counts['FAIL']} FAIL; "
          + summary(rows))
    return EXIT_ERROR if counts["FAIL"] or any(r.status == "FAIL" for r in rows) else 0


# --------------------------------------------------------------------------- gradcheck
def cmd_gradcheck(args) -> int:
    from .parity_report import FD_STEP, FD_TOL, format_gradcheck, layer_gradchecks, model_gradcheck, use_color
    if args.samples < 0:
        raise ConfigError(f"--samples must be >= 0 (0 checks every entry), got {args.samples}")
    cfg = model_config(args, GRADCHECK_MODEL_DEFAULTS)
    color = use_color(sys.stdout, args.color)
    print(f"gradcheck: hand-written backward vs central finite differences (the model's five-point), "
          f"float64, h = {FD_STEP:g}, tolerance {FD_TOL:g}")
    rows = []
    if not args.model_only:
        rows += layer_gradchecks(args.seed)
    sampled = f"{args.samples} entries per tensor" if args.samples else "every entry"
    step = (f", a training step (dropout {cfg.dropout:g}, its masks held for every nudge)" if args.training
            else "")
    print(f"  layers: small random shapes; model: {_describe(cfg)}, {sampled}{step}")
    if cfg.activation == "relu":
        print("  note: ReLU's kink at 0 can make an entry miss (finite differences' limit, not the backward's)")
    rows += model_gradcheck(cfg, args.samples, args.seed, training=args.training)
    print(format_gradcheck(rows, color))
    bad = [r for r in rows if r.status != "ok"]
    print(f"{len(rows)} checks: {len(rows) - len(bad)} ok, {len(bad)} FAIL")
    return EXIT_ERROR if bad else 0


# ------------------------------------------------------------------------- bench, demo
def cmd_bench(argv: list[str]) -> int:
    # benchmarks/ sits beside numpy_gpt/ in a source checkout (an editable install), not in the
    # package; the console script does not have that folder on sys.path the way `python -m` does.
    for root in (os.path.dirname(os.path.dirname(os.path.abspath(__file__))), os.getcwd()):
        if os.path.isfile(os.path.join(root, "benchmarks", "run.py")) and root not in sys.path:
            sys.path.insert(0, root)
            break
    try:
        run = importlib.import_module("benchmarks.run")
    except ModuleNotFoundError as e:
        if e.name and e.name.split(".")[0] == "benchmarks":
            raise DependencyError("the benchmarks live in the source tree (benchmarks/), not in the installed "
                                  "package: run numpy-gpt bench from a checkout of numpy-gpt") from None
        if e.name and e.name.split(".")[0] == "torch":
            raise DependencyError(f"the benchmarks need PyTorch: {INSTALL_TORCH}") from None
        raise
    run.main(argv, prog=f"{PROG} bench", parser=ArgumentParser)      # usage errors in one line
    return 0


def _demo(args) -> int:
    from .demo import run
    run(out_dir=args.out, steps=args.steps, with_torch=not args.no_torch, seed=args.seed,
        processes=not args.no_processes)
    return 0


# ------------------------------------------------------------------------------ parser
def _add_model_flags(p, with_vocab: bool = False):
    from .config import ACTIVATIONS, NORMS, POS_ENCODINGS
    g = p.add_argument_group("model (flags override --config)")
    g.add_argument("--config", metavar="FILE", help="JSON or TOML settings, flat or in [model] / [train] sections")
    g.add_argument("--n-layer", type=int, metavar="N", help="transformer blocks")
    g.add_argument("--n-head", type=int, metavar="N", help="attention heads (must divide --n-embd)")
    g.add_argument("--n-embd", type=int, metavar="C", help="channels of the residual stream")
    g.add_argument("--block-size", type=int, metavar="T", help="longest context")
    g.add_argument("--pos-encoding", choices=POS_ENCODINGS)
    g.add_argument("--norm", choices=NORMS, help="pre-LN (GPT-2), post-LN (original), or none")
    g.add_argument("--activation", choices=ACTIVATIONS, help="gelu is the tanh form (GPT-2)")
    g.add_argument("--dropout", type=float, metavar="P", help="in [0, 1)")
    g.add_argument("--no-mlp", action="store_true", help="leave out the feed-forward sublayer")
    g.add_argument("--no-bias", action="store_true", help="no biases in linear layers and norms")
    g.add_argument("--untied", action="store_true", help="a separate LM head instead of reusing wte")
    if with_vocab:
        g.add_argument("--vocab-size", type=int, metavar="V")


def _color_flag(p):
    p.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                   help="colour the status column (auto: when printing to a terminal and NO_COLOR is unset)")


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog=PROG, description="A GPT written by hand in NumPy, checked against PyTorch.",
                            epilog="Run '%(prog)s COMMAND --help' for a command's options.",
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=ArgumentParser)

    # train
    p = sub.add_parser("train", help="train a GPT and save a checkpoint",
                       description="Train a GPT on a text file (or the built-in demo corpus) and save one "
                                   "safetensors checkpoint. Ctrl-C or SIGTERM saves and stops; --resume continues "
                                   "bit for bit.")
    d = p.add_argument_group("data")
    d.add_argument("--data", metavar="PATH", help="a UTF-8 text file (default: the built-in demo corpus)")
    d.add_argument("--tokenizer", choices=("char", "word", "bpe", "gpt2"),
                   help="char (default), word (whitespace, with <EOS>), bpe (byte-level, trained on the data), "
                        "gpt2 (GPT-2's vocabulary from --gpt2-vocab)")
    d.add_argument("--bpe-vocab-size", type=int, default=512, metavar="N", help="vocabulary of --tokenizer bpe")
    d.add_argument("--gpt2-vocab", metavar="DIR", help="folder with GPT-2's vocab.json and merges.txt")
    d.add_argument("--val-fraction", type=float, metavar="F", help="the text's tail held out (default 0.1)")
    _add_model_flags(p)
    t = p.add_argument_group("training (flags override --config)")
    t.add_argument("--backend", choices=("numpy", "torch"), default="numpy")
    t.add_argument("--dtype", choices=("float32", "float64"), help="default float32 (a resumed run keeps its own)")
    t.add_argument("--steps", type=int, metavar="N", help="optimizer steps in total (default 300)")
    t.add_argument("--batch-size", type=int, metavar="B", help="sequences per step (default 16)")
    t.add_argument("--optimizer", choices=("sgd", "adam", "adamw"), help="default adamw")
    t.add_argument("--lr", type=float, metavar="LR", help="peak learning rate (default 3e-3)")
    t.add_argument("--min-lr", type=float, metavar="LR", help="floor of the cosine schedule (default 3e-4)")
    t.add_argument("--warmup-steps", type=int, metavar="N", help="linear warmup (default 20)")
    t.add_argument("--schedule", choices=("cosine", "constant"), help="default cosine")
    t.add_argument("--weight-decay", type=float, metavar="WD", help="default 0.1 (AdamW: weight matrices only)")
    t.add_argument("--grad-clip", type=float, metavar="NORM", help="global-norm clip, 0 for none (default 1.0)")
    t.add_argument("--eval-interval", type=int, metavar="N", help="steps between evaluations, 0 for none (default 50)")
    t.add_argument("--eval-batches", type=int, metavar="N", help="batches per evaluation (default 4)")
    t.add_argument("--seed", type=seed_arg, default=0, metavar="N", help="initial weights and batches (default 0)")
    t.add_argument("--processes", action="store_true",
                   help="numpy backend, 2+ threads, Linux: run every batch shard after the first in a worker "
                        "process instead of a thread (the same numbers; faster for small models, "
                        "numpy_gpt/processes.py)")
    o = p.add_argument_group("output")
    o.add_argument("--out", metavar="CHECKPOINT", help=f"checkpoint file (default {DEFAULT_OUT}; with --resume, "
                                                       "the resumed file)")
    o.add_argument("--resume", metavar="CHECKPOINT", help="continue the run saved in this checkpoint")
    o.add_argument("--force", action="store_true", help="overwrite an existing --out (other than the checkpoint resumed)")
    o.add_argument("--save-interval", type=int, default=100, metavar="N",
                   help="also save every N steps, 0 for only at the end (default 100)")
    o.add_argument("--plot", metavar="PNG", help="loss curve, .png, .pdf or .svg (default: next to the checkpoint, *_loss.png)")
    o.add_argument("--no-plot", action="store_true")
    o.add_argument("--no-progress", dest="progress", action="store_false",
                   help="no progress bar; print a line per evaluation instead")
    p.set_defaults(func=cmd_train)

    # generate
    p = sub.add_parser("generate", help="continue a prompt, streaming tokens as they come",
                       description="Continue a prompt with a trained model; tokens print as they are drawn.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", metavar="PATH", help="a checkpoint written by numpy-gpt train")
    src.add_argument("--gpt2", metavar="PATH", help="GPT-2 weights: model.safetensors (Hugging Face names) or its "
                                                    "folder, with vocab.json, merges.txt (and config.json) beside")
    p.add_argument("--prompt", required=True, help="the text to continue")
    p.add_argument("--max-new-tokens", type=int, default=200, metavar="N", help="tokens to generate (default 200)")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--greedy", action="store_true", help="always the most likely token")
    how.add_argument("--beam-width", type=int, metavar="K", help="beam search with K beams (printed at the end)")
    p.add_argument("--temperature", type=float, default=1.0, help="> 0; below 1 sharpens, above 1 flattens")
    p.add_argument("--top-k", type=int, metavar="K", help="sample from the K most likely tokens")
    p.add_argument("--top-p", type=float, metavar="P", help="sample from the nucleus of mass P, in (0, 1]")
    p.add_argument("--no-eos", action="store_true", help="do not stop at the end-of-sequence token")
    p.add_argument("--backend", choices=("numpy", "torch"), default="numpy")
    p.add_argument("--seed", type=seed_arg, default=0)
    p.set_defaults(func=cmd_generate)

    # parity
    p = sub.add_parser("parity", help="numpy_gpt vs torch autograd, tensor by tensor",
                       description="Run numpy_gpt and torch_gpt on the same batch; report every intermediate "
                                   "activation and every gradient: max abs diff, rel diff, exact / close / FAIL. "
                                   "Exits 1 on any FAIL. Needs torch.")
    p.add_argument("--checkpoint", metavar="PATH", help="compare on this checkpoint's weights and config")
    _add_model_flags(p, with_vocab=True)
    p.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    p.add_argument("--batch-size", type=int, default=2, metavar="B")
    p.add_argument("--seq-len", type=int, metavar="T", help="default: block_size")
    p.add_argument("--seed", type=seed_arg, default=0, help="the batch (and, without --checkpoint, the weights)")
    p.add_argument("--steps", type=int, default=0, metavar="N",
                   help="train N steps on both sides instead (float64, AdamW unless the checkpoint says "
                        "otherwise) and compare every step's loss and gradient norm, then every parameter "
                        "and optimizer buffer")
    _color_flag(p)
    p.set_defaults(func=cmd_parity)

    # gradcheck
    p = sub.add_parser("gradcheck", help="finite-difference check of every layer and the whole model",
                       description="Check every layer's backward, then the whole model's, against central "
                                   "finite differences in float64. Exits 1 on any FAIL.")
    _add_model_flags(p, with_vocab=True)
    p.add_argument("--samples", type=int, default=8, metavar="N",
                   help="entries checked per model parameter, 0 for all (default 8)")
    p.add_argument("--model-only", action="store_true", help="skip the per-layer checks")
    p.add_argument("--training", action="store_true",
                   help="check the model on a training step (with --dropout: its masks drawn once, then held) "
                        "instead of an evaluation")
    p.add_argument("--seed", type=seed_arg, default=0)
    _color_flag(p)
    p.set_defaults(func=cmd_gradcheck)

    # bench: everything after it goes to benchmarks.run (see main)
    sub.add_parser("bench", help="the benchmark suite: numpy vs torch (options: numpy-gpt bench --help)",
                   add_help=False)

    # demo
    p = sub.add_parser("demo", help="train tiny GPTs in numpy (and torch) and generate text",
                       description="The README's main job: train the two seed models (d_model = 2) and a "
                                   "character-level GPT on the demo corpus in numpy_gpt (and in torch_gpt from the "
                                   "same weights on the same batches, when torch is installed), print the answers "
                                   "and a generated sample, and write the loss curve to --out.")
    p.add_argument("--steps", type=int, default=500, help="training steps of the character model")
    p.add_argument("--out", default="out", help="folder for the pictures")
    p.add_argument("--seed", type=seed_arg, default=0)
    p.add_argument("--no-torch", action="store_true", help="numpy only, even when torch is installed")
    p.add_argument("--no-processes", action="store_true",
                   help="train numpy_gpt's batch shards on threads, not in worker processes (see numpy_gpt/demo.py)")
    p.set_defaults(func=_demo)

    for name in PLUGINS:
        try:
            module = importlib.import_module(f"{__package__}.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"{__package__}.{name}":
                continue                           # not written yet
            raise
        module.register(sub)
    return parser


# -------------------------------------------------------------------------------- main
def _one_line(e: BaseException) -> str:
    if isinstance(e, OSError) and e.filename and e.strerror and not isinstance(e, CheckpointError):
        msg = f"{e.strerror}: {e.filename}"
    else:
        msg = str(e) or type(e).__name__
    return " ".join(msg.split())


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    try:
        command = next((a for a in argv if not a.startswith("-")), None)
        if command == "bench":
            i = argv.index("bench")
            return cmd_bench(argv[i + 1:])
        unknown = [a for a in argv if a not in ("-h", "--help")]
        if command is None and unknown:            # argparse would only say that COMMAND is missing
            raise UsageError(f"unrecognized arguments: {' '.join(unknown)}; expected a COMMAND first "
                             f"(see '{PROG} --help')")
        args, extra = build_parser().parse_known_args(argv)
        if extra:                                  # argparse would point at the top-level help
            raise UsageError(f"unrecognized arguments: {' '.join(extra)} (see '{PROG} {args.command} --help')")
        return args.func(args)
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"\n{PROG}: interrupted", file=sys.stderr)
        return EXIT_SIGINT
    except BrokenPipeError:                        # e.g. `numpy-gpt generate ... | head`
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_ERROR
    except (NumpyGPTError, OSError) as e:
        if debug:
            raise
        print(f"{PROG}: error: {_one_line(e)}", file=sys.stderr)
        return EXIT_USAGE if isinstance(e, UsageError) else EXIT_ERROR
    except Exception as e:                         # a bug: still one line, unless --debug
        if debug:
            raise
        print(f"{PROG}: internal error: {type(e).__name__}: {_one_line(e)} (run with --debug for the traceback)",
              file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
