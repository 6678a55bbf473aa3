"""The GPT model: embeddings, n_layer blocks, final norm and LM head, by hand.

Shapes: B = batch, T = time, C = n_embd, V = vocab_size, L = n_layer.

Parameters live in one flat dict, model.params, whose keys and shapes equal
torch_gpt.GPT's state_dict(), named as in GPT-2:
    wte.weight (V, C)                 token embedding (and the LM head when tied)
    wpe.weight (block_size, C)        learned positions (pos_encoding="learned")
    h.{i}.ln_1 / ln_2 .weight .bias   (C,)          (norm != "none"; ln_2 only with the mlp)
    h.{i}.attn.c_attn .weight (C, 3C) .bias (3C,)
    h.{i}.attn.c_proj .weight (C, C)  .bias (C,)
    h.{i}.mlp.c_fc    .weight (C, 4C) .bias (4C,)   (mlp=True)
    h.{i}.mlp.c_proj  .weight (4C, C) .bias (C,)
    ln_f.weight, ln_f.bias (C,)       (norm="pre", as GPT-2)
    lm_head.weight (V, C)             (tie_weights=False; no bias, as GPT-2)
Biases are absent when bias=False.

Forward:
    1. x = wte[idx]                                  (B, T, C)
    2. x = x + positions;  x = drop(x)
    3. x = block_i(x) for i in 0..L-1
    4. x = ln_f(x)                                   (pre-LN only)
    5. logits = x @ W_head^T                         (B, T, V), W_head = wte or lm_head
    6. loss = cross_entropy(logits, targets)
Backward walks 6 -> 1. With tied weights wte is used twice (steps 1 and 5),
so its gradient is the sum of both uses.
"""
from __future__ import annotations

import math

import numpy as np

from .attention import KVCache
from .block import block_backward, block_forward, ln_rebuild, recompute_mlp_for
from .config import GPTConfig
from .dropout import dropout_backward, dropout_forward, dropout_mask
from .embedding import embedding_backward, embedding_forward
from .errors import InputError
from .layernorm import layernorm_backward, layernorm_forward
from .linear import Rebuild, linear_forward
from .loss import IGNORE_INDEX, cross_entropy_backward, cross_entropy_forward
from .parallel import batch_shards, keep_freed_memory_once, map_shards, matmul, share_products
from .positional import learned_backward, learned_forward, sinusoidal_backward, sinusoidal_forward


def param_shapes(cfg: GPTConfig) -> dict[str, tuple[int, ...]]:
    """Every parameter's name and shape, in a fixed order."""
    V, C, b = cfg.vocab_size, cfg.n_embd, cfg.bias
    shapes: dict[str, tuple[int, ...]] = {"wte.weight": (V, C)}
    if cfg.pos_encoding == "learned":
        shapes["wpe.weight"] = (cfg.block_size, C)

    def linear(name, c_in, c_out):
        shapes[f"{name}.weight"] = (c_in, c_out)
        if b:
            shapes[f"{name}.bias"] = (c_out,)

    def norm(name):
        shapes[f"{name}.weight"] = (C,)
        if b:
            shapes[f"{name}.bias"] = (C,)

    for i in range(cfg.n_layer):
        if cfg.norm != "none":
            norm(f"h.{i}.ln_1")
        linear(f"h.{i}.attn.c_attn", C, 3 * C)
        linear(f"h.{i}.attn.c_proj", C, C)
        if cfg.mlp:
            if cfg.norm != "none":
                norm(f"h.{i}.ln_2")
            linear(f"h.{i}.mlp.c_fc", C, cfg.mlp_width)
            linear(f"h.{i}.mlp.c_proj", cfg.mlp_width, C)
    if cfg.norm == "pre":
        norm("ln_f")
    if not cfg.tie_weights:
        shapes["lm_head.weight"] = (V, C)
    return shapes


def init_params(cfg: GPTConfig, seed: int = 0, dtype=np.float32) -> dict[str, np.ndarray]:
    """GPT-2 initialization: weights ~ N(0, 0.02), residual projections (c_proj) scaled
    by 1/sqrt(2 n_layer) so the residual stream's variance does not grow with depth,
    biases 0, norm weights 1. Drawn in float64, so float32 and float64 models agree."""
    rng = np.random.default_rng(seed)
    params = {}
    for name, shape in param_shapes(cfg).items():
        if name.endswith(".bias"):
            value = np.zeros(shape)
        elif ".ln_" in name or name.startswith("ln_f"):
            value = np.ones(shape)
        else:
            std = 0.02 / math.sqrt(2 * cfg.n_layer) if name.endswith("c_proj.weight") else 0.02
            value = rng.normal(0.0, std, shape)
        params[name] = value.astype(dtype)
    return packed_params(params)


PACK_ALIGN = 64            # bytes: each parameter starts on a cache line


def packed_params(params: dict[str, np.ndarray], dtype=None) -> dict[str, np.ndarray]:
    """Copies of params (cast to dtype, if given), laid out one after another in one block of memory.

    Each value is an ordinary C-contiguous array, a view into the block; replacing one later is
    fine, it simply leaves the block. Why one block: NumPy asks Linux to back any allocation of
    4 MB or more with 2 MB pages (transparent huge pages), where smaller arrays get 4 KB pages. A
    decoding step reads every weight once, and spread over 4 KB pages a small model's 14 MB of
    weights take thousands of page-table lookups per token. In one block the same decoding ran
    5-9% faster (small benchmark config, 1 thread, two runs of 40 paired rounds; training steps
    did not change measurably).
    """
    arrays = {k: np.asarray(v, dtype=dtype) for k, v in params.items()}
    out = packed_empty({k: (a.shape, a.dtype) for k, a in arrays.items()})
    for name, a in arrays.items():
        out[name][...] = a
    return out


def packed_empty(specs: dict[str, tuple[tuple[int, ...], np.dtype]]) -> dict[str, np.ndarray]:
    """{name: (shape, dtype)} -> {name: an uninitialized array}, laid out as packed_params lays
    out its copies: one block of memory, each array starting on a cache line. Checkpoints are
    read straight from the file into such arrays (numpy_gpt.checkpoint.read_tensors)."""
    sizes = {k: math.prod(shape) * np.dtype(dt).itemsize for k, (shape, dt) in specs.items()}
    block = np.empty(sum(-(-n // PACK_ALIGN) * PACK_ALIGN for n in sizes.values()) + PACK_ALIGN, dtype=np.uint8)
    start = -block.ctypes.data % PACK_ALIGN
    out = {}
    for name, (shape, dt) in specs.items():
        out[name] = block[start:start + sizes[name]].view(dt).reshape(shape)
        start += -(-sizes[name] // PACK_ALIGN) * PACK_ALIGN
    return out


def block_names(names, i: int) -> list[tuple[str, str]]:
    """(short name, full name) of block i's parameters among names: ("ln_1.weight", "h.3.ln_1.weight")."""
    prefix = f"h.{i}."
    return [(k[len(prefix):], k) for k in names if k.startswith(prefix)]


def block_params(params: dict, i: int) -> dict:
    """The parameters of block i under their short names (references, not copies)."""
    return {short: params[name] for short, name in block_names(params, i)}


def _kept_targets(cache) -> int:
    """How many targets a shard's loss averaged over (cross_entropy_forward's n_kept).

    A shard run by a worker process (numpy_gpt.processes) has ("remote", worker, n_kept, token)."""
    return cache[2] if isinstance(cache, tuple) else cache["n_kept"]


def _params_dtype(params: dict[str, np.ndarray]) -> np.dtype:
    """The one floating dtype of params; InputError for mixed dtypes or none."""
    found = {np.asarray(a).dtype for a in params.values()}
    if len(found) != 1 or next(iter(found)).kind != "f":
        raise InputError(f"the parameters must share one floating dtype, got {sorted(map(str, found))}")
    return next(iter(found))


class GPT:
    """A GPT whose forward and backward are written out by hand.

    model = GPT(cfg, seed=0, dtype=np.float32)
    logits, loss = model.forward(idx, targets)     # loss is None without targets
    grads = model.backward()                       # same keys and shapes as model.params
    """

    def __init__(self, config: GPTConfig, seed: int = 0, dtype=None,
                 params: dict[str, np.ndarray] | None = None):
        """dtype: the new parameters' dtype, float32 unless given. params: arrays to use as
        they are; the model then computes in their dtype, and a dtype argument must match it."""
        self.config = config
        if params is None:
            self.dtype = np.dtype(np.float32 if dtype is None else dtype)
            self.params = init_params(config, seed, self.dtype)
        else:
            self.dtype, self.params = _params_dtype(params), params
            if dtype is not None and np.dtype(dtype) != self.dtype:
                raise InputError(f"dtype {np.dtype(dtype)} differs from the parameters' dtype {self.dtype}")
        self.training = True                 # dropout on; generate() switches it off itself
        self.rng = np.random.default_rng(seed + 1)   # dropout masks and sampling
        self.masks: dict[str, np.ndarray] = {}       # the dropout masks of the last forward
        self._cache = None
        self.shard_processes = None          # numpy_gpt.processes.ShardProcesses, when the user asks for it
        # block_params' mapping, worked out once rather than at every layer of every forward
        self._block_names = [block_names(param_shapes(config), i) for i in range(config.n_layer)]

    # ------------------------------------------------------------------ checks
    def check_idx(self, idx, name: str = "idx") -> np.ndarray:
        idx = np.asarray(idx)
        if idx.ndim != 2:
            raise InputError(f"{name} must be 2-D (batch, time), got shape {idx.shape}")
        if idx.dtype.kind not in "iu":
            raise InputError(f"{name} must hold integers, got dtype {idx.dtype}")
        if 0 in idx.shape:
            raise InputError(f"{name} must hold at least one token in at least one row, got shape {idx.shape}")
        if idx.size and (idx.min() < 0 or idx.max() >= self.config.vocab_size):
            bad = idx.min() if idx.min() < 0 else idx.max()
            raise InputError(f"token id {bad} in {name} is outside [0, {self.config.vocab_size})")
        if idx.shape[1] > self.config.block_size:
            raise InputError(f"sequence length {idx.shape[1]} exceeds block_size {self.config.block_size}")
        return idx

    # ----------------------------------------------------------------- forward
    def forward(self, idx, targets=None, masks: dict | None = None, kv_caches=None, pos0: int = 0,
                grad: bool = True, last_only: bool = False):
        """idx, targets: int arrays (B, T). Returns (logits (B, T, V), loss or None).

        masks: dropout keep-masks by name, to share them with torch; missing ones are
        drawn from self.rng and all are kept in self.masks. kv_caches, pos0: incremental
        decoding (inference only; see generate). grad=False: no backward() follows (an
        evaluation, as under torch.no_grad()), so the forward keeps nothing for one and
        each layer's arrays go once the next layer has what it needs; a KV-cache step
        keeps nothing either. last_only=True: the logits of the last position alone,
        (B, 1, V), which is all generation needs after a prompt: the final layer norm and
        the head run on one position instead of T (with GPT-2's vocabulary the head's
        (T, V) logits are the forward's largest array); it takes no targets, and no
        backward() follows.

        With several threads (numpy_gpt.parallel) the batch is cut into one shard
        per thread (at most B) and each thread runs _forward, then _backward, on its
        rows. A single sequence of at least parallel.SHARE_MIN_ROWS tokens has the
        threads share each big matrix product and attention's heads instead
        (parallel.share_products).

        What a forward keeps for backward() lives until that backward, or until the
        next forward, which lets go of it before it computes anything.
        """
        cfg = self.config
        idx = self.check_idx(idx)
        if pos0 + idx.shape[1] > cfg.block_size:
            raise InputError(f"positions up to {pos0 + idx.shape[1]} exceed block_size {cfg.block_size}")
        if targets is not None and last_only:
            raise InputError("last_only=True computes the last position's logits alone, so no loss: "
                             "pass targets=None")
        if targets is not None:
            targets = np.asarray(targets)
            if targets.shape != idx.shape:
                raise InputError(f"targets shape {targets.shape} differs from idx shape {idx.shape}")
            bad = (targets != IGNORE_INDEX) & ((targets < 0) | (targets >= cfg.vocab_size))
            if bad.any():
                raise InputError(f"target id {targets[bad][0]} is outside [0, {cfg.vocab_size})")
        self._cache = None                           # the last forward's, if no backward freed it
        training = self.training and kv_caches is None
        keep = grad and kv_caches is None and not last_only     # whether a backward() can follow
        # Decided on the whole batch, not per shard: every shard's cache is alive at once. A forward
        # in eval mode that keeps its cache keeps no more than training does; one with grad=False
        # keeps nothing to recompute from.
        recompute = keep and recompute_mlp_for(cfg, idx.size, self.dtype.itemsize)
        keep_freed_memory_once()                     # malloc keeps big freed blocks (numpy_gpt.parallel)
        self.masks = dict(masks or {})
        shards = [slice(0, idx.shape[0])] if kv_caches is not None else batch_shards(idx.shape[0])
        if len(shards) == 1:                         # one shard: the threads share products instead
            with share_products(idx.size):
                logits, loss, c = self._forward(idx, targets, self.masks, training, kv_caches, pos0, recompute,
                                                keep, last_only)
            self._cache = [(slice(None), c)] if keep else None
            return logits, loss
        # Data parallel (numpy_gpt.parallel): each thread runs steps 1-6 on its own rows.
        self._draw_masks(idx.shape, training)        # the masks one whole-batch forward would draw
        args = [(idx[s], None if targets is None else targets[s], {k: m[s] for k, m in self.masks.items()},
                 training, None, 0, recompute, keep, last_only) for s in shards]
        # Each shard writes its logits into its rows of one array: no second copy of them all.
        logits = np.empty((idx.shape[0], 1 if last_only else idx.shape[1], cfg.vocab_size), dtype=self.dtype)
        into = [logits[s] for s in shards]
        if self.shard_processes is not None:         # shards after the first in worker processes
            outs = self.shard_processes.forward(self, args, into)
        else:
            outs = map_shards(lambda a: self._forward(*a[0], logits_out=a[1]), list(zip(args, into)))
        self._cache = [(s, o[2]) for s, o in zip(shards, outs)] if keep else None
        if targets is None:
            return logits, None
        kept = [_kept_targets(o[2]) for o in outs]   # each shard's loss is a mean over its kept targets
        with np.errstate(invalid="ignore", divide="ignore"):   # a shard with none kept has loss NaN
            loss = sum(o[1].astype(np.float64) * n for o, n in zip(outs, kept) if n) / np.float64(sum(kept))
        return logits, np.asarray(loss, dtype=self.dtype)

    def _forward(self, idx, targets, masks: dict, training: bool, kv_caches=None, pos0: int = 0,
                 recompute_mlp: bool = False, keep: bool = True, last_only: bool = False,
                 logits_out: np.ndarray | None = None):
        """Steps 1-6 on validated inputs. Returns (logits, loss or None, cache).
        recompute_mlp: see numpy_gpt.block.recompute_mlp_for. keep=False: the cache is
        {"n_kept": how many targets the loss averaged over} alone, and no layer's cache
        outlives the layer. last_only=True: steps 4-5 on the last position alone (keep
        must be False). logits_out: a C-contiguous (B, T, V) array for the logits ((B, 1,
        V) with last_only), or None for a new one."""
        cfg, p = self.config, self.params
        c = {}
        x, c["wte"] = embedding_forward(idx, p["wte.weight"])                     # 1.
        if cfg.pos_encoding == "learned":                                         # 2.
            x, c["pos"] = learned_forward(x, p["wpe.weight"], pos0)
        else:
            x, c["pos"] = sinusoidal_forward(x, pos0)
        x, c["drop"] = self._dropout(x, "drop", training, masks)
        c["h"] = []
        for i in range(cfg.n_layer):                                              # 3.
            block_masks = {k[len(f"h.{i}."):]: v for k, v in masks.items() if k.startswith(f"h.{i}.")}
            block_masks["rng"] = self.rng
            bp = {short: p[name] for short, name in self._block_names[i]}    # as block_params(p, i)
            x, bc = block_forward(x, bp, cfg, block_masks, training,
                                  None if kv_caches is None else kv_caches[i], recompute_mlp)
            masks.update({f"h.{i}.{k}": v for k, v in block_masks.items() if k != "rng"})
            if keep:
                c["h"].append(bc)
            del bc
        x_kept = None
        if last_only:                                                             # generation's next token
            x = np.ascontiguousarray(x[:, -1:])
        if cfg.norm == "pre":                                                     # 4.
            x, c["ln_f"] = layernorm_forward(x, p["ln_f.weight"], p.get("ln_f.bias"))
            x_kept = ln_rebuild(c["ln_f"], p.get("ln_f.bias"))                   # the head keeps this, not x
        w_head = p["wte.weight"] if cfg.tie_weights else p["lm_head.weight"]      # (V, C)
        logits, c["head"] = linear_forward(x, w_head.T, out=logits_out, x_kept=x_kept)   # 5. (B, T, V)
        loss, c["n_kept"] = None, 0
        if targets is not None:
            loss, c["loss"] = cross_entropy_forward(logits, targets)              # 6.
            c["n_kept"] = c["loss"][3]
        return logits, loss, c if keep else {"n_kept": c["n_kept"]}

    def _draw_masks(self, shape: tuple[int, int], training: bool) -> None:
        """Draw the dropout masks still missing for a (B, T) batch, in the order _forward would."""
        if not training or self.config.dropout == 0.0:
            return
        cfg = self.config
        residual, weights = (*shape, cfg.n_embd), (shape[0], cfg.n_head, shape[1], shape[1])
        names = [("drop", residual)]
        for i in range(cfg.n_layer):
            names += [(f"h.{i}.attn_weights", weights), (f"h.{i}.attn", residual)]
            names += [(f"h.{i}.mlp", residual)] if cfg.mlp else []
        for name, mask_shape in names:
            if name not in self.masks:
                self.masks[name] = dropout_mask(mask_shape, cfg.dropout, self.rng)

    def _dropout(self, x, name, training, masks):
        if not training or self.config.dropout == 0.0:
            return x, None
        if name not in masks:
            masks[name] = dropout_mask(x.shape, self.config.dropout, self.rng)
        return dropout_forward(x, self.config.dropout, masks[name])

    # ---------------------------------------------------------------- backward
    def backward(self, dloss=1.0, dlogits: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Gradients of the last forward: of loss * dloss, or, when dlogits is given,
        of sum(logits * dlogits). Returns a dict with exactly params' keys and shapes."""
        if self._cache is None:
            raise RuntimeError("backward() needs a forward() first (not one with grad=False or a KV-cache "
                               "step, and one backward() per forward(): it frees what the forward kept)")
        if dlogits is None and "loss" not in self._cache[0][1]:
            raise RuntimeError("backward() without dlogits needs a forward() with targets")
        cache, self._cache = self._cache, None      # _backward frees each layer's cache once used
        if len(cache) == 1:
            _, c = cache.pop()
            with share_products(c["wte"][0].size):        # the forward's token count (the embedding keeps idx)
                return self._backward(c, dloss, dlogits)
        # Data parallel: the loss is sum_s mean_s * n_s / n, so shard s gets dloss * n_s / n.
        kept = [_kept_targets(c) if dlogits is None else 0 for _, c in cache]
        total = max(sum(kept), 1)
        work = [(c, dloss * n / total, None if dlogits is None else dlogits[s]) for (s, c), n in zip(cache, kept)]
        del cache
        if isinstance(work[1][0], tuple):            # the forward ran shards in worker processes
            if self.shard_processes is None:
                raise RuntimeError("backward() after the forward's shard processes were closed")
            shard_grads = self.shard_processes.backward(self, work[0], work[1:])
        else:
            shard_grads = map_shards(lambda w: self._backward(*w), work)
        grads = shard_grads[0]
        for g in shard_grads[1:]:                    # the shards' gradients add
            for k in grads:
                grads[k] += g[k]
        return grads

    def _backward(self, c: dict, dloss, dlogits, out: dict | None = None) -> dict[str, np.ndarray]:
        """Steps 6-1 for one forward's cache. Returns the gradients, keyed like params.

        Each part of the cache is dropped from c once used, so memory held for the
        forward is given back while the gradients are being made. out: arrays keyed
        like params (a shard worker's gradient block, shared with the parent) that
        take each gradient as soon as it is made, so the worker does not hold a
        private copy of them all as well (12 MB less at the medium config); the
        returned dict then holds out's arrays.
        """
        cfg = self.config
        if dlogits is None:
            dlogits = cross_entropy_backward(dloss, c.pop("loss"), consume=True)  # 6.
        grads: dict[str, np.ndarray] = {}

        def put(name, g):                   # a gradient made: kept, or copied into out at once
            if out is not None:
                out[name][...] = g
                g = out[name]
            grads[name] = g
        # 5. logits = x @ W_head^T: dx = dlogits @ W_head, and W_head's gradient is
        #    dlogits^T @ x, summed over all positions inside the matmul, (V, C) as W_head is
        x, w_head_t, _ = c.pop("head")                                            # w_head_t = W_head^T
        if isinstance(x, Rebuild):
            x = x()                                                               # ln_f's output again
        C, V = w_head_t.shape
        g_logits = dlogits.reshape(-1, V)                                         # as rows
        head = "wte.weight" if cfg.tie_weights else "lm_head.weight"
        put(head, matmul(g_logits.T, x.reshape(-1, C)))                           # dlogits^T @ x
        x_shape = x.shape
        del x
        dx = matmul(g_logits, w_head_t.T).reshape(x_shape)                        # dlogits @ W_head
        del dlogits, g_logits
        if cfg.norm == "pre":                                                     # 4.
            dx, dw, db = layernorm_backward(dx, c.pop("ln_f"))
            put("ln_f.weight", dw)
            if db is not None:
                put("ln_f.bias", db)
        for i in reversed(range(cfg.n_layer)):                                    # 3.
            dx, block_grads = block_backward(dx, c["h"].pop(), cfg)
            for k in list(block_grads):
                put(f"h.{i}.{k}", block_grads.pop(k))
        dx = dropout_backward(dx, c["drop"])                                      # 2.
        if cfg.pos_encoding == "learned":
            dx, dwpe = learned_backward(dx, c["pos"])
            put("wpe.weight", dwpe)
        else:
            dx = sinusoidal_backward(dx, c["pos"])
        if cfg.tie_weights:                                                       # 1. added to the head's part
            embedding_backward(dx, c["wte"], out=grads["wte.weight"])
        else:                                                                     # 1.
            put("wte.weight", embedding_backward(dx, c["wte"]))
        return {k: grads[k] for k in self.params}

    # -------------------------------------------------------------- inference
    def new_kv_caches(self, B: int = 1) -> list[KVCache]:
        cfg = self.config
        return [KVCache(B, cfg.n_head, cfg.block_size, cfg.head_size, self.dtype)
                for _ in range(cfg.n_layer)]

    def num_params(self) -> int:
        return sum(v.size for v in self.params.values())

    def generate(self, idx, max_new_tokens: int, **kwargs) -> np.ndarray:
        """Extend idx (B, T) by up to max_new_tokens tokens; see numpy_gpt.generation.generate."""
        from .generation import generate
        return generate(self, idx, max_new_tokens, **kwargs)

    @classmethod
    def from_gpt2(cls, source, dtype=np.float32, n_head: int | None = None) -> "GPT":
        """A model from a GPT-2 state dict (Hugging Face names); see numpy_gpt.gpt2.from_gpt2.

        No tensor's shape tells the head count: n_head, else config.json beside the
        weights, else GPT-2's head size of 64."""
        from .gpt2 import from_gpt2
        return from_gpt2(source, dtype=dtype, n_head=n_head)

    def to_gpt2(self, tensors: dict | None = None) -> dict:
        """Parameters (or a gradient dict) under GPT-2's names; see numpy_gpt.gpt2.to_gpt2."""
        from .gpt2 import to_gpt2
        return to_gpt2(self, tensors)
