"""Every Python example in the guide (docs/guide/*.md) runs as written.

A page's ```python blocks run in order in one namespace (a later block may use what an earlier
one defined), in a temporary folder that holds what the examples name: ``a.jpg`` and ``b.jpg``
(two real FRLL photos of one person) and ``pairs.csv`` (that pair and one with a missing image).
A block preceded by ``<!-- docs-test: skip (why) -->`` is not run; the test lists those, so a skip
is a visible decision, never a silent one.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]
GUIDE = REPO / "docs" / "guide"
BLOCK = re.compile(r"(<!-- docs-test: skip \(([^)]*)\) -->\n)?```python\n(.*?)```", re.S)
# Blocks that cannot run here, each with its reason (a Slurm cluster is not available in CI).
EXPECTED_SKIPS = {("clusters.md", "needs a Slurm cluster and dask-jobqueue")}


def blocks(page: Path) -> list[tuple[str | None, str]]:
    """(skip reason or None, code) of every ```python block of ``page``, in order."""
    return [(m.group(2), m.group(3)) for m in BLOCK.finditer(page.read_text(encoding="utf-8"))]


PAGES = sorted(p for p in GUIDE.glob("*.md") if any(skip is None for skip, _ in blocks(p)))


def test_the_guide_has_examples_and_skips_only_what_it_says():
    """Guards against a guide whose examples are no longer found (a changed fence) and against
    a skip marker added without this test knowing."""
    assert {p.name for p in PAGES} >= {"explain.md", "regions.md", "serving.md", "clusters.md"}
    skipped = {(p.name, why) for p in GUIDE.glob("*.md") for why, _ in blocks(p) if why}
    assert skipped == EXPECTED_SKIPS


@pytest.mark.parametrize("page", PAGES, ids=[p.stem for p in PAGES])
def test_guide_page_examples_run(page, data_dir, tmp_path, monkeypatch):
    frll = data_dir / "frll"
    os.symlink(frll / "neutral" / "005_03.jpg", tmp_path / "a.jpg")
    os.symlink(frll / "smiling" / "005_08.jpg", tmp_path / "b.jpg")
    (tmp_path / "pairs.csv").write_text("path1,path2,same\na.jpg,b.jpg,1\na.jpg,missing.jpg,0\n")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": f"docs_{page.stem}"}
    for number, (skip, code) in enumerate(blocks(page), 1):
        if skip is None:
            exec(compile(code, f"{page.relative_to(REPO)}, block {number}", "exec"), namespace)
