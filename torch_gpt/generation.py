"""Greedy, sampled and beam-search generation in torch, mirroring numpy_gpt.generation.

The filtering semantics are the same (see numpy_gpt.generation), written
with torch ops: top_k keeps every logit >= the k-th largest; top_p keeps the
smallest most-likely set reaching mass p, plus ties with its least likely member.
"""
from __future__ import annotations

import functools

import numpy as np
import torch

from numpy_gpt.errors import InputError
from numpy_gpt.generation import SMALL_STEP_ROWS, check_sampling

from .decode import DecodeStep


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    k = min(k, logits.shape[-1])
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    if p >= 1.0:
        return logits
    probs = torch.softmax(logits, dim=-1)
    desc = torch.sort(probs, dim=-1, descending=True).values
    cum = torch.cumsum(desc, dim=-1)
    n_keep = ((cum < p).sum(dim=-1, keepdim=True) + 1).clamp(max=logits.shape[-1])
    threshold = torch.gather(desc, -1, n_keep - 1)
    return logits.masked_fill(probs < threshold, float("-inf"))


def filter_logits(logits, temperature=1.0, top_k=None, top_p=None):
    z = logits.double()                               # as numpy_gpt's: shifted, then divided, in float64
    logits = (z - z.amax(dim=-1, keepdim=True)) / temperature
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None:
        logits = top_p_filter(logits, top_p)
    return logits


class _Decoder:
    """As numpy_gpt.generation._Decoder: the prompt goes through GPT.forward (the prefill), and
    with the cache each later position through decode.DecodeStep (fast=False: through GPT.forward,
    which is what torch.compile compiles). A run of steps of up to SMALL_STEP_ROWS rows, matrix-
    vector work, runs on one of torch's threads, as numpy_gpt's steps run on one BLAS thread;
    torch's thread count is set back for a prefill and at the end (use it in a with block).
    Unlike numpy_gpt's, it stays on one thread for weights that do not fit in the cache
    (numpy_gpt.generation.ONE_THREAD_MAX_BYTES): there torch's steps gained nothing from a
    second thread (Zen 3 host, 2026-12-06, 2 threads against 1, generate() paired over 6-8
    rounds: 1.02x at the medium config, 0.96x at GPT-2 124M's shapes), so one is its best."""

    def __init__(self, model, use_cache, fast=True):
        self.model, self.use_cache, self.caches = model, use_cache, None
        self.step = DecodeStep(model) if use_cache and fast else None
        self._threads = None                          # torch's thread count while a run of steps holds one

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._leave_one_thread()

    def _leave_one_thread(self):
        if self._threads is not None:
            torch.set_num_threads(self._threads)
            self._threads = None

    def next_logits(self, seq):
        block = self.model.config.block_size
        if not self.use_cache:
            logits, _ = self.model(seq[:, -block:], last_only=True)
        elif self.caches is None or self.caches[0].length == block:
            self._leave_one_thread()
            self.caches = self.model.new_kv_caches(seq.shape[0])
            logits, _ = self.model(seq[:, -block:], kv_caches=self.caches, pos0=0, last_only=True)
        else:
            if seq.shape[0] <= SMALL_STEP_ROWS and self._threads is None:
                self._threads = torch.get_num_threads()
                torch.set_num_threads(1)
            if self.step is not None:
                logits = self.step(seq[:, -1], self.caches, self.caches[0].length)[:, None]
            else:
                logits, _ = self.model(seq[:, -1:], kv_caches=self.caches, pos0=self.caches[0].length)
        return logits[:, -1, :]

    def select(self, rows):
        if self.caches is not None:
            for cache in self.caches:
                cache.select(rows)


def _out_of_inference_mode(fn):
    """Run fn under torch.inference_mode (no autograd bookkeeping at all, lighter than
    no_grad) and return a clone of its result: an inference tensor cannot be used later
    where autograd would save it, say as the ids of a training batch."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with torch.inference_mode():
            out = fn(*args, **kwargs)
        return out.clone()
    return wrapper


@_out_of_inference_mode
def generate(model, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None, eos_id=None,
             greedy=False, beam_width=None, length_penalty=1.0, use_cache=True, generator=None,
             on_token=None, fast=True):
    """As numpy_gpt.generation.generate: returns (B, T + n), the whole prompt and the new tokens.
    idx: a tensor, or token ids as numpy_gpt takes them (a NumPy array or nested lists).
    fast=False: every position after the prompt through GPT.forward, not decode.DecodeStep
    (for a torch.compile'd model, whose compiled forward is what should run)."""
    check_sampling(temperature, top_k, top_p, beam_width, max_new_tokens)
    if not isinstance(idx, torch.Tensor):
        idx = torch.as_tensor(np.asarray(idx), dtype=torch.long)
    if 0 in tuple(idx.shape):
        raise InputError(f"idx must hold at least one token in at least one row, got shape {tuple(idx.shape)}")
    older, idx = idx[:, :-model.config.block_size], idx[:, -model.config.block_size:]   # older: not read
    if beam_width is not None:
        return _in_front(older, _beam_search(model, idx, max_new_tokens, beam_width, eos_id, length_penalty,
                                             use_cache))
    was_training = model.training
    model.eval()
    try:
        with _Decoder(model, use_cache, fast) as decoder:
            seq = idx
            done = torch.zeros(seq.shape[0], dtype=torch.bool)
            for _ in range(max_new_tokens):
                logits = decoder.next_logits(seq)
                if greedy:
                    nxt = logits.argmax(dim=-1)
                else:
                    probs = torch.softmax(filter_logits(logits, temperature, top_k, top_p), dim=-1)
                    nxt = torch.multinomial(probs, 1, generator=generator)[:, 0]
                if eos_id is not None:
                    nxt = torch.where(done, torch.full_like(nxt, eos_id), nxt)
                    done |= nxt == eos_id
                seq = torch.cat([seq, nxt[:, None]], dim=1)
                if on_token is not None:
                    on_token(nxt)
                if eos_id is not None and bool(done.all()):
                    break
            return _in_front(older, seq)
    finally:
        model.train(was_training)


def _in_front(older: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """out with a prompt's tokens before its last block_size put back in front, as numpy_gpt's."""
    return torch.cat([older.to(out.dtype), out], dim=1) if older.shape[1] else out


def _beam_search(model, idx, max_new_tokens, beam_width, eos_id=None, length_penalty=1.0, use_cache=True):
    was_training = model.training
    model.eval()
    try:
        rows = [_beam_one(model, idx[b:b + 1], max_new_tokens, beam_width, eos_id, length_penalty, use_cache)
                for b in range(idx.shape[0])]
    finally:
        model.train(was_training)
    width = max(len(r) for r in rows)
    pad = 0 if eos_id is None else eos_id
    return torch.stack([torch.cat([r, torch.full((width - len(r),), pad, dtype=r.dtype)]) for r in rows])


beam_search = _out_of_inference_mode(_beam_search)


def _beam_one(model, prompt, max_new_tokens, beam_width, eos_id, length_penalty, use_cache):
    T0 = prompt.shape[1]
    beams, scores = prompt, torch.zeros(1, dtype=torch.float64)
    finished = []

    def normalized(score, n_new):
        return float(score) / max(n_new, 1) ** length_penalty

    with _Decoder(model, use_cache) as decoder:       # one KV cache row per beam, as in numpy_gpt
        for step in range(max_new_tokens):
            logp = torch.log_softmax(decoder.next_logits(beams).double(), dim=-1)
            cand = (scores[:, None] + logp).reshape(-1)
            order = torch.sort(-cand, stable=True).indices[: 2 * beam_width]
            V = logp.shape[-1]
            new_beams, new_scores, parents = [], [], []
            for flat in order.tolist():
                b, tok = divmod(flat, V)
                seq = torch.cat([beams[b], torch.tensor([tok])])
                if eos_id is not None and tok == eos_id:
                    finished.append((normalized(cand[flat], step + 1), seq))
                else:
                    new_beams.append(seq)
                    new_scores.append(cand[flat])
                    parents.append(b)
                if len(new_beams) == beam_width:
                    break
            if len(finished) >= beam_width or not new_beams:
                break
            beams, scores = torch.stack(new_beams), torch.stack(new_scores)
            decoder.select(parents)
    if len(finished) < beam_width:
        n_new = beams.shape[1] - T0
        finished += [(normalized(s, n_new), seq) for s, seq in zip(scores, beams)]
    best = max(range(len(finished)), key=lambda i: (finished[i][0], -i))
    return finished[best][1]
