"""The two seed toy problems this project started from, and how to train them.

A 5-word vocabulary, d_model = 2, one head, no layer norm, no MLP: token
embedding + sinusoidal positions + one masked single-head attention +
residual + linear head. Trained with Adam (lr 0.1) for 30 epochs on two
sentences, then asked a question and answered greedily until <EOS>.
Small enough to follow every number by hand (see `numpy-gpt trace`).
"""
from __future__ import annotations

import numpy as np

from .config import GPTConfig
from .data import sequences_to_batch
from .model import GPT
from .tokenizers import WordTokenizer
from .train import Trainer, TrainConfig

SEEDS = {
    "apple": dict(vocab=["what", "is", "apple", "healthy", "<EOS>"],
                  sentences=["what is apple <EOS> healthy <EOS>", "apple is what <EOS> healthy <EOS>"],
                  prompts=["what is apple <EOS>", "apple is what <EOS>"], answer="healthy <EOS>"),
    "cnn": dict(vocab=["what", "is", "CNN", "Great", "<EOS>"],
                sentences=["what is CNN <EOS> Great <EOS>", "CNN is what <EOS> Great <EOS>"],
                prompts=["what is CNN <EOS>", "CNN is what <EOS>"], answer="Great <EOS>"),
}


def seed_config(vocab_size: int = 5) -> GPTConfig:
    return GPTConfig(vocab_size=vocab_size, block_size=8, n_layer=1, n_head=1, n_embd=2,
                     pos_encoding="sinusoidal", norm="none", mlp=False, tie_weights=False)


def seed_train_config(epochs: int = 30) -> TrainConfig:
    """Adam, lr 0.1, constant, no clipping or decay; one full-batch step per epoch."""
    return TrainConfig(steps=epochs, optimizer="adam", lr=0.1, schedule="constant", grad_clip=0.0,
                       weight_decay=0.0, betas=(0.9, 0.999), eval_interval=0)


def seed_problem(name: str):
    """(tokenizer, x, y, spec) for a seed: the two sentences as one padded batch."""
    spec = SEEDS[name]
    tok = WordTokenizer(spec["vocab"])
    x, y = sequences_to_batch([tok.encode(s) for s in spec["sentences"]], pad_id=tok.eos_id)
    return tok, x, y, spec


def answer(model, tok, prompt: str, max_new_tokens: int = 6) -> str:
    """Greedy continuation of prompt until <EOS>, as words."""
    ids = tok.encode(prompt)
    out = model.generate(np.array([ids]), max_new_tokens, greedy=True, eos_id=tok.eos_id)
    return tok.decode(np.asarray(out)[0, len(ids):].tolist())


def train_seed(name: str, seed: int = 0, dtype=np.float64, epochs: int = 30):
    """Train the numpy_gpt seed model; returns (model, tokenizer, history, {prompt: answer})."""
    tok, x, y, spec = seed_problem(name)
    model = GPT(seed_config(tok.vocab_size), seed=seed, dtype=dtype)
    history = Trainer(model, None, None, seed_train_config(epochs), batch_fn=lambda rng: (x, y)).run(progress=False)
    return model, tok, history, {p: answer(model, tok, p) for p in spec["prompts"]}
