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


def test_faithfulness_benchmark_counts_the_images_it_times(tmp_path):
    """It once counted 0 images, wrapping a renamed method; it counts at the runner now."""
    _, out = smoke("bench_faithfulness.py", tmp_path)
    for entry in json.loads(out.read_text())["results"]:
        assert entry["explain_images"] > 0 and entry["faithfulness_images"] > 0, entry


def test_drawing_benchmark_times_every_picture_and_a_small_pair_page(tmp_path):
    _, out = smoke("bench_drawing.py", tmp_path)
    result = json.loads(out.read_text())
    assert result["machine"]["cpus_usable"] >= 1
    (entry,) = result["results"]
    assert set(entry["pictures"]) == {"fhp.png", "bands.png", "strip.png", "curves.png"}
    assert all(p["wall_s"] > 0 and p["bytes"] > 1000 for p in entry["pictures"].values())
    assert entry["pair_report_without_curves"]["wall_s"] > 0
    assert entry["pair_page"]["html_bytes"] <= 300_000  # it links its pictures


def test_memory_benchmark_reports_every_stage_and_identical_scores(tmp_path):
    _, out = smoke("bench_memory.py", tmp_path)
    result = json.loads(out.read_text())
    assert [r["variant"] for r in result["results"]] == ["default", "512MB"]
    default, small = result["results"]
    assert default["plan"]["memory_budget_mb"] == 1024 and small["plan"]["memory_budget_mb"] == 512
    assert small["plan"]["max_batch"] <= default["plan"]["max_batch"]
    assert 0 < small["cli_peak_rss_mb"]
    for entry in result["results"]:
        rss = entry["rss_mb"]
        assert 0 < rss["imports"] < rss["model_loaded"] <= rss["peak"]
        assert entry["numpy_peak_mb"] > 0 and entry["scores_identical_to_default"]


@pytest.mark.parametrize("script", ["region_finding.py", "faithfulness_finding.py"])
def test_finding_benchmarks_measure_frll_with_identity_intervals(script, tmp_path):
    """The README's findings are measured on FRLL photos too, with identity-cluster intervals."""
    out = tmp_path / "result.json"
    args = [
        sys.executable,
        str(BENCHMARKS / script),
        "--smoke",
        "--set",
        "frll",
        "--json",
        str(out),
    ]
    done = subprocess.run(
        args, capture_output=True, text=True, timeout=600, cwd=BENCHMARKS, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["data_set"] == "frll" and "frll/pairs.csv" in result["data"]
    for entry in result["findings"]:
        if script == "region_finding.py":
            e = entry["genuine"]
            lo, hi = e["band01_share_of_all_ci"]
            assert lo <= e["band01_share_of_all"]["mean"] <= hi
            assert e["bootstrap"]["unit"] == "identity"
        else:
            e = entry["classes"]["genuine"]["random"]
            lo, hi = e["ci"]
            assert lo <= e["share"] <= hi and e["unit"] == "identity"
