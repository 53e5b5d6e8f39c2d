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
