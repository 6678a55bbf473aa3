"""The README's main job: train tiny GPTs in NumPy (and, when torch is installed, in
torch from the same weights on the same batches) and generate text.

1. The two seed problems (d_model = 2, one head): ask a question, get the answer.
2. A character-level GPT on the shipped demo corpus: progress bar, validation
   loss and perplexity, a loss-curve PNG, and a generated sample.

With two or more threads numpy_gpt cuts each batch into shards. The demo runs
every shard after the first in a worker process (numpy_gpt/processes.py): its
model is small, so its NumPy calls are short and threads would spend much of
the step handing Python's lock to each other. The arithmetic, and so every
loss, is bit for bit that of threads; `processes=False` (the CLI's
--no-processes) keeps to threads.
"""
from __future__ import annotations

import importlib
import os
import time

import numpy as np

from .config import GPTConfig
from .data import demo_corpus, train_val_split
from .model import GPT
from .plots import plot_losses
from .seeds import SEEDS, train_seed
from .tokenizers import CharTokenizer
from .train import Trainer, TrainConfig

CHAR_CONFIG = dict(block_size=64, n_layer=2, n_head=4, n_embd=64, pos_encoding="learned", norm="pre",
                   activation="gelu", dropout=0.0, tie_weights=True)


def char_setup(text: str | None = None, steps: int = 500):
    text = demo_corpus() if text is None else text
    tok = CharTokenizer.from_text(text)
    train, val = train_val_split(np.array(tok.encode(text), dtype=np.int64), 0.1)
    cfg = GPTConfig(vocab_size=tok.vocab_size, **CHAR_CONFIG)
    tcfg = TrainConfig(steps=steps, batch_size=16, lr=3e-3, min_lr=3e-4, warmup_steps=20,
                       eval_interval=max(steps // 5, 1), eval_batches=8)
    return tok, train, val, cfg, tcfg


def shard_processes(model, batch_size: int, wanted: bool = True):
    """(ShardProcesses for model or None, a line saying how numpy_gpt trains on batches of batch_size).

    None, and threads, where processes cannot run: one thread, not Linux, no
    threadpoolctl, or a worker that fails to start (the line says why)."""
    from .parallel import batch_shards, get_num_threads
    n = get_num_threads()
    if n < 2:
        return None, "1 thread"
    shards = len(batch_shards(batch_size))
    if not wanted or shards < 2:
        return None, f"{n} threads, {shards} shard(s) per batch"
    from .processes import ShardProcessError, ShardProcesses
    try:
        procs = ShardProcesses(model)
    except ShardProcessError as e:
        return None, f"{n} threads, {shards} shards per batch (no shard processes: {e})"
    return procs, f"{n} shards per batch: this process and {len(procs.workers)} worker process(es)"


def torch_backend():
    """torch_gpt's demo module, or None when torch is not installed (numpy_gpt never needs it)."""
    try:
        return importlib.import_module("torch_gpt.demo")
    except ImportError:
        return None


def run(out_dir: str = "out", steps: int = 500, sample_chars: int = 300, prompt: str = "The ",
        with_torch: bool = True, seed: int = 0, processes: bool = True) -> dict:
    """Run the demo, printing as it goes. Returns what it measured (for tests and notes)."""
    tok, train, val, cfg, tcfg = char_setup(steps=steps)   # bad settings fail here, before any training
    backend = torch_backend() if with_torch else None
    result: dict = {"seeds": {}}
    print("== 1. The seed problems: d_model=2, one head, Adam lr 0.1, 30 epochs ==")
    for name in SEEDS:
        _, _, h, answers = train_seed(name, seed=seed)
        t_answers = backend.seed_answers(name, seed) if backend else None
        result["seeds"][name] = (answers, t_answers)
    width = max(len(repr(a)) for answers, _ in result["seeds"].values() for a in answers.values())
    for answers, t_answers in result["seeds"].values():                 # the torch column lines up
        for p, a in answers.items():
            line = f"  {p!r:28} numpy -> {a!r:{width}}"
            if t_answers is not None:
                line += f"   torch -> {t_answers[p]!r}"
            print(line.rstrip())

    print(f"\n== 2. A character-level GPT on the demo corpus ({steps} steps) ==")
    note = busy_note(other_load())
    if note:
        print(note)
    model = GPT(cfg, seed=seed, dtype=np.float32)
    print(f"  vocab {tok.vocab_size} chars, {len(train):,} train / {len(val):,} val tokens, "
          f"{model.num_params():,} parameters, config {cfg.n_layer} layers x {cfg.n_head} heads x {cfg.n_embd}")
    histories = {}
    procs, how = shard_processes(model, tcfg.batch_size, processes)
    print(f"  numpy_gpt trains on {how}")
    t0 = time.perf_counter()
    try:
        histories["numpy"] = Trainer(model, train, val, tcfg).run()
    finally:
        if procs is not None:
            procs.close()
    result.update(numpy_seconds=time.perf_counter() - t0, numpy_shards=how, numpy_processes=procs is not None)
    if backend:
        n = backend.num_threads()
        print(f"  torch_gpt trains on {n} thread{'' if n == 1 else 's'}, from the same initial weights")
        t0 = time.perf_counter()
        histories["torch"] = backend.train_char(model.config, init_params=model_init(cfg, seed), train=train,
                                                val=val, tcfg=tcfg)
        result["torch_seconds"] = time.perf_counter() - t0
    for label, h in histories.items():
        ev = h.eval[-1]
        print(f"  {label:5}: val loss {ev['val_loss']:.3f}  perplexity {ev['val_ppl']:.2f}  "
              f"({h.tokens_per_s:,.0f} tokens/s)")
    png = plot_losses(histories, os.path.join(out_dir, "demo_loss.png"), "character-level GPT on the demo corpus")
    if png:
        print(f"  loss curve: {png}")
    ids = model.generate(np.array([tok.encode(prompt)]), sample_chars, temperature=0.8, top_k=20,
                         rng=np.random.default_rng(seed))
    sample = tok.decode(ids[0].tolist())
    print(f"\n== 3. numpy_gpt writes ({sample_chars} characters, temperature 0.8, top-k 20) ==\n{sample}\n")
    result.update(histories=histories, sample=sample, png=png)
    return result


BUSY = 0.25                # other processes' share of all cores from which the demo says so


def other_load(seconds: float = 0.3) -> float | None:
    """The share of all cores that other processes used over `seconds` (this process sleeps),
    from /proc/stat; None where there is none. /proc/stat counts in clock ticks (1/100 s), so on a
    fully busy machine a short window can read a little over 1: the share is capped at 1."""
    from .parallel import machine_busy_seconds
    start, t0 = machine_busy_seconds(), time.perf_counter()
    if start is None:
        return None
    time.sleep(seconds)
    end = machine_busy_seconds()
    return min(1.0, max(0.0, (end - start) / ((time.perf_counter() - t0) * (os.cpu_count() or 1))))


def busy_note(share: float | None) -> str | None:
    """A line for the demo to print when other processes keep the CPU busy, else None."""
    if share is None or share < BUSY:
        return None
    return (f"  note: other processes are using {share:.0%} of the CPU; the tokens/s below will be low, "
            "torch's most (its threads wait on each other). Run the demo on an idle machine to compare.")


def model_init(cfg: GPTConfig, seed: int):
    from .model import init_params
    return init_params(cfg, seed, np.float32)
