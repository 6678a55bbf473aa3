"""Generation: KV cache = full recomputation, numpy = torch for greedy and beam search,
and the top-k / top-p filters agree with torch's on drawn logits, ties included."""
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given, strategies as st

from numpy_gpt import ConfigError, GPTConfig, InputError
from numpy_gpt import generation as G
from numpy_gpt.decode import DecodeStep
from tests import strategies as S
from tests.model_strategies import configs, randomized, torch_twin
from tests.tolerances import BEAM_TIE, KV_CACHE, PROB_MASS, SAMPLING_FREQUENCY, parity_tol
from torch_gpt import generation as TG


def prompt(data, cfg, B=None):
    B = B or data.draw(st.integers(1, 2), label="B")
    T = data.draw(st.integers(1, cfg.block_size), label="T")
    return S.token_ids(data, (B, T), cfg.vocab_size)


@given(data=st.data(), cfg=configs(), dtype=S.DTYPES)
def test_kv_cache_logits_equal_full_recomputation(data, cfg, dtype):
    # Runs past block_size too, so the crop-and-prefill path is exercised.
    model = randomized(cfg, data.draw(st.integers(0, 1000)), dtype)
    seq = prompt(data, cfg)
    steps = data.draw(st.integers(1, 2 * cfg.block_size), label="steps")
    fast = data.draw(st.booleans(), label="fast")               # decode.DecodeStep, or GPT.forward each step
    cached, full = G._Decoder(model, use_cache=True, fast=fast), G._Decoder(model, use_cache=False)
    r = S.rng(data)
    tol = KV_CACHE[np.dtype(dtype)]
    for _ in range(steps):
        a, b = cached.next_logits(seq), full.next_logits(seq)
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol * np.abs(b).max())
        seq = np.concatenate([seq, r.integers(0, cfg.vocab_size, (seq.shape[0], 1))], axis=1)


@given(data=st.data(), cfg=configs())
def test_greedy_tokens_equal_torch(data, cfg):
    model = randomized(cfg, data.draw(st.integers(0, 1000)), np.float64)
    t = torch_twin(model)
    idx = prompt(data, cfg)
    n = data.draw(st.integers(0, 2 * cfg.block_size), label="max_new_tokens")
    eos = data.draw(st.one_of(st.none(), st.integers(0, cfg.vocab_size - 1)), label="eos")
    use_cache = data.draw(st.booleans(), label="use_cache")
    ours = model.generate(idx, n, greedy=True, eos_id=eos, use_cache=use_cache)
    theirs = t.generate(torch.from_numpy(idx), n, greedy=True, eos_id=eos, use_cache=use_cache)
    np.testing.assert_array_equal(ours, theirs.numpy())
    assert ours.shape[1] <= idx.shape[1] + n


@given(data=st.data(), cfg=configs(max_layer=1))
def test_beam_search_tokens_equal_torch(data, cfg):
    model = randomized(cfg, data.draw(st.integers(0, 1000)), np.float64)
    t = torch_twin(model)
    idx = prompt(data, cfg, B=1)
    kw = dict(beam_width=data.draw(st.integers(1, 3)), length_penalty=data.draw(st.sampled_from([0.0, 1.0, 2.0])),
              eos_id=data.draw(st.one_of(st.none(), st.integers(0, cfg.vocab_size - 1))))
    n = data.draw(st.integers(0, 5), label="max_new_tokens")
    ours, theirs = model.generate(idx, n, **kw), t.generate(torch.from_numpy(idx), n, **kw).numpy()
    if not np.array_equal(ours, theirs):
        # Different beams can reach candidates whose scores tie to the last bit (with block_size 1
        # every beam ending in the same token sees the same distribution); a 1-ulp difference in
        # torch's log-softmax then picks the other one. Allowed only for a true tie.
        assert ours.shape == theirs.shape, (ours, theirs)
        assert abs(beam_score(model, ours[0], idx.shape[1], kw) - beam_score(model, theirs[0], idx.shape[1], kw)) < BEAM_TIE


@given(data=st.data(), cfg=configs(max_layer=2))
def test_beam_search_with_the_kv_cache_equals_recomputing(data, cfg):
    # Beams are reordered and duplicated at every step, and their cache rows with them; runs past
    # block_size too, where the cropped context is prefilled again.
    model = randomized(cfg, data.draw(st.integers(0, 1000)), np.float64)
    idx = prompt(data, cfg, B=1)
    kw = dict(beam_width=data.draw(st.integers(1, 4)), length_penalty=data.draw(st.sampled_from([0.0, 1.0])),
              eos_id=data.draw(st.one_of(st.none(), st.integers(0, cfg.vocab_size - 1))))
    n = data.draw(st.integers(1, 2 * cfg.block_size), label="max_new_tokens")
    t = torch_twin(model)
    for gen in (model.generate, lambda i, n, **k: t.generate(torch.from_numpy(i), n, **k).numpy()):   # both mirror it
        cached, full = gen(idx, n, use_cache=True, **kw), gen(idx, n, use_cache=False, **kw)
        if not np.array_equal(cached, full):         # only a true tie may go either way (see above)
            assert cached.shape == full.shape, (cached, full)
            assert abs(beam_score(model, cached[0], idx.shape[1], kw) - beam_score(model, full[0], idx.shape[1], kw)) < BEAM_TIE


@given(data=st.data(), cfg=configs())
def test_selected_cache_rows_give_the_logits_of_the_selected_sequences(data, cfg):
    # What beam search relies on, for numpy_gpt and torch_gpt: after select(rows), the cache
    # continues exactly the sequences seq[rows] (reordered, repeated, fewer or more rows).
    model = randomized(cfg, data.draw(st.integers(0, 1000)), np.float64)
    t = torch_twin(model)
    seq = prompt(data, cfg, B=data.draw(st.integers(1, 3)))
    r = S.rng(data)
    ours, theirs = G._Decoder(model, use_cache=True), TG._Decoder(t, use_cache=True)
    ours.next_logits(seq), theirs.next_logits(torch.from_numpy(seq))        # the prefill
    for _ in range(data.draw(st.integers(1, 4), label="steps")):
        rows = data.draw(st.lists(st.integers(0, seq.shape[0] - 1), min_size=1, max_size=4), label="rows")
        seq = np.concatenate([seq[rows], r.integers(0, cfg.vocab_size, (len(rows), 1))], axis=1)
        ours.select(rows), theirs.select(rows)
        want = model.forward(seq[:, -cfg.block_size:])[0][:, -1]
        tol, t_tol = KV_CACHE[want.dtype], parity_tol(want.dtype)
        np.testing.assert_allclose(ours.next_logits(seq), want, rtol=tol, atol=tol * np.abs(want).max())
        np.testing.assert_allclose(theirs.next_logits(torch.from_numpy(seq)).detach().numpy(), want,
                                   rtol=t_tol, atol=t_tol * np.abs(want).max())


@pytest.mark.parametrize("fast", [True, False])
def test_beam_search_prefills_once_and_then_feeds_one_token_per_beam(monkeypatch, fast):
    # ... through decode.DecodeStep after the prompt, or through GPT.forward with fast=False.
    cfg = GPTConfig(vocab_size=7, block_size=16, n_layer=2, n_head=2, n_embd=8)
    model = randomized(cfg, 5, np.float64)
    fed = []
    forward, step = model.forward, DecodeStep.__call__
    monkeypatch.setattr(model, "forward", lambda idx, *a, **k: fed.append(("forward", idx.shape))
                        or forward(idx, *a, **k))
    monkeypatch.setattr(DecodeStep, "__call__", lambda self, tokens, *a: fed.append(("step", tokens[:, None].shape))
                        or step(self, tokens, *a))
    decoder = G._Decoder
    monkeypatch.setattr(G, "_Decoder", lambda m, use_cache: decoder(m, use_cache, fast=fast))
    model.generate(np.array([[1, 2, 3]]), 6, beam_width=3)
    each = "step" if fast else "forward"
    assert fed == [("forward", (1, 3))] + [(each, (3, 1))] * 5     # the prompt, then each beam's newest token


def test_generate_runs_the_fast_step_after_the_prompt(monkeypatch):
    cfg = GPTConfig(vocab_size=7, block_size=16, n_layer=1, n_head=1, n_embd=4)
    model = randomized(cfg, 3, np.float32)
    steps = []
    step = DecodeStep.__call__
    monkeypatch.setattr(DecodeStep, "__call__", lambda self, tokens, caches, pos: steps.append(pos)
                        or step(self, tokens, caches, pos))
    model.generate(np.array([[1, 2, 3]]), 5)
    assert steps == [3, 4, 5, 6]                     # the first token comes from the prompt's forward


@pytest.mark.parametrize("length_penalty", [0.5, 1.0, 2.0])
def test_beam_search_with_eos_and_a_length_penalty_equals_torch_over_many_models(length_penalty):
    # A finished beam is scored by its sum over (new tokens)^length_penalty, its EOS counted. The
    # drawn test above rarely meets an EOS within a few steps under a penalty that matters; here
    # 40 models, each EOS id in turn, width 3, 5 new tokens: over a third of the answers end on an
    # EOS before the last step, beams finish at different lengths, and a length off by one
    # reorders them in 4 to 8 of the 40 runs.
    cfg = GPTConfig(vocab_size=6, block_size=8, n_layer=1, n_head=1, n_embd=4)
    idx = np.array([[1, 2]])
    for seed in range(40):
        model = randomized(cfg, seed, np.float64)
        kw = dict(beam_width=3, length_penalty=length_penalty, eos_id=seed % cfg.vocab_size)
        ours = model.generate(idx, 5, **kw)
        theirs = torch_twin(model).generate(torch.from_numpy(idx), 5, **kw).numpy()
        np.testing.assert_array_equal(ours, theirs, err_msg=f"seed {seed}")


@pytest.mark.parametrize("use_cache", [True, False])
def test_a_prompt_longer_than_the_block_is_read_from_its_last_block_size_tokens(use_cache):
    # The model can only read block_size positions: the prompt's older tokens are not read, as in
    # torch_gpt, and what follows is what the last block_size tokens alone would give. They come
    # back in front, so that out[:, T:] is the new tokens whatever T is.
    cfg = GPTConfig(vocab_size=9, block_size=6, n_layer=1, n_head=2, n_embd=8)
    model = randomized(cfg, 2, np.float64)
    idx = np.random.default_rng(2).integers(0, 9, (2, cfg.block_size + 3))
    ours = model.generate(idx, 4, greedy=True, use_cache=use_cache)
    theirs = torch_twin(model).generate(torch.from_numpy(idx), 4, greedy=True, use_cache=use_cache).numpy()
    np.testing.assert_array_equal(ours, theirs)
    last = idx[:, -cfg.block_size:]
    T = idx.shape[1]
    np.testing.assert_array_equal(ours[:, :T], idx)
    np.testing.assert_array_equal(ours[:, T - cfg.block_size:],
                                  model.generate(last, 4, greedy=True, use_cache=use_cache))
    for kw in (dict(beam_width=2), dict(top_k=3, rng=np.random.default_rng(0))):   # beams and sampling too
        out = model.generate(idx, 4, use_cache=use_cache, **kw)
        assert out.shape == (2, T + 4) and np.array_equal(out[:, :T], idx)


def beam_score(model, seq, T0, kw):
    """The summed log-probability of seq's new tokens, normalized as beam search ranks them."""
    total = 0.0
    for t in range(T0, len(seq)):
        if kw["eos_id"] is not None and seq[t - 1] == kw["eos_id"] and t > T0:
            break                                    # padding after an earlier EOS
        ctx = seq[max(0, t - model.config.block_size):t]
        logits, _ = model.forward(ctx[None])
        total += float(G.log_softmax(logits[0, -1].astype(np.float64))[seq[t]])
    n_new = len(seq) - T0
    return total / max(n_new, 1) ** kw["length_penalty"]


def test_beam_width_one_is_greedy_and_wider_beams_score_no_worse():
    cfg = GPTConfig(vocab_size=6, block_size=8, n_layer=1, n_head=1, n_embd=4)
    model = randomized(cfg, 7, np.float64)
    idx = np.array([[1, 2]])
    np.testing.assert_array_equal(model.generate(idx, 5, beam_width=1), model.generate(idx, 5, greedy=True))

    def logprob(seq):
        logits, _ = model.forward(seq[None, :-1])
        lp = G.log_softmax(logits[0])
        return sum(lp[t - 1, seq[t]] for t in range(2, len(seq)))
    scores = [logprob(model.generate(idx, 4, beam_width=w, length_penalty=0.0)[0]) for w in (1, 2, 4)]
    assert scores[0] <= scores[1] + BEAM_TIE and scores[1] <= scores[2] + BEAM_TIE


def drawn_logits(data, ties):
    r = S.rng(data)
    B, V = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 12))
    logits = r.standard_normal((B, V)) * data.draw(st.sampled_from([0.1, 1.0, 10.0]))
    if ties:                                       # coarse values: many exact ties
        logits = np.round(logits)
    return logits


@given(data=st.data(), ties=st.booleans())
def test_top_k_matches_torch(data, ties):
    logits = drawn_logits(data, ties)
    k = data.draw(st.integers(1, logits.shape[-1] + 2))
    ours = G.top_k_filter(logits, k)
    np.testing.assert_array_equal(ours, TG.top_k_filter(torch.from_numpy(logits), k).numpy())
    kept = np.isfinite(ours).sum(-1)
    assert (kept >= min(k, logits.shape[-1])).all()
    if not ties:
        assert (kept == min(k, logits.shape[-1])).all()


@given(data=st.data(), ties=st.booleans())
def test_top_p_matches_torch(data, ties):
    logits = drawn_logits(data, ties)
    p = data.draw(st.sampled_from([0.05, 0.5, 0.9, 1.0]))
    ours = G.top_p_filter(logits, p)
    np.testing.assert_array_equal(np.isfinite(ours), np.isfinite(TG.top_p_filter(torch.from_numpy(logits), p).numpy()))
    probs = np.exp(G.log_softmax(logits))
    assert ((probs * np.isfinite(ours)).sum(-1) >= p - PROB_MASS).all()      # the nucleus holds mass >= p
    assert np.isfinite(ours[np.arange(len(logits)), logits.argmax(-1)]).all()   # the top token survives


@given(data=st.data(), ties=st.booleans())
def test_temperature_top_k_and_top_p_together_match_torch(data, ties):
    # Temperature reshapes the distribution before top-p measures its mass (and before top-k,
    # where the order, hence the set, is the same either way): the whole filter, not each part.
    logits = drawn_logits(data, ties)
    temperature = data.draw(st.sampled_from([0.3, 0.5, 2.0, 5.0]), label="temperature")
    top_k = data.draw(st.one_of(st.none(), st.integers(1, logits.shape[-1] + 1)), label="top_k")
    top_p = data.draw(st.sampled_from([None, 0.3, 0.5, 0.9, 0.99]), label="top_p")
    ours = G.filter_logits(logits, temperature, top_k, top_p)
    np.testing.assert_array_equal(ours, TG.filter_logits(torch.from_numpy(logits), temperature, top_k, top_p).numpy())


@pytest.mark.parametrize("top_k", [None, 3])
def test_a_low_temperature_narrows_the_nucleus(top_k):
    # softmax([2, 1, 0, -1] / 0.3) gives the top token 0.96, so top_p = 0.9 keeps it alone; at
    # temperature 1 it has 0.64 and the nucleus holds 3 tokens.
    logits = np.array([[2.0, 1.0, 0.0, -1.0]])
    e = np.exp(logits[0] / 0.3)
    assert e[0] / e.sum() >= 0.9                   # the definition: the top token alone reaches p
    ours = G.filter_logits(logits, temperature=0.3, top_k=top_k, top_p=0.9)
    np.testing.assert_array_equal(np.isfinite(ours), [[True, False, False, False]])
    np.testing.assert_array_equal(ours, TG.filter_logits(torch.from_numpy(logits), 0.3, top_k, 0.9).numpy())


# Distributions (as denominators) of powers of two that both softmaxes, numpy_gpt's exp of a
# log-softmax and torch's exp over a sum, give back exactly from the logits log(prob), so that
# every cumulative sum, and a p drawn from them, is exact. Few do: exp returns 2^-k only when
# log(2^-k), and the log of the normalizing sum, round by less than half an ulp of the result. A
# 1/8 comes out an ulp high and takes the sum, hence the other probabilities, with it; the test
# asserts torch's probabilities are exact.
EXACT_DYADIC = [[1], [2, 2], [2, 4, 4], [4, 4, 4, 4], [4, 4, 4, 16, 16, 16, 16], [4, 4] + [16] * 8,
                [2, 4] + [32] * 8]


@given(data=st.data())
def test_top_p_keeps_the_smallest_set_reaching_p_when_a_cumulative_sum_equals_p(data):
    # The docstring's definition: the smallest set of most likely tokens whose mass is >= p (plus
    # ties with the least likely one kept). With p exactly a cumulative sum, the tokens summing
    # to it reach p and the next one is not needed; the expected set comes from exact fractions.
    r = S.rng(data)
    denominators = data.draw(st.sampled_from(EXACT_DYADIC), label="distribution")
    probs = [Fraction(1, d) for d in denominators]
    probs += [Fraction(0)] * data.draw(st.integers(0, 3), label="masked")      # -inf, as top_k leaves them
    probs = [probs[i] for i in r.permutation(len(probs))]
    desc = sorted(probs, reverse=True)
    cums = [sum(desc[:i + 1]) for i in range(len(desc))]
    p = data.draw(st.sampled_from(sorted({c for c in cums if 0 < c < 1} | {Fraction(1)})), label="p")
    n_keep = next(i for i, c in enumerate(cums) if c >= p) + 1
    want = np.array([q > 0 and q >= desc[n_keep - 1] for q in probs])[None]
    with np.errstate(divide="ignore"):                                       # log(0) = -inf
        logits = np.log(np.array([float(q) for q in probs]))[None]
    t_logits = torch.from_numpy(logits)
    assert torch.equal(torch.softmax(t_logits, -1), torch.tensor([[float(q) for q in probs]], dtype=torch.float64))
    np.testing.assert_array_equal(np.isfinite(G.top_p_filter(logits, float(p))), want)
    np.testing.assert_array_equal(np.isfinite(TG.top_p_filter(t_logits, float(p)).numpy()), want)


def test_top_p_at_a_cumulative_sum_keeps_only_the_tokens_that_reach_it():
    # [.5, .25, .125, .125] at p = .75: the first two reach .75 exactly; the two of .125 are left out.
    logits = np.log(np.array([[0.125, 0.5, 0.125, 0.25]]))
    assert torch.softmax(torch.from_numpy(logits), -1)[0, [1, 3]].tolist() == [0.5, 0.25]   # exact (see above)
    want = [[False, True, False, True]]
    np.testing.assert_array_equal(np.isfinite(G.top_p_filter(logits, 0.75)), want)
    np.testing.assert_array_equal(np.isfinite(TG.top_p_filter(torch.from_numpy(logits), 0.75).numpy()), want)


def test_sampling_follows_the_distribution():
    probs = np.array([0.1, 0.6, 0.3])
    draws = np.array([G.sample(np.log(probs)[None], np.random.default_rng(i))[0] for i in range(4000)])
    np.testing.assert_allclose(np.bincount(draws, minlength=3) / 4000, probs, atol=SAMPLING_FREQUENCY)


@pytest.mark.parametrize("kw", [{}, dict(temperature=2.0), dict(top_k=3), dict(top_p=0.6),
                                dict(temperature=0.5, top_k=4, top_p=0.9)], ids=str)
def test_both_implementations_sample_from_the_filtered_distribution(kw):
    # 4000 copies of one prompt, one new token each: both generate()s must draw with the
    # frequencies of softmax(filter_logits(...)), which these settings move well away from the
    # plain softmax (the filters alone are compared above; this is what generate samples with).
    cfg = GPTConfig(vocab_size=9, block_size=6, n_layer=1, n_head=2, n_embd=8)
    model = randomized(cfg, 0, np.float64)
    model.training = False
    idx = np.tile([[1, 2, 3]], (4000, 1))
    z = model.forward(idx[:1])[0][:, -1]

    def probs(**k):
        return np.exp(G.log_softmax(G.filter_logits(z, **k)))[0]
    want = probs(**kw)
    if kw:
        assert np.abs(want - probs()).max() > 3 * SAMPLING_FREQUENCY
    ours = model.generate(idx, 1, rng=np.random.default_rng(0), **kw)[:, -1]
    theirs = torch_twin(model).generate(torch.from_numpy(idx), 1, generator=torch.Generator().manual_seed(0),
                                        **kw)[:, -1].numpy()
    for got in (ours, theirs):
        np.testing.assert_allclose(np.bincount(got, minlength=9) / len(got), want, atol=SAMPLING_FREQUENCY)


class FixedDraw:
    """A stand-in for np.random.Generator whose random() always returns u."""

    def __init__(self, u):
        self.u = u

    def random(self, size):
        return np.full(size, self.u)


def test_sampling_at_the_ends_of_the_unit_interval_draws_only_possible_tokens():
    # Inverse-CDF sampling: u = 0 falls on the first token with positive probability, u just below
    # 1 on the last; tokens of probability 0 (logit -inf, as the filters leave them) are never drawn,
    # however they sit before, between or after the possible ones.
    inf = np.inf
    logits = np.array([[-inf, -inf, 0.0, 1.0, -inf],
                       [0.5, -inf, 2.0, -inf, -inf],
                       [-inf, -inf, -inf, -inf, 3.0],
                       [-inf, 1.0, -inf, 1.0, -inf]])
    first, last = [2, 0, 4, 1], [3, 2, 4, 3]
    np.testing.assert_array_equal(G.sample(logits, FixedDraw(0.0)), first)
    np.testing.assert_array_equal(G.sample(logits, FixedDraw(np.nextafter(1.0, 0.0))), last)


def test_stops_at_eos_and_pads_finished_rows():
    cfg = GPTConfig(vocab_size=5, block_size=6, n_layer=1, n_head=1, n_embd=4)
    model = randomized(cfg, 1, np.float64)
    idx = np.array([[0], [1]])
    first = model.generate(idx, 1, greedy=True)[:, -1]
    out = model.generate(idx, 10, greedy=True, eos_id=int(first[0]))
    assert (out[0, 1:] == first[0]).all()


@pytest.mark.parametrize("kwargs, word", [
    (dict(temperature=0.0), "temperature"), (dict(top_k=0), "top_k"), (dict(top_p=0.0), "top_p"),
    (dict(top_p=1.5), "top_p"), (dict(beam_width=0), "beam width")])
def test_bad_sampling_settings_are_config_errors(kwargs, word):
    model = randomized(GPTConfig(vocab_size=5, block_size=4, n_layer=1, n_head=1, n_embd=4), 0, np.float32)
    with pytest.raises(ConfigError, match=word):
        model.generate(np.array([[1]]), 2, **kwargs)


@pytest.mark.parametrize("kw", [dict(greedy=True), dict(beam_width=2)])
def test_torch_generation_returns_an_ordinary_tensor(kw):
    # torch_gpt decodes under inference_mode; what it returns must still be usable where autograd
    # saves it, as the ids of a training batch (an inference tensor raises there).
    cfg = GPTConfig(vocab_size=7, block_size=4, n_layer=1, n_head=1, n_embd=4)
    t = torch_twin(randomized(cfg, 0, np.float64))
    out = t.generate(torch.zeros((1, 2), dtype=torch.int64), 3, **kw)
    assert not out.is_inference() and out.shape == (1, 5)
    logits, loss = t(out[:, :-1], out[:, 1:])
    loss.backward()
    assert t.wte.weight.grad is not None


@given(data=st.data(), cfg=configs(), dtype=S.DTYPES)
def test_last_only_gives_the_last_positions_logits_and_fills_the_same_kv_cache(data, cfg, dtype):
    # Generation's prompt (a prefill, or a forward without the cache) needs the last position's
    # logits alone: last_only runs the final layer norm and the head on that one position. Its
    # product is one row where the full forward's is T, blocked another way: a few ulps apart.
    model = randomized(cfg, data.draw(st.integers(0, 1000)), dtype)
    seq = prompt(data, cfg)
    B, T = seq.shape
    full, _ = model.forward(seq, grad=False)
    last, loss = model.forward(seq, last_only=True)
    assert last.shape == (B, 1, cfg.vocab_size) and last.dtype == model.dtype and loss is None
    tol = KV_CACHE[np.dtype(dtype)]
    np.testing.assert_allclose(last, full[:, -1:], rtol=tol, atol=tol * np.abs(full).max())
    with pytest.raises(RuntimeError, match="grad=False or a KV-cache"):       # no backward follows
        model.backward()
    caches, caches_last = model.new_kv_caches(B), model.new_kv_caches(B)
    model.forward(seq, kv_caches=caches)
    prefill, _ = model.forward(seq, kv_caches=caches_last, last_only=True)
    np.testing.assert_allclose(prefill, last, rtol=tol, atol=tol * np.abs(full).max())   # attention reads the cache
    for a, b in zip(caches, caches_last):                                     # every position's keys and values
        assert a.length == b.length == T
        assert np.array_equal(a.k[:, :, :T], b.k[:, :, :T]) and np.array_equal(a.v[:, :, :T], b.v[:, :, :T])
    theirs, _ = torch_twin(model)(torch.from_numpy(seq), last_only=True)
    assert tuple(theirs.shape) == last.shape
    np.testing.assert_allclose(last, theirs.detach().numpy(), rtol=parity_tol(dtype),
                               atol=parity_tol(dtype) * np.abs(full).max())


@pytest.mark.parametrize("impl", ["numpy", "torch"])
def test_last_only_with_targets_is_an_input_error(impl):
    model = randomized(GPTConfig(vocab_size=5, block_size=4, n_layer=1, n_head=1, n_embd=4), 0, np.float64)
    idx = np.array([[1, 2, 3]])
    forward = model.forward if impl == "numpy" else lambda *a, **k: torch_twin(model)(*map(torch.from_numpy, a), **k)
    with pytest.raises(InputError, match="last_only=True .* pass targets=None"):
        forward(idx, idx, last_only=True)


@pytest.mark.parametrize("impl", ["numpy", "torch"])
@pytest.mark.parametrize("use_cache", [True, False])
def test_generation_asks_a_prompt_for_its_last_positions_logits_alone(monkeypatch, impl, use_cache):
    # With GPT-2's vocabulary a 1000-token prompt's logits take 201 MB, of which generation
    # reads one row: a prefill of GPT-2's shapes peaked 371 MB above the model with every
    # position's logits, 180 with the last's (tests above: the same logits).
    cfg = GPTConfig(vocab_size=7, block_size=6, n_layer=1, n_head=1, n_embd=4)
    model = randomized(cfg, 0, np.float64)
    gen = model if impl == "numpy" else torch_twin(model)
    seen = []
    real = gen.forward

    def spy(idx, *args, **kwargs):
        logits, loss = real(idx, *args, **kwargs)
        seen.append((idx.shape[1], logits.shape[1]))
        return logits, loss
    monkeypatch.setattr(gen, "forward", spy)
    prompt = np.array([[1, 2, 3, 4]]) if impl == "numpy" else torch.tensor([[1, 2, 3, 4]])
    gen.generate(prompt, 4, greedy=True, use_cache=use_cache)           # past block_size: a second prefill
    prompts = [(T, out) for T, out in seen if T > 1]
    assert len(prompts) >= 2 and all(out == 1 for _, out in prompts), seen


@pytest.mark.parametrize("impl", ["numpy", "torch"])
@pytest.mark.parametrize("shape", [(1, 0), (0, 3)])
def test_an_empty_prompt_is_an_input_error(impl, shape):
    model = randomized(GPTConfig(vocab_size=5, block_size=4, n_layer=1, n_head=1, n_embd=4), 0, np.float64)
    idx = np.zeros(shape, np.int64)
    gen = model.generate if impl == "numpy" else lambda i, n, **k: torch_twin(model).generate(torch.from_numpy(i), n, **k)
    for kw in ({}, dict(beam_width=2)):
        with pytest.raises(InputError, match=rf"at least one token in at least one row, got shape \({shape[0]}, {shape[1]}\)"):
            gen(idx, 2, **kw)


@pytest.mark.parametrize("impl", ["numpy", "torch"])
def test_a_temperature_too_small_for_the_logits_samples_the_most_likely_token(impl):
    # logits / 1e-38 overflowed float32 to inf, and softmax then made NaN: numpy drew token 0
    # every time and torch raised. Shifted by the row's largest first, the other logits go to
    # -inf instead, and sampling is greedy, as the temperature's limit is.
    cfg = GPTConfig(vocab_size=9, block_size=8, n_layer=1, n_head=1, n_embd=4)
    model = randomized(cfg, 3, np.float32)
    idx = np.array([[1, 2, 3]])
    greedy = model.generate(idx, 4, greedy=True)
    assert greedy[0, 3:].tolist() != [0] * 4                             # the old failure would show
    for temperature in (1e-38, 1e-300, 5e-324):
        if impl == "numpy":
            out = model.generate(idx, 4, temperature=temperature, rng=np.random.default_rng(0))
        else:
            out = torch_twin(model).generate(torch.from_numpy(idx), 4, temperature=temperature).numpy()
        np.testing.assert_array_equal(out, greedy)


def test_torch_generation_takes_token_ids_as_numpy_gpt_does():
    cfg = GPTConfig(vocab_size=7, block_size=4, n_layer=1, n_head=1, n_embd=4)
    model = randomized(cfg, 0, np.float64)
    t = torch_twin(model)
    want = model.generate(np.array([[1, 2]]), 3, greedy=True)
    for idx in (np.array([[1, 2]]), [[1, 2]], torch.tensor([[1, 2]])):
        out = t.generate(idx, 3, greedy=True)
        assert isinstance(out, torch.Tensor) and out.dtype == torch.int64
        np.testing.assert_array_equal(out.numpy(), want)
    assert t.num_params() == model.num_params()
