"""`numpy-gpt trace`: every number of one forward and one backward pass of the seed toy model.

The seed model (numpy_gpt.seeds) is small enough to check by hand: a 5-word
vocabulary, d_model = 2, one head, no layer norm, no MLP. For one sentence this
prints each intermediate of the forward (embeddings, positions, q, k, v, scores,
mask, attention weights, residual, logits, probabilities, loss) and each gradient
of the backward in reverse order, every line naming its step as numbered in the
layer docstrings ("attention 5" is step 5 of numpy_gpt/attention.py). Beside each
value it prints torch's, computed by autograd (torch_gpt/trace.py), and the largest
absolute difference of that row.

The step-by-step walk below uses numpy_gpt's layer functions where a step is a
whole layer (embedding, linear, softmax, cross-entropy) and writes out the inside
of attention, whose intermediates numpy_gpt.attention does not keep. At the end,
its results are compared with GPT.forward / GPT.backward, so the walk cannot
drift from the model it explains.

Shapes: B = 1 sentence (B = 2 with --batch), T = its length minus one, C = 2,
hs = C (one head), V = 5.
"""
from __future__ import annotations

import argparse
import importlib
import math
import shutil
import sys
from dataclasses import dataclass

import numpy as np

from .attention import causal_mask
from .config import GPTConfig
from .embedding import embedding_backward, embedding_forward
from .errors import ConfigError, InputError
from .linear import linear_backward, linear_forward
from .loss import IGNORE_INDEX, cross_entropy_backward, cross_entropy_forward
from .model import GPT, init_params
from .positional import sinusoidal_table
from .softmax import softmax_backward, softmax_forward

# The walk and GPT.backward sum the same terms, mostly in the same order; in float64
# they agree to rounding. torch does its own arithmetic (SDPA, F.cross_entropy).
AGREE_TOL = 1e-9

PARAM_NAMES = ("wte.weight", "h.0.attn.c_attn.weight", "h.0.attn.c_attn.bias",
               "h.0.attn.c_proj.weight", "h.0.attn.c_proj.bias", "lm_head.weight")


@dataclass
class Step:
    """One traced tensor. axes name the dimensions, for labels: B batch, T query position,
    U key position, C channel, Q the (q | k | v) channels of qkv, V vocabulary, VR vocabulary rows."""
    key: str            # the name torch_gpt.trace uses for the same tensor
    phase: str          # "forward" or "backward"
    where: str          # the step numbers, e.g. "attention 5"
    expr: str           # what was computed
    value: np.ndarray
    axes: tuple
    note: str = ""


def check_seed_architecture(cfg: GPTConfig) -> None:
    """The walk is written for the seed architecture; anything else is refused."""
    want = dict(n_layer=1, n_head=1, norm="none", mlp=False, pos_encoding="sinusoidal",
                tie_weights=False, bias=True)
    wrong = {k: getattr(cfg, k) for k, v in want.items() if getattr(cfg, k) != v}
    if wrong or cfg.dropout:
        raise ConfigError("trace follows the seed architecture (one layer, one head, no norm, no MLP, "
                          f"sinusoidal positions, untied head, biases, no dropout); this config has {wrong}")


def trace_numpy(params: dict, cfg: GPTConfig, idx: np.ndarray, targets: np.ndarray) -> list[Step]:
    """One forward and one backward of the seed model on idx, targets (B, T), step by step."""
    check_seed_architecture(cfg)
    p = params
    B, T = idx.shape
    C = cfg.n_embd
    hs = C // cfg.n_head
    steps: list[Step] = []

    def put(key, phase, where, expr, value, axes, note=""):
        steps.append(Step(key, phase, where, expr, np.asarray(value), axes, note))
        return value

    # ---- forward (model steps 1-6; inside step 3, the attention steps 1-8) ----
    x_tok, emb_cache = embedding_forward(idx, p["wte.weight"])
    put("x_tok", "forward", "model 1, embedding 1", "x_tok = wte[idx]", x_tok, ("B", "T", "C"))
    pe = sinusoidal_table(T, C, x_tok.dtype)
    put("pe", "forward", "model 2, positional 1", "PE[0:T]: (sin pos, cos pos) for C = 2", pe, ("T", "C"),
        "a constant table: no parameter, no gradient")
    x0 = put("x0", "forward", "model 2", "x0 = x_tok + PE", x_tok + pe, ("B", "T", "C"))
    qkv, attn_cache = linear_forward(x0, p["h.0.attn.c_attn.weight"], p["h.0.attn.c_attn.bias"])
    q, k, v = qkv[..., :C], qkv[..., C:2 * C], qkv[..., 2 * C:]     # one head: (B, T, hs)
    put("q", "forward", "attention 1-2", "q = x0 @ W_attn[:, 0:C] + b_attn[0:C]", q, ("B", "T", "C"))
    put("k", "forward", "attention 1-2", "k = x0 @ W_attn[:, C:2C] + b_attn[C:2C]", k, ("B", "T", "C"))
    put("v", "forward", "attention 1-2", "v = x0 @ W_attn[:, 2C:3C] + b_attn[2C:3C]", v, ("B", "T", "C"))
    scale = 1.0 / math.sqrt(hs)
    s = put("s", "forward", "attention 3", f"s = q k^T / sqrt(hs)   (1/sqrt({hs}) = {scale:.4g})",
            (q @ k.swapaxes(-1, -2)) * scale, ("B", "T", "U"))
    s_masked = put("s_masked", "forward", "attention 4", "s[t, u] = -inf for u > t", 
                   np.where(causal_mask(T, T), -np.inf, s), ("B", "T", "U"))
    a, _ = softmax_forward(s_masked)
    put("a", "forward", "attention 5", "a = softmax(s) over u", a, ("B", "T", "U"), "each row sums to 1")
    y = put("y", "forward", "attention 6-7", "y = a @ v   (one head: merging heads changes nothing)",
            a @ v, ("B", "T", "C"))
    attn, proj_cache = linear_forward(y, p["h.0.attn.c_proj.weight"], p["h.0.attn.c_proj.bias"])
    put("attn", "forward", "attention 8", "attn = y @ W_proj + b_proj", attn, ("B", "T", "C"))
    x1 = put("x1", "forward", "model 3, block", "x1 = x0 + attn   (the residual stream)", x0 + attn,
             ("B", "T", "C"))
    logits, head_cache = linear_forward(x1, p["lm_head.weight"].T)
    put("logits", "forward", "model 5", "logits = x1 @ W_head^T", logits, ("B", "T", "V"))
    probs, _ = softmax_forward(logits)
    put("probs", "forward", "model 6, cross-entropy 1", "p = softmax(logits)", probs, ("B", "T", "V"))
    kept = targets != IGNORE_INDEX
    nll = np.where(kept, -np.log(np.take_along_axis(probs, np.where(kept, targets, 0)[..., None], -1)[..., 0]), 0.0)
    put("nll", "forward", "model 6, cross-entropy 2", "-log p[t, target_t]", nll, ("B", "T"))
    loss, ce_cache = cross_entropy_forward(logits, targets)
    put("loss", "forward", "model 6, cross-entropy 2", f"loss = mean over the {int(kept.sum())} targets",
        loss, ())

    # ---- backward: the same steps in reverse ----
    dlogits = cross_entropy_backward(1.0, ce_cache)
    put("dlogits", "backward", "model 6, cross-entropy 2-1", "dlogits = (p - onehot(target)) / M", dlogits,
        ("B", "T", "V"))
    dx1, dw_head_t, _ = linear_backward(dlogits, head_cache)
    put("d_lm_head", "backward", "model 5", "dW_head = dlogits^T x1, summed over positions", dw_head_t.T,
        ("VR", "C"))
    put("dx1", "backward", "model 5", "dx1 = dlogits @ W_head", dx1, ("B", "T", "C"),
        "x1 = x0 + attn hands dx1 to both terms: d attn = dx1, and the skip path carries dx1 to x0")
    dy, dw_proj, db_proj = linear_backward(dx1, proj_cache)
    put("d_c_proj_w", "backward", "attention 8", "dW_proj = y^T d_attn", dw_proj, ("C", "C"))
    put("d_c_proj_b", "backward", "attention 8", "db_proj = d_attn summed over positions", db_proj, ("C",))
    put("dy", "backward", "attention 8-7", "dy = d_attn @ W_proj^T", dy, ("B", "T", "C"))
    da = put("da", "backward", "attention 6", "da = dy v^T", dy @ v.swapaxes(-1, -2), ("B", "T", "U"))
    dv = put("dv", "backward", "attention 6", "dv = a^T dy", a.swapaxes(-1, -2) @ dy, ("B", "T", "C"))
    ds = put("ds", "backward", "attention 5-4", "ds = a * (da - sum_u(da * a))", softmax_backward(da, a),
             ("B", "T", "U"), "exactly 0 above the diagonal, where a = 0: step 4 needs no code")
    dq = put("dq", "backward", "attention 3", "dq = ds k / sqrt(hs)", (ds @ k) * scale, ("B", "T", "C"),
             "row 0 is 0: query 0 sees one key, so its softmax row is (1, 0, ...) whatever s is")
    dk = put("dk", "backward", "attention 3", "dk = ds^T q / sqrt(hs)", (ds.swapaxes(-1, -2) @ q) * scale,
             ("B", "T", "C"))
    dqkv = put("dqkv", "backward", "attention 2", "dqkv = [dq | dk | dv]", np.concatenate([dq, dk, dv], -1),
               ("B", "T", "Q"))
    dx0_attn, dw_attn, db_attn = linear_backward(dqkv, attn_cache)
    put("d_c_attn_w", "backward", "attention 1", "dW_attn = x0^T dqkv", dw_attn, ("C", "Q"))
    put("d_c_attn_b", "backward", "attention 1", "db_attn = dqkv summed over positions", db_attn, ("Q",),
        "its k part is 0 up to rounding: a shift shared by all keys adds a constant to each row of s, "
        "which softmax ignores")
    put("dx0_attn", "backward", "attention 1", "dx0 via attention = dqkv @ W_attn^T", dx0_attn, ("B", "T", "C"))
    dx0 = put("dx0", "backward", "model 3, block", "dx0 = dx1 + dx0 via attention   (the residual split adds)",
              dx1 + dx0_attn, ("B", "T", "C"))
    put("dx_tok", "backward", "model 2, positional 1", "dx_tok = dx0   (PE is a constant)", dx0, ("B", "T", "C"))
    dwte = embedding_backward(dx0, emb_cache)
    put("d_wte", "backward", "model 1, embedding 1", "dwte[v] = sum of dx_tok[t] over positions t holding v",
        dwte, ("VR", "C"), "scatter-add: a repeated id adds its rows; an unused id gets 0")
    return steps


def grads_of(steps: list[Step]) -> dict[str, np.ndarray]:
    """The parameter gradients of a walk, under the model's parameter names."""
    v = {s.key: s.value for s in steps}
    return {"wte.weight": v["d_wte"], "h.0.attn.c_attn.weight": v["d_c_attn_w"],
            "h.0.attn.c_attn.bias": v["d_c_attn_b"], "h.0.attn.c_proj.weight": v["d_c_proj_w"],
            "h.0.attn.c_proj.bias": v["d_c_proj_b"], "lm_head.weight": v["d_lm_head"]}


def model_check(params: dict, cfg: GPTConfig, idx, targets, steps: list[Step]) -> dict[str, float]:
    """max |walk - GPT| for the logits, the loss and every gradient of numpy_gpt.GPT."""
    model = GPT(cfg, params={k: v.copy() for k, v in params.items()}, dtype=np.float64)
    logits, loss = model.forward(idx, targets)
    grads = model.backward()
    v = {s.key: s.value for s in steps}
    out = {"logits": float(np.abs(logits - v["logits"]).max()), "loss": float(abs(loss - v["loss"]))}
    out.update({k: float(np.abs(g - grads[k]).max()) for k, g in grads_of(steps).items()})
    return out


# ----------------------------------------------------------------------------------------------
# The seed problem, its sentence, and the model's weights
# ----------------------------------------------------------------------------------------------

def seed_setup(problem: str = "apple", sentence: str | None = None, batch: bool = False,
               trained: bool = False, epochs: int = 30, seed: int = 0):
    """(tokenizer, cfg, params, idx, targets, description) for a trace."""
    from .data import sequences_to_batch
    from .seeds import SEEDS, seed_config, seed_problem, train_seed
    if problem not in SEEDS:
        raise ConfigError(f"unknown seed problem {problem!r}; choose {', '.join(SEEDS)}")
    tok, x, y, spec = seed_problem(problem)
    if batch and sentence is not None:
        raise ConfigError("--batch traces the seed's two training sentences; it takes no --sentence")
    if batch:
        idx, targets, text = x, y, spec["sentences"]
    else:
        text = [spec["sentences"][0] if sentence is None else sentence]
        ids = tok.encode(text[0])                 # UnknownTokenError names a word outside the vocabulary
        if len(ids) < 2:
            raise InputError(f"the sentence needs at least two words (an input and its target), got {text[0]!r}")
        if len(ids) - 1 > seed_config().block_size:
            raise InputError(f"the sentence has {len(ids)} words; the seed model reads at most "
                             f"{seed_config().block_size + 1}")
        idx, targets = sequences_to_batch([ids], pad_id=tok.eos_id)
    cfg = seed_config(tok.vocab_size)
    if trained:
        if epochs < 1:
            raise ConfigError(f"--epochs must be at least 1, got {epochs}")
        params = train_seed(problem, seed=seed, dtype=np.float64, epochs=epochs)[0].params
        how = f"after {epochs} epochs of Adam (lr 0.1) on the seed's two sentences"
    else:
        params = init_params(cfg, seed, np.float64)
        how = f"at initialization (seed {seed}: weights ~ N(0, 0.02), biases 0)"
    return tok, cfg, params, idx, targets, f"{problem!r} seed model {how}; tracing {' / '.join(map(repr, text))}"


# ----------------------------------------------------------------------------------------------
# Printing
# ----------------------------------------------------------------------------------------------

def _num(x: float, digits: int) -> str:
    if x == 0:
        return "0"
    if math.isinf(x):
        return "-inf" if x < 0 else "inf"
    return f"{x:.{digits}g}"


def _labels(axis: str, n: int, tok, ids_row) -> list[str]:
    if axis == "T":
        return [f"t={t} {tok.decode([int(ids_row[t])])}" for t in range(n)]
    if axis == "U":
        return [f"u={u}" for u in range(n)]
    if axis in ("V", "VR"):
        return [f"{w}" for w in (tok.decode([i]) for i in range(n))]
    if axis == "Q":
        third = n // 3
        return [f"{part}{c}" for part in "qkv" for c in range(third)]
    return [f"c{c}" for c in range(n)]


def _blocks(step: Step):
    """(title, value, its axes, batch row) for each sentence of a step, for printing."""
    value, axes = step.value, step.axes
    if axes and axes[0] == "B":
        for b in range(value.shape[0]):
            yield (f"sentence {b}" if value.shape[0] > 1 else ""), value[b], axes[1:], b
    else:
        yield "", value, axes, 0


def absdiff(a, b) -> np.ndarray:
    """|a - b|, with equal infinities (the masked -inf scores) counting as no difference."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return np.where(a == b, 0.0, np.abs(a - b))


def format_trace(steps: list[Step], tok, idx, torch_values: dict | None = None, digits: int = 4,
                 width: int | None = None) -> str:
    """The steps as text. With torch values, each row shows numpy | torch | max|diff| side by side
    when that fits in `width` columns, else numpy and torch on two lines."""
    width = width or shutil.get_terminal_size((160, 24)).columns
    lines = []
    phase = None
    short = {"U": "T", "Q": "3C", "VR": "V"}
    for step in steps:
        if step.phase != phase:
            phase = step.phase
            lines += ["", f"==== {phase} " + ("(the steps in reverse; dz means dloss/dz) " if phase == "backward"
                                                else "") + "=" * 40]
        tv = None if torch_values is None else np.asarray(torch_values[step.key])
        dims = [(short.get(a, a), n) for a, n in zip(step.axes, step.value.shape) if not (a == "B" and n == 1)]
        shape = "(" + ", ".join(f"{a}={n}" for a, n in dims) + ")" if dims else "scalar"
        head = f"[{step.where}]  {step.expr}   {shape}"
        if tv is not None:
            head += f"   max|numpy - torch| = {absdiff(step.value, tv).max(initial=0.0):.1e}"
        lines += ["", head]
        if step.note:
            lines.append(f"    ({step.note})")
        for title, val, axes, b in _blocks(step):
            tval = None if tv is None else (tv[b] if step.axes and step.axes[0] == "B" else tv)
            if title:
                lines.append(f"  {title}:")
            lines += _table(step, val, tval, axes, tok, idx, b, digits, width)
    return "\n".join(lines)


def _table(step, val, tval, axes, tok, idx, b, digits, width) -> list[str]:
    """One 2-D block (a vector is one row, a scalar one cell) with its row and column labels."""
    val = np.asarray(val).reshape((1, 1) if val.ndim == 0 else (1, -1) if val.ndim == 1 else val.shape)
    tval = None if tval is None else np.asarray(tval).reshape(val.shape)
    rows = _labels(axes[0], val.shape[0], tok, idx[b]) if len(axes) == 2 else [""]
    cols = _labels(axes[-1], val.shape[1], tok, idx[b]) if axes else [""]
    if step.key == "d_wte":                         # which positions each row of dwte adds up
        used: dict = {}
        for bb in range(idx.shape[0]):
            for t, v in enumerate(idx[bb]):
                used.setdefault(int(v), []).append(f"t={t}" if idx.shape[0] == 1 else f"(b={bb}, t={t})")
        rows = [f"{r} <- " + (" + ".join(used[j]) if j in used else "unused: 0") for j, r in enumerate(rows)]
    cells = [[_num(float(x), digits) for x in row] for row in val]
    tcells = None if tval is None else [[_num(float(x), digits) for x in row] for row in tval]
    w = max([len(c) for r in cells + (tcells or []) for c in r] + [len(c) for c in cols]) + 1
    lw = max(len(r) for r in rows) + 2
    side = "".join(f"{c:>{w}}" for c in cols)
    fmt = lambda row: "".join(f"{c:>{w}}" for c in row)            # noqa: E731
    out = []
    if tcells is None:
        if any(cols):
            out.append(" " * (lw + 2) + side)
        out += [f"  {rows[r]:<{lw}}" + fmt(row) for r, row in enumerate(cells)]
        return [line.rstrip() for line in out]
    diffs = [f"{absdiff(val[r], tval[r]).max():.1e}" for r in range(val.shape[0])]
    if 2 + lw + 2 * len(side) + 20 <= width:                          # side by side
        out.append(" " * (lw + 2) + f"{'numpy':<{len(side)}}   |  {'torch':<{len(side)}}  max|diff|")
        if any(cols):
            out.append(" " * (lw + 2) + side + "   | " + side)
        out += [f"  {rows[r]:<{lw}}" + fmt(cells[r]) + "   | " + fmt(tcells[r]) + f"   {diffs[r]}"
                for r in range(len(cells))]
    else:                                                              # numpy above torch
        out.append(" " * (lw + 2 + 7) + side + "   max|diff|")
        for r in range(len(cells)):
            out.append(f"  {rows[r]:<{lw}}numpy  " + fmt(cells[r]))
            out.append(f"  {'':<{lw}}torch  " + fmt(tcells[r]) + f"   {diffs[r]}")
    return [line.rstrip() for line in out]


def load_torch_trace():
    """torch_gpt.trace, or (None, why) when torch is not installed."""
    try:
        return importlib.import_module("torch_gpt.trace"), ""
    except ModuleNotFoundError as e:
        if e.name and e.name.split(".")[0] in ("torch", "torch_gpt"):
            return None, f"{e.name} is not installed: numpy values only"
        raise


def run(problem="apple", sentence=None, batch=False, trained=False, epochs=30, seed=0, digits=4,
        with_torch=True, width=None, out=None) -> dict:
    """Trace, print, and return what was computed (for tests): steps, torch values, differences."""
    out = out or sys.stdout
    tok, cfg, params, idx, targets, what = seed_setup(problem, sentence, batch, trained, epochs, seed)
    steps = trace_numpy(params, cfg, idx, targets)
    backend, note = load_torch_trace() if with_torch else (None, "--no-torch: numpy values only")
    torch_values = backend.trace(params, cfg, idx, targets) if backend else None
    print(f"numpy-gpt trace: the {what}", file=out)
    print(f"  d_model C = {cfg.n_embd}, one head (hs = {cfg.n_embd}), vocabulary V = {cfg.vocab_size}: "
          f"{' '.join(f'{i}={w}' for i, w in enumerate(tok.words))}", file=out)
    print(f"  inputs   {tok.decode(idx[0].tolist())!r}" + ("" if idx.shape[0] == 1 else
          f" / {tok.decode(idx[1].tolist())!r}"), file=out)
    print("  targets  the inputs shifted by one word;  numbers have "
          f"{digits} significant digits; [model 3] is step 3 of numpy_gpt/model.py, [attention 5] of attention.py",
          file=out)
    if note:
        print(f"  note: {note}", file=out)
    elif torch_values is not None:
        print("  torch: the same tensors in torch_gpt, differentiated by autograd (retain_grad on each)", file=out)
    print(format_trace(steps, tok, idx, torch_values, digits, width), file=out)

    agree = model_check(params, cfg, idx, targets, steps)
    result = {"steps": steps, "torch": torch_values, "model_diff": agree, "tokenizer": tok, "idx": idx,
              "targets": targets, "params": params, "config": cfg}
    print("\n==== cross-checks " + "=" * 50, file=out)
    print(f"  this walk vs numpy_gpt.GPT.forward/backward: max |diff| {max(agree.values()):.1e} "
          f"over logits, loss and {len(agree) - 2} parameter gradients", file=out)
    ok = max(agree.values()) <= AGREE_TOL
    if torch_values is not None:
        diffs = {s.key: float(absdiff(s.value, torch_values[s.key]).max(initial=0.0)) for s in steps}
        worst = max(diffs, key=diffs.get)
        print(f"  numpy vs torch, every tensor above: max |diff| {diffs[worst]:.1e} (at {worst})", file=out)
        for k, d in backend.whole_model_check(params, cfg, idx, targets, torch_values).items():
            print(f"  {k}: max |diff| {d:.1e}", file=out)
        result["torch_diff"] = diffs
        ok = ok and diffs[worst] <= AGREE_TOL
    if not ok:
        print(f"  DISAGREEMENT above {AGREE_TOL:g}: the walk, the model or torch has a bug", file=out)
    result["ok"] = ok
    return result


def handler(args) -> int:
    if not 1 <= args.digits <= 17:
        raise ConfigError(f"--digits must be between 1 and 17, got {args.digits}")
    if args.epochs is not None and args.epochs < 1:
        raise ConfigError(f"--epochs must be at least 1, got {args.epochs}")
    trained = args.trained or args.epochs is not None              # --epochs N alone trains, too
    result = run(problem=args.problem, sentence=args.sentence, batch=args.batch, trained=trained,
                 epochs=30 if args.epochs is None else args.epochs, seed=args.seed, digits=args.digits, with_torch=not args.no_torch,
                 width=args.width)
    return 0 if result["ok"] else 1


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--problem", default="apple", help="the seed problem: apple (default) or cnn")
    p.add_argument("--sentence", default=None,
                   help="the sentence to trace, in the seed's words (default: its first training sentence, "
                        "'what is apple <EOS> healthy <EOS>'); inputs are all words but the last")
    p.add_argument("--batch", action="store_true", help="trace the seed's whole training batch (both sentences)")
    p.add_argument("--trained", action="store_true", help="train the seed model first (30 epochs, as the demo)")
    p.add_argument("--epochs", type=int, default=None,
                   help="train the seed model for this many epochs first (implies --trained; default 30)")
    p.add_argument("--seed", type=int, default=0, help="the initialization seed")
    p.add_argument("--digits", type=int, default=4, help="significant digits printed (default 4)")
    p.add_argument("--width", type=int, default=None,
                   help="columns available (default: the terminal's); narrower tables put torch under numpy")
    p.add_argument("--no-torch", action="store_true", help="numpy values only, even when torch is installed")


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("trace", help="print every number of one forward and backward of the seed model",
                              description=__doc__.split("\n\n")[0])
    add_arguments(p)
    p.set_defaults(func=handler)
    return p


def main(argv=None) -> int:
    """Run the command without the numpy-gpt CLI: python -m numpy_gpt.trace ..."""
    from .errors import NumpyGPTError, UsageError
    parser = argparse.ArgumentParser(prog="numpy-gpt trace")
    add_arguments(parser)
    try:
        return handler(parser.parse_args(argv))
    except NumpyGPTError as e:
        print(f"numpy-gpt trace: error: {e}", file=sys.stderr)
        return 2 if isinstance(e, UsageError) else 1


if __name__ == "__main__":
    sys.exit(main())
