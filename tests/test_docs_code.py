"""Every Python block in the README and docs/ runs as written, and prints what its comments say.

A learner copies these blocks into a session, so a block that no longer runs (a renamed
function, a changed signature) is a bug, and so is a comment beside a print that no longer
matches what it prints. The blocks of one page run in order in one namespace, as they would in
one session, in a temporary folder. Blocks that show a few lines out of a larger function, and
cannot run alone, are marked ```python fragment and left out.

A line `print(...)   # <what it prints>` is checked by its numbers (and True/False): the first
line the call prints must hold as many numbers as it shows, and the comment's first numbers must
be those, to the digits the comment gives ("0.4076..." is 0.4076 to 4 decimals; "~0" is 0 to
the nearest integer). Prose after them in the comment ("= g @ w.T") is not read.
"""
from __future__ import annotations

import builtins
import contextlib
import io
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from tests import ROOT

PAGES = sorted(p.relative_to(ROOT).as_posix() for p in [*Path(ROOT, "docs").glob("*.md"), Path(ROOT, "README.md"),
                                                         Path(ROOT, "benchmarks", "README.md")])
BLOCK = re.compile(r"^```(python[^\n]*)\n(.*?)^```", re.S | re.M)
COMMENTED_PRINT = re.compile(r"^\s*print\(.*\)\s+#\s*(?P<comment>.*)$")
TOKEN = re.compile(r"True|False|[-+]?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?")


def blocks(page: str) -> list[str]:
    """The runnable Python blocks of a page, in order."""
    text = Path(ROOT, page).read_text()
    return [code for info, code in BLOCK.findall(text) if info.strip() == "python"]


def tokens(text: str) -> list[str]:
    """The numbers and booleans in text, in order ("~0" gives "0"; a name like "w2" gives nothing)."""
    return [m.group() for m in TOKEN.finditer(text)
            if m.start() == 0 or not (text[m.start() - 1].isalnum() or text[m.start() - 1] in "_.")]


def agrees(shown: str, printed: str) -> bool:
    """Whether a number or boolean shown in a comment is the printed one, to the shown digits."""
    if shown in ("True", "False") or printed in ("True", "False"):
        return shown == printed
    decimals = len(shown.split(".")[1].split("e")[0]) if "." in shown else 0
    if "e" in shown.lower():
        return abs(float(shown) - float(printed)) <= 0.51 * 10 ** -decimals * abs(float(shown))
    return abs(float(shown) - float(printed)) <= 0.51 * 10 ** -decimals


def test_the_pages_have_blocks_to_run_and_prints_to_check():
    # Guards the collection below: a pattern that matched nothing would make every test pass.
    counts = {page: len(blocks(page)) for page in PAGES}
    assert counts["README.md"] >= 2 and counts["docs/layernorm.md"] >= 1
    assert sum(counts.values()) >= 12
    checked = sum(bool(COMMENTED_PRINT.match(line)) for page in PAGES for b in blocks(page) for line in b.splitlines())
    assert checked >= 15


def test_a_comment_agrees_with_a_print_only_to_its_own_digits():
    assert tokens("[ 0.2041 -0.4082  0.2041]  ~0") == ["0.2041", "-0.4082", "0.2041", "0"]
    assert tokens("[[0. 2.]]         = g @ w2.T") == ["0.", "2."]
    assert agrees("0.4076", "0.40760596") and not agrees("0.4076", "0.4078")
    assert agrees("0", "5.551115123125783e-17") and agrees("2.", "2.0") and not agrees("2.", "3.0")
    assert agrees("True", "True") and not agrees("True", "False") and not agrees("1", "True")


@pytest.mark.real_row_blocks        # as a learner runs them; the README's ShardProcesses needs it too
@pytest.mark.parametrize("page", [p for p in PAGES if blocks(p)])
def test_every_python_block_runs_and_prints_what_its_comments_say(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)                       # anything a block writes lands here
    printing, errors = np.get_printoptions(), np.geterr()
    namespace = {"__name__": "__main__"}              # one per page, as one session
    try:
        for i, code in enumerate(blocks(page)):
            where = f"{page}, Python block {i + 1}"
            printed = run_block(code, where, namespace)
            for lineno, line in enumerate(code.splitlines(), start=1):
                m = COMMENTED_PRINT.match(line)
                if m is None:
                    continue
                assert lineno in printed, f"{where}, line {lineno} printed nothing: {line.strip()}"
                got = tokens(printed[lineno].splitlines()[0] if printed[lineno] else "")
                shown = tokens(m.group("comment"))[:len(got)]
                assert got and len(shown) == len(got) and all(map(agrees, shown, got)), (
                    f"{where}, line {lineno}: {line.strip()}\n  printed: {printed[lineno]!r}")
    finally:                                          # a block's np.set_printoptions stays on its page
        np.set_printoptions(**printing)
        np.seterr(**errors)


def run_block(code: str, where: str, namespace: dict) -> dict[int, str]:
    """Run one block in its page's namespace; return what each of its lines printed first."""
    printed: dict[int, str] = {}

    def recording_print(*args, **kwargs):
        frame = sys._getframe(1)
        buffer = io.StringIO()
        builtins.print(*args, **{**kwargs, "file": buffer})
        if frame.f_code.co_filename == where:
            printed.setdefault(frame.f_lineno, buffer.getvalue())
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
