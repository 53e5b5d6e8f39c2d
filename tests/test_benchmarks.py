"""Every benchmark runs in its ``--smoke`` mode (tiny inputs, seconds), so that a renamed function
or a changed signature breaks the suite, not the next person who measures.

Each script's smoke run is one process, started once per test run (a test that reads a script's
JSON shares the run that the parametrized exit-status test of that script checks) and two at a
time: most of a smoke run is imports and model loading on one core, so the second core of a
2-core machine would otherwise sit idle. The runs a test waits for are those of the selected
tests only, started in the order the tests run."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
SCRIPTS = sorted(p.name for p in BENCHMARKS.glob("*.py") if not p.name.startswith("_"))
#: The tests that read a script's result, by test function (the others take ``script``).
READS = {
    "test_faithfulness_benchmark_counts_the_images_it_times": "bench_faithfulness.py",
    "test_drawing_benchmark_times_every_picture_and_a_small_pair_page": "bench_drawing.py",
    "test_memory_benchmark_reports_every_stage_and_identical_scores": "bench_memory.py",
}
AT_ONCE = 2  # smoke runs at a time


def run_smoke(script: str, folder: Path) -> tuple[subprocess.CompletedProcess, Path]:
    out = folder / "result.json"
    args = [sys.executable, str(BENCHMARKS / script), "--smoke"]
    if script != "trace_engine.py":  # prints its trace, writes no file
        args += ["--json", str(out)]
    if script == "bench_scenarios.py":
        args += ["--out", str(folder / "runs")]
    done = subprocess.run(
        args, capture_output=True, text=True, timeout=600, cwd=BENCHMARKS, check=False
    )
    return done, out


def _script_of(item: pytest.Item) -> str | None:
    callspec = getattr(item, "callspec", None)
    if callspec is not None and "script" in callspec.params:
        return callspec.params["script"]
    return READS.get(getattr(item, "originalname", ""))


@pytest.fixture(scope="module")
def smoke_runs(request, tmp_path_factory):
    """Each selected test's script, started in test order, ``AT_ONCE`` at a time: a future per
    script (one run for every test that names it)."""
    wanted = [
        s
        for item in request.session.items
        if item.module is request.module and (s := _script_of(item)) is not None
    ]
    runs: dict[str, Future] = {}
    with ThreadPoolExecutor(AT_ONCE) as pool:
        for script in dict.fromkeys(wanted):
            folder = tmp_path_factory.mktemp(script.removesuffix(".py"))
            runs[script] = pool.submit(run_smoke, script, folder)
        yield runs
        for future in runs.values():  # a deselected or failed test's run: not left running
            future.cancel()


def smoke(script: str, smoke_runs: dict[str, Future]) -> tuple[subprocess.CompletedProcess, Path]:
    done, out = smoke_runs[script].result()
    assert done.returncode == 0, (
        f"{script} --smoke failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )
    return done, out


def test_every_benchmark_has_a_smoke_mode():
    for script in SCRIPTS:
        text = (BENCHMARKS / script).read_text()
        declared = '"--smoke"' in text or "add_smoke_option(parser)" in text  # _machine.py's
        assert declared and "args.smoke" in text, f"{script} has no --smoke mode"


@pytest.mark.parametrize("script", [s for s in SCRIPTS if s != "bench_faithfulness.py"])
def test_benchmark_smoke_run(script, smoke_runs):
    smoke(script, smoke_runs)


def test_faithfulness_benchmark_counts_the_images_it_times(smoke_runs):
    """It once counted 0 images, wrapping a renamed method; it counts at the runner now."""
    _, out = smoke("bench_faithfulness.py", smoke_runs)
    for entry in json.loads(out.read_text())["results"]:
        assert entry["explain_images"] > 0 and entry["faithfulness_images"] > 0, entry


def test_drawing_benchmark_times_every_picture_and_a_small_pair_page(smoke_runs):
    _, out = smoke("bench_drawing.py", smoke_runs)
    result = json.loads(out.read_text())
    assert result["machine"]["cpus_usable"] >= 1
    (entry,) = result["results"]
    assert set(entry["pictures"]) == {"fhp.png", "bands.png", "strip.png", "curves.png"}
    assert all(p["wall_s"] > 0 and p["bytes"] > 1000 for p in entry["pictures"].values())
    assert entry["pair_report_without_curves"]["wall_s"] > 0
    assert entry["pair_page"]["html_bytes"] <= 300_000  # it links its pictures


def test_memory_benchmark_reports_every_stage_and_identical_scores(smoke_runs):
    _, out = smoke("bench_memory.py", smoke_runs)
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
