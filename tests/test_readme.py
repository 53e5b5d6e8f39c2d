"""The README runs as written: its quick start and its Python example, read from the README itself
(so the checks cannot drift from what a new user copies)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")


def fenced_block(after_heading: str, language: str) -> str:
    """The first ```language block after the heading ``after_heading``."""
    start = README.index(after_heading)
    match = re.compile(rf"```{language}\n(.*?)```", re.S).search(README, start)
    assert match, f"no {language} block after {after_heading!r}"
    return match.group(1)


def quick_start_lines() -> list[str]:
    lines = []
    for line in fenced_block("## Quick start", "bash").splitlines():
        command = line.split("#", 1)[0].strip()
        if command:
            lines.append(command)
    return lines


def test_quick_start_has_the_two_lines_ci_runs():
    """Guards against a README test line that CI no longer runs (the fresh-clone check in
    ``.ci/run`` runs the README's second line verbatim) and a first line that installs an extra
    the package does not declare."""
    install, tests = quick_start_lines()
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert tests in ci, f"{tests!r} is not a line of .ci/run"
    assert tests.startswith("python -m pip install nox && "), tests  # nox comes with the line
    extras = re.search(r'pip install "\.\[([\w,]+)\]"', install)
    assert extras, install
    pyproject = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    for extra in extras.group(1).split(","):
        assert re.search(rf"^{extra} = \[", pyproject, re.M), f"extra {extra!r} not in pyproject"


def test_quick_start_demo_runs_as_written(tmp_path):
    """Guards against a demo command in the README that fails, or that writes somewhere other
    than the folders the README (and .gitignore) name. The install half is what the test session
    did; the command after it runs verbatim, with the installed console script."""
    install, _ = quick_start_lines()
    command = shlex.split(install.split("&&", 1)[1])
    assert command[0] == "freqxfr"
    script = Path(sys.executable).parent / "freqxfr"
    run = subprocess.run(
        [str(script), *command[1:]], cwd=tmp_path, capture_output=True, text=True, timeout=900
    )
    assert run.returncode == 0, run.stderr
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("report.html"))
    assert written == ["freqxfr-demo/genuine/report.html", "freqxfr-demo/impostor/report.html"]
    assert "freqxfr-demo/{genuine,impostor}/" in README
    ignored = (REPO / ".gitignore").read_text(encoding="utf-8").splitlines()
    for folder in ("freqxfr-demo", "freqxfr-explanation", "freqxfr-faithfulness", "runs"):
        assert f"/{folder}/" in ignored, folder


def test_python_example_runs_as_written(data_dir, tmp_path, monkeypatch):
    """Guards against a README example that names undefined variables (it used ``pairs`` without
    defining it) or an API that has moved. Runs the block verbatim in a folder holding a.jpg,
    b.jpg (two real FRLL photos of one person) and pairs.csv."""
    code = fenced_block("## Explaining pairs", "python")
    frll = data_dir / "frll"
    os.symlink(frll / "neutral" / "005_03.jpg", tmp_path / "a.jpg")
    os.symlink(frll / "smiling" / "005_08.jpg", tmp_path / "b.jpg")
    (tmp_path / "pairs.csv").write_text("path1,path2,same\na.jpg,b.jpg,1\na.jpg,missing.jpg,0\n")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, "README.md: Explaining pairs", "exec"), namespace)
    e = namespace["e"]
    assert e.decision is True  # one person, neutral and smiling
    assert (tmp_path / "out" / "explanation.json").is_file()
    assert (tmp_path / "out" / "report.html").is_file()
