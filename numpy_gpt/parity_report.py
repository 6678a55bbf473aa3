"""The NumPy half of `numpy-gpt parity` and `numpy-gpt gradcheck`: tolerances, the activation
trace, the finite-difference suite and the report tables. No torch here; torch_gpt.parity runs
the other side of the parity report.

Errors are measured as in the test suite, by numpy_gpt.gradcheck.rel_error: the largest
absolute difference over the largest magnitude of either tensor (the "rel diff" column).
A tensor is "exact" when every entry is bitwise equal, "close" within the tolerance, else "FAIL".
"""
from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass

import numpy as np

from .attention import attention_backward, attention_forward
from .block import block_backward, block_forward
from .config import GPTConfig
from .dropout import dropout_backward, dropout_forward
from .embedding import embedding_backward, embedding_forward
from .ffn import ffn_backward, ffn_forward
from .gradcheck import NOISE_FACTOR, check_backward, rel_error
from .layernorm import layernorm_backward, layernorm_forward
from .linear import linear_backward, linear_forward
from .loss import cross_entropy_backward, cross_entropy_forward
from .model import GPT, block_params
from .positional import learned_backward, learned_forward, sinusoidal_backward, sinusoidal_forward
from .softmax import softmax_backward, softmax_forward
from .activations import ACTIVATIONS

# The test suite's thresholds, copied (tests/ is not part of the installed package):
# tests/tolerances.py MODEL_PARITY, SCALE_FLOOR, FD_STEP, FD and TRAJECTORY, with the reasons
# for each. tests/test_cli.py asserts that these stay equal to the originals.
PARITY_TOL = {np.dtype(np.float64): 1e-9, np.dtype(np.float32): 1e-4}
TRAJECTORY_TOL = 1e-9                     # float64 training runs, step for step
SCALE_FLOOR = {np.dtype(np.float64): 1e-3, np.dtype(np.float32): 1e-2}
FD_STEP = 1e-6
FD_TOL = 1e-6


# ------------------------------------------------------------------------- the report rows
@dataclass
class Row:
    name: str
    kind: str              # "activation" or "gradient" (parity); the layer (gradcheck)
    shape: tuple
    max_abs: float
    rel: float
    status: str            # "exact", "close", "FAIL", FREE (parity); "ok", "FAIL" (gradcheck)
    noise: float = 0.0     # gradcheck: finite differences' rounding allowance, NOISE_FACTOR * eps * |L| / h


def compare(name: str, kind: str, ours, theirs, tol: float, floor: float = 0.0) -> Row:
    """One parity row: numpy_gpt's tensor against the reference's."""
    if theirs is None:
        return Row(name, kind, np.shape(ours), math.inf, math.inf, "FAIL")
    a, b = np.asarray(ours, dtype=np.float64), np.asarray(theirs, dtype=np.float64)
    if a.shape != b.shape:
        return Row(name, kind, a.shape, math.inf, math.inf, "FAIL")
    finite = np.isfinite(a).all() and np.isfinite(b).all()
    max_abs = float(np.abs(a - b).max(initial=0.0)) if finite else math.nan
    rel = rel_error(a, b, floor) if finite else math.nan
    if finite and np.array_equal(a, b):
        status = "exact"
    elif finite and rel <= tol:
        status = "close"
    else:
        status = "FAIL"
    return Row(name, kind, a.shape, max_abs, rel, status)


def use_color(stream=None, mode: str = "auto") -> bool:
    """Colour when asked, or (auto) when stream is a terminal and NO_COLOR is not set."""
    if mode in ("always", "never"):
        return mode == "always"
    stream = stream or sys.stdout
    return (hasattr(stream, "isatty") and stream.isatty() and "NO_COLOR" not in os.environ
            and os.environ.get("TERM") != "dumb")


# `parity --steps`: a part of a parameter that no output depends on (torch_gpt.parity._judged: the
# attention's key bias), apart from the rest and not judged, or an optimizer buffer of it.
FREE = "free"
FREE_NOTE = ("free: the attention's key bias adds the same number to each score of a row, which softmax\n"
             "  ignores, so no output depends on it and its gradient is zero but for rounding, which an\n"
             "  optimizer can turn into steps (Adam's L2 weight decay does) that differ from side to side;\n"
             "  shown, not judged")

_COLORS = {"exact": "32", "close": "32", "ok": "32", "FAIL": "1;31", FREE: "33"}


def paint(text: str, status: str, color: bool) -> str:
    return f"\033[{_COLORS[status]}m{text}\033[0m" if color and status in _COLORS else text


def format_rows(rows: list[Row], color: bool = False, group_by_kind: bool = True) -> str:
    width = max([len(r.name) for r in rows] + [6]) + 2
    lines = [f"  {'tensor':<{width}}{'shape':<18}{'max abs diff':>14}{'rel diff':>12}  status"]
    kind = None
    for r in rows:
        if group_by_kind and r.kind != kind:
            kind = r.kind
            lines.append(f"{kind}s" if not kind.endswith("s") else kind)
        shape = "x".join(map(str, r.shape)) if r.shape else "scalar"
        lines.append(f"  {r.name:<{width}}{shape:<18}{r.max_abs:>14.2e}{r.rel:>12.2e}  "
                     + paint(r.status, r.status, color))
    return "\n".join(lines)


@dataclass
class StepRow:
    """One training step of `numpy-gpt parity --steps`: both sides' loss and how far apart the
    losses and the gradient norms are (rel diff: |a - b| / max(|a|, |b|))."""
    step: int
    loss: float
    t_loss: float
    loss_rel: float
    norm_rel: float
    status: str


def step_row(step: int, loss: float, t_loss: float, norm: float, t_norm: float, tol: float) -> StepRow:
    lr, nr = rel_error(loss, t_loss), rel_error(norm, t_norm)
    ok = math.isfinite(lr) and math.isfinite(nr)
    status = "exact" if loss == t_loss and norm == t_norm else "close" if ok and max(lr, nr) <= tol else "FAIL"
    return StepRow(step, loss, t_loss, lr, nr, status)


def format_steps(rows: list[StepRow], color: bool = False) -> str:
    lines = [f"  {'step':>5}  {'loss, numpy_gpt':>17}  {'loss, torch_gpt':>17}  {'loss rel diff':>13}"
             f"  {'norm rel diff':>13}  status"]
    for r in rows:
        lines.append(f"  {r.step:>5}  {r.loss:>17.12f}  {r.t_loss:>17.12f}  {r.loss_rel:>13.2e}  {r.norm_rel:>13.2e}  "
                     + paint(r.status, r.status, color))
    return "\n".join(lines)


def summary(rows: list[Row]) -> str:
    counts = {s: sum(r.status == s for r in rows) for s in ("exact", "close", "FAIL", FREE)}
    return (f"{len(rows)} tensors: {counts['exact']} exact, {counts['close']} close, {counts['FAIL']} FAIL"
            + (f", {counts[FREE]} {FREE}" if counts[FREE] else ""))


# ------------------------------------------------------------------- the activation trace
def numpy_activations(model: GPT, idx: np.ndarray, targets: np.ndarray | None = None,
                      masks: dict | None = None) -> dict[str, np.ndarray]:
    """model's intermediate activations, named as torch_gpt's modules (for forward hooks):

        emb            token + position embeddings (after dropout): the input of h.0
        h.{i}.ln_1, h.{i}.attn, h.{i}.ln_2, h.{i}.mlp     each sublayer's output (before dropout)
        h.{i}          block i's output
        ln_f, logits, loss

    Computed by calling the layer functions in the order model.forward does; block outputs
    come from block_forward itself. masks: the dropout masks of a training forward (model.masks).
    """
    cfg, p, masks = model.config, model.params, masks or {}
    acts: dict[str, np.ndarray] = {}

    def drop(z, mask):
        return z if mask is None or cfg.dropout == 0.0 else dropout_forward(z, cfg.dropout, mask)[0]

    x, _ = embedding_forward(idx, p["wte.weight"])
    x = learned_forward(x, p["wpe.weight"])[0] if cfg.pos_encoding == "learned" else sinusoidal_forward(x)[0]
    acts["emb"] = x = drop(x, masks.get("drop"))
    for i in range(cfg.n_layer):
        bp = block_params(p, i)
        bm = {k[len(f"h.{i}."):]: v for k, v in masks.items() if k.startswith(f"h.{i}.")}
        acts.update({f"h.{i}.{k}": v for k, v in _block_trace(x, bp, cfg, bm, drop).items()})
        x, _ = block_forward(x, bp, cfg, dict(bm), training=bool(bm))
        acts[f"h.{i}"] = x
    if cfg.norm == "pre":
        acts["ln_f"] = x = layernorm_forward(x, p["ln_f.weight"], p.get("ln_f.bias"))[0]
    w_head = p["wte.weight"] if cfg.tie_weights else p["lm_head.weight"]
    acts["logits"] = logits = linear_forward(x, w_head.T)[0]
    if targets is not None:
        acts["loss"] = cross_entropy_forward(logits, targets)[0]
    return acts


def _block_trace(x, p, cfg: GPTConfig, masks: dict, drop) -> dict[str, np.ndarray]:
    def ln(z, n):
        return layernorm_forward(z, p[f"{n}.weight"], p.get(f"{n}.bias"))[0]

    def attn(z):
        weights = masks.get("attn_weights")                     # attention dropout (attention.py, 5b)
        drop_w = None if weights is None or cfg.dropout == 0.0 else (weights, cfg.dropout)
        return attention_forward(z, p["attn.c_attn.weight"], p.get("attn.c_attn.bias"),
                                 p["attn.c_proj.weight"], p.get("attn.c_proj.bias"), cfg.n_head,
                                 drop=drop_w)[0]

    def mlp(z):
        return ffn_forward(z, p["mlp.c_fc.weight"], p.get("mlp.c_fc.bias"), p["mlp.c_proj.weight"],
                           p.get("mlp.c_proj.bias"), cfg.activation)[0]

    out = {}
    if cfg.norm == "pre":                      # x = x + drop(attn(ln_1(x))); x = x + drop(mlp(ln_2(x)))
        out["ln_1"] = h = ln(x, "ln_1")
        out["attn"] = a = attn(h)
        if cfg.mlp:
            x = x + drop(a, masks.get("attn"))
            out["ln_2"] = h = ln(x, "ln_2")
            out["mlp"] = mlp(h)
    elif cfg.norm == "post":                   # x = ln_1(x + drop(attn(x))); x = ln_2(x + drop(mlp(x)))
        out["attn"] = a = attn(x)
        out["ln_1"] = x = ln(x + drop(a, masks.get("attn")), "ln_1")
        if cfg.mlp:
            out["mlp"] = m = mlp(x)
            out["ln_2"] = ln(x + drop(m, masks.get("mlp")), "ln_2")
    else:                                      # x = x + drop(attn(x)); x = x + drop(mlp(x))
        out["attn"] = a = attn(x)
        if cfg.mlp:
            out["mlp"] = mlp(x + drop(a, masks.get("attn")))
    return out


def perturbed_params(cfg: GPTConfig, seed: int, dtype) -> dict[str, np.ndarray]:
    """GPT-2's initialization with every bias and norm weight nudged off 0 and 1, so that a
    backward that drops a bias or a gain cannot hide behind them (drawn in float64)."""
    from .model import init_params
    params = init_params(cfg, seed, np.float64)
    rng = np.random.default_rng(seed + 7)
    for k, v in params.items():
        if v.ndim == 1:
            v += rng.normal(0.0, 0.1, v.shape)
    return {k: v.astype(dtype) for k, v in params.items()}


# ------------------------------------------------------------------ finite differences
def layer_gradchecks(seed: int = 0, h: float = FD_STEP) -> list[Row]:
    """Every layer's backward against central differences, float64, on small random shapes."""
    r = np.random.default_rng(seed)
    B, T, C, V, nh = 2, 4, 6, 7, 2

    def n(*shape, scale=1.0):
        return r.normal(0.0, scale, shape)

    cases = [
        ("linear", linear_forward, linear_backward, [n(B, T, C), n(C, 5), n(5)], [0, 1, 2], ["dx", "dw", "db"], {}),
        ("layernorm", layernorm_forward, layernorm_backward, [n(B, T, C), 1 + n(C, scale=0.1), n(C)], [0, 1, 2],
         ["dx", "dw", "db"], {}),
        ("softmax", softmax_forward, softmax_backward, [n(B, T, V)], [0], ["dx"], {}),
        ("embedding", embedding_forward, lambda d, c: embedding_backward(d, c),
         [np.array([[1, 3, 3, 0], [6, 1, 1, 1]]), n(V, C)], [1], ["dwte"], {}),
        ("positional.learned", learned_forward, learned_backward, [n(B, T, C), n(8, C)], [0, 1], ["dx", "dwpe"], {}),
        ("positional.sinusoidal", sinusoidal_forward, sinusoidal_backward, [n(B, T, C)], [0], ["dx"], {}),
        ("dropout", lambda x, m: dropout_forward(x, 0.3, m), dropout_backward,
         [n(B, T, C), r.random((B, T, C)) >= 0.3], [0], ["dx"], {}),
        ("attention", attention_forward, attention_backward,
         [n(B, T, C), n(C, 3 * C, scale=0.5), n(3 * C), n(C, C, scale=0.5), n(C), nh], [0, 1, 2, 3, 4],
         ["dx", "dc_attn_w", "dc_attn_b", "dc_proj_w", "dc_proj_b"], {}),
        ("cross_entropy", cross_entropy_forward, cross_entropy_backward,
         [n(B, T, V, scale=2.0), np.array([[1, 2, -100, 4], [0, 6, 6, 3]])], [0], ["dlogits"], {}),
    ]
    for act, (fwd, bwd) in ACTIVATIONS.items():
        cases.append((f"activation.{act}", fwd, bwd, [n(B, T, C)], [0], ["dx"], {}))
        cases.append((f"ffn.{act}", ffn_forward, ffn_backward,
                      [n(B, T, C), n(C, 4 * C, scale=0.5), n(4 * C), n(4 * C, C, scale=0.5), n(C), act],
                      [0, 1, 2, 3, 4], ["dx", "dc_fc_w", "dc_fc_b", "dc_proj_w", "dc_proj_b"], {}))
    for norm in ("pre", "post", "none"):              # smaller still: a block has ~250 parameter entries
        cfg = GPTConfig(vocab_size=V, block_size=3, n_layer=1, n_head=2, n_embd=4, norm=norm,
                        pos_encoding="sinusoidal")          # the blocks' cases as before the default changed
        p = block_params(perturbed_params(cfg, seed, np.float64), 0)
        names = list(p)

        def fwd(x, *arrays, _cfg=cfg, _names=names):
            return block_forward(x, dict(zip(_names, arrays)), _cfg, {}, training=False)

        def bwd(d, cache, _cfg=cfg, _names=names):
            dx, grads = block_backward(d, cache, _cfg)
            return (dx, *(grads[k] for k in _names))

        cases.append((f"block.{norm}", fwd, bwd, [n(1, 3, 4), *p.values()], list(range(len(names) + 1)),
                      ["dx", *(f"d{k}" for k in names)], {}))
    rows = []
    for layer, fwd, bwd, args, wrt, names, kw in cases:
        for res in check_backward(fwd, bwd, args, wrt=wrt, names=names, h=h, seed=seed, **kw):
            shape = np.shape(args[wrt[names.index(res.name)]])
            rows.append(Row(res.name, layer, shape, res.max_abs_diff, res.rel_error,
                            "ok" if res.ok(FD_TOL) else "FAIL", NOISE_FACTOR * res.noise))
    return rows


def model_gradcheck(cfg: GPTConfig, samples: int = 0, seed: int = 0, h: float = FD_STEP,
                    batch: tuple[np.ndarray, np.ndarray] | None = None, training: bool = False,
                    dloss: float = 1.0) -> list[Row]:
    """The whole model's loss gradient, every parameter, against central differences in float64.

    samples > 0 checks that many random entries of each parameter (all of them when 0).
    batch: (idx, targets) to check on; by default two random sequences of block_size tokens.
    training: check a training step instead of an evaluation: dropout (its masks drawn once,
    then held for every nudged forward). (Either way the MLP's activation is run again in the
    backward where block.recompute_mlp_for says so.) dloss: the
    upstream gradient of the loss, so the gradient checked is dloss * d loss / d parameter.
    ReLU has a kink at 0: an entry whose nudge moves a pre-activation across it can miss,
    which is finite differences' limit, not the backward's.

    The difference is the five-point one,
        dL/dp ~= (L(p - 2h) - 8 L(p - h) + 8 L(p + h) - L(p + 2h)) / (12 h),   error O(h^4),
    Richardson's extrapolation of two central differences, (4 D(h) - D(2h)) / 3. The plain
    central difference D(h) errs by h^2 L^(3) / 6, and layer norms over a few channels with
    small variance can make the third derivative L^(3) large: in a post-LN model with 3
    channels and a vocabulary of 2, D(h) missed by 3.5e-7 at h = 1e-6 and 100 times that at
    10 h, for a gradient that equals torch's to 1e-15. The rounding noise of the five-point
    difference is 1.5 times the central one's: (1 + 8 + 8 + 1) / 12 against (1 + 1) / 2,
    times eps |L| / h.
    """
    model = GPT(cfg, seed=seed, dtype=np.float64, params=perturbed_params(cfg, seed, np.float64))
    model.training = training
    r = np.random.default_rng(seed)
    if batch is None:
        batch = r.integers(0, cfg.vocab_size, (2, 2, cfg.block_size))
    idx, targets = batch
    _, loss = model.forward(idx, targets)
    masks = dict(model.masks)                             # every nudged forward drops the same units
    grads = model.backward(dloss)
    floor = SCALE_FLOOR[np.dtype(np.float64)] * max(np.abs(g).max() for g in grads.values())
    noise = float(1.5 * np.finfo(np.float64).eps * abs(dloss * float(loss)) / h)
    rows = []
    for name, p in model.params.items():
        flat = p.reshape(-1)                              # a view: nudging it nudges the model
        picks = np.arange(flat.size) if not samples or samples >= flat.size else \
            np.sort(r.choice(flat.size, samples, replace=False))
        numeric = np.empty(len(picks))
        for n, j in enumerate(picks):
            old = flat[j]
            loss_at = {}
            for k in (-2, -1, 1, 2):
                flat[j] = old + k * h
                loss_at[k] = dloss * float(model.forward(idx, targets, masks=masks)[1])
            flat[j] = old
            numeric[n] = (loss_at[-2] - 8 * loss_at[-1] + 8 * loss_at[1] - loss_at[2]) / (12 * h)
        analytic = grads[name].reshape(-1)[picks]
        # As check_backward: the part of the difference above the differences' own rounding
        # noise (1.5 eps |L| / h for the five-point difference), over the gradient's scale
        # (floored as the parity tests do).
        diff = float(np.abs(analytic - numeric).max(initial=0.0))
        scale = max(np.abs(analytic).max(initial=0.0), np.abs(numeric).max(initial=0.0), floor, 1e-300)
        err = max(diff - NOISE_FACTOR * noise, 0.0) / scale
        rows.append(Row(name, "model", p.shape, diff, err, "ok" if err <= FD_TOL else "FAIL", NOISE_FACTOR * noise))
    return rows


def format_gradcheck(rows: list[Row], color: bool = False) -> str:
    """name / shape / max abs diff / noise allowance / rel error / ok.

    rel error = max(max abs diff - noise, 0) / the gradient's scale: the part of the difference
    that finite differences' own rounding cannot explain (numpy_gpt.gradcheck)."""
    width = max([len(f"{r.kind} {r.name}") for r in rows] + [14]) + 2
    lines = [f"  {'layer / tensor':<{width}}{'shape':<12}{'max abs diff':>13}{'noise':>10}{'rel error':>11}  ok"]
    for r in rows:
        shape = "x".join(map(str, r.shape)) if r.shape else "scalar"
        lines.append(f"  {r.kind + ' ' + r.name:<{width}}{shape:<12}{r.max_abs:>13.1e}{r.noise:>10.1e}"
                     f"{r.rel:>11.1e}  " + paint(r.status, r.status, color))
    return "\n".join(lines)
