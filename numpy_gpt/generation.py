"""Text generation: greedy, temperature, top-k, top-p (nucleus) and beam search.

Shapes: B = batch, T = time, V = vocab_size.

Decoding runs with a KV cache by default: the prompt is processed once
("prefill"), then each new token costs one position's worth of work, its keys
and values appended to each layer's cache. A context that would grow past
block_size is cropped to its last block_size tokens and prefilled again, which
is exactly what recomputing on the cropped context (nanoGPT's way) gives.

Filtering semantics (shared with torch_gpt.generation):
    top_k: keep every logit >= the k-th largest (ties at the boundary are kept).
    top_p: keep the smallest set of most likely tokens whose probabilities sum
           to >= p, plus any token tied with the least likely one kept; p = 1 keeps all.
"""
from __future__ import annotations

import contextlib

import numpy as np

from .decode import DecodeStep
from .errors import ConfigError
from .parallel import one_thread

# A KV-cache step of up to SMALL_STEP_ROWS sequences, for a model whose step multiplies at most
# ONE_THREAD_MAX_BYTES of weights, runs on one thread (parallel.one_thread). Such a step is
# matrix-vector work on weights that stay in the cache from one token to the next, and a second
# BLAS thread does not make it faster. Larger weights come from memory at every step, and two cores
# draw more of it than one: on the Zen 3 host (32 MB L3, 2 threads, batch 1, 2026-12-06), 2 BLAS
# threads against 1, paired over 8 rounds of 32-48 steps, were level at 13.6, 19.9 and 21.0 MB of
# float32 weights and at 27.3 MB of float64 ones (small in float64; 0.97-1.01x), and 1.20-1.35x as
# fast at 29.9, 52.4, 83 (the medium config) and 494 MB (GPT-2 124M's shapes) of float32 ones. The
# line lies between: 28 MB (decimal). Measured at batch 1; the rule also takes 2-8 rows. Above the
# line a step's products run on BLAS's threads, whose split of a product can change its last bits
# with the thread count (as the prefill's always could); at one thread count the results repeat.
SMALL_STEP_ROWS = 8
ONE_THREAD_MAX_BYTES = 28 * 10**6


def step_weight_bytes(config, itemsize: int) -> int:
    """Bytes of the weight matrices a KV-cache step multiplies its rows by: c_attn and c_proj
    in every block, c_fc and the MLP's c_proj too where there is an MLP, and the head (V, C)."""
    C = config.n_embd
    block = 4 * C * C + (2 * C * config.mlp_width if config.mlp else 0)
    return (config.n_layer * block + config.vocab_size * C) * itemsize


def one_thread_rows(config, itemsize: int) -> int:
    """The most rows (sequences) whose KV-cache steps run on one thread: SMALL_STEP_ROWS, or 0
    for a model whose step reads more than ONE_THREAD_MAX_BYTES of weights."""
    return SMALL_STEP_ROWS if step_weight_bytes(config, itemsize) <= ONE_THREAD_MAX_BYTES else 0


def check_sampling(temperature=1.0, top_k=None, top_p=None, beam_width=None, max_new_tokens=0):
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, (int, np.integer)) or max_new_tokens < 0:
        raise ConfigError(f"max_new_tokens must be a non-negative integer, got {max_new_tokens!r}")
    if not temperature > 0:
        raise ConfigError(f"temperature must be > 0, got {temperature!r}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1):
        raise ConfigError(f"top_k must be an integer >= 1, got {top_k!r}")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise ConfigError(f"top_p must be in (0, 1], got {top_p!r}")
    if beam_width is not None and (isinstance(beam_width, bool) or not isinstance(beam_width, (int, np.integer)) or beam_width < 1):
        raise ConfigError(f"beam width must be an integer >= 1, got {beam_width!r}")


def log_softmax(z: np.ndarray) -> np.ndarray:
    m = z.max(axis=-1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=-1, keepdims=True))


def top_k_filter(logits: np.ndarray, k: int) -> np.ndarray:
    """(..., V): logits below the k-th largest set to -inf."""
    k = min(k, logits.shape[-1])
    kth = np.partition(logits, -k, axis=-1)[..., -k:].min(axis=-1, keepdims=True)
    return np.where(logits < kth, -np.inf, logits)


def top_p_filter(logits: np.ndarray, p: float) -> np.ndarray:
    """(..., V): keep the nucleus of probability mass p; the rest set to -inf.

    p = 1 keeps every token (a cumulative sum can reach 1.0 early through rounding)."""
    if p >= 1.0:
        return logits
    probs = np.exp(log_softmax(logits))
    desc = -np.sort(-probs, axis=-1)                             # probabilities, largest first
    cum = np.cumsum(desc, axis=-1)
    n_keep = (cum < p).sum(axis=-1, keepdims=True) + 1           # first index reaching p, + 1
    n_keep = np.minimum(n_keep, logits.shape[-1])
    threshold = np.take_along_axis(desc, n_keep - 1, axis=-1)    # least likely probability kept
    return np.where(probs < threshold, -np.inf, logits)


def filter_logits(logits, temperature=1.0, top_k=None, top_p=None) -> np.ndarray:
    """Temperature, then top_k, then top_p, in float64. Each row is shifted by its largest
    logit before the temperature divides it: the same distribution, and a tiny temperature
    then sends the other logits towards -inf instead of the largest past +inf (NaN after)."""
    z = np.asarray(logits, dtype=np.float64)
    with np.errstate(over="ignore"):                              # to -inf: probability 0, as meant
        logits = (z - z.max(axis=-1, keepdims=True)) / temperature
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None:
        logits = top_p_filter(logits, top_p)
    return logits


def sample(logits: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One token per row of logits (B, V), drawn by inverting the cumulative distribution."""
    probs = np.exp(log_softmax(logits.astype(np.float64)))
    cdf = np.cumsum(probs, axis=-1)
    u = rng.random((logits.shape[0], 1)) * cdf[:, -1:]
    # the first token whose cdf exceeds u; "<=" skips leading zero-probability tokens even if u == 0
    return np.minimum((cdf <= u).sum(axis=-1), logits.shape[-1] - 1)


class _Decoder:
    """Hands out the logits of the next position, with or without a KV cache.

    With the cache, the prompt goes through GPT.forward (the prefill) and each
    later position through decode.DecodeStep, the same function with far fewer
    NumPy calls; fast=False sends every position through GPT.forward, the
    reference DecodeStep is tested against.

    A KV-cache step of a few rows is matrix-vector work. Where the weights stay
    in the cache between tokens it is quicker on one thread than shared, so such
    steps run under parallel.one_thread() (one_thread_rows: see SMALL_STEP_ROWS).
    The decoder enters it once for a run of steps (switching BLAS's thread count
    costs about as much as a small step's layer norms) and leaves it for a
    prefill; use the decoder in a with block so it is left at the end.
    """

    def __init__(self, model, use_cache: bool, fast: bool = True):
        self.model, self.use_cache = model, use_cache
        self.caches, self.length = None, 0
        self.step = DecodeStep(model) if use_cache and fast else None
        self._held: contextlib.ExitStack | None = None           # holds one_thread() during a run of steps
        self._one_thread_rows = one_thread_rows(model.config, model.dtype.itemsize)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._leave_one_thread()

    def _leave_one_thread(self):
        if self._held is not None:
            self._held.close()
            self._held = None

    def next_logits(self, seq: np.ndarray) -> np.ndarray:
        block = self.model.config.block_size
        if not self.use_cache:
            logits, _ = self.model.forward(seq[:, -block:], last_only=True)
        elif self.caches is None or self.length == block:        # (re)prefill the cropped context
            self._leave_one_thread()
            ctx = seq[:, -block:]
            self.caches = self.model.new_kv_caches(seq.shape[0])
            logits, _ = self.model.forward(ctx, kv_caches=self.caches, pos0=0, last_only=True)
            self.length = ctx.shape[1]
        else:                                                    # one new position
            if seq.shape[0] > self._one_thread_rows:
                self._leave_one_thread()                         # (all for a model past the line; a
                                                                 # beam search's rows can grow past 8)
            elif self._held is None:
                self._held = contextlib.ExitStack()
                self._held.enter_context(one_thread())
            if self.step is not None:
                logits = self.step(seq[:, -1], self.caches, self.length)[:, None]
            else:
                logits, _ = self.model.forward(seq[:, -1:], kv_caches=self.caches, pos0=self.length)
            self.length += 1
        return logits[:, -1, :]                                  # (B, V)

    def select(self, rows) -> None:
        """The next call's rows are the sequences of this call's `rows` (beam search), one token longer."""
        if self.caches is not None:
            for cache in self.caches:
                cache.select(rows)


def generate(model, idx, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
             top_p: float | None = None, eos_id: int | None = None, greedy: bool = False,
             beam_width: int | None = None, length_penalty: float = 1.0, use_cache: bool = True,
             rng: np.random.Generator | None = None, on_token=None) -> np.ndarray:
    """Extend idx (B, T) by up to max_new_tokens tokens and return (B, T + n): the whole
    prompt, then the new tokens. The model reads at most block_size positions, so a longer
    prompt's older tokens are not read, but they come back in front as they were.

    greedy picks the most likely token; otherwise tokens are sampled after
    temperature, top_k and top_p. A row that emits eos_id is finished and is
    padded with eos_id until every row is; generation then stops early.
    beam_width switches to beam search (see beam_search). on_token(tokens (B,))
    is called as each step's tokens arrive, for streaming (between KV-cache
    steps, where BLAS is held at one thread for a few rows of a model below
    ONE_THREAD_MAX_BYTES: see _Decoder).
    """
    check_sampling(temperature, top_k, top_p, beam_width, max_new_tokens)
    older = None                                     # a prompt's tokens before its last block_size
    if np.ndim(idx) == 2:
        idx = np.asarray(idx)
        older, idx = idx[:, :-model.config.block_size], idx[:, -model.config.block_size:]
    idx = model.check_idx(idx)                       # a prompt of at least one token, in at least one row
    if beam_width is not None:
        return _in_front(older, beam_search(model, idx, max_new_tokens, beam_width, eos_id, length_penalty,
                                            use_cache))
    rng = rng if rng is not None else model.rng
    was_training, model.training = model.training, False
    try:
        with _Decoder(model, use_cache) as decoder:
            seq = np.asarray(idx, dtype=np.int64)
            done = np.zeros(seq.shape[0], dtype=bool)
            for _ in range(max_new_tokens):
                logits = decoder.next_logits(seq)
                if greedy:
                    nxt = logits.argmax(axis=-1)
                else:
                    nxt = sample(filter_logits(logits, temperature, top_k, top_p), rng)
                if eos_id is not None:
                    nxt = np.where(done, eos_id, nxt)
                    done |= nxt == eos_id
                seq = np.concatenate([seq, nxt[:, None]], axis=1)
                if on_token is not None:
                    on_token(nxt)
                if eos_id is not None and done.all():
                    break
            return _in_front(older, seq)
    finally:
        model.training = was_training


def _in_front(older: np.ndarray | None, out: np.ndarray) -> np.ndarray:
    """out with a prompt's tokens before its last block_size (older, (B, n) or None) put back in front."""
    return out if older is None or not older.shape[1] else np.concatenate([older.astype(out.dtype), out], axis=1)


def beam_search(model, idx, max_new_tokens: int, beam_width: int, eos_id: int | None = None,
                length_penalty: float = 1.0, use_cache: bool = True) -> np.ndarray:
    """Keep the beam_width most likely continuations of each row; return the best.

    Scores are summed log-probabilities. A beam that emits eos_id is finished
    and scored by sum / (new tokens)^length_penalty (length_penalty > 1 favours
    longer answers). The search ends when beam_width beams have finished or
    max_new_tokens is reached; unfinished beams then compete with the same
    normalization. Ties go to the lower beam, then the lower token id. Rows of
    different lengths come back padded with eos_id (or 0 without one).

    With use_cache each beam has its own rows in the KV cache; after every
    step the rows follow the surviving beams to their parents (a beam with two
    surviving children is copied), so each step feeds one token per beam.
    """
    was_training, model.training = model.training, False
    try:
        results = [_beam_one(model, np.asarray(idx[b:b + 1], np.int64), max_new_tokens, beam_width,
                             eos_id, length_penalty, use_cache) for b in range(idx.shape[0])]
    finally:
        model.training = was_training
    width = max(len(r) for r in results)
    pad = 0 if eos_id is None else eos_id
    return np.stack([np.pad(r, (0, width - len(r)), constant_values=pad) for r in results])


def _beam_one(model, prompt, max_new_tokens, beam_width, eos_id, length_penalty, use_cache):
    T0 = prompt.shape[1]
    beams = prompt                                  # (n_beams, T)
    scores = np.zeros(1)                            # summed log-probs of each beam
    finished: list[tuple[float, np.ndarray]] = []

    def normalized(score, n_new):
        return score / max(n_new, 1) ** length_penalty

    with _Decoder(model, use_cache) as decoder:     # one KV cache row per beam, reordered as beams are
        for step in range(max_new_tokens):
            logp = log_softmax(decoder.next_logits(beams).astype(np.float64))
            cand = (scores[:, None] + logp).reshape(-1)                   # (n_beams * V,)
            order = np.argsort(-cand, kind="stable")[: 2 * beam_width]    # enough to refill after EOS
            V = logp.shape[-1]
            new_beams, new_scores, parents = [], [], []
            for flat in order:
                b, tok = divmod(int(flat), V)
                seq = np.append(beams[b], tok)
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
            beams, scores = np.stack(new_beams), np.array(new_scores)
            decoder.select(parents)                  # each new beam continues its parent's cache
    if len(finished) < beam_width:
        n_new = beams.shape[1] - T0
        finished += [(normalized(s, n_new), seq) for s, seq in zip(scores, beams)]
    best = max(range(len(finished)), key=lambda i: (finished[i][0], -i))
    return finished[best][1]
