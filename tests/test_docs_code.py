"""Every Python block in the README and docs/ runs as written.

A learner copies these blocks into a session, so a block that no longer runs (a renamed
function, a changed signature) is a bug. The blocks of one page run in order in one namespace,
as they would in one session, in a temporary folder. Blocks that show a few lines out of a
larger function, and cannot run alone, are marked ```python fragment and left out.
"""
from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import numpy as np
import pytest

from tests import ROOT

PAGES = sorted(p.relative_to(ROOT).as_posix() for p in [*Path(ROOT, "docs").glob("*.md"), Path(ROOT, "README.md"),
                                                         Path(ROOT, "benchmarks", "README.md")])
BLOCK = re.compile(r"^```(python[^\n]*)\n(.*?)^```", re.S | re.M)


def blocks(page: str) -> list[str]:
    """The runnable Python blocks of a page, in order."""
    text = Path(ROOT, page).read_text()
    return [code for info, code in BLOCK.findall(text) if info.strip() == "python"]


def test_the_pages_have_blocks_to_run():
    # Guards the collection below: a pattern that matched nothing would make every test pass.
    counts = {page: len(blocks(page)) for page in PAGES}
    assert counts["README.md"] >= 2 and counts["docs/layernorm.md"] >= 1
    assert sum(counts.values()) >= 12


@pytest.mark.real_row_blocks        # as a learner runs them; the README's ShardProcesses needs it too
@pytest.mark.parametrize("page", [p for p in PAGES if blocks(p)])
def test_every_python_block_runs(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)                       # anything a block writes lands here
    printing, errors = np.get_printoptions(), np.geterr()
    try:
        run_page(page)
    finally:                                          # a block's np.set_printoptions stays on its page
        np.set_printoptions(**printing)
        np.seterr(**errors)


def run_page(page: str) -> None:
    namespace = {"__name__": "__main__"}
    for i, code in enumerate(blocks(page)):
        with contextlib.redirect_stdout(io.StringIO()):
            try:
                exec(compile(code, f"{page}, block {i + 1}", "exec"), namespace)
            except Exception as exc:                  # noqa: BLE001 - reported with the block
                pytest.fail(f"{page}, Python block {i + 1} raised {type(exc).__name__}: {exc}\n{code}")
