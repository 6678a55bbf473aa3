"""GPT-2 state dicts (Hugging Face names, Conv1D layout) in and out, on small GPT-2-shaped
state dicts built here; nothing is downloaded. The oracle is GPT-2's forward written out in
torch straight from the state dict (as Hugging Face's GPT2LMHeadModel computes it)."""
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import torch_gpt.gpt2
from numpy_gpt import GPT, GPTConfig
from numpy_gpt.cli import main
from numpy_gpt.config import ACTIVATIONS
from numpy_gpt.errors import CheckpointCorruptError, CheckpointNotFoundError, ConfigError, StateDictError
from numpy_gpt.gpt2 import from_gpt2, gpt2_tokenizer, save_gpt2, to_gpt2
from numpy_gpt.tokenizers import gpt2_byte_to_unicode
from tests.lifetimes import lowest_traced_peak


def gpt2_state_dict(V=23, P=16, L=2, C=64, seed=0, prefix="transformer.", buffers=True, lm_head=True):
    """Random weights under GPT2LMHeadModel's names, with its non-parameter buffers."""
    r = np.random.default_rng(seed)
    n = lambda *s: r.normal(0, 0.3, s).astype(np.float32)  # noqa: E731
    sd = {f"{prefix}wte.weight": n(V, C), f"{prefix}wpe.weight": n(P, C)}
    for i in range(L):
        h = f"{prefix}h.{i}."
        sd.update({h + "ln_1.weight": 1 + n(C), h + "ln_1.bias": n(C),
                   h + "attn.c_attn.weight": n(C, 3 * C), h + "attn.c_attn.bias": n(3 * C),
                   h + "attn.c_proj.weight": n(C, C), h + "attn.c_proj.bias": n(C),
                   h + "ln_2.weight": 1 + n(C), h + "ln_2.bias": n(C),
                   h + "mlp.c_fc.weight": n(C, 4 * C), h + "mlp.c_fc.bias": n(4 * C),
                   h + "mlp.c_proj.weight": n(4 * C, C), h + "mlp.c_proj.bias": n(C)})
        if buffers:
            sd[h + "attn.bias"] = np.tril(np.ones((P, P), np.float32))[None, None]
            sd[h + "attn.masked_bias"] = np.array(-1e4, np.float32)
    sd[f"{prefix}ln_f.weight"], sd[f"{prefix}ln_f.bias"] = 1 + n(C), n(C)
    if lm_head:
        sd["lm_head.weight"] = sd[f"{prefix}wte.weight"].copy()
    return sd


def reference_logits(sd, idx, n_head, prefix="transformer."):
    """GPT-2's forward, Conv1D and all, straight from the state dict (float64)."""
    g = {k[len(prefix):] if k.startswith(prefix) else k: torch.tensor(v, dtype=torch.float64) for k, v in sd.items()}
    idx = torch.as_tensor(idx)
    B, T = idx.shape
    C = g["wte.weight"].shape[1]
    hs = C // n_head
    x = g["wte.weight"][idx] + g["wpe.weight"][:T]
    i = 0
    while f"h.{i}.ln_1.weight" in g:
        p = lambda k: g[f"h.{i}.{k}"]  # noqa: E731
        a = F.layer_norm(x, (C,), p("ln_1.weight"), p("ln_1.bias"), eps=1e-5)
        q, k, v = (a @ p("attn.c_attn.weight") + p("attn.c_attn.bias")).split(C, dim=-1)
        q, k, v = (z.view(B, T, n_head, hs).transpose(1, 2) for z in (q, k, v))
        att = q @ k.transpose(-1, -2) / math.sqrt(hs)
        att = att.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf")).softmax(-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, C)
        x = x + y @ p("attn.c_proj.weight") + p("attn.c_proj.bias")
        m = F.layer_norm(x, (C,), p("ln_2.weight"), p("ln_2.bias"), eps=1e-5)
        m = F.gelu(m @ p("mlp.c_fc.weight") + p("mlp.c_fc.bias"), approximate="tanh")
        x = x + m @ p("mlp.c_proj.weight") + p("mlp.c_proj.bias")
        i += 1
    x = F.layer_norm(x, (C,), g["ln_f.weight"], g["ln_f.bias"], eps=1e-5)
    return (x @ g.get("lm_head.weight", g["wte.weight"]).T).numpy()


IDX = np.array([[3, 1, 4, 1, 5, 9, 2, 6], [0, 22, 7, 7, 7, 13, 8, 21]])


@pytest.mark.parametrize("prefix", ["transformer.", ""])
def test_loads_gpt2_names_and_computes_gpt2s_logits(prefix):
    sd = gpt2_state_dict(prefix=prefix)
    model = from_gpt2(sd, dtype=np.float64)
    cfg = model.config
    assert cfg == GPTConfig(vocab_size=23, block_size=16, n_layer=2, n_head=1, n_embd=64, pos_encoding="learned",
                            norm="pre", activation="gelu", mlp=True, bias=True, tie_weights=True, dropout=0.0)
    assert model.params["h.1.attn.c_attn.weight"].shape == (64, 192)      # (in, out): no transposes
    np.testing.assert_array_equal(model.params["h.1.mlp.c_fc.weight"], sd[f"{prefix}h.1.mlp.c_fc.weight"])
    logits, _ = model.forward(IDX)
    np.testing.assert_allclose(logits, reference_logits(sd, IDX, 1, prefix), rtol=0, atol=1e-10)
    assert GPT.from_gpt2(sd).dtype == np.float32


def test_n_head_from_the_argument_config_json_or_gpt2s_head_size(tmp_path):
    sd = gpt2_state_dict(C=128)
    assert from_gpt2(sd).config.n_head == 2                              # 128 / 64
    four = from_gpt2(sd, dtype=np.float64, n_head=4)
    np.testing.assert_allclose(four.forward(IDX)[0], reference_logits(sd, IDX, 4), atol=1e-10)
    small = gpt2_state_dict(C=12)
    with pytest.raises(StateDictError, match="n_embd=12 is not a multiple of GPT-2's head size 64; pass n_head="):
        from_gpt2(small)
    assert from_gpt2(small, n_head=3).config.n_head == 3
    from safetensors.numpy import save_file
    save_file(small, str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text(json.dumps({"n_head": 4, "activation_function": "gelu_new"}))
    assert from_gpt2(tmp_path).config.n_head == 4                          # a folder
    assert from_gpt2(tmp_path / "model.safetensors").config.n_head == 4    # a file
    (tmp_path / "config.json").write_text(json.dumps({"n_head": 4, "layer_norm_epsilon": 1e-6}))
    with pytest.raises(ConfigError, match="layer_norm_epsilon=1e-06"):
        from_gpt2(tmp_path)


def test_an_untied_head_and_torch_tensors():
    sd = {k: torch.from_numpy(v) for k, v in gpt2_state_dict().items()}
    sd["lm_head.weight"] = torch.randn(23, 64)
    model = from_gpt2(sd, dtype=np.float64)
    assert not model.config.tie_weights
    np.testing.assert_allclose(model.forward(IDX)[0], reference_logits({k: v.numpy() for k, v in sd.items()}, IDX, 1),
                               atol=1e-10)


def test_to_gpt2_exports_parameters_and_gradients_and_round_trips():
    model = from_gpt2(gpt2_state_dict(), dtype=np.float64)
    out = to_gpt2(model)
    assert set(out) == {k for k in gpt2_state_dict(lm_head=False, buffers=False)}
    assert all(out["transformer." + k] is v for k, v in model.params.items())
    model.forward(IDX, IDX)
    grads = model.to_gpt2(model.backward())
    assert set(grads) == set(out) and all(grads[k].shape == out[k].shape for k in out)
    again = GPT.from_gpt2(out, dtype=np.float64)
    assert again.config == model.config and all(np.array_equal(again.params[k], v) for k, v in model.params.items())
    untied = GPT(GPTConfig(vocab_size=5, block_size=4, n_layer=1, n_head=1, n_embd=64, pos_encoding="learned",
                           tie_weights=False))
    assert "lm_head.weight" in to_gpt2(untied)
    with pytest.raises(ConfigError, match="pos_encoding='sinusoidal'"):
        to_gpt2(GPT(GPTConfig(n_embd=64, pos_encoding="sinusoidal")))
    with pytest.raises(StateDictError, match="missing wte.weight"):
        to_gpt2(model, {k: v for k, v in model.params.items() if k != "wte.weight"})


def test_torch_gpt_loads_and_exports_the_same():
    sd = gpt2_state_dict()
    t = torch_gpt.gpt2.from_gpt2(sd, dtype=torch.float64)
    logits, _ = t(torch.from_numpy(IDX))
    np.testing.assert_allclose(logits.detach().numpy(), reference_logits(sd, IDX, 1), atol=1e-10)
    out = torch_gpt.gpt2.to_gpt2(t)
    assert set(out) == set(to_gpt2(from_gpt2(sd)))
    assert all(np.array_equal(out[k].numpy(), sd[k].astype(np.float64)) for k in out)
    logits.sum().backward()
    grads = torch_gpt.gpt2.to_gpt2(t, {k: p.grad for k, p in t.named_parameters()})
    assert grads["transformer.wte.weight"].shape == (23, 64)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_save_gpt2_then_from_gpt2_keeps_the_activation_and_the_logits(tmp_path, activation):
    # config.json is the only place the activation travels: a wrong name there would load
    # an erf-GELU model as tanh-GELU (or the reverse) without any error, just other logits.
    cfg = GPTConfig(vocab_size=23, block_size=16, n_layer=2, n_head=2, n_embd=16, pos_encoding="learned",
                    activation=activation)
    model = GPT(cfg, seed=3, dtype=np.float64)
    save_gpt2(model, tmp_path / "model.safetensors")
    again = from_gpt2(tmp_path, dtype=np.float64)
    assert again.config.activation == activation
    assert again.config == cfg
    np.testing.assert_array_equal(again.forward(IDX)[0], model.forward(IDX)[0])


@pytest.mark.parametrize("edit, words", [
    (lambda sd: sd.pop("transformer.h.1.mlp.c_fc.bias"), "missing transformer.h.1.mlp.c_fc.bias"),
    (lambda sd: sd.pop("transformer.ln_f.weight"), "missing transformer.ln_f.weight"),
    (lambda sd: sd.__setitem__("transformer.h.0.attn.rotary", np.zeros(3)), "unexpected transformer.h.0.attn.rotary"),
    (lambda sd: sd.__setitem__("transformer.h.2.ln_1.weight", np.zeros(64)),
     "a GPT-2 with 3 layers, n_embd=64, vocab_size=23: missing transformer.h.2.attn.c_attn.bias"),
    (lambda sd: sd.__setitem__("transformer.h.0.ln_2.bias", np.zeros(63)),
     "transformer.h.0.ln_2.bias has shape (63,), expected (64,)"),
    (lambda sd: sd.__setitem__("transformer.h.1.attn.c_attn.weight", np.zeros((192, 64))),
     "transformer.h.1.attn.c_attn.weight has shape (192, 64), expected (64, 192)"),
    (lambda sd: sd.pop("transformer.wpe.weight"), "has no transformer.wpe.weight"),
    (lambda sd: sd.__setitem__("transformer.wte.weight", np.zeros(5)), "wte.weight has shape (5,), expected 2-D"),
    (lambda sd: sd.__setitem__("lm_head.weight", np.zeros((23, 32))), "lm_head.weight has shape (23, 32)"),
])
def test_bad_state_dicts_name_every_problem(edit, words):
    sd = gpt2_state_dict()
    edit(sd)
    with pytest.raises(StateDictError) as e:
        from_gpt2(sd)
    assert words in str(e.value)


def test_bad_weight_files(tmp_path):
    with pytest.raises(CheckpointNotFoundError):
        from_gpt2(tmp_path / "absent.safetensors")
    (tmp_path / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{}")
    with pytest.raises(CheckpointCorruptError):
        from_gpt2(tmp_path)


def tiny_gpt2_folder(folder):
    """A GPT-2 folder: model.safetensors + config.json (save_gpt2) + vocab.json + merges.txt."""
    b2u = gpt2_byte_to_unicode()
    vocab = {b2u[b]: i for i, b in enumerate(range(256))}
    merges = [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("Ã", "©")]
    for a, b in merges:
        vocab[a + b] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    cfg = GPTConfig(vocab_size=len(vocab), block_size=16, n_layer=1, n_head=2, n_embd=16, pos_encoding="learned")
    model = GPT(cfg, seed=0)
    save_gpt2(model, folder / "model.safetensors")
    return model


def test_generate_from_gpt2_weights_with_the_gpt2_vocabulary(tmp_path, capsys):
    model = tiny_gpt2_folder(tmp_path)
    tok = gpt2_tokenizer(tmp_path)
    assert tok.encode(" the café") == [258, 32, 99, 97, 102, 259]
    assert from_gpt2(tmp_path).config == model.config              # n_head=2 from config.json
    assert main(["generate", "--gpt2", str(tmp_path), "--prompt", " the café", "--max-new-tokens", "6",
                 "--greedy"]) == 0
    text = capsys.readouterr().out
    ids = model.generate(np.array([tok.encode(" the café")]), 6, greedy=True, eos_id=tok.special_tokens["<|endoftext|>"])
    assert text == tok.decode(ids[0].tolist()) + "\n"
    assert gpt2_tokenizer(tmp_path / "elsewhere") is None


# ------------------------------------------------------------------------ reading a weights file
@pytest.mark.parametrize("head", ["tied copy", "none", "untied"])
def test_a_weights_file_is_read_straight_into_one_block(tmp_path, head):
    # The parameters land in one block (as a new model's), without the causal-mask buffers or
    # the tied copy of wte in it; an untied head gets an array of its own.
    from safetensors.numpy import save_file
    sd = gpt2_state_dict(lm_head=head != "none")
    if head == "untied":
        sd["lm_head.weight"] = sd["lm_head.weight"][::-1].copy()
    save_file(sd, str(tmp_path / "model.safetensors"))
    model = from_gpt2(tmp_path / "model.safetensors", n_head=4)
    np.testing.assert_allclose(model.forward(IDX)[0], reference_logits(sd, IDX, 4), rtol=1e-4, atol=1e-4)
    assert ("lm_head.weight" in model.params) == (head == "untied")
    packed = [v for k, v in model.params.items() if k != "lm_head.weight"]
    assert len({id(v.base) for v in packed}) == 1
    assert packed[0].base.nbytes <= sum(v.nbytes + 64 for v in packed) + 64       # nothing else read into it
    # torch_gpt takes the same arrays (torch_gpt.model.adopt): one block there too, no copy.
    t = torch_gpt.gpt2.from_gpt2(tmp_path / "model.safetensors", n_head=4)
    usual = torch_gpt.GPT(model.config)
    usual.load_state_dict(torch_gpt.model.from_numpy(model.params))
    with torch.no_grad():
        assert torch.equal(t(torch.from_numpy(IDX))[0], usual(torch.from_numpy(IDX))[0])
    spans = sorted((p.data_ptr(), p.numel() * p.element_size()) for k, p in t.named_parameters() if k != "lm_head.weight")
    assert spans[-1][0] + spans[-1][1] - spans[0][0] <= sum(n + 64 for _, n in spans)


def test_a_float16_file_is_cast_on_the_way_in_and_integers_are_refused(tmp_path):
    from safetensors.numpy import save_file
    half = {k: v.astype(np.float16) for k, v in gpt2_state_dict(prefix="", buffers=False, lm_head=False).items()}
    save_file(half, str(tmp_path / "h.safetensors"))
    for dtype in (np.float32, np.float64):
        m = from_gpt2(tmp_path / "h.safetensors", dtype=dtype, n_head=4)
        assert all(m.params[k].dtype == dtype and np.array_equal(m.params[k], half[k].astype(dtype)) for k in half)
    half["wpe.weight"] = half["wpe.weight"].view(np.int16)
    save_file(half, str(tmp_path / "i.safetensors"))
    with pytest.raises(StateDictError, match="GPT-2 tensor wpe.weight has dtype int16, expected floating point"):
        from_gpt2(tmp_path / "i.safetensors")


def test_reading_a_weights_file_holds_one_copy(tmp_path):
    # safetensors' load_file copied every tensor out of its mapping of the file, and from_gpt2
    # then copied them into the model's block: twice the model (GPT-2 124M: 952 MB, now 477).
    from safetensors.numpy import save_file
    sd = gpt2_state_dict(V=20_000, L=1, lm_head=False)         # as the published file: no copy of wte
    save_file(sd, str(tmp_path / "model.safetensors"))
    model, peak = lowest_traced_peak(lambda: from_gpt2(tmp_path / "model.safetensors", n_head=4))
    P = sum(v.nbytes for v in model.params.values())
    assert P <= peak < P + 100_000, (peak, P)


def test_bfloat16_weights_widen_exactly(tmp_path):
    # NumPy has no bfloat16: its bits are read as uint16 and widened (bits << 16 is the float32 of
    # the same value), 64K values at a time. The file is safetensors.torch's own; torch widens too.
    from safetensors.torch import save_file
    sd = gpt2_state_dict(V=2_000, prefix="", buffers=False, lm_head=False)      # wte: 128,000 values
    bf = {k: torch.from_numpy(v).to(torch.bfloat16) for k, v in sd.items()}
    save_file(bf, str(tmp_path / "model.safetensors"))
    for dtype in (None, np.float64):
        m = from_gpt2(tmp_path / "model.safetensors", n_head=4, **({} if dtype is None else {"dtype": dtype}))
        want = np.float32 if dtype is None else dtype
        assert all(m.params[k].dtype == want and np.array_equal(m.params[k], bf[k].float().numpy()) for k in sd)
