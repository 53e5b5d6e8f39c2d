"""tools/mutants.toml names functions that exist and test files that exist, so that a rename
cannot quietly shrink the mutation-testing scope (tools/mutants.py would refuse the group)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import tomllib

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import mutants  # noqa: E402

GROUPS = tomllib.loads((ROOT / "tools" / "mutants.toml").read_text())["groups"]
NEWER = {"engine", "distributed", "regions", "region_explanations", "run_comparison"}
NEWER |= {"faithfulness_run", "run_folders", "region_faithfulness"}
NEWER |= {"config", "stream", "results_log", "bootstrap"}  # added or reshaped in 0.2


@pytest.mark.parametrize("name", sorted(GROUPS))
def test_group_names_existing_functions_and_tests(name):
    group = GROUPS[name]
    for path, functions in group["functions"].items():
        assert mutants.function_spans(ROOT / path, functions)
    for arg in group["tests"]:
        if arg.startswith("tests/"):
            assert (ROOT / arg.split("::")[0]).is_file(), arg


def test_the_newer_modules_have_groups():
    assert NEWER <= set(GROUPS)


def _deliberate_bugs() -> list[tuple[str, str, str, str, list[str]]]:
    """tools/deliberate_bugs.py's BUGS, read without running the tool (it needs an installed copy)."""
    import ast

    tree = ast.parse((ROOT / "tools" / "deliberate_bugs.py").read_text())
    (bugs,) = (
        n
        for n in tree.body
        if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "BUGS"
    )
    return ast.literal_eval(bugs.value)


@pytest.mark.parametrize("bug", _deliberate_bugs(), ids=lambda bug: bug[0])
def test_each_deliberate_bug_still_finds_its_line(bug):
    """Each one-line bug's text occurs exactly once in its module, and its tests exist: a move or
    rename cannot leave the tool applying nothing."""
    name, module, old, _new, tests = bug
    assert (ROOT / "python" / "freqxfr" / module).read_text().count(old) == 1, name
    for arg in tests:
        if arg.startswith("tests/"):
            assert (ROOT / arg).is_file(), arg
