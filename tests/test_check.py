"""`numpy-gpt check`: numpy_gpt's own backwards pass, wrong ones fail and are located, stubs and
bad input are reported cleanly. Runs the command's handler through its argparse registration
with few hypothesis examples (--examples), so the whole file takes seconds."""
import argparse
import ast
import importlib.util
import re
import textwrap

import numpy as np
import pytest

from numpy_gpt import check
from numpy_gpt.errors import InputError, UsageError


def run_check(capsys, *argv):
    parser = argparse.ArgumentParser(prog="numpy-gpt")
    check.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["check", *argv])
    code = args.func(args)
    return code, capsys.readouterr().out


def write(tmp_path, name, body):
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return str(path)


@pytest.mark.parametrize("layer", list(check.LAYERS))
def test_numpy_gpts_own_backward_passes(capsys, layer):
    code, out = run_check(capsys, layer, "--examples", "4")
    assert code == 0, out
    assert "PASS" in out and "torch" in out and "finite diff" in out
    assert "so 0 means within it" in out              # a 0 in the finite-diff column is explained


def wrong_report(capsys, tmp_path, layer, body, examples="6"):
    code, out = run_check(capsys, layer, "--impl", write(tmp_path, f"mine_{layer}.py", body), "--examples", examples)
    assert code == 1, out
    return out


def verdicts(out: str) -> dict:
    """{(gradient, oracle): "ok" or "WRONG"} from the report's table."""
    rows = re.findall(r"^\s+(d\w+)\s+\([\d, ]*\)\s+(torch|finite diff)\s+\S+\s+(ok|WRONG)", out, re.M)
    return {(g, o): verdict for g, o, verdict in rows}


def test_flipped_sign_is_located_in_dx_only(capsys, tmp_path):
    out = wrong_report(capsys, tmp_path, "linear", """
        def linear_backward(dout, cache):
            x, w, has_bias = cache
            g = dout.reshape(-1, w.shape[1])
            return -(g @ w.T).reshape(x.shape), x.reshape(-1, w.shape[0]).T @ g, g.sum(0)
        """)
    v = verdicts(out)
    assert v[("dx", "torch")] == v[("dx", "finite diff")] == "WRONG"
    assert {v[(g, o)] for g in ("dw", "db") for o in ("torch", "finite diff")} == {"ok"}
    assert "FAIL (wrong): wrong dx" in out and "rel error" in out and "expected" in out and "got" in out


def test_layernorm_without_the_mean_term_fails_on_dx(capsys, tmp_path):
    out = wrong_report(capsys, tmp_path, "layernorm", """
        def layernorm_backward(dout, cache):
            xhat, rstd, w, has_bias = cache
            C = xhat.shape[-1]
            g = dout * w
            dx = rstd * (g - xhat * (g * xhat).mean(-1, keepdims=True))     # forgot - mean(g)
            return dx, (dout * xhat).reshape(-1, C).sum(0), dout.reshape(-1, C).sum(0)
        """)
    v = verdicts(out)
    assert v[("dx", "torch")] == "WRONG" and v[("dw", "torch")] == "ok" and v[("db", "torch")] == "ok"


def test_the_rebuild_snippet_calls_the_function_the_learner_named(capsys, tmp_path):
    path = write(tmp_path, "attempts.py", """
        def second_try(dout, cache):
            return 2 * dout
        """)
    code, out = run_check(capsys, "relu", "--impl", path + ":second_try", "--examples", "3")
    assert code == 1 and "    grads = second_try(case.dout, cache)   # your function" in out, out
    code, out = run_check(capsys, "relu", "--impl", write(tmp_path, "plain.py", """
        def relu_backward(dout, cache):
            return -dout
        """), "--examples", "3")
    assert code == 1 and "    grads = relu_backward(case.dout, cache)   # your function" in out, out


def test_gelu_with_a_wrong_constant_fails(capsys, tmp_path):
    out = wrong_report(capsys, tmp_path, "gelu", """
        import math
        def gelu_backward(dout, cache):
            x, s = cache
            c, k = math.sqrt(2 / math.pi), 0.04                              # not 0.044715
            return dout * s * (1 + 2 * x * (1 - s) * c * (1 + 3 * k * x * x))
        """)
    assert verdicts(out)[("dx", "finite diff")] == "WRONG"


def test_a_wrong_entry_is_shown_with_its_input_and_upstream_gradient(tmp_path):
    # To redo the worst entry by hand a learner needs x and dout there (elementwise layers). A
    # weight's gradient entry sums over every position, so there is nothing to show at one entry;
    # a gradient off by a constant factor says so instead.
    path = write(tmp_path, "mine.py", """
        def gelu_backward(dout, cache):
            x, s = cache
            return 2 * dout * s                                             # the derivative's first term only, doubled
        """)
    fn, _, _ = check.load_impl(path, "gelu_backward")
    report = check.check_backward("gelu", fn, examples=3, impl_path=path)
    text = check.format_report(report, check.get_layer("gelu"))
    case = check.make_case("gelu", **report.failure.case.params)
    r = next(r for r in report.failure.results if not r.ok)
    x, dout = case.args["x"][r.worst_index], case.dout[r.worst_index]
    assert f"there x = {check._fmt(float(x))}, dout = {check._fmt(float(dout))}" in text, text
    path = write(tmp_path, "mine_linear.py", """
        def linear_backward(dout, cache):
            x, w, has_bias = cache
            g = dout.reshape(-1, w.shape[1])
            return (g @ w.T).reshape(x.shape), 2 * x.reshape(-1, w.shape[0]).T @ g, g.sum(0)
        """)
    fn, _, _ = check.load_impl(path, "linear_backward")
    report = check.check_backward("linear", fn, examples=3, impl_path=path)
    text = check.format_report(report, check.get_layer("linear"))
    case = check.make_case("linear", **report.failure.case.params)
    r = next(r for r in report.failure.results if not r.ok)
    assert r.grad == "dw" and "there w" not in text, text
    assert "(it is 2 times the expected gradient)" in text, text


@pytest.mark.parametrize("got, hint", [
    (lambda e: e.T, "it equals the expected gradient transposed"),
    (lambda e: -e, "it equals minus the expected gradient"),
    (lambda e: 0.5 * e, "it is 0.5 times the expected gradient"),
    (lambda e: e / np.sqrt(8.0), "it is 0.3536 times the expected gradient"),   # an extra 1/sqrt(d)
    (lambda e: e + 1e-3, ""),                                                  # no simple relation
    (lambda e: e[:, ::-1], ""),
])
def test_a_wrong_gradient_s_simple_relation_to_the_right_one_is_named(got, hint):
    expected = np.random.default_rng(0).standard_normal((3, 3))
    r = check.compare("dw", "torch", got(expected), expected, check.TORCH_TOL)
    assert not r.ok and r.hint == hint


@pytest.mark.parametrize("got, hint", [(2.0, "it is 2 times the expected gradient"), (-0.7, "it equals minus the expected gradient"),
                                       (0.7081, "")])
def test_a_single_wrong_number_is_called_a_multiple_only_by_a_simple_factor(got, hint):
    r = check.compare("db", "torch", np.array([got]), np.array([0.7 if got == -0.7 else 1.0]), check.TORCH_TOL)
    assert not r.ok and r.hint == hint


def test_embedding_trap_is_found_and_shrunk_by_hypothesis(capsys, tmp_path):
    # The smallest case (one position) passes; only a repeated id exposes dW[idx] += g.
    out = wrong_report(capsys, tmp_path, "embedding", """
        import numpy as np
        def embedding_backward(dout, cache):
            idx, (V, C) = cache
            dwte = np.zeros((V, C))
            dwte[idx] += dout
            return dwte
        """, examples="30")
    assert "found and shrunk by hypothesis" in out and verdicts(out)[("dwte", "torch")] == "WRONG"
    assert "B=1  T=2  V=1" in out                      # the smallest case with a repeat


def test_the_reported_case_rebuilds_and_its_numbers_are_the_real_ones(tmp_path):
    path = write(tmp_path, "mine.py", """
        def softmax_backward(dout, cache):
            y = cache
            return y * (dout + (dout * y).sum(-1, keepdims=True))             # + instead of -
        """)
    fn, _, _ = check.load_impl(path, "softmax_backward")
    report = check.check_backward("softmax", fn, examples=5, impl_path=path)
    assert not report.passed
    failure = report.failure
    case = check.make_case("softmax", **failure.case.params)
    _, cache = case.forward()
    got = fn(case.dout, cache)
    import torch_gpt.check as oracle
    _, truth = oracle.gradients("softmax", case.args, ["x"], case.dout)
    row = next(r for r in failure.results if r.oracle == "torch")
    assert row.got == got[row.worst_index] and row.expected == truth["x"][row.worst_index]
    assert row.rel_error == pytest.approx(np.abs(got - truth["x"]).max() / max(np.abs(got).max(), np.abs(truth["x"]).max()))


def test_signature_crash_and_in_place_problems_are_reported(capsys, tmp_path):
    out = wrong_report(capsys, tmp_path, "layernorm", """
        def layernorm_backward(dout, cache):
            return dout, dout.sum(0)
        """)
    assert "FAIL (signature)" in out and "returned 2 gradient(s); expected 3" in out
    out = wrong_report(capsys, tmp_path, "attention_core", """
        def causal_attention_backward(dy, cache):
            q, k, v, a, scale = cache
            return dy[5], k, v                                                # IndexError
        """)
    assert "FAIL (crash)" in out and "mine_attention_core.py, line 4" in out
    out = wrong_report(capsys, tmp_path, "linear", """
        def linear_backward(dout, cache):
            x, w, has_bias = cache
            g = dout.reshape(-1, w.shape[1])
            dx, dw, db = (g @ w.T).reshape(x.shape), x.reshape(-1, w.shape[0]).T @ g, g.sum(0)
            x[...] = 0                                                        # scribbles on the cache
            return dx, dw, db
        """)
    assert "FAIL (in-place)" in out and "input x" in out


@pytest.mark.parametrize("change, words", [
    ("dx = dx.astype(np.float32)", "FAIL (signature): dx is float32; expected float64, the dtype of x"),
    ("dx = dx.tolist()", "FAIL (signature): dx is a list; expected a NumPy array"),
    ("dout *= 1.0", "FAIL (in-place): the backward wrote into dout in place"),
])
def test_a_gradient_of_another_type_or_a_dout_written_over_is_named(capsys, tmp_path, change, words):
    out = wrong_report(capsys, tmp_path, "layernorm", f"""
        import numpy as np
        from numpy_gpt.layernorm import layernorm_backward as right
        def layernorm_backward(dout, cache):
            dx, dw, db = right(dout.copy(), cache)
            {change}
            return dx, dw, db
        """)
    assert words in out


def test_inputs_of_two_three_and_four_axes_are_drawn(capsys, tmp_path):
    # (..., C) layers: a backward that sums over axes (0, 1) passes on 3-D inputs only.
    out = wrong_report(capsys, tmp_path, "linear", """
        from numpy_gpt.linear import linear_backward as right
        def linear_backward(dout, cache):
            dx, dw, db = right(dout, cache)
            return dx, dw, None if db is None else dout.sum(axis=(0, 1))
        """, examples="20")
    assert "FAIL (signature): db has shape" in out and "ndim=2" in out
    shapes = {np.shape(check.make_case("layernorm", B=2, T=3, ndim=n).args["x"]) for n in (2, 3, 4)}
    assert shapes == {(6, 3), (2, 3, 3), (2, 2, 3, 3)}


@pytest.mark.parametrize("layer", list(check.LAYERS))
def test_templates_say_not_implemented(capsys, tmp_path, layer):
    code, template = run_check(capsys, layer, "--template")
    assert code == 0 and "raise NotImplementedError" in template and check.LAYERS[layer].backward in template
    path = tmp_path / check.LAYERS[layer].template
    path.write_text(template)
    code, out = run_check(capsys, layer, "--impl", str(path), "--no-torch")
    assert code == 1 and "NOT IMPLEMENTED" in out and "Traceback" not in out


@pytest.mark.parametrize("layer", list(check.LAYERS))
def test_templates_without_hints_keep_the_code_and_drop_the_formulas(capsys, tmp_path, layer):
    _, full = run_check(capsys, layer, "--template")
    code, bare = run_check(capsys, layer, "--template", "--no-hints")
    assert code == 0
    body = full.split(f"def {check.LAYERS[layer].backward}(", 1)[1]
    hints = [ln for ln in body.splitlines() if ln.lstrip().startswith("#")]
    assert hints, "every template gives hints inside its function"
    assert not any(ln in bare.splitlines() for ln in hints)
    kept = [ln for ln in full.splitlines() if ln not in hints]
    assert bare.splitlines() == kept                  # the docstrings and the code, untouched
    assert ast.dump(ast.parse(bare)) == ast.dump(ast.parse(full))
    path = tmp_path / check.LAYERS[layer].template
    path.write_text(bare)
    code, out = run_check(capsys, layer, "--impl", str(path), "--no-torch")
    assert code == 1 and "NOT IMPLEMENTED" in out and "Traceback" not in out


def test_no_hints_keeps_a_hash_inside_a_docstring():
    text = 'def f(x):\n    """Args:\n        # x: (B, T)\n    """\n    # a hint\n    y = x  # kept\n    return y\n'
    stripped = check.strip_hints(text)
    assert "# x: (B, T)" in stripped and "# a hint" not in stripped and "y = x  # kept" in stripped


@pytest.mark.parametrize("layer", list(check.LAYERS))
def test_template_unpacks_the_real_cache(layer):
    # The template's first lines unpack numpy_gpt's cache; if the cache layout changes, this
    # fails with a ValueError instead of reaching NotImplementedError: update the template.
    spec = check.LAYERS[layer]
    module_spec = importlib.util.spec_from_file_location(
        f"template_{layer}", check.__file__.replace("check.py", f"templates/{spec.template}"))
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    case = check.make_case(layer, B=2, seed=3) if "B" in spec.space else check.make_case(layer)
    _, cache = case.forward()
    with pytest.raises(NotImplementedError):
        getattr(module, spec.backward)(case.dout, cache)


def test_list_and_bad_input(capsys, tmp_path):
    code, out = run_check(capsys, "--list")
    assert code == 0 and all(name in out for name in check.LAYERS) and "layernorm_backward(dout, cache)" in out
    with pytest.raises(UsageError, match="unknown layer 'layernrom'"):     # exit code 2, as argparse's
        run_check(capsys, "layernrom")
    with pytest.raises(UsageError, match="--no-hints goes with --template"):
        run_check(capsys, "relu", "--no-hints")
    with pytest.raises(UsageError, match="give one of them"):
        run_check(capsys, "relu", "--template", "--impl", "mine.py")
    with pytest.raises(UsageError, match="name a layer"):
        run_check(capsys)
    with pytest.raises(InputError, match="not found"):
        run_check(capsys, "linear", "--impl", str(tmp_path / "missing.py"))
    with pytest.raises(InputError, match="is a folder; give a Python file"):
        run_check(capsys, "linear", "--impl", str(tmp_path))
    path = write(tmp_path, "other.py", "def helper(dout, cache):\n    return dout\n")
    with pytest.raises(InputError, match="no function 'linear_backward'.*defines helper"):
        run_check(capsys, "linear", "--impl", path)
    with pytest.raises(InputError, match="no function 'nope'"):
        run_check(capsys, "linear", "--impl", path + ":nope")
    bad = write(tmp_path, "bad.py", "def linear_backward(dout, cache)\n    return dout\n")
    with pytest.raises(InputError, match="SyntaxError") as e:
        run_check(capsys, "linear", "--impl", bad)
    assert str(e.value).count("line 1") == 1, e.value                 # the line, said once
    broken = write(tmp_path, "broken.py", "import numpy as np\n\nscale = undefined_name\n")
    with pytest.raises(InputError, match=r"NameError: name 'undefined_name' is not defined \(line 3\)"):
        run_check(capsys, "linear", "--impl", broken)
    write(tmp_path, "helper_mod.py", "def f(:\n    pass\n")
    uses = write(tmp_path, "uses_helper.py", "import helper_mod\n")
    with pytest.raises(InputError, match=r"SyntaxError: .* \(.*helper_mod\.py, line 1\)"):
        run_check(capsys, "linear", "--impl", uses)
    with pytest.raises(UsageError):
        run_check(capsys)


def test_without_torch_finite_differences_still_catch_bugs(capsys, tmp_path, monkeypatch):
    real = check.importlib.import_module

    def no_torch(name, *a, **kw):
        if name.startswith("torch"):
            raise ModuleNotFoundError("No module named 'torch'", name="torch")
        return real(name, *a, **kw)

    monkeypatch.setattr(check.importlib, "import_module", no_torch)
    code, out = run_check(capsys, "softmax", "--examples", "3")
    assert code == 0 and "torch is not installed" in out and "torch autograd" not in out
    assert "(float64; tol finite diff 1e-06" in out and "tol torch" not in out     # no torch tolerance
    out = wrong_report(capsys, tmp_path, "softmax", """
        def softmax_backward(dout, cache):
            return cache * dout
        """)
    assert verdicts(out) == {("dx", "finite diff"): "WRONG"}


def test_through_the_numpy_gpt_command_line(capsys, tmp_path):
    from numpy_gpt import cli
    if "check" not in getattr(cli, "PLUGINS", ()):
        pytest.skip("numpy_gpt.cli does not register the check command")
    assert cli.main(["check", "relu", "--examples", "2"]) == 0
    assert "PASS" in capsys.readouterr().out
    assert cli.main(["check", "relu", "--impl", str(tmp_path / "missing.py")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not found" in err


def test_the_worst_entry_is_the_first_of_a_near_tie():
    # A bug that shifts every entry by the same amount leaves differences equal up to
    # rounding; the report names the first such entry, whichever oracle it compares with.
    expected = np.zeros((1, 1, 3))
    for got in ([[[0.3, 0.3 + 1e-12, 0.3 - 1e-12]]], [[[0.3 - 1e-12, 0.3 + 1e-12, 0.3]]]):
        r = check.compare("dx", "torch", np.array(got), expected, tol=1e-8)
        assert r.worst_index == (0, 0, 0) and not r.ok
    r = check.compare("dx", "torch", np.array([[[0.1, 0.3, 0.2]]]), expected, tol=1e-8)
    assert r.worst_index == (0, 0, 1) and r.got == 0.3 and r.expected == 0.0


@pytest.mark.parametrize("layer, body", [
    ("linear", """
        def linear_backward(dout, cache):
            x, w, has_bias = cache
            g = dout.reshape(-1, w.shape[1])
            return (g @ w.T).reshape(x.shape), x.reshape(-1, w.shape[0]).T @ g, g.sum(0)   # db even without b
        """),
    ("layernorm", """
        from numpy_gpt.layernorm import layernorm_backward as right

        def layernorm_backward(dout, cache):
            dx, dw, db = right(dout, cache)
            return dx, dw, dout.reshape(-1, dw.shape[0]).sum(0)                          # db even without b
        """),
])
def test_a_gradient_for_a_missing_bias_is_caught(capsys, tmp_path, layer, body):
    # The checker draws cases without a bias too; the template says db is None there.
    out = wrong_report(capsys, tmp_path, layer, body, examples="30")
    assert "FAIL (signature): db should be None" in out and "no_bias=True" in out and "b None" in out


def test_a_layer_norm_dx_that_lost_the_mean_is_told_so(tmp_path):
    # Every right dx of layer norm (and softmax) sums to 0 over a row; a backward without the path
    # through the mean breaks that, and the report says which fact it broke. One that drops the
    # other term keeps the fact, and gets no such line.
    lost_mean = write(tmp_path, "lost_mean.py", """
        def layernorm_backward(dout, cache):
            xhat, rstd, w, has_bias = cache
            g = dout * w
            dx = rstd * (g - xhat * (g * xhat).mean(-1, keepdims=True))
            return dx, (dout * xhat).reshape(-1, w.size).sum(0), dout.reshape(-1, w.size).sum(0) if has_bias else None
        """)
    lost_other = write(tmp_path, "lost_other.py", """
        def layernorm_backward(dout, cache):
            xhat, rstd, w, has_bias = cache
            g = dout * w
            dx = rstd * (g - g.mean(-1, keepdims=True))
            return dx, (dout * xhat).reshape(-1, w.size).sum(0), dout.reshape(-1, w.size).sum(0) if has_bias else None
        """)
    messages = []
    for path in (lost_mean, lost_other):
        fn, _, _ = check.load_impl(path, "layernorm_backward")
        report = check.check_backward("layernorm", fn, examples=5, impl_path=path)
        messages.append(report.failure.message)
    assert messages[0].startswith("wrong dx; your dx's rows do not sum to 0"), messages[0]
    assert messages[1] == "wrong dx", messages[1]
