"""`numpy-gpt check LAYER --impl my_file.py:function`: grade a backward you wrote yourself.

You write the backward of one layer with the same signature as numpy_gpt's own,
for example layernorm_backward(dout, cache) -> (dx, dw, db), where cache is what
numpy_gpt's own forward returned. The command then draws cases with hypothesis
(shapes, scales and a seed for the values), runs numpy_gpt's forward, your
backward, and two oracles that share no code with you:

    torch      torch_gpt's forward on the same float64 inputs, differentiated by
               autograd with the same random upstream gradient (torch_gpt/check.py,
               loaded only when torch is installed)
    finite     central differences of numpy_gpt's forward (numpy_gpt.gradcheck),
    diff       nudging every input entry by +-h, in float64

For each gradient it reports the relative error against each oracle, and for a
wrong one the index of the worst entry with the expected and the computed value.
When a case fails, hypothesis shrinks it to the smallest failing case it can
find (fewest rows, smallest channels, seed 0, ...), and that case is printed
with the line of Python that rebuilds it (make_case). The exit code is 0 only
when every case passes.

    numpy-gpt check --list                        the layers and their signatures
    numpy-gpt check layernorm --template > my_ln.py   a starter file to fill in
    numpy-gpt check layernorm --template --no-hints   the same without the formulas, to derive them
    numpy-gpt check layernorm --impl my_ln.py     check my_ln.py's layernorm_backward
    numpy-gpt check layernorm                     check numpy_gpt's own backward

Hypothesis is needed only here, and is imported when the command runs.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import math
import os
import sys
import traceback
from dataclasses import dataclass, field
from importlib import resources
from typing import Callable

import numpy as np

from .errors import ConfigError, InputError, require
from .gradcheck import NOISE_FACTOR, gradient_problem, numerical_gradient

# Central differences with step h in float64: truncation error O(h^2) ~ 1e-12 and
# rounding error ~ 1e-16 * |L| / h ~ 1e-10 * |L|, so a right backward agrees to about
# 1e-8 after the noise allowance; a wrong one is off by order 1 (or, for a wrong
# constant, by 1e-4 and more). The same values as tests/tolerances.py.
FD_STEP = 1e-6
FD_TOL = 1e-6
# Against torch autograd, float64 on both sides: two right implementations that sum in
# a different order differ by ~1e-14; 1e-8 leaves room for a less stable but right
# formula (an explicit Jacobian, say) and still fails every wrong one by orders of magnitude.
TORCH_TOL = 1e-8
# A gradient that is exactly zero in real arithmetic comes out of torch as rounding
# noise; its scale is floored at this fraction of the largest tensor of the same call
# (tests/tolerances.py explains the same rule as SCALE_FLOOR).
SCALE_FLOOR = 1e-3

DEFAULT_EXAMPLES = 50


# ---------------------------------------------------------------------------------------
# The layers: what to draw, how to build the forward's arguments, what the backward returns
# ---------------------------------------------------------------------------------------

def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


SEED = ("int", 0, 2**32 - 1)                      # the values' seed; shrinks to 0
SCALE = ("choice", [1.0, 0.1, 3.0])                # shrinks to 1.0


@dataclass(frozen=True)
class LayerSpec:
    """One layer that `check` knows.

    space: the drawn parameters, in draw order: ("int", lo, hi), ("choice", [...]),
           ("bool",), or a function of the parameters drawn before it returning one of those.
           Hypothesis shrinks ints toward lo, choices toward the first, bools toward False.
    build(params, rng) -> (args, kwargs): the forward's positional arguments by name, in order.
    wrt:   the arguments the backward differentiates, in the order it returns their gradients.
    invariant(grads) -> str: a fact every right answer has, checked on a wrong one to say what
           it breaks ("" when it holds), or None.
    """
    name: str
    module: str                      # numpy_gpt module holding forward and backward
    forward: str
    backward: str
    grads: tuple                     # names of the backward's return values
    wrt: tuple                       # forward arguments they belong to
    space: dict
    build: Callable
    summary: str
    scalar_upstream: bool = False    # the forward returns a scalar (the loss)
    invariant: Callable | None = None

    @property
    def signature(self) -> str:
        up = "dloss" if self.scalar_upstream else "dout"
        ret = self.grads[0] if len(self.grads) == 1 else "(" + ", ".join(self.grads) + ")"
        return f"{self.backward}({up}, cache) -> {ret}"

    @property
    def template(self) -> str:
        return f"{self.backward}.py"

    def forward_fn(self) -> Callable:
        return getattr(importlib.import_module(self.module), self.forward)

    def backward_fn(self) -> Callable:
        return getattr(importlib.import_module(self.module), self.backward)


def _normal(rng, shape, s=1.0):
    return s * rng.standard_normal(shape)


def _build_linear(p, rng):
    C_in, C_out, s = p["C_in"], p["C_out"], p["scale"]
    return dict(x=_normal(rng, (*_leading(p), C_in), s), w=_normal(rng, (C_in, C_out), 1 / math.sqrt(C_in)),
                b=None if p["no_bias"] else _normal(rng, C_out)), {}


def _leading(p) -> tuple:
    """The axes before the last, for layers written for (..., C): (B, T) at ndim 3, the case
    hypothesis shrinks toward; (B * T,) at 2; (B, 2, T) at 4. A backward that sums over
    axes (0, 1) instead of every axis but the last passes at 3 only."""
    B, T = p["B"], p["T"]
    return {3: (B, T), 2: (B * T,), 4: (B, 2, T)}[p["ndim"]]


def _build_layernorm(p, rng):
    C, s = p["C"], p["scale"]
    x = _normal(rng, (*_leading(p), C), s)
    if p["shift"]:
        x += 5.0 * s                           # a mean large next to the spread
    return dict(x=x, w=_normal(rng, C), b=None if p["no_bias"] else _normal(rng, C)), {}


def _build_elementwise(p, rng):
    return dict(x=_normal(rng, (p["B"], p["T"], p["C"]), p["scale"])), {}


def _build_softmax(p, rng):
    return dict(x=_normal(rng, (*_leading(p), p["K"]), p["scale"])), {}


def _build_embedding(p, rng):
    B, T, V, C = p["B"], p["T"], p["V"], p["C"]
    idx = (np.full((B, T), rng.integers(V), dtype=np.int64) if p["same_id"]
           else rng.integers(0, V, size=(B, T), dtype=np.int64))
    return dict(idx=idx, wte=_normal(rng, (V, C))), {}


def _build_attention(p, rng):
    B, T, C, s = p["B"], p["T"], p["C"], p["scale"]
    return dict(x=_normal(rng, (B, T, C), s),
                c_attn_w=_normal(rng, (C, 3 * C), 1 / math.sqrt(C)), c_attn_b=_normal(rng, 3 * C),
                c_proj_w=_normal(rng, (C, C), 1 / math.sqrt(C)), c_proj_b=_normal(rng, C)), dict(n_head=p["n_head"])


def _build_attention_core(p, rng):
    B, nh, T_q, T_k, hs, s = p["B"], p["n_head"], p["T_q"], p["T_k"], p["hs"], p["scale"]
    return dict(q=_normal(rng, (B, nh, T_q, hs), s), k=_normal(rng, (B, nh, T_k, hs), s),
                v=_normal(rng, (B, nh, T_k, hs))), {}


def _build_ffn(p, rng):
    B, T, C, s = p["B"], p["T"], p["C"], p["scale"]
    H = 4 * C
    return dict(x=_normal(rng, (B, T, C), s),
                c_fc_w=_normal(rng, (C, H), 1 / math.sqrt(C)), c_fc_b=_normal(rng, H),
                c_proj_w=_normal(rng, (H, C), 1 / math.sqrt(H)), c_proj_b=_normal(rng, C)), dict(activation=p["activation"])


def _build_dropout(p, rng):
    shape = (p["B"], p["T"], p["C"])
    x = _normal(rng, shape)
    mask = rng.random(shape) >= p["p"]
    return dict(x=x, p=p["p"], mask=mask), {}


def _build_cross_entropy(p, rng):
    B, T, V, s = p["B"], p["T"], p["V"], p["scale"]
    logits = _normal(rng, (B, T, V), s)
    targets = rng.integers(0, V, size=(B, T), dtype=np.int64)
    if p["ignore"]:
        ignored = rng.random((B, T)) < 0.3
        ignored.reshape(-1)[rng.integers(B * T)] = False        # at least one position counts
        targets[ignored] = -100                                 # numpy_gpt.loss.IGNORE_INDEX
    return dict(logits=logits, targets=targets), {}


def _build_positional(p, rng):
    B, T, C = p["B"], p["T"], p["C"]
    P = T + p["pos0"] + p["extra_rows"]
    return dict(x=_normal(rng, (B, T, C)), wpe=_normal(rng, (P, C)), pos0=p["pos0"]), {}


def _rows_sum_to_zero(grads: dict) -> str:
    """Layer norm and softmax: adding a constant to a row of x changes no output, so every row of
    the right dx sums to 0. A dx that breaks this has lost the path through the row's mean."""
    dx = grads.get("dx")
    if dx is None or not dx.size:
        return ""
    sums = dx.reshape(-1, dx.shape[-1]).sum(axis=-1)
    worst = int(np.argmax(np.abs(sums)))
    if abs(sums[worst]) <= 1e-8 * max(float(np.abs(dx).max()) * dx.shape[-1], 1e-300):
        return ""
    return (f"your dx's rows do not sum to 0 (row {worst} sums to {_fmt(float(sums[worst]))}), as they must: "
            "a constant added to a row of x changes no output. The path through the row's mean is missing")


BTC = {"B": ("int", 1, 2), "T": ("int", 1, 4), "C": ("int", 1, 5)}
NDIM = ("choice", [3, 2, 4])            # the input's number of axes (_leading)

LAYERS: dict[str, LayerSpec] = {s.name: s for s in [
    LayerSpec("linear", "numpy_gpt.linear", "linear_forward", "linear_backward",
              ("dx", "dw", "db"), ("x", "w", "b"),
              {"B": ("int", 1, 2), "T": ("int", 1, 4), "C_in": ("int", 1, 5), "C_out": ("int", 1, 5),
               "scale": SCALE, "no_bias": ("bool",), "ndim": NDIM, "seed": SEED},
              _build_linear, "out = x @ w + b, w stored (C_in, C_out); b may be None (return db = None)"),
    LayerSpec("layernorm", "numpy_gpt.layernorm", "layernorm_forward", "layernorm_backward",
              ("dx", "dw", "db"), ("x", "w", "b"),
              {"B": ("int", 1, 2), "T": ("int", 1, 4), "C": ("int", 3, 6), "scale": SCALE,
               "shift": ("bool",), "no_bias": ("bool",), "ndim": NDIM, "seed": SEED},
              _build_layernorm, "layer norm over the last axis, eps = 1e-5 (C >= 3: see docs/layernorm.md)",
              invariant=_rows_sum_to_zero),
    LayerSpec("softmax", "numpy_gpt.softmax", "softmax_forward", "softmax_backward",
              ("dx",), ("x",),
              {"B": ("int", 1, 2), "T": ("int", 1, 4), "K": ("int", 1, 6), "scale": SCALE, "ndim": NDIM,
               "seed": SEED},
              _build_softmax, "softmax over the last axis", invariant=_rows_sum_to_zero),
    LayerSpec("embedding", "numpy_gpt.embedding", "embedding_forward", "embedding_backward",
              ("dwte",), ("wte",),
              {"B": ("int", 1, 3), "T": ("int", 1, 5), "V": ("int", 1, 5), "C": ("int", 1, 4),
               "same_id": ("bool",), "seed": SEED},
              _build_embedding, "out = wte[idx]; repeated ids must accumulate"),
    LayerSpec("attention", "numpy_gpt.attention", "attention_forward", "attention_backward",
              ("dx", "dc_attn_w", "dc_attn_b", "dc_proj_w", "dc_proj_b"),
              ("x", "c_attn_w", "c_attn_b", "c_proj_w", "c_proj_b"),
              {"B": ("int", 1, 2), "T": ("int", 1, 5), "C": ("int", 1, 6),
               "n_head": lambda p: ("choice", _divisors(p["C"])), "scale": SCALE, "seed": SEED},
              _build_attention, "causal multi-head self-attention, the whole layer (steps 1-8)"),
    LayerSpec("attention_core", "numpy_gpt.attention", "causal_attention_forward", "causal_attention_backward",
              ("dq", "dk", "dv"), ("q", "k", "v"),
              {"B": ("int", 1, 2), "n_head": ("int", 1, 2), "T_k": ("int", 1, 5),
               "T_q": lambda p: ("int", 1, p["T_k"]), "hs": ("int", 1, 4), "scale": SCALE, "seed": SEED},
              _build_attention_core, "attention steps 3-6: scores, -inf mask, softmax, a @ v (T_q <= T_k)"),
    LayerSpec("gelu", "numpy_gpt.activations", "gelu_forward", "gelu_backward",
              ("dx",), ("x",), {**BTC, "scale": SCALE, "seed": SEED},
              _build_elementwise, "GELU, tanh approximation (GPT-2)"),
    LayerSpec("gelu_exact", "numpy_gpt.activations", "gelu_exact_forward", "gelu_exact_backward",
              ("dx",), ("x",), {**BTC, "scale": SCALE, "seed": SEED},
              _build_elementwise, "GELU, exact (erf)"),
    LayerSpec("relu", "numpy_gpt.activations", "relu_forward", "relu_backward",
              ("dx",), ("x",), {**BTC, "scale": SCALE, "seed": SEED},
              _build_elementwise, "ReLU"),
    LayerSpec("ffn", "numpy_gpt.ffn", "ffn_forward", "ffn_backward",
              ("dx", "dc_fc_w", "dc_fc_b", "dc_proj_w", "dc_proj_b"),
              ("x", "c_fc_w", "c_fc_b", "c_proj_w", "c_proj_b"),
              {"B": ("int", 1, 2), "T": ("int", 1, 3), "C": ("int", 1, 4),
               "activation": ("choice", ["gelu", "relu", "gelu_exact"]), "scale": SCALE, "seed": SEED},
              _build_ffn, "the MLP: linear, activation, linear (hidden width 4C)"),
    LayerSpec("dropout", "numpy_gpt.dropout", "dropout_forward", "dropout_backward",
              ("dx",), ("x",),
              {**BTC, "p": ("choice", [0.5, 0.1, 0.9]), "seed": SEED},
              _build_dropout, "inverted dropout with a given keep-mask"),
    LayerSpec("cross_entropy", "numpy_gpt.loss", "cross_entropy_forward", "cross_entropy_backward",
              ("dlogits",), ("logits",),
              {"B": ("int", 1, 2), "T": ("int", 1, 4), "V": ("int", 2, 6), "ignore": ("bool",),
               "scale": SCALE, "seed": SEED},
              _build_cross_entropy, "mean cross-entropy of logits, with ignore_index = -100",
              scalar_upstream=True),
    LayerSpec("positional", "numpy_gpt.positional", "learned_forward", "learned_backward",
              ("dx", "dwpe"), ("x", "wpe"),
              {"B": ("int", 1, 3), "T": ("int", 1, 4), "C": ("int", 1, 4), "pos0": ("int", 0, 2),
               "extra_rows": ("int", 0, 2), "seed": SEED},
              _build_positional, "learned positions: out = x + wpe[pos0 : pos0 + T]"),
]}


def get_layer(name: str) -> LayerSpec:
    if name not in LAYERS:
        raise ConfigError(f"unknown layer {name!r}; choose one of {', '.join(LAYERS)} (numpy-gpt check --list)")
    return LAYERS[name]


def template_text(layer: str, hints: bool = True) -> str:
    """The starter file for a layer's backward (numpy_gpt/templates/<backward>.py).

    hints=False leaves out the comments inside the function, which give the formulas,
    for a learner who wants to derive them first."""
    spec = get_layer(layer)
    text = (resources.files("numpy_gpt") / "templates" / spec.template).read_text(encoding="utf-8")
    return text if hints else strip_hints(text)


def strip_hints(text: str) -> str:
    """text without its indented comment lines: the lines holding a comment and nothing else,
    inside a function. A "#" inside a docstring is part of a string, not a comment, and stays."""
    import io
    import tokenize
    lines = text.splitlines(keepends=True)
    drop = {tok.start[0] for tok in tokenize.generate_tokens(io.StringIO(text).readline)
            if tok.type == tokenize.COMMENT and tok.start[1] > 0
            and not lines[tok.start[0] - 1][:tok.start[1]].strip()}
    return "".join(line for i, line in enumerate(lines, 1) if i not in drop)


# ---------------------------------------------------------------------------------------
# One case: inputs, forward, upstream gradient
# ---------------------------------------------------------------------------------------

@dataclass
class Case:
    """Everything one check needs, rebuilt exactly from `params` (see make_case)."""
    layer: str
    params: dict
    args: dict                 # the forward's positional arguments, by name, in order
    kwargs: dict
    dout: np.ndarray           # the upstream gradient, shaped like the forward's output

    def forward(self):
        """numpy_gpt's forward on fresh copies of the inputs: (out, cache)."""
        return get_layer(self.layer).forward_fn()(*_copies(self.args).values(), **self.kwargs)

    def describe(self) -> str:
        return "  ".join(f"{k}={v}" for k, v in self.params.items())


def _copies(args: dict) -> dict:
    return {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in args.items()}


def _smallest(dim: tuple):
    return dim[1] if dim[0] == "int" else dim[1][0] if dim[0] == "choice" else False


def minimal_params(spec: LayerSpec) -> dict:
    """The case hypothesis shrinks toward: every int at its low end, every choice its first, seed 0."""
    p: dict = {}
    for name, dim in spec.space.items():
        p[name] = _smallest(dim(p) if callable(dim) else dim)
    return p


def make_case(layer: str, **params) -> Case:
    """Rebuild a case from its parameters (the ones a report prints); missing ones take
    their smallest value. Values come from np.random.default_rng(seed), in the order
    the inputs are listed, then the upstream gradient."""
    spec = get_layer(layer)
    full: dict = {}
    for name, dim in spec.space.items():
        dim = dim(full) if callable(dim) else dim
        full[name] = params.pop(name) if name in params else _smallest(dim)
    if params:
        raise ConfigError(f"unknown parameters for {layer}: {', '.join(params)}; "
                          f"expected {', '.join(spec.space)}")
    rng = np.random.default_rng(full["seed"])
    args, kwargs = spec.build(full, rng)
    out, _ = spec.forward_fn()(*_copies(args).values(), **kwargs)
    dout = rng.standard_normal(np.shape(out))
    return Case(layer, full, args, kwargs, dout)


# ---------------------------------------------------------------------------------------
# Comparing one gradient with one oracle
# ---------------------------------------------------------------------------------------

@dataclass
class GradResult:
    grad: str                   # "dx", "dw", ...
    oracle: str                 # "torch" or "finite diff"
    rel_error: float
    tol: float
    shape: tuple
    worst_index: tuple = ()
    expected: float = 0.0
    got: float = 0.0
    hint: str = ""              # a wrong answer's simple relation to the right one, if it has one

    @property
    def ok(self) -> bool:
        return self.rel_error <= self.tol


def compare(grad: str, oracle: str, got: np.ndarray, expected: np.ndarray, tol: float,
            floor: float = 0.0, allowance: float = 0.0) -> GradResult:
    """rel error = (max|got - expected| - allowance)+ / max(max|got|, max|expected|, floor).

    allowance: the finite differences' own noise (zero for torch). The worst entry is
    the first, in C order, whose absolute difference is within a millionth of the
    largest: a bug that shifts several entries by the same amount then names the same
    entry against both oracles, not whichever one rounding happened to favour.
    """
    got, expected = np.asarray(got, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    if not np.isfinite(got).all():                              # NaN or inf: wrong whatever the oracle says
        where = tuple(int(i) for i in np.argwhere(~np.isfinite(got))[0]) if got.ndim else ()
        return GradResult(grad, oracle, math.inf, tol, got.shape, where, float(expected[where]), float(got[where]))
    diff = np.abs(got - expected)
    if not diff.size:
        return GradResult(grad, oracle, 0.0, tol, got.shape)
    max_diff = float(diff.max())
    scale = max(float(np.abs(got).max()), float(np.abs(expected).max()), floor, 1e-300)
    err = 0.0 if max_diff == 0.0 else max(max_diff - allowance, 0.0) / scale
    first_near_max = int(np.argmax(diff.reshape(-1) >= max_diff * (1.0 - 1e-6)))
    where = tuple(int(i) for i in np.unravel_index(first_near_max, diff.shape))
    hint = _hint(got, expected, tol * scale + allowance) if err > tol else ""
    return GradResult(grad, oracle, err, tol, got.shape, where, float(expected[where]), float(got[where]), hint)


def _hint(got: np.ndarray, expected: np.ndarray, atol: float) -> str:
    """The classic slips, where got is the right answer transposed or scaled (by -1, 2, a missing
    1/sqrt(d), ...): the relation, within the comparison's own tolerance atol, or "" if it is
    none of those. A single number is a multiple of any other, so there the factor must be a
    simple fraction (p/q, |p| and q up to 8) to count as a relation rather than chance."""
    def near(a):
        return float(np.abs(got - a).max()) <= atol
    if got.ndim == 2 and got.shape[0] == got.shape[1] > 1 and not near(expected) and near(expected.T):
        return "it equals the expected gradient transposed"
    energy = float(np.vdot(expected, expected))
    if energy == 0.0:
        return ""
    k = float(np.vdot(got, expected)) / energy
    simple = any(abs(k * q - round(k * q)) <= 1e-6 * abs(k * q) and 0 < abs(round(k * q)) <= 8 for q in range(1, 9))
    if abs(k - 1.0) <= 1e-3 or not near(k * expected) or (got.size < 2 and not simple):
        return ""
    return "it equals minus the expected gradient" if abs(k + 1.0) <= 1e-6 else f"it is {k:.4g} times the expected gradient"


# ---------------------------------------------------------------------------------------
# Running a backward on a case and judging it
# ---------------------------------------------------------------------------------------

class CheckFailure(Exception):
    """A case the backward got wrong (or crashed on); carries what the report prints."""

    def __init__(self, case: Case, kind: str, message: str, results: list | None = None):
        super().__init__(message)
        self.case, self.kind, self.message, self.results = case, kind, message, results or []


class NotImplementedYet(Exception):
    """The backward raised NotImplementedError: a template not filled in yet."""


def _learner_frames(exc: BaseException, path: str | None) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    if path:
        mine = [f for f in frames if os.path.abspath(f.filename) == os.path.abspath(path)]
        frames = mine or frames[-1:]
    else:
        frames = frames[-1:]
    return "; ".join(f"{os.path.basename(f.filename)}, line {f.lineno}: {(f.line or '').strip()}" for f in frames)


def run_case(spec: LayerSpec, case: Case, backward: Callable, oracle, impl_path: str | None = None
             ) -> list[GradResult]:
    """Run backward on one case and compare with every oracle. Raises CheckFailure if wrong,
    NotImplementedYet if the backward is still a stub."""
    forward = spec.forward_fn()
    inputs = _copies(case.args)                 # the cache may hold references to these
    out, cache = forward(*inputs.values(), **case.kwargs)
    dout = case.dout.copy()
    dout.flags.writeable = False                # a caller may pass the same dout on (a residual's two branches)
    try:
        returned = backward(dout, cache)
    except NotImplementedError as e:
        raise NotImplementedYet(str(e)) from None
    except Exception as e:  # noqa: BLE001 - any error in the learner's code is a failed check
        if isinstance(e, ValueError) and "read-only" in str(e):
            raise CheckFailure(case, "in-place", "the backward wrote into dout in place; leave it as it came "
                               "(a caller may pass the same dout on: the residual stream gives it to two "
                               f"branches)  ({_learner_frames(e, impl_path)})") from None
        raise CheckFailure(case, "crash", f"{type(e).__name__}: {e}  ({_learner_frames(e, impl_path)})") from None

    # the shape of the answer
    got = tuple(returned) if isinstance(returned, (tuple, list)) else (returned,)
    # an input that is None (a layer without bias) has nothing to differentiate: its gradient is None
    shapes = [None if case.args[arg] is None else np.shape(case.args[arg]) for arg in spec.wrt]
    problem = gradient_problem(got, spec.grads, spec.wrt, shapes)
    if problem:
        hint = " (the cache says has_bias = False)" if "should be None" in problem else ""
        raise CheckFailure(case, "signature", problem + hint)
    for name, g, arg, shape in zip(spec.grads, got, spec.wrt, shapes):
        if shape is None:
            continue
        if not isinstance(g, np.ndarray):
            raise CheckFailure(case, "signature", f"{name} is a {type(g).__name__}; expected a NumPy array")
        want = np.asarray(case.args[arg]).dtype
        if g.dtype != want:
            raise CheckFailure(case, "signature", f"{name} is {g.dtype}; expected {want}, the dtype of {arg} "
                                                  "(a cast drops digits the check compares)")
    grads = {name: g for name, g, shape in zip(spec.grads, got, shapes) if shape is not None}
    for k, v in inputs.items():
        if isinstance(v, np.ndarray) and not np.array_equal(v, case.args[k]):
            raise CheckFailure(case, "in-place", f"the backward changed the forward's input {k} in place "
                                                 "(the cache holds a reference to it; other layers still need it)")

    results = []
    checked = [(name, arg) for name, arg in zip(spec.grads, spec.wrt) if name in grads]
    if oracle is not None:
        t_out, t_grads = oracle.gradients(spec.name, case.args, [arg for _, arg in checked], case.dout,
                                          case.kwargs)
        floor = SCALE_FLOOR * max(np.abs(t).max(initial=0.0) for t in [t_out, *t_grads.values()])
        for name, arg in checked:
            results.append(compare(name, "torch", grads[name], t_grads[arg], TORCH_TOL, floor=floor))

    # finite differences of numpy_gpt's forward; the noise allowance is gradcheck's (see there)
    inputs = _copies(case.args)
    noise = float(np.finfo(np.float64).eps * np.abs(np.asarray(out) * case.dout).sum() / FD_STEP)
    for name, arg in checked:
        numeric = numerical_gradient(lambda: forward(*inputs.values(), **case.kwargs)[0], inputs[arg],
                                     case.dout, FD_STEP)
        results.append(compare(name, "finite diff", grads[name], numeric, FD_TOL,
                               allowance=NOISE_FACTOR * noise))
    if not all(r.ok for r in results):
        wrong = sorted({r.grad for r in results if not r.ok}, key=spec.grads.index)
        broken = spec.invariant(grads) if spec.invariant else ""
        raise CheckFailure(case, "wrong", f"wrong {', '.join(wrong)}" + (f"; {broken}" if broken else ""), results)
    return results


# ---------------------------------------------------------------------------------------
# The search: hypothesis draws cases, shrinks the first failure
# ---------------------------------------------------------------------------------------

@dataclass
class CheckReport:
    layer: str
    impl: str                          # what was checked, for the report
    oracles: list                      # names of the oracles used
    torch_note: str = ""               # why torch was not used, if it was not
    examples: int = 0                  # cases run (including shrinking)
    searched: bool = False             # hypothesis ran (the smallest case alone passed)
    passed: bool = False
    not_implemented: str | None = None
    failure: CheckFailure | None = None
    worst: dict = field(default_factory=dict)     # {(gradient, oracle): worst rel error over passing cases}


def load_torch_oracle():
    """torch_gpt.check, or (None, reason) when torch is not installed."""
    try:
        return importlib.import_module("torch_gpt.check"), ""
    except ModuleNotFoundError as e:
        if e.name and e.name.split(".")[0] in ("torch", "torch_gpt"):
            return None, f"{e.name} is not installed, so only the finite-difference oracle runs"
        raise


def check_backward(layer: str, backward: Callable, examples: int = DEFAULT_EXAMPLES, seed: int = 0,
                   use_torch: bool = True, impl_path: str | None = None, impl: str = "") -> CheckReport:
    """Check `backward` for `layer` on `examples` hypothesis-drawn cases; returns a CheckReport."""
    spec = get_layer(layer)
    oracle, note = load_torch_oracle() if use_torch else (None, "--no-torch: only the finite-difference oracle runs")
    report = CheckReport(layer, impl or spec.backward, (["torch autograd"] if oracle else []) + ["finite differences"],
                         note)
    counter = [0]

    def one(params: dict) -> None:
        counter[0] += 1
        for r in run_case(spec, make_case(layer, **dict(params)), backward, oracle, impl_path):
            key = (r.grad, r.oracle)
            report.worst[key] = max(report.worst.get(key, 0.0), r.rel_error)

    # The smallest case first: a stub or a crash shows up at once, on the simplest input.
    try:
        one(minimal_params(spec))
    except NotImplementedYet as e:
        report.not_implemented = str(e)
        report.examples = counter[0]
        return report
    except CheckFailure as e:
        report.failure, report.examples = e, counter[0]
        return report

    hypothesis = require("hypothesis", "numpy-gpt check", "pip install hypothesis")
    from hypothesis import HealthCheck, Phase, Verbosity, given, settings
    from hypothesis import strategies as st

    def draw(data) -> dict:
        params: dict = {}
        for name, dim in spec.space.items():
            dim = dim(params) if callable(dim) else dim
            if dim[0] == "int":
                strategy = st.integers(dim[1], dim[2])
            elif dim[0] == "choice":
                strategy = st.sampled_from(dim[1])
            else:
                strategy = st.booleans()
            params[name] = data.draw(strategy, label=name)
        return params

    @hypothesis.seed(seed)
    @settings(max_examples=max(examples, 1), deadline=None, database=None, derandomize=False,
              print_blob=False, verbosity=Verbosity.quiet, report_multiple_bugs=False,
              phases=[Phase.generate, Phase.shrink], suppress_health_check=list(HealthCheck))
    @given(st.data())
    def search(data):
        params = draw(data)
        try:
            one(params)
        except NotImplementedYet as e:
            # a branch left as a stub: a failure like any other, reported with its case
            raise CheckFailure(make_case(layer, **params), "crash", f"NotImplementedError: {e}") from None

    report.searched = True
    try:
        search()
    except CheckFailure as e:
        report.failure = e
    except BaseException as e:  # an ExceptionGroup, should several distinct failures escape
        inner = [x for x in getattr(e, "exceptions", ()) if isinstance(x, CheckFailure)]
        if not inner:
            raise
        report.failure = inner[0]
    report.examples = counter[0]
    report.passed = report.failure is None
    return report


# ---------------------------------------------------------------------------------------
# Loading the learner's function and printing the report
# ---------------------------------------------------------------------------------------

def parse_impl(text: str, default_name: str) -> tuple[str, str]:
    """'path.py:function' -> (path, function); 'path.py' -> (path, default_name)."""
    path, sep, name = text.rpartition(":")
    if not sep or not name.isidentifier() or not path:
        return text, default_name
    return path, name


def load_impl(text: str, default_name: str) -> tuple[Callable, str, str]:
    """Import the learner's file and return (function, path, 'path:function')."""
    path, name = parse_impl(text, default_name)
    if os.path.isdir(path):
        raise InputError(f"--impl: {path!r} is a folder; give a Python file (file.py or file.py:function)")
    if not os.path.isfile(path):
        raise InputError(f"--impl: file {path!r} not found")
    module_name = "_numpy_gpt_check_" + "".join(c if c.isalnum() else "_" for c in os.path.abspath(path))
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise InputError(f"--impl: {path!r} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    folder = os.path.dirname(os.path.abspath(path))
    sys.path.insert(0, folder)                       # so the file may import its neighbours
    try:
        spec.loader.exec_module(module)
    except Exception as e:  # noqa: BLE001
        mine = os.path.abspath(path)
        if isinstance(e, SyntaxError):               # its str() repeats the file and line; say them once
            msg, file, line = e.msg, e.filename, e.lineno
        else:                                        # the learner's line that raised, not numpy's
            msg = str(e)
            frames = traceback.extract_tb(e.__traceback__)
            own = [f for f in frames if os.path.abspath(f.filename) == mine]
            file, line = (own[-1].filename, own[-1].lineno) if own else (None, None)
        if file and os.path.abspath(file) != mine:   # in a module the learner's file imports
            where = f" ({file}, line {line})"
        else:
            where = f" (line {line})" if line else ""
        raise InputError(f"--impl: importing {path} failed: {type(e).__name__}: {msg}{where}") from None
    finally:
        if sys.path and sys.path[0] == folder:
            sys.path.pop(0)
    fn = getattr(module, name, None)
    if fn is None:
        defined = sorted(k for k, v in vars(module).items() if callable(v) and not k.startswith("_")
                         and getattr(v, "__module__", None) == module_name)
        hint = f"; it defines {', '.join(defined)}" if defined else ""
        raise InputError(f"--impl: {path} has no function {name!r}{hint} (use --impl {path}:NAME)")
    if not callable(fn):
        raise InputError(f"--impl: {path}:{name} is not a function")
    return fn, path, f"{path}:{name}"


def _fmt(x: float) -> str:
    return f"{x:.10g}"                  # enough digits to show a difference of 1e-8, the torch tolerance


def _there(spec: LayerSpec, case: Case | None, r: GradResult) -> str:
    """What a learner needs to redo the worst entry by hand, where one entry can be redone alone:
    in an elementwise layer (the upstream gradient has the input's shape), the input and the
    upstream gradient at that index. Then the wrong answer's relation to the right one, when it
    is a simple one (compare's hint)."""
    hint = f" ({r.hint})" if r.hint else ""
    if case is None or r.grad not in spec.grads:
        return hint
    name = spec.wrt[spec.grads.index(r.grad)]
    a = case.args.get(name)
    if (not isinstance(a, np.ndarray) or a.shape != tuple(r.shape) or len(r.worst_index) != a.ndim
            or np.shape(case.dout) != a.shape):
        return hint
    return (f"; there {name} = {_fmt(float(a[r.worst_index]))}, "
            f"dout = {_fmt(float(case.dout[r.worst_index]))}{hint}")


def format_report(report: CheckReport, spec: LayerSpec) -> str:
    lines = [f"check {spec.name}: {report.impl}",
             f"  signature  {spec.signature}",
             f"  forward    {spec.module}.{spec.forward} (its cache is what your backward receives)",
             "  oracles    " + " and ".join(report.oracles) + "   (float64; tol "
             + ("" if "torch autograd" not in report.oracles else f"torch {TORCH_TOL:g}, ")
             + f"finite diff {FD_TOL:g} with h = {FD_STEP:g})"]
    if report.torch_note:
        lines.append(f"  note       {report.torch_note}")
    if report.not_implemented is not None:
        lines += ["", f"NOT IMPLEMENTED: {report.impl} raises NotImplementedError"
                      + (f" ({report.not_implemented})" if report.not_implemented else "") + ".",
                  "  Fill in the function body (the template's comments give the math, unless you took it "
                  "with --no-hints) and run again."]
        return "\n".join(lines)
    if report.passed:
        used = [o for o in ("torch", "finite diff") if any(k[1] == o for k in report.worst)]
        lines += ["", f"PASS: every gradient agrees with every oracle on all {report.examples} cases.",
                  (f"  {'worst rel error':<17}" + "".join(f"{o:<14}" for o in used)).rstrip()]
        for g in spec.grads:
            cells = (f"{report.worst[(g, o)]:<14.1e}" if (g, o) in report.worst else f"{'-':<14}" for o in used)
            lines.append((f"  {g:<17}" + "".join(cells)).rstrip())
        if "finite diff" in used:
            lines.append("  (finite diff: the error above the differences' own rounding noise, so 0 means "
                         "within it; docs/parity_tests.md)")
        return "\n".join(lines)

    f = report.failure
    how = (f"found and shrunk by hypothesis, {report.examples} cases run" if report.searched
           else "the very smallest case already fails")
    lines += ["", f"FAIL ({f.kind}): {f.message}",
              f"  smallest failing case ({how}):",
              f"    {f.case.describe()}" if f.case else "    (not recorded)"]
    if f.case is not None:
        shapes = ", ".join(f"{k} {tuple(np.shape(v))}" if v is not None else f"{k} None"
                           for k, v in f.case.args.items() if isinstance(v, np.ndarray) or v is None)
        lines.append(f"    inputs: {shapes}; upstream {tuple(np.shape(f.case.dout))}")
    if f.results:
        lines += ["", f"  {'gradient':<11}{'shape':<15}{'oracle':<13}{'rel error':<11}verdict"]
        for r in f.results:
            verdict = "ok" if r.ok else (f"WRONG  worst at {r.worst_index}: expected {_fmt(r.expected)}, "
                                         f"got {_fmt(r.got)}{_there(spec, f.case, r)}")
            err = "inf" if math.isinf(r.rel_error) else f"{r.rel_error:.2e}"
            lines.append(f"  {r.grad:<11}{str(r.shape):<15}{r.oracle:<13}{err:<11}{verdict}".rstrip())
    if f.case is not None:
        kw = ", ".join(f"{k}={v!r}" for k, v in f.case.params.items())
        lines += ["", "  rebuild this case in Python:",
                  "    from numpy_gpt.check import make_case",
                  f"    case = make_case({spec.name!r}, {kw})",
                  "    out, cache = case.forward()",
                  f"    grads = {_function_name(report.impl, spec)}(case.dout, cache)   # your function"]
    return "\n".join(lines)


def _function_name(impl: str, spec: LayerSpec) -> str:
    """The function the report is about: the name after the colon of load_impl's 'path:function'."""
    path, sep, name = impl.rpartition(":")
    return name if sep and name.isidentifier() else spec.backward


def format_list() -> str:
    width = max(len(n) for n in LAYERS)
    rows = [f"  {name:<{width}}  {spec.signature}\n  {'':<{width}}  {spec.summary}" for name, spec in LAYERS.items()]
    return ("Layers numpy-gpt check knows (numpy-gpt check LAYER --template writes a starter file):\n"
            + "\n".join(rows))


# ---------------------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------------------

def handler(args) -> int:
    if args.list:
        print(format_list())
        return 0
    from .errors import UsageError               # a malformed command line exits 2, as argparse's errors do
    if not args.layer:
        raise UsageError("name a layer (numpy-gpt check --list shows them), or pass --list")
    try:
        spec = get_layer(args.layer)
    except ConfigError as e:                     # on the command line, an unknown LAYER is malformed usage
        raise UsageError(str(e)) from None
    if args.no_hints and not args.template:
        raise UsageError("--no-hints goes with --template")
    if args.template and args.impl:
        raise UsageError("--template prints a starter file and --impl checks one: give one of them")
    if args.template:
        sys.stdout.write(template_text(args.layer, hints=not args.no_hints))
        return 0
    if args.examples < 1:
        raise ConfigError(f"--examples must be at least 1, got {args.examples}")
    if args.impl:
        fn, path, label = load_impl(args.impl, spec.backward)
    else:
        fn, path, label = spec.backward_fn(), None, f"numpy_gpt's own {spec.module}.{spec.backward}"
    report = check_backward(args.layer, fn, examples=args.examples, seed=args.seed,
                            use_torch=not args.no_torch, impl_path=path, impl=label)
    print(format_report(report, spec))
    return 0 if report.passed else 1


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("layer", nargs="?", metavar="LAYER", help="the layer to check (see --list)")
    p.add_argument("--impl", metavar="FILE.py[:FUNCTION]",
                   help="your backward: a file and the function in it (default name: the layer's "
                        "backward, e.g. layernorm_backward); without --impl numpy_gpt's own is checked")
    p.add_argument("--list", action="store_true", help="list the layers and their backward signatures")
    p.add_argument("--template", action="store_true", help="print a starter file for LAYER's backward")
    p.add_argument("--no-hints", action="store_true",
                   help="with --template: leave out the comments that give the formulas")
    p.add_argument("--examples", type=int, default=DEFAULT_EXAMPLES,
                   help=f"hypothesis cases to try (default {DEFAULT_EXAMPLES}; shrinking a failure runs more)")
    p.add_argument("--seed", type=int, default=0, help="hypothesis seed: the same seed draws the same cases")
    p.add_argument("--no-torch", action="store_true", help="finite differences only, even when torch is installed")


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "check", help="check a backward you wrote against torch autograd and finite differences",
        description=__doc__.split("\n\n")[0] + "\n\nExit code 0 only when every case passes.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    p.set_defaults(func=handler)
    return p


def main(argv=None) -> int:
    """Run the command without the numpy-gpt CLI: python -m numpy_gpt.check ..."""
    from .errors import NumpyGPTError, UsageError
    parser = argparse.ArgumentParser(prog="numpy-gpt check")
    add_arguments(parser)
    try:
        return handler(parser.parse_args(argv))
    except NumpyGPTError as e:
        print(f"numpy-gpt check: error: {e}", file=sys.stderr)
        return 2 if isinstance(e, UsageError) else 1


if __name__ == "__main__":
    sys.exit(main())
