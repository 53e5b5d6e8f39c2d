"""``freqxfr compare``: a real dlib run and a real SFace run over the same LFW pairs."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from freqxfr.common.errors import InputError
from freqxfr.explanations.explainer import Explainer
from freqxfr.explanations.pairs import read_pairs, spread
from freqxfr.reports import render_run
from freqxfr.runs.comparison import compare_runs
from freqxfr.runs.dataset import read_results, run_dataset

pytestmark = pytest.mark.model

N_PAIRS = 12


@pytest.fixture(scope="module")
def lfw(data_dir):
    return read_pairs(data_dir / "lfw_aligned112" / "pairs_generated.csv", root=data_dir)


@pytest.fixture(scope="module")
def runs(lfw, tmp_path_factory, dlib_model, sface_model):
    """dlib and SFace dataset runs (8 rings) over the same 12 LFW pairs, 6 genuine, 6 impostor."""
    pairs = spread(lfw, N_PAIRS)
    root = tmp_path_factory.mktemp("runs")
    out = {}
    models = {"dlib_resnet": dlib_model, "sface": sface_model}  # the run's one of each
    for name in ("dlib_resnet", "sface"):
        folder = root / name
        summary = run_dataset(
            pairs, folder, Explainer(models[name], 8), progress=False, report=False
        )
        out[name] = (folder, summary)
    return out


@pytest.fixture(scope="module")
def compared(runs, tmp_path_factory):
    out = tmp_path_factory.mktemp("compare")
    summary = compare_runs([runs["dlib_resnet"][0], runs["sface"][0]], out, n_boot=500)
    render_run(out)  # drawn from summary.json, as the CLI does
    return out, summary


def _per_pair(folder, kind: str) -> dict[int, np.ndarray]:
    """Each pair's mean normalised influence over its two images, from results.jsonl by hand."""
    out = {}
    for r in read_results(folder / "results.jsonl"):
        d = np.array([r["a"]["directed"], r["b"]["directed"]])
        d = np.abs(d) if kind == "absolute" else d
        peak = np.abs(d).max(axis=1, keepdims=True)
        out[r["index"]] = (d / peak).mean(axis=0)
    return out


def test_compare_reproduces_each_runs_means_exactly(runs, compared):
    _, summary = compared
    assert summary["n_pairs"] == N_PAIRS
    assert [r["name"] for r in summary["runs"]] == ["dlib_resnet", "sface"]
    for name, (_, run_summary) in runs.items():
        for cls in ("genuine", "impostor"):
            prof = run_summary["classes"][cls]
            for k, band in enumerate(summary["bands"]):
                assert band[cls]["mean"][name]["absolute"] == prof["absolute_normalised_mean"][k]
                assert band[cls]["mean"][name]["directed"] == prof["directed_normalised_mean"][k]


@pytest.mark.parametrize("kind", ["absolute", "directed"])
def test_the_paired_difference_and_its_interval_match_a_hand_computation(runs, compared, kind):
    _, summary = compared
    dlib = _per_pair(runs["dlib_resnet"][0], kind)
    sface = _per_pair(runs["sface"][0], kind)
    same = {r["index"]: r["same"] for r in read_results(runs["sface"][0] / "results.jsonl")}
    key = "sface - dlib_resnet"
    for cls, want in (("genuine", True), ("impostor", False)):
        idx = [i for i in sorted(same) if same[i] is want]
        hand = np.mean([sface[i] - dlib[i] for i in idx], axis=0)
        for k, band in enumerate(summary["bands"]):
            entry = band[cls]
            assert entry["diff"][key][kind] == pytest.approx(hand[k], abs=1e-12)
            assert entry["ci_lo"][key][kind] <= hand[k] <= entry["ci_hi"][key][kind]
            signs = np.sign([sface[i][k] - dlib[i][k] for i in idx])
            assert entry["same_sign"][key][kind] == pytest.approx(
                np.mean(signs == np.sign(hand[k]))
            )


def test_decision_agreement_and_centroids(runs, compared):
    out, summary = compared
    decisions = {
        name: {r["index"]: r["decision"] for r in read_results(folder / "results.jsonl")}
        for name, (folder, _) in runs.items()
    }
    differ = [i for i in decisions["sface"] if decisions["sface"][i] != decisions["dlib_resnet"][i]]
    d = summary["decisions"]["sface - dlib_resnet"]
    assert d["n_disagree"] == len(differ)
    assert d["agreement"] == pytest.approx(1 - len(differ) / N_PAIRS)
    assert [p["index"] for p in d["pairs"]] == differ
    c = summary["centroid"]["genuine"]
    assert c["diff"]["sface - dlib_resnet"] == pytest.approx(
        c["mean"]["sface"] - c["mean"]["dlib_resnet"], abs=1e-12
    )
    assert (
        c["ci_lo"]["sface - dlib_resnet"]
        <= c["diff"]["sface - dlib_resnet"]
        <= c["ci_hi"]["sface - dlib_resnet"]
    )
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["bands"][0]["genuine"]["mean"]["sface"]["absolute"] == pytest.approx(
        summary["bands"][0]["genuine"]["mean"]["sface"]["absolute"]
    )
    html = (out / "report.html").read_text()
    # The forest plot and the two profile figures; the verdict leads, naming the bands.
    assert "sface - dlib_resnet" in html and html.count("<img") == 3
    lead = html.split('<div class="lead" id="verdict">', 1)[1].split("</div>", 1)[0]
    agree = summary["decisions"]["sface - dlib_resnet"]["agreement"]
    assert f"the decisions agree on {agree:.1%} of the pairs" in lead
    key = "sface - dlib_resnet"
    for cls in ("genuine", "impostor"):
        named = [
            b["index"]
            for b in summary["bands"]
            if b[cls]["ci_lo"][key]["absolute"] > 0 or b[cls]["ci_hi"][key]["absolute"] < 0
        ]
        where = ", ".join(map(str, named)) if named else "none"
        assert f"absolute influence, {cls} pairs: {where}" in lead
    assert html.index('id="verdict"') < html.index("<h2>")
    assert "differs most in: —" not in html


def test_runs_over_other_pairs_or_bands_are_refused(runs, lfw, tmp_path, dlib_model):
    """The refused runs are dlib runs beside the dlib run (the model is not what this is about;
    SFace cost six times as much per pair)."""
    dlib = runs["dlib_resnet"][0]
    other_pairs = tmp_path / "other_pairs"
    run_dataset(spread(lfw, 2), other_pairs, Explainer(dlib_model, 8), progress=False, report=False)
    with pytest.raises(InputError, match="another pair list"):
        compare_runs([dlib, other_pairs])
    other_bands = tmp_path / "other_bands"
    run_dataset(
        spread(lfw, N_PAIRS), other_bands, Explainer(dlib_model, 4), progress=False, report=False
    )
    with pytest.raises(InputError, match="bands"):
        compare_runs([dlib, other_bands])
    with pytest.raises(InputError, match="not a dataset run"):
        compare_runs([dlib, tmp_path])


def test_compare_command(runs, tmp_path):
    a, b = runs["dlib_resnet"][0], runs["sface"][0]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "freqxfr",
            "compare",
            a,
            b,
            "--out",
            tmp_path / "cmp",
            "--resamples",
            "200",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert f"over {N_PAIRS} common pairs" in result.stdout
    summary = json.loads((tmp_path / "cmp" / "summary.json").read_text())
    assert summary["bootstrap"]["resamples"] == 200
    bad = subprocess.run(
        [sys.executable, "-m", "freqxfr", "compare", a, tmp_path, "--out", tmp_path / "bad"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert bad.returncode == 2 and "not a dataset run" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1 and "Traceback" not in bad.stderr


def _anonymised(folder, target):
    """A copy of a run folder whose records name no identity and no recognisable path."""
    import shutil

    shutil.copytree(folder, target)
    lines = []
    for r in read_results(folder / "results.jsonl"):
        r.pop("identities", None)
        for side in ("a", "b"):
            r[side]["source"] = f"image_{r['index']}_{side}.png"
        lines.append(json.dumps(r))
    (target / "results.jsonl").write_text("\n".join(lines) + "\n")
    return target


def test_compare_resamples_identities_and_says_so(runs, compared, tmp_path):
    out, summary = compared
    records = read_results(runs["dlib_resnet"][0] / "results.jsonl")
    people = {r["identities"][0] for r in records}
    assert all(r["identities"][0] for r in records)  # LFW paths: every pair's people are known
    boot = summary["bootstrap"]
    assert (boot["unit"], boot["n_units"]) == ("identity", len(people))
    assert "resampled by identity" in (out / "report.html").read_text()
    # Without identities compare falls back to pairs and says so; these 12 spread pairs each have
    # another reference person, so the identity bootstrap is the pair bootstrap, draw for draw.
    assert len(people) == N_PAIRS
    blind = compare_runs(
        [_anonymised(runs[n][0], tmp_path / n) for n in ("dlib_resnet", "sface")],
        n_boot=500,
    )
    assert (
        blind["bootstrap"]["unit"] == "pair" and "identities unknown" in blind["bootstrap"]["note"]
    )
    assert blind["bands"] == summary["bands"]
    assert blind["centroid"]["all"]["ci_lo"] == summary["centroid"]["all"]["ci_lo"]
    sign = summary["centroid"]["all"]["sign_test"]["sface - dlib_resnet"]
    assert sign["unit"] == "identity" and sign["n"] <= N_PAIRS


@pytest.mark.browser
def test_compare_report_passes_the_screenshot_check(compared, tmp_path):
    """In Chromium: the forest plot and profiles are not blank, no table widens the page."""
    from _report_browser import browser_or_skip, report_problems

    out, _ = compared
    assert report_problems(browser_or_skip(), out / "report.html", tmp_path) == []
