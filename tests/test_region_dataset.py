"""``freqxfr dataset ... --regions``: real LFW pairs with dlib's ResNet (which aligns them itself)
and face regions, run as a user runs it; the per-class mean maps checked against the per-pair
cells, and a killed run resumed. The model is not what these tests are about: a run of these 4
pairs with dlib took half as long as with SFace (``--aligned``), and its lines arrive one by one."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest
from test_kill_resume import kill_when

from freqxfr.runs.folder import read_results

pytestmark = pytest.mark.model

N_PAIRS = 4  # spread over pairs_generated.csv: 2 genuine, 2 impostor
BANDS = "4"  # coarse rings keep the 2·K·R + 2 cell embeddings per pair cheap


def freqxfr(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "freqxfr", *args], capture_output=True, text=True, timeout=600
    )


def dataset_args(data_dir, out, *extra: str) -> list[str]:
    return [
        "dataset",
        str(data_dir / "lfw_aligned112" / "pairs_generated.csv"),
        "--root",
        str(data_dir),
        "--limit",
        str(N_PAIRS),
        "--model",
        "dlib_resnet",
        "--bands",
        BANDS,
        "--out",
        str(out),
        "--no-progress",
        *extra,
    ]


@pytest.fixture(scope="module")
def run(data_dir, tmp_path_factory) -> dict:
    """An uninterrupted ``dataset --regions face`` run, every pair with its own page."""
    out = tmp_path_factory.mktemp("regions") / "run"
    done = freqxfr(*dataset_args(data_dir, out, "--regions", "face", "--pair-pages", "all"))
    assert done.returncode == 0, done.stderr
    return {
        "out": out,
        "summary": json.loads((out / "summary.json").read_text()),
        "records": sorted(read_results(out / "results.jsonl"), key=lambda r: r["index"]),
    }


def _recomputed(records, keep) -> tuple[np.ndarray, np.ndarray, int]:
    """The mean maps of the images of the pairs ``keep`` accepts, from the per-pair cells, each
    image normalised over all its cells by hand."""
    directed = [
        np.asarray(r["cells"][s]["directed"], np.float64)
        for r in records
        if keep(r)
        for s in ("a", "b")
    ]
    peaks = [np.abs(d).max() for d in directed]
    return (
        np.mean([np.abs(d) / p for d, p in zip(directed, peaks, strict=True)], axis=0),
        np.mean([d / p for d, p in zip(directed, peaks, strict=True)], axis=0),
        len(directed),
    )


def test_summary_mean_maps_are_the_means_of_the_per_pair_cells(run):
    """Guards against mean maps that are not what they say: the wrong images in a class, the
    wrong axis, or a per-region normalisation (every region's strongest band ±1) instead of one
    over all of an image's cells."""
    summary, records = run["summary"], run["records"]
    regions = summary["regions"]
    assert regions["names"] == [
        "left_eye", "right_eye", "brows", "nose", "mouth", "face", "background"
    ]  # fmt: skip
    assert regions["provenance"]["kind"] == "face" and len(regions["area"]) == 7
    assert sum(regions["area"]) == pytest.approx(1.0, abs=1e-5)
    assert len(records) == N_PAIRS and {r["same"] for r in records} == {True, False}
    classes = {
        "all": lambda r: True,
        "genuine": lambda r: r["same"],
        "impostor": lambda r: not r["same"],
        "true_match": lambda r: r["same"] and r["decision"],
        "true_non_match": lambda r: not r["same"] and not r["decision"],
    }
    assert set(regions["by_class"]) == set(classes)  # dlib decides these 4 pairs right
    for name, keep in classes.items():
        absolute, directed, n = _recomputed(records, keep)
        entry = regions["by_class"][name]
        assert entry["n_images"] == n
        np.testing.assert_allclose(entry["directed_normalised_mean"], directed, atol=1e-12)
        np.testing.assert_allclose(entry["absolute_normalised_mean"], absolute, atol=1e-12)
    # A region whose cells are all weaker than another region's strongest cell stays below 1.
    genuine = np.abs(np.asarray(regions["by_class"]["genuine"]["absolute_normalised_mean"]))
    assert genuine.max(axis=1).min() < 0.5


def test_each_line_holds_the_band_explanation_and_its_cells(run):
    """The band part of a line is the band-only explanation (the profiles, scores and pages use
    it as without regions); ``cells`` add the pair's (R, K) tables."""
    summary = run["summary"]
    assert len(summary["classes"]["genuine"]["directed_mean"]) == int(BANDS)
    for record in run["records"]:
        assert np.shape(record["a"]["directed"]) == (int(BANDS),)
        cells = record["cells"]
        assert np.shape(cells["b"]["scores"]) == (7, int(BANDS))
        assert cells["score_ref"] == pytest.approx(record["score_ref"], abs=1e-5)
        assert cells["a"]["source"] == record["a"]["source"]
    config = json.loads((run["out"] / "run.json").read_text())
    assert config["regions"]["names"] == summary["regions"]["names"]
    assert config["settings"]["--regions"]["provenance"]["kind"] == "face"


def test_dataset_report_has_the_region_section_and_pair_pages_theirs(run):
    out = run["out"]
    html = (out / "report.html").read_text()
    section = html.split("<h2>Where and which frequency</h2>", 1)[1].split("</section>", 1)[0]
    assert 'alt="regions.png"' in section and "genuine (4 images)" in section
    assert (out / "regions.png").stat().st_size > 20_000
    for index in range(N_PAIRS):
        page = (out / "pairs" / f"{index:06d}" / "report.html").read_text()
        titles = re.findall(r"<h2>(.*?)</h2>", page)
        assert "Influence per band" in titles and "Where and which frequency" in titles


def test_a_killed_run_resumes_to_the_same_summary(run, data_dir, tmp_path):
    """kill -9 after two of the four pairs, then the same command: every pair once, and the
    region summary of an uninterrupted run."""
    out = tmp_path / "run"
    args = dataset_args(data_dir, out, "--regions", "face", "--pair-pages", "none")
    assert kill_when(args, out / "results.jsonl", 2)
    assert not (out / "summary.json").exists()
    done = freqxfr(*args)
    assert done.returncode == 0, done.stderr
    records = list(read_results(out / "results.jsonl"))
    assert sorted(r["index"] for r in records) == [r["index"] for r in run["records"]]
    resumed = json.loads((out / "summary.json").read_text())["regions"]
    whole = run["summary"]["regions"]
    assert resumed["names"] == whole["names"] and set(resumed["by_class"]) == set(whole["by_class"])
    for name, entry in whole["by_class"].items():
        for key in ("absolute_normalised_mean", "directed_normalised_mean"):
            np.testing.assert_allclose(resumed["by_class"][name][key], entry[key], atol=1e-6)


def test_a_restart_with_other_regions_is_refused(run, data_dir, tmp_path):
    """One results file never mixes two region sets: ``--regions`` is a checked setting."""
    out = tmp_path / "run"
    first = freqxfr(*dataset_args(data_dir, out, "--regions", "grid:1x2", "--limit", "1"))
    assert first.returncode == 0, first.stderr
    again = freqxfr(*dataset_args(data_dir, out, "--regions", "face", "--limit", "1"))
    lines = again.stderr.strip().splitlines()
    assert again.returncode == 2 and len(lines) == 1 and "--regions" in lines[0], again.stderr


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--regions", "eyes"], "regions must be 'face' or 'grid:RxC' (e.g. grid:3x3), got 'eyes'"),
        (["--regions", "grid:3"], "got 'grid:3'"),
    ],
)
def test_bad_regions_exit_2_with_one_line_and_no_folder(data_dir, tmp_path, extra, message):
    out = tmp_path / "run"
    done = freqxfr(*dataset_args(data_dir, out, *extra))
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and message in lines[0], done.stderr
    assert not out.exists()
