"""One KV-cache decoding step, written for speed: the fast path beside GPT.forward.

Shapes: B = batch (rows being decoded), C = channels, V = vocab, nh = heads,
hs = head size, L = positions in the cache after this step.

The reference for a decoding step is GPT.forward(idx[:, -1:], kv_caches, pos0),
which runs the layers training runs (model.py, block.py, attention.py, ...):
each works on (B, T, C) arrays, builds the cache its backward would read, and
goes through the checks and dropout bookkeeping of a training forward. With
T = 1 and no backward, most of that is overhead. One NumPy call costs about a
microsecond, more than the arithmetic on one row of a small model, and the
reference step makes several hundred of them. The rest of a decoding step is
its products: one matrix-vector product per weight matrix, each weight read
once, as BLAS runs them. At the small benchmark config they are under half of
this step's time (docs/decoding.md; `python -m benchmarks.decode_parts`).

DecodeStep computes the same function on (B, C) rows with nothing kept for a
backward, and in the same order of operations as the reference: the same
products on the same numbers, layernorm_forward's steps (written out for rows
below, without its reshapes and cache), the attention's in-place softmax and
the same GELU kernel. Its logits and caches therefore equal the reference's
bit for bit (tests/test_decode.py checks that on configurations drawn over
every option, and the logits against torch_gpt). The math, for a pre-LN block, per row:

    x = wte[token] + wpe[pos]                          (B, C)
    per block:
        q, k, v = split(ln_1(x) @ c_attn_w + c_attn_b)  (B, nh, 1, hs) each; k, v appended to the cache
        a = softmax(q @ K^T / sqrt(hs))                 (B, nh, 1, L): the newest position sees all L
        x = x + merge(a @ V) @ c_proj_w + c_proj_b
        x = x + act(ln_2(x) @ c_fc_w + c_fc_b) @ c_proj_w' + c_proj_b'
    logits = ln_f(x) @ wte^T                           (B, V)

generation.py uses it for every step after the prompt; the prompt itself (the
prefill, many positions at once) goes through GPT.forward.
"""
from __future__ import annotations

import numpy as np

from .activations import ACTIVATIONS, _gelu_kernel
from .attention import KVCache, _softmax_rows
from .errors import InputError
from .layernorm import EPS
from .parallel import matmul
from .positional import sinusoidal_table
from .reductions import ones


_COLUMN = (slice(None), None)                            # [:, None]: (B,) -> (B, 1)


def _layers(bp: dict) -> dict:
    """A block's parameters {"ln_1.weight": w, "ln_1.bias": b, ...} as {"ln_1": (w, b), ...},
    b None where the layer has no bias; looked up once, not at every step."""
    names = {key.rsplit(".", 1)[0] for key in bp}
    return {name: (bp[f"{name}.weight"], bp.get(f"{name}.bias")) for name in names}


def _linear(x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    out = matmul(x, w)                                   # (B, C_in) @ (C_in, C_out), as linear_forward's
    if b is not None:
        out += b
    return out


class DecodeStep:
    """step(tokens (B,), caches, pos) -> logits (B, V) for the tokens at position pos.

    caches: the model's KV caches (GPT.new_kv_caches), holding positions 0 to
    pos - 1; each gets this position's keys and values. The parameters are
    looked up once, when the DecodeStep is made: make a new one after
    replacing arrays in model.params.
    """

    def __init__(self, model):
        cfg, p = model.config, model.params
        self.config = cfg
        self._check_idx = model.check_idx                    # the token checks of GPT.forward
        self.n_head, self.hs = cfg.n_head, cfg.head_size
        self.wte = p["wte.weight"]
        dtype = self.wte.dtype                               # the arrays' own, as the reference's is
        self.scale = dtype.type(1.0 / np.sqrt(cfg.head_size))   # as causal_attention_forward's
        self.head = (p["wte.weight"] if cfg.tie_weights else p["lm_head.weight"]).T   # (C, V), a view
        self.wpe = (p["wpe.weight"] if cfg.pos_encoding == "learned"
                    else sinusoidal_table(cfg.block_size, cfg.n_embd, dtype))
        self.ln_f = (p["ln_f.weight"], p.get("ln_f.bias")) if cfg.norm == "pre" else None
        self.blocks = [_layers({short: p[name] for short, name in names}) for names in model._block_names]
        # layernorm_forward's constants, as it makes them (x.dtype.type(1.0 / C), ... (eps))
        self.ones_C, self.inv_C = ones(cfg.n_embd, dtype), dtype.type(1.0 / cfg.n_embd)
        self.eps = dtype.type(EPS)
        self.gelu = cfg.mlp and cfg.activation == "gelu"     # the tanh GELU, run in place with a scratch

    def __call__(self, tokens: np.ndarray, caches: list[KVCache], pos: int) -> np.ndarray:
        tokens = np.asarray(tokens)
        self._check(tokens, caches, pos)
        x = self.wte[tokens] + self.wpe[pos]                 # (B, C), as embedding + positions
        hidden = np.empty((x.shape[0], self.config.mlp_width), x.dtype) if self.gelu else None   # GELU's scratch
        for layers, cache in zip(self.blocks, caches):
            x = self._block(x, layers, cache, hidden)
        if self.ln_f is not None:
            x = self._layernorm(x, *self.ln_f)
        return matmul(x, self.head)                          # (B, V), as the reference's head

    def _check(self, tokens, caches, pos) -> None:
        cfg = self.config
        if tokens.ndim != 1:
            raise InputError(f"tokens must be a 1-D array (one per row), got shape {tokens.shape}")
        self._check_idx(tokens[:, None], "tokens")           # integers in [0, vocab_size)
        if isinstance(pos, bool) or not isinstance(pos, (int, np.integer)):
            raise InputError(f"position must be an integer, got {pos!r}")
        if not 0 <= pos < cfg.block_size:
            raise InputError(f"position {pos} is outside [0, block_size={cfg.block_size})")
        if len(caches) != cfg.n_layer:
            raise InputError(f"{len(caches)} KV cache(s) for {cfg.n_layer} layer(s)")
        want = (tokens.shape[0], self.n_head, self.hs)
        for i, c in enumerate(caches):
            B, nh, room, hs = c.k.shape
            if c.length != pos or (B, nh, hs) != want or room <= pos:
                raise InputError(f"layer {i}'s KV cache holds {c.length} position(s) of {B} row(s), {nh} head(s) "
                                 f"of {hs}, with room for {room}; this step needs {pos} position(s) of "
                                 f"{want[0]} row(s), {want[1]} head(s) of {want[2]}, and room for {pos + 1}")

    def _layernorm(self, x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
        """layernorm_forward's steps 1-6 on (B, C) rows, the same operations on the same numbers
        (so the same bits), with no reshapes and nothing kept for a backward. On rows of 256 a
        layer norm is a dozen NumPy calls of about a microsecond each, and the reference's
        reshapes and cache add half as much again: 17 us a call against 13 here for 2 rows.
        One row's statistics (mean, variance, 1 / std) are NumPy scalars, [0] where more rows'
        are (B, 1) columns: a scalar's arithmetic is the same IEEE operation, rounded the same,
        for a fraction of an array call's cost, 7.3 us a call against 11 as (1, 1) columns.
        (Best of 5 loops of 20,000 calls, 1 thread, Zen 3 host, 2026-12-06.)"""
        at = 0 if x.shape[0] == 1 else _COLUMN
        mu = (x @ self.ones_C)[at] * self.inv_C                     # 1. row sums in BLAS, as row_sums
        xc = x - mu                                                 # 2.
        var = np.vecdot(xc, xc)[at] * self.inv_C                    # 3. as row_dots
        rstd = 1.0 / np.sqrt(var + self.eps)                        # 4.
        xhat = np.multiply(xc, rstd, out=xc)                        # 5.
        out = xhat * w                                              # 6.
        if b is not None:
            out += b
        return out

    def _block(self, x: np.ndarray, p: dict, cache: KVCache, hidden: np.ndarray | None) -> np.ndarray:
        """block.py's block_forward for one position, without dropout or a cache for backward.
        x is this step's own array (made in __call__), so the residual adds go into it."""
        norm, ln = self.config.norm, self._layernorm
        if norm == "pre":
            x += self._attn(ln(x, *p["ln_1"]), p, cache)
            if self.config.mlp:
                x += self._mlp(ln(x, *p["ln_2"]), p, hidden)
        elif norm == "post":
            x = ln(x + self._attn(x, p, cache), *p["ln_1"])
            if self.config.mlp:
                x = ln(x + self._mlp(x, p, hidden), *p["ln_2"])
        else:
            x += self._attn(x, p, cache)
            if self.config.mlp:
                x += self._mlp(x, p, hidden)
        return x

    def _attn(self, h: np.ndarray, p: dict, cache: KVCache) -> np.ndarray:
        """attention.py's steps 1-8 for one query per row, which sees every cached key (no mask)."""
        B = h.shape[0]
        qkv = _linear(h, *p["attn.c_attn"])                                      # 1. (B, 3C)
        qkv = qkv.reshape(B, 3, self.n_head, 1, self.hs)                         # 2. views, no copy
        k, v = cache.append(qkv[:, 1], qkv[:, 2])                                #    (B, nh, L, hs)
        s = qkv[:, 0] @ k.swapaxes(-1, -2)                                       # 3. (B, nh, 1, L)
        _softmax_rows(s.reshape(-1, 1, s.shape[-1]), self.scale, None)          # 3-5. in place
        y = (s @ v).reshape(B, -1)                                               # 6-7. (B, C): T = 1
        return _linear(y, *p["attn.c_proj"])                                     # 8.

    def _mlp(self, h: np.ndarray, p: dict, hidden: np.ndarray) -> np.ndarray:
        """ffn.py's forward on rows; the tanh GELU runs in place on the hidden layer."""
        a = _linear(h, *p["mlp.c_fc"])                                           # 1. (B, 4C)
        if self.gelu:
            _gelu_kernel(a, a, hidden)                                           # 2. as gelu_forward
        else:
            a, _ = ACTIVATIONS[self.config.activation][0](a)
        return _linear(a, *p["mlp.c_proj"])                                      # 3. (B, C)
