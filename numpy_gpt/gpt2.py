"""GPT-2's published weights in and out of numpy_gpt.

Hugging Face's GPT-2 state dicts use the names numpy_gpt uses, optionally behind a
"transformer." prefix (GPT2LMHeadModel's keys have it, GPT2Model's and the published
model.safetensors do not):

    wte.weight (V, C)            wpe.weight (n_positions, C)
    h.{i}.ln_1.weight/bias (C,)  h.{i}.attn.c_attn.weight (C, 3C) .bias (3C,)
    h.{i}.attn.c_proj.weight (C, C) .bias (C,)
    h.{i}.ln_2.weight/bias (C,)  h.{i}.mlp.c_fc.weight (C, 4C) .bias (4C,)
    h.{i}.mlp.c_proj.weight (4C, C) .bias (C,)
    ln_f.weight/bias (C,)        lm_head.weight (V, C), when present: tied to wte in GPT-2

GPT-2's Conv1D keeps its weights as (in, out), which is numpy_gpt's own layout: nothing is
transposed (nanoGPT needs a list of weights to transpose here; we do not). Two kinds of key
are buffers, not parameters, and are skipped: h.{i}.attn.bias and h.{i}.attn.masked_bias (the
causal mask, which numpy_gpt builds itself).

The model is configured from the shapes: vocab_size and n_embd from wte, block_size from wpe,
n_layer from the h.{i} indices; learned positions, pre-LN, tanh GELU, biases, tied head. The
number of heads does not show in any shape: it comes from the n_head argument, else from a
Hugging Face config.json beside the weights file, else from GPT-2's head size of 64
(n_head = n_embd / 64, true of every published GPT-2).
"""
from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping

import numpy as np

from .config import GPTConfig
from .errors import CheckpointError, ConfigError, StateDictError
from .model import GPT, packed_empty, packed_params, param_shapes

PREFIX = "transformer."
GPT2_HEAD_SIZE = 64
_BUFFER = re.compile(r"h\.\d+\.attn\.(bias|masked_bias)$")
_LAYER = re.compile(r"h\.(\d+)\.")
# Hugging Face's activation_function names -> numpy_gpt's.
_ACTIVATIONS = {"gelu_new": "gelu", "gelu_pytorch_tanh": "gelu", "gelu_fast": "gelu",
                "gelu": "gelu_exact", "relu": "relu"}


def _as_array(name: str, v) -> np.ndarray:
    if hasattr(v, "detach"):                     # a torch tensor, read without importing torch
        v = v.detach().cpu()
        if str(v.dtype) == "torch.bfloat16":
            v = v.float()
        v = v.numpy()
    a = np.asarray(v)
    if a.dtype.kind not in "fiu":
        raise StateDictError(f"GPT-2 tensor {name} has dtype {a.dtype}, expected floating point")
    return a


def read_state_dict(source, dtype=None) -> tuple[dict[str, np.ndarray], str | None]:
    """(tensors by name, the folder they came from or None) from a path or a mapping.

    source: a .safetensors file, a folder holding model.safetensors, or a dict of arrays
    (numpy arrays, torch tensors or nested lists), returned as they are.
    From a file the tensors are read straight into one block of memory (numpy_gpt.checkpoint.
    read_tensors), in dtype if given, else as stored (bfloat16 as float32); the causal-mask buffers are skipped, and
    lm_head.weight, in GPT-2 a copy of wte.weight, gets an array of its own so that dropping it
    leaves no hole in the block. Loading random weights of the 124M model's shapes (475 MB)
    peaked 951 MB above the imports through safetensors' load_file and a copy into the block,
    477 MB this way (Zen 3 host, 2026-12-05; `python -m benchmarks.load_memory --gpt2`).
    """
    if isinstance(source, Mapping):
        return {str(k): _as_array(str(k), v) for k, v in source.items()}, None
    path = os.fspath(source)
    if os.path.isdir(path):
        path = os.path.join(path, "model.safetensors")
    from .checkpoint import _layout, read_tensors, stored_tensors
    what = "GPT-2 weights"
    table, _, start = _layout(path, what)      # missing / truncated / not safetensors: CheckpointError
    stored = stored_tensors(path, table, what)
    keep = {k: t for k, t in stored.items() if not _BUFFER.fullmatch(k.removeprefix(PREFIX))}
    for k, t in keep.items():
        if t.dtype.kind != "f" and not t.bfloat16:
            raise StateDictError(f"GPT-2 tensor {k} has dtype {t.dtype}, expected floating point")

    def as_dtype(t):                            # bfloat16, which NumPy has not, as float32
        return np.dtype(dtype) if dtype is not None else np.dtype(np.float32) if t.bfloat16 else t.dtype.newbyteorder("=")
    into = packed_empty({k: (t.shape, as_dtype(t)) for k, t in keep.items() if k != "lm_head.weight"})
    if "lm_head.weight" in keep:
        into["lm_head.weight"] = np.empty(keep["lm_head.weight"].shape, as_dtype(keep["lm_head.weight"]))
    try:
        read_tensors(path, start, stored, into, what=what)
    except OSError as e:
        raise CheckpointError(f"cannot read {what} {path}: {e.strerror or e}", path) from None
    return into, os.path.dirname(os.path.abspath(path))


def _hf_config(folder: str | None) -> dict:
    if folder is None or not os.path.isfile(os.path.join(folder, "config.json")):
        return {}
    with open(os.path.join(folder, "config.json"), encoding="utf-8") as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as e:
            raise ConfigError(f"{os.path.join(folder, 'config.json')} is not valid JSON: {e}") from None


def _examples(names, n=5) -> str:
    names = sorted(names)
    return ", ".join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "")


def gpt2_config(tensors: Mapping[str, np.ndarray], n_head: int | None = None, hf_config: dict | None = None
                ) -> tuple[GPTConfig, dict[str, np.ndarray], str]:
    """The GPTConfig the tensors describe, the tensors under numpy_gpt's names, and the prefix seen.

    Raises StateDictError for missing or extra keys and wrong shapes (all of them, in one message).
    """
    hf_config = hf_config or {}
    named, prefix = {}, ""
    for k, v in tensors.items():
        if k.startswith(PREFIX):
            k, prefix = k[len(PREFIX):], PREFIX
        if not _BUFFER.fullmatch(k):
            named[k] = v
    for key in ("wte.weight", "wpe.weight"):
        if key not in named:
            raise StateDictError(f"GPT-2 state dict has no {prefix}{key}; it is needed to size the model "
                                 f"(keys seen: {_examples(tensors)})", missing=[prefix + key])
        if np.ndim(named[key]) != 2:
            raise StateDictError(f"GPT-2 tensor {prefix}{key} has shape {np.shape(named[key])}, expected 2-D")
    V, C = named["wte.weight"].shape
    n_layer = 1 + max((int(m.group(1)) for k in named if (m := _LAYER.match(k))), default=-1)
    n_head = n_head or hf_config.get("n_head")
    if n_head is None:
        if C % GPT2_HEAD_SIZE:
            raise StateDictError(f"cannot tell n_head from the shapes: n_embd={C} is not a multiple of GPT-2's "
                                 f"head size {GPT2_HEAD_SIZE}; pass n_head= or put a config.json with n_head "
                                 "beside the weights")
        n_head = C // GPT2_HEAD_SIZE
    eps = hf_config.get("layer_norm_epsilon", 1e-5)
    if eps != 1e-5:
        raise ConfigError(f"layer_norm_epsilon={eps} in config.json; numpy_gpt's layer norm uses 1e-5")
    act = hf_config.get("activation_function", "gelu_new")
    if act not in _ACTIVATIONS:
        raise ConfigError(f"activation_function={act!r} in config.json; expected one of {', '.join(_ACTIVATIONS)}")
    tied = "lm_head.weight" not in named or (
        np.shape(named["lm_head.weight"]) == (V, C) and np.array_equal(named["lm_head.weight"], named["wte.weight"]))
    if tied:
        named.pop("lm_head.weight", None)
    if n_layer == 0:
        raise StateDictError(f"GPT-2 state dict has no blocks (no {prefix}h.0.* keys)", missing=[f"{prefix}h.0.ln_1.weight"])
    cfg = GPTConfig(vocab_size=V, block_size=named["wpe.weight"].shape[0], n_layer=n_layer, n_head=int(n_head),
                    n_embd=C, pos_encoding="learned", activation=_ACTIVATIONS[act], norm="pre", mlp=True,
                    dropout=0.0, bias=True, tie_weights=tied)
    expected = param_shapes(cfg)
    missing = [k for k in expected if k not in named]
    extra = [k for k in named if k not in expected]
    wrong = {k: (tuple(np.shape(named[k])), s) for k, s in expected.items()
             if k in named and tuple(np.shape(named[k])) != s}
    if missing or extra or wrong:
        name = lambda k: (prefix + k) if k != "lm_head.weight" else k  # noqa: E731
        parts = []
        if missing:
            parts.append(f"missing {_examples(name(k) for k in missing)}")
        if extra:
            parts.append(f"unexpected {_examples(name(k) for k in extra)}")
        for k, (got, want) in list(wrong.items())[:5]:
            parts.append(f"{name(k)} has shape {got}, expected {want}")
        if len(wrong) > 5:
            parts.append(f"{len(wrong) - 5} more wrong shapes")
        raise StateDictError(
            f"GPT-2 state dict does not fit a GPT-2 with {n_layer} layers, n_embd={C}, vocab_size={V}: "
            + "; ".join(parts), missing=[name(k) for k in missing], unexpected=[name(k) for k in extra],
            wrong_shapes={name(k): v for k, v in wrong.items()})
    return cfg, {k: named[k] for k in expected}, prefix


def from_gpt2(source, dtype=np.float32, n_head: int | None = None) -> GPT:
    """A numpy_gpt GPT holding GPT-2 weights (Hugging Face names, "transformer." prefix optional).

    source: a .safetensors path, a folder with model.safetensors (and config.json), or a dict of arrays.
    A dict's arrays are copied and cast to dtype; a file is read once, straight into the model's
    parameters (read_state_dict).
    """
    tensors, folder = read_state_dict(source, dtype)
    cfg, named, _ = gpt2_config(tensors, n_head, _hf_config(folder))
    return GPT(cfg, dtype=dtype, params=packed_params(named, dtype) if isinstance(source, Mapping) else named)


def check_gpt2_shaped(cfg: GPTConfig) -> None:
    """Raise ConfigError unless cfg is a model GPT-2's names and layout can describe."""
    want = dict(pos_encoding="learned", norm="pre", mlp=True, bias=True)
    bad = [f"{k}={getattr(cfg, k)!r}" for k, v in want.items() if getattr(cfg, k) != v]
    if cfg.activation not in ("gelu", "gelu_exact", "relu"):
        bad.append(f"activation={cfg.activation!r}")
    if bad:
        raise ConfigError("GPT-2's layout needs learned positions, pre-LN, an MLP and biases; "
                          f"this model has {', '.join(bad)}")


def gpt2_name(name: str, prefix: str = PREFIX) -> str:
    """numpy_gpt's parameter name -> GPT-2's: the prefix in front, except for lm_head (outside the transformer)."""
    return name if name == "lm_head.weight" else prefix + name


def check_same_names(shapes: Mapping[str, tuple], tensors: Mapping) -> None:
    """Raise StateDictError unless tensors has exactly the names in shapes, each with that shape."""
    missing, extra = set(shapes) - set(tensors), set(tensors) - set(shapes)
    if missing or extra:
        raise StateDictError(f"expected the model's parameter names: missing {_examples(missing) or 'none'}, "
                             f"unexpected {_examples(extra) or 'none'}", missing=missing, unexpected=extra)
    wrong = {k: (tuple(np.shape(v)), tuple(shapes[k])) for k, v in tensors.items()
             if tuple(np.shape(v)) != tuple(shapes[k])}
    if wrong:
        k, (got, want) = next(iter(wrong.items()))
        raise StateDictError(f"{k} has shape {got}, expected {want}", wrong_shapes=wrong)


def to_gpt2(model: GPT, tensors: Mapping[str, np.ndarray] | None = None, prefix: str = PREFIX) -> dict:
    """model.params (or a dict with the same keys, such as model.backward()'s gradients)
    under GPT-2's names: "transformer." + name, and "lm_head.weight" for an untied head.

    The arrays are returned as they are (not copied). from_gpt2(to_gpt2(model)) gives the
    model back; n_embd must be a multiple of 64 there, or pass n_head.
    """
    check_gpt2_shaped(model.config)
    tensors = model.params if tensors is None else tensors
    check_same_names({k: v.shape for k, v in model.params.items()}, tensors)
    return {gpt2_name(k, prefix): tensors[k] for k in model.params}


def save_gpt2(model: GPT, path: str | os.PathLike, prefix: str = "") -> str:
    """Write model's weights as a GPT-2 model.safetensors (the published files have no prefix)
    and a config.json beside it (n_head, activation), which from_gpt2 reads back."""
    from .checkpoint import _atomic_write, safetensors_writer
    path = os.fspath(path)
    _atomic_write(path, safetensors_writer(to_gpt2(model, prefix=prefix), {"format": "pt"}))
    cfg = model.config
    act = {"gelu": "gelu_new", "gelu_exact": "gelu", "relu": "relu"}[cfg.activation]
    hf = {"model_type": "gpt2", "n_head": cfg.n_head, "n_layer": cfg.n_layer, "n_embd": cfg.n_embd,
          "n_positions": cfg.block_size, "vocab_size": cfg.vocab_size, "activation_function": act,
          "layer_norm_epsilon": 1e-5}
    text = json.dumps(hf, indent=2).encode()
    _atomic_write(os.path.join(os.path.dirname(os.path.abspath(path)), "config.json"), lambda f: f.write(text))
    return path


def gpt2_tokenizer(folder: str | os.PathLike):
    """GPT-2's byte-level BPE from folder/vocab.json and folder/merges.txt, or None if they are absent."""
    from .tokenizers import ByteBPETokenizer
    folder = os.fspath(folder)
    if os.path.isfile(folder):
        folder = os.path.dirname(os.path.abspath(folder))
    vocab, merges = os.path.join(folder, "vocab.json"), os.path.join(folder, "merges.txt")
    if not (os.path.isfile(vocab) and os.path.isfile(merges)):
        return None
    try:
        return ByteBPETokenizer.from_gpt2_files(vocab, merges)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        from .tokenizers import TokenizerFormatError
        raise TokenizerFormatError(f"{vocab} or {merges} is malformed: {e}") from None

