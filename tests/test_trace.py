"""`numpy-gpt trace` and `numpy-gpt pictures`.

The trace's numbers are compared with torch's (autograd on torch_gpt's layers) and
with numpy_gpt.GPT's own forward and backward, never with hard-coded output.
"""
import argparse
import io
import os

import numpy as np
import pytest

from numpy_gpt import pictures, trace
from numpy_gpt.errors import ConfigError, InputError
from numpy_gpt.gradcheck import rel_error
from torch_gpt import trace as torch_trace


def assert_same(steps, torch_values, tol=1e-12):
    assert [s.key for s in steps] and {s.key for s in steps} == set(torch_values)
    for s in steps:
        t = np.asarray(torch_values[s.key])
        assert s.value.shape == t.shape, s.key
        inf = np.isinf(s.value)
        assert np.array_equal(inf, np.isinf(t)) and np.array_equal(s.value[inf], t[inf]), s.key
        floor = 1e-3 * max(np.abs(np.where(np.isinf(v.value), 0, v.value)).max(initial=0) for v in steps
                           if v.phase == s.phase)
        err = rel_error(s.value[~inf], t[~inf], floor)
        assert err <= tol, f"{s.key}: rel error {err:.2e} against torch"


CASES = [dict(), dict(trained=True), dict(trained=True, batch=True),
         dict(sentence="apple is apple <EOS> healthy <EOS>"), dict(problem="cnn", trained=True, epochs=5)]


@pytest.mark.parametrize("case", CASES, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()) or "init")
def test_every_traced_value_equals_torch_and_the_model(case):
    tok, cfg, params, idx, targets, _ = trace.seed_setup(**case)
    steps = trace.trace_numpy(params, cfg, idx, targets)
    torch_values = torch_trace.trace(params, cfg, idx, targets)
    assert_same(steps, torch_values)
    assert max(trace.model_check(params, cfg, idx, targets, steps).values()) <= 1e-12
    assert max(torch_trace.whole_model_check(params, cfg, idx, targets, torch_values).values()) <= 1e-12


def test_the_walk_shows_the_facts_the_docs_promise():
    tok, cfg, params, idx, targets, _ = trace.seed_setup(sentence="apple is apple <EOS> healthy <EOS>",
                                                         trained=True)
    v = {s.key: s.value for s in trace.trace_numpy(params, cfg, idx, targets)}
    T = idx.shape[1]
    upper = np.triu(np.ones((T, T), dtype=bool), 1)
    assert (v["s_masked"][0][upper] == -np.inf).all() and (v["a"][0][upper] == 0).all()
    assert (v["ds"][0][upper] == 0).all()                     # masked scores get exactly 0
    assert (v["dq"][0, 0] == 0).all()                         # query 0 sees one key
    np.testing.assert_allclose(v["a"].sum(-1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(v["dx0"], v["dx1"] + v["dx0_attn"])     # the residual split adds
    apple = tok.encode("apple")[0]
    positions = np.flatnonzero(idx[0] == apple)
    assert len(positions) == 2                                # a repeated id: its rows add up
    np.testing.assert_allclose(v["d_wte"][apple], v["dx_tok"][0, positions].sum(0), rtol=1e-14)
    assert (v["d_wte"][tok.encode("what")[0]] == 0).all()     # an id that never occurs


def test_printed_trace_names_steps_shapes_and_differences():
    buf = io.StringIO()
    result = trace.run(trained=True, width=200, out=buf)
    text = buf.getvalue()
    assert result["ok"]
    for expected in ("[model 1, embedding 1]", "[attention 4]", "[attention 5]", "[attention 5-4]",
                     "[model 6, cross-entropy 2-1]", "(T=5, C=2)", "(T=5, T=5)", "max|numpy - torch|",
                     "numpy vs torch", "numpy_gpt.GPT.forward/backward"):
        assert expected in text, expected
    loss = float(next(s.value for s in result["steps"] if s.key == "loss"))
    assert f"{loss:.4g}" in text
    narrow = io.StringIO()
    trace.run(width=80, out=narrow)                           # too narrow for side by side
    assert "  numpy " in narrow.getvalue() and "  torch " in narrow.getvalue()


def test_handler_through_argparse_and_without_torch(capsys):
    parser = argparse.ArgumentParser(prog="numpy-gpt")
    trace.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["trace", "--no-torch", "--digits", "3"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "--no-torch: numpy values only" in out and "max|numpy - torch|" not in out


def test_bad_input_is_a_clear_error():
    with pytest.raises(InputError, match="banana"):
        trace.seed_setup(sentence="what is banana <EOS>")
    with pytest.raises(InputError, match="at least two"):
        trace.seed_setup(sentence="apple")
    with pytest.raises(ConfigError, match="unknown seed problem"):
        trace.seed_setup(problem="pear")
    with pytest.raises(ConfigError, match="--batch"):
        trace.seed_setup(batch=True, sentence="what is apple")
    from numpy_gpt.config import GPTConfig
    from numpy_gpt.model import init_params
    cfg = GPTConfig(vocab_size=5, block_size=8, n_layer=1, n_head=1, n_embd=2, norm="pre", mlp=False,
                    tie_weights=False)
    with pytest.raises(ConfigError, match="seed architecture"):
        trace.trace_numpy(init_params(cfg), cfg, np.zeros((1, 2), dtype=np.int64), np.zeros((1, 2), dtype=np.int64))


def test_attention_maps_are_the_layers_own_weights():
    # Rebuild the attention output from the maps and compare with attention_forward itself.
    from numpy_gpt import GPT, GPTConfig
    from numpy_gpt.attention import attention_forward
    from numpy_gpt.embedding import embedding_forward
    from numpy_gpt.positional import learned_forward
    cfg = GPTConfig(vocab_size=7, block_size=8, n_layer=1, n_head=2, n_embd=4, pos_encoding="learned",
                    norm="none", mlp=False)
    model = GPT(cfg, seed=1, dtype=np.float64)
    rng = np.random.default_rng(0)
    for k in model.params:
        model.params[k] = rng.standard_normal(model.params[k].shape)
    ids = np.array([3, 1, 4, 1, 5, 6])
    a = pictures.attention_maps(model, ids)
    p = model.params
    x, _ = learned_forward(embedding_forward(ids[None], p["wte.weight"])[0], p["wpe.weight"])
    out, _ = attention_forward(x, p["h.0.attn.c_attn.weight"], p["h.0.attn.c_attn.bias"],
                               p["h.0.attn.c_proj.weight"], p["h.0.attn.c_proj.bias"], cfg.n_head)
    v = (x[0] @ p["h.0.attn.c_attn.weight"] + p["h.0.attn.c_attn.bias"])[:, 8:].reshape(6, 2, 2).transpose(1, 0, 2)
    y = (a @ v).transpose(1, 0, 2).reshape(6, 4)
    np.testing.assert_allclose(y @ p["h.0.attn.c_proj.weight"] + p["h.0.attn.c_proj.bias"], out[0], rtol=1e-12)
    assert a.shape == (2, 6, 6) and (a[:, np.triu_indices(6, 1)[0], np.triu_indices(6, 1)[1]] == 0).all()


def test_pictures_command_writes_small_pngs(tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="numpy-gpt")
    pictures.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["pictures", "--out", str(tmp_path), "--steps", "2", "--eval-batches", "1",
                              "--no-torch", "--quiet"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    for name in pictures.PICTURES:
        path = tmp_path / name
        assert str(path) in out
        with open(path, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n", name
        assert 5_000 < os.path.getsize(path) < 150_000, name
    with pytest.raises(ConfigError):
        pictures.make_pictures(str(tmp_path), steps=0)
    with pytest.raises(InputError):
        pictures.make_pictures(str(tmp_path), steps=1, prompt="x" * 65)


def test_through_the_numpy_gpt_command_line(capsys):
    from numpy_gpt import cli
    if "trace" not in getattr(cli, "PLUGINS", ()):
        pytest.skip("numpy_gpt.cli does not register the trace command")
    assert cli.main(["trace", "--trained", "--epochs", "3"]) == 0
    assert "[attention 5]" in capsys.readouterr().out
    assert cli.main(["trace", "--sentence", "what is banana"]) == 1
    assert "unknown word 'banana'" in capsys.readouterr().err
    assert cli.main(["trace", "--epochs", "3"]) == 0                # --epochs alone trains too
    assert "after 3 epochs" in capsys.readouterr().out
    assert cli.main(["trace", "--epochs", "0"]) == 1
    assert "--epochs must be at least 1, got 0" in capsys.readouterr().err


def test_a_disagreement_with_torch_fails_the_verdict(monkeypatch):
    # A torch tensor off by one part in a million must be reported, not averaged away.
    real = torch_trace.trace

    def off_by_a_millionth(params, cfg, idx, targets):
        values = real(params, cfg, idx, targets)
        values["loss"] = np.asarray(values["loss"]) * (1 + 1e-6)
        return values

    monkeypatch.setattr(torch_trace, "trace", off_by_a_millionth)
    buf = io.StringIO()
    result = trace.run(trained=True, width=200, out=buf)
    assert result["torch"] is not None
    assert not result["ok"]
    assert result["torch_diff"]["loss"] > trace.AGREE_TOL
    assert "DISAGREEMENT" in buf.getvalue()


@pytest.mark.parametrize("key", ["d_wte", "d_c_attn_w", "d_c_attn_b", "d_c_proj_w", "d_c_proj_b", "d_lm_head"])
def test_a_wrong_gradient_in_the_walk_fails_the_model_check(monkeypatch, key):
    # Without torch, the model check is the only guard: it must cover every gradient, not just logits and loss.
    real = trace.trace_numpy

    def doubled(*args, **kwargs):
        steps = real(*args, **kwargs)
        for s in steps:
            if s.key == key:
                s.value = s.value * 2 + 1e-3             # + 1e-3: wrong even where the gradient is 0
        return steps

    monkeypatch.setattr(trace, "trace_numpy", doubled)
    buf = io.StringIO()
    result = trace.run(trained=True, with_torch=False, out=buf)
    assert result["torch"] is None
    assert not result["ok"]
    assert "DISAGREEMENT" in buf.getvalue()


def test_absdiff_is_the_absolute_difference_with_equal_infinities_as_zero():
    # |a - b| by definition; only equal infinities (the masked scores) count as no difference.
    np.testing.assert_array_equal(trace.absdiff([-np.inf, 1.0], [0.0, 1.0]), [np.inf, 0.0])
    np.testing.assert_array_equal(trace.absdiff([np.inf, -np.inf], [-np.inf, -np.inf]), [np.inf, 0.0])
    np.testing.assert_array_equal(trace.absdiff([0.0, 3.0], [np.inf, -2.0]), [np.inf, 5.0])


def test_sentence_length_limit_is_block_size_plus_one_words():
    # The seed model reads block_size inputs, so a sentence of block_size + 1 words fits; one more does not.
    from numpy_gpt.seeds import seed_config
    limit = seed_config().block_size + 1
    words = ("what is apple <EOS> healthy <EOS> apple is what <EOS> healthy <EOS> " * 2).split()
    tok, cfg, params, idx, targets, _ = trace.seed_setup(sentence=" ".join(words[:limit]))
    assert idx.shape == (1, limit - 1) and targets.shape == (1, limit - 1)
    with pytest.raises(InputError, match=f"at most {limit}"):
        trace.seed_setup(sentence=" ".join(words[:limit + 1]))
