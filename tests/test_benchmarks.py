"""Every benchmark runs in its ``--smoke`` mode (tiny inputs, seconds), so that a renamed function
or a changed signature breaks the suite, not the next person who measures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
SCRIPTS = sorted(p.name for p in BENCHMARKS.glob("*.py") if not p.name.startswith("_"))


def smoke(script: str, tmp_path: Path) -> tuple[subprocess.CompletedProcess, Path]:
    out = tmp_path / "result.json"
    args = [sys.executable, str(BENCHMARKS / script), "--smoke"]
    if script != "trace_engine.py":  # prints its trace, writes no file
        args += ["--json", str(out)]
    if script == "bench_scenarios.py":
        args += ["--out", str(tmp_path / "runs")]
    done = subprocess.run(
        args, capture_output=True, text=True, timeout=600, cwd=BENCHMARKS, check=False
    )
    assert done.returncode == 0, (
        f"{script} --smoke failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )
    return done, out


def test_every_benchmark_has_a_smoke_mode():
    for script in SCRIPTS:
        assert '"--smoke"' in (BENCHMARKS / script).read_text(), f"{script} has no --smoke mode"


@pytest.mark.parametrize("script", [s for s in SCRIPTS if s != "bench_faithfulness.py"])
def test_benchmark_smoke_run(script, tmp_path):
    smoke(script, tmp_path)


@pytest.mark.xfail(
    strict=True,
    reason="bench_faithfulness counts images by wrapping Verifier.embed_normalised, which the "
    "explanation path no longer calls: it counts 0 (being renamed on another branch)",
)
def test_faithfulness_benchmark_counts_the_images_it_times(tmp_path):
    _, out = smoke("bench_faithfulness.py", tmp_path)
    for entry in json.loads(out.read_text())["results"]:
        assert entry["explain_images"] > 0 and entry["faithfulness_images"] > 0, entry
