"""Every Python block in the README and docs/ runs as written, and prints what its comments say.

A learner copies these blocks into a session, so a block that no longer runs (a renamed
function, a changed signature) is a bug, and so is a comment that no longer shows what a print
prints. The blocks of one page run in order in one namespace, as they would in one session, in
a temporary folder. Blocks that show a few lines out of a larger function, and cannot run alone,
are marked ```python fragment and left out.

What a print shows is in a comment on its line, on the comment lines right below it, or both
(`print(out)  # [[1. 2.]` then `#  [3. 4.]]`): the k-th line printed from that line of code (a
print in a loop prints several) is held to the k-th line shown, for as many lines as it
printed. Lines are compared by their numbers (and True/False, nan, inf): a printed line's
numbers must be the shown line's first ones, to the digits shown ("0.4076..." is 0.4076 to 4
decimals, "1.2e-05" is 1.2e-05 to 0.1e-05, "~0" is 0 to the nearest integer). Prose after them
("= g @ w.T") is not read, and a print with no comment below or beside it is not checked.
"""
from __future__ import annotations

import builtins
import contextlib
import io
import math
import os
import re
import sys
import textwrap
import tokenize
from pathlib import Path

import numpy as np
import pytest

from tests import ROOT

PAGES = sorted(p.relative_to(ROOT).as_posix() for p in [*Path(ROOT, "docs").glob("*.md"), Path(ROOT, "README.md"),
                                                         Path(ROOT, "benchmarks", "README.md")])
BLOCK = re.compile(r"^(?P<indent>[ \t]*)```(?P<info>python[^\n]*)\n(?P<code>.*?)^(?P=indent)```", re.S | re.M)
PRINT = re.compile(r"^\s*(?:.*;\s*)?print\(")                 # a line that prints (statement or after a ;)
COMMENT = re.compile(r"#\s?(?P<text>.*)$")
TOKEN = re.compile(r"True|False|nan|[-+]?inf|[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def blocks(page: str) -> list[str]:
    """The runnable Python blocks of a page, in order (an indented block, in a list, dedented)."""
    text = Path(ROOT, page).read_text()
    return [textwrap.dedent(m.group("code")) for m in BLOCK.finditer(text) if m.group("info").strip() == "python"]


def tokens(text: str) -> list[str]:
    """The numbers and booleans in text, in order ("~0" gives "0"; a name like "w2" gives nothing)."""
    return [m.group() for m in TOKEN.finditer(text)
            if m.start() == 0 or not (text[m.start() - 1].isalnum() or text[m.start() - 1] in "_.")]


def agrees(shown: str, printed: str) -> bool:
    """Whether a number or boolean shown in a comment is the printed one, to the shown digits."""
    words = ("True", "False", "nan", "inf", "-inf", "+inf")
    if shown in words or printed in words:
        return shown == printed
    mantissa, _, exponent = shown.lower().partition("e")
    decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
    step = 10.0 ** (int(exponent or 0) - decimals)               # the shown number's last digit
    return math.isfinite(float(printed)) and abs(float(shown) - float(printed)) <= 0.51 * step


def shown_lines(lines: list[str], i: int) -> list[str]:
    """What the comments show for the print on lines[i]: its own comment, then the comment-only lines below."""
    out = []
    own = [t.string for t in tokenize.generate_tokens(io.StringIO(lines[i].strip() + "\n").readline)
           if t.type == tokenize.COMMENT]                      # a "#" in a string is not one
    if own:
        out.append(COMMENT.match(own[0]).group("text"))
    for line in lines[i + 1:]:
        if not line.lstrip().startswith("#"):
            break
        out.append(COMMENT.search(line).group("text"))
    return out


def test_the_pages_have_blocks_to_run_and_prints_to_check():
    # Guards the collection below: a pattern that matched nothing would make every test pass.
    counts = {page: len(blocks(page)) for page in PAGES}
    assert counts["README.md"] >= 2 and counts["docs/layernorm.md"] >= 1 and counts["docs/parity_tests.md"] >= 1
    assert sum(counts.values()) >= 13
    checked = 0
    for page in PAGES:
        for b in blocks(page):
            lines = b.splitlines()
            checked += sum(bool(PRINT.match(line)) and bool(shown_lines(lines, i)) for i, line in enumerate(lines))
    assert checked >= 30


def test_a_comment_agrees_with_a_print_only_to_its_own_digits():
    assert tokens("[ 0.2041 -0.4082  0.2041]  ~0") == ["0.2041", "-0.4082", "0.2041", "0"]
    assert tokens("[[0. 2.]]         = g @ w2.T") == ["0.", "2."]
    assert tokens("[1. nan inf] 1E-3") == ["1.", "nan", "inf", "1E-3"]
    assert agrees("0.4076", "0.40760596") and not agrees("0.4076", "0.4078")
    assert agrees("0", "5.551115123125783e-17") and agrees("2.", "2.0") and not agrees("2.", "3.0")
    assert agrees("9.9e-05", "9.94e-05") and not agrees("9.9e-05", "9.5e-05") and agrees("1.2E+03", "1200.4")
    assert agrees("True", "True") and not agrees("True", "False") and not agrees("1", "True")
    assert agrees("nan", "nan") and not agrees("3.", "nan") and not agrees("1.", "inf")
    lines = ["print(x)   # [[1. 2.]", "#  [3. 4.]]", "# prose", "y = 1"]
    assert shown_lines(lines, 0) == ["[[1. 2.]", " [3. 4.]]", "prose"]
    assert shown_lines(["opt.step(g); print(p)   # [[-0.5]]"], 0) == ["[[-0.5]]"]
    assert shown_lines(['print("#", x)'], 0) == []
    assert shown_lines(["print(x)   # [2. 20.]   the part (1, 10) was lost"], 0) == ["[2. 20.]   the part (1, 10) was lost"]
    assert tokens("[-inf  1.]") == ["-inf", "1."] and not agrees("inf", "-inf")


@pytest.mark.real_row_blocks        # as a learner runs them; the README's ShardProcesses needs it too
@pytest.mark.parametrize("page", [p for p in PAGES if blocks(p)])
def test_every_python_block_runs_and_prints_what_its_comments_say(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)                       # anything a block writes lands here
    printing, errors = np.get_printoptions(), np.geterr()
    namespace = {"__name__": "__main__"}              # one per page, as one session
    try:
        for i, code in enumerate(blocks(page)):
            where = f"{page}, Python block {i + 1}"
            if "ShardProcesses" in code and not hasattr(os, "memfd_create"):
                continue                              # shard processes are Linux only, as the README says
            printed = run_block(code, where, namespace)
            lines = code.splitlines()
            for k, line in enumerate(lines):
                shown = shown_lines(lines, k) if PRINT.match(line) else []
                if not shown:
                    continue
                assert k + 1 in printed, f"{where}, line {k + 1} printed nothing: {line.strip()}"
                out = printed[k + 1].splitlines()
                assert len(out) <= len(shown), f"{where}, line {k + 1} printed more lines than its comments show"
                for j, (text, comment) in enumerate(zip(out, shown)):
                    got = tokens(text)
                    want = tokens(comment)[:len(got)]
                    assert got and len(want) == len(got) and all(map(agrees, want, got)), (
                        f"{where}, line {k + 1}: {line.strip()}\n  printed line {j + 1}: {text!r}\n"
                        f"  shown: {comment!r}")
    finally:                                          # a block's np.set_printoptions stays on its page
        np.set_printoptions(**printing)
        np.seterr(**errors)


def run_block(code: str, where: str, namespace: dict) -> dict[int, str]:
    """Run one block in its page's namespace; return all that each of its lines printed."""
    printed: dict[int, str] = {}

    def recording_print(*args, **kwargs):
        frame = sys._getframe(1)
        buffer = io.StringIO()
        builtins.print(*args, **{**kwargs, "file": buffer})
        if frame.f_code.co_filename == where:
            printed[frame.f_lineno] = printed.get(frame.f_lineno, "") + buffer.getvalue()
    namespace["print"] = recording_print
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            exec(compile(code, where, "exec"), namespace)
        except Exception as exc:                      # noqa: BLE001 - reported with the block
            pytest.fail(f"{where} raised {type(exc).__name__}: {exc}\n{code}")
    return printed


def test_the_docstrings_examples_run_as_shown():
    # `>>>` examples in numpy_gpt's docstrings (doctest); a module that fails to import fails here too.
    import doctest
    import importlib
    import pkgutil

    import numpy_gpt
    attempted = 0
    for info in pkgutil.iter_modules(numpy_gpt.__path__):
        if info.name == "__main__":                   # importing it runs the command line
            continue
        module = importlib.import_module(f"numpy_gpt.{info.name}")
        result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
        assert result.failed == 0, f"numpy_gpt.{info.name}: {result.failed} docstring example(s) failed"
        attempted += result.attempted
    assert attempted >= 2                             # WordTokenizer's, at least


LINK = re.compile(r"\]\((?P<target>[^)\s]+)\)")               # a markdown link: [text](target)
HEADING = re.compile(r"^#{1,6} (?P<title>.+)$", re.M)
FENCE = re.compile(r"^[ \t]*```.*?^[ \t]*```", re.S | re.M)   # code blocks, whose "#" lines are not headings


def anchor(title: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")


def link_problems(page: Path) -> list[str]:
    """The relative links on a page whose file, or whose #anchor in a markdown file, does not exist."""
    problems = []
    for m in LINK.finditer(FENCE.sub("", page.read_text())):
        target = m.group("target")
        if re.match(r"[a-z]+:", target):                        # https:, mailto:: not checked here
            continue
        path, _, fragment = target.partition("#")
        file = (page.parent / path) if path else page
        if not file.exists():
            problems.append(f"{target}: no such file")
        elif fragment and file.suffix == ".md":
            headings = {anchor(h) for h in HEADING.findall(FENCE.sub("", file.read_text()))}
            if fragment not in headings:
                problems.append(f"{target}: no heading with that anchor")
    return problems


def test_the_link_check_finds_a_missing_file_or_heading(tmp_path):
    assert anchor("The demo's training rates") == "the-demos-training-rates"
    assert anchor("Known limits of float32, measured") == "known-limits-of-float32-measured"
    assert anchor("A random upstream gradient, never `.sum()`") == "a-random-upstream-gradient-never-sum"
    page = tmp_path / "page.md"
    page.write_text("[ok](page.md#here) [a](missing.md) [b](#no-such-heading) [c](https://x.org/y)\n"
                    "```\n# not a heading\n[d](in-code.md)\n```\n# Here\n")
    assert link_problems(page) == ["missing.md: no such file", "#no-such-heading: no heading with that anchor"]


@pytest.mark.parametrize("page", PAGES)
def test_every_relative_link_leads_somewhere(page):
    # A reader who follows a link from the README or a doc page lands on the file and the heading it names.
    assert link_problems(Path(ROOT, page)) == []
