"""Cross-resolution scenario on real LFW crops with SFace: degradations, accuracy, centroid shift."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from freqxfr.cli import main
from freqxfr.common.errors import InputError
from freqxfr.explanations.pairs import read_pairs, spread
from freqxfr.imaging.resolution import check_factors, degrade
from freqxfr.reports import render_run
from freqxfr.runs.crossres import run_crossres

pytestmark = pytest.mark.model

FACTORS = (1, 8)


@pytest.fixture(scope="module")
def explainer(sface_explainer):
    return sface_explainer  # the run's one SFace explainer (conftest.py)


@pytest.fixture(scope="module")
def pairs(data_dir):
    listed = read_pairs(data_dir / "lfw_aligned112" / "pairs_generated.csv", root=data_dir)
    return spread(listed, 30)  # 15 genuine, 15 impostor, spread over the identities


@pytest.fixture(scope="module")
def bicubic(explainer, pairs, tmp_path_factory):
    out = tmp_path_factory.mktemp("crossres_bicubic")
    summary = run_crossres(pairs, out, explainer, factors=FACTORS, resample="bicubic", n_boot=1000)
    render_run(out)  # the report is drawn from the folder, as the CLI does after a run
    return out, summary


@pytest.fixture(scope="module")
def spectral(explainer, pairs, tmp_path_factory):
    out = tmp_path_factory.mktemp("crossres_spectral")
    subset = spread(pairs, 12)  # 6 genuine, 6 impostor
    return out, run_crossres(
        subset, out, explainer, factors=FACTORS, resample="spectral", n_boot=1000, report=False
    )


# ---- degradations ------------------------------------------------------------------------------


def test_factor_one_leaves_the_crop_alone(lfw_images):
    for kernel in ("bicubic", "area", "spectral"):
        assert np.array_equal(degrade(lfw_images[0], 1, kernel), lfw_images[0])


def test_area_kernel_is_block_means_repeated(lfw_images):
    img = lfw_images[1]
    out = degrade(img, 8, "area")
    blocks = img.reshape(14, 8, 14, 8, 3).astype(float).mean(axis=(1, 3))
    expected = np.repeat(np.repeat(blocks, 8, axis=0), 8, axis=1)
    assert out.shape == img.shape and np.abs(out - expected).max() <= 1.0


def test_spectral_kernel_keeps_nothing_above_the_cutoff(lfw_images):
    img = lfw_images[2]
    for factor in (2, 4, 8):
        out = degrade(img, factor, "spectral").astype(float)
        spectrum = np.abs(np.fft.fft2(out - out.mean(axis=(0, 1)), axes=(0, 1))) ** 2
        f = np.abs(np.fft.fftfreq(112, 1 / 112))
        outside = (f[:, None] >= 112 / (2 * factor)) | (f[None, :] >= 112 / (2 * factor))
        # Only uint8 rounding (and a little clipping) leaks above the cutoff.
        assert spectrum[outside].sum() < 1e-3 * spectrum.sum()
        # and the passband is kept: the low-passed image is close to a bicubic version
        # (measured mean |difference| 3.2, 5.2, 6.7 grey levels at 2x, 4x, 8x)
        bicubic = degrade(img, factor, "bicubic").astype(float)
        assert np.abs(out - bicubic).mean() < 10


def test_bicubic_kernel_goes_through_the_small_size(lfw_images):
    img = lfw_images[3]
    small = Image.fromarray(img).resize((28, 28), Image.Resampling.BICUBIC)
    expected = np.asarray(small.resize((112, 112), Image.Resampling.BICUBIC))
    assert np.array_equal(degrade(img, 4, "bicubic"), expected)


def test_bad_factors_and_kernels_are_refused(lfw_images):
    assert check_factors([8, 1, 2]) == (1.0, 2.0, 8.0)
    for bad, match in (
        ([0.5], ">= 1"),
        ([], "at least one"),
        ([2, 2], "distinct"),
        (["x"], "numbers"),
    ):
        with pytest.raises(InputError, match=match):
            check_factors(bad)
    with pytest.raises(InputError, match="resample must be one of"):
        degrade(lfw_images[0], 2, "lanczos")
    with pytest.raises(InputError, match="square"):
        degrade(lfw_images[0][:, :100], 2)


# ---- the run -----------------------------------------------------------------------------------


def test_accuracy_falls_at_low_resolution(bicubic):
    _, summary = bicubic
    at = {e["factor"]: e for e in summary["factors"]}
    # Measured (SFace, these 30 pairs): accuracy 1.000 at 1x, 0.867 at 8x; FNMR 0.0 -> 0.267 and
    # FMR 0.0 at both. The probe loses its detail, so genuine scores fall below the threshold.
    assert at[1.0]["accuracy"] >= 0.95
    assert at[8.0]["accuracy"] <= at[1.0]["accuracy"] - 0.05
    assert at[8.0]["fnmr"] > at[1.0]["fnmr"]


def test_centroid_shift_and_its_sign_stability(bicubic):
    _, summary = bicubic
    base, low = summary["factors"]
    assert base["centroid_shift"] == 0.0 and base["centroid_shift_same_sign"] is None
    assert low["centroid_ci"][0] <= low["centroid"] <= low["centroid_ci"][1]
    assert low["centroid_shift"] == pytest.approx(low["centroid"] - base["centroid"])
    # Measured (SFace, bicubic, 30 pairs, 8 bands): probe centroid 0.704 [0.570, 0.841] at 1x,
    # 1.073 [0.861, 1.284] at 8x: shift +0.369 [+0.185, +0.546], the same sign in 100% of the
    # bootstrap resamples (60 pairs: +0.331, 100%). The *probe's* influence moves up, into the
    # rings that hold bicubic interpolation artefacts. The reference's shift (+0.044
    # [-0.153, +0.226], same sign in 68%) is not stable at this size and is only recorded.
    assert low["centroid_shift"] > 0
    assert low["centroid_shift_ci"][0] > 0
    assert low["centroid_shift_same_sign"] >= 0.95
    ref_base, ref_low = base["reference"], low["reference"]
    assert ref_low["centroid_shift"] == pytest.approx(ref_low["centroid"] - ref_base["centroid"])
    assert (
        ref_low["centroid_shift_ci"][0]
        <= ref_low["centroid_shift"]
        <= ref_low["centroid_shift_ci"][1]
    )
    assert (
        abs(ref_low["centroid_shift"]) < low["centroid_shift"]
    )  # the probe moves, not the reference
    assert 0.5 <= ref_low["centroid_shift_same_sign"] < 0.95  # measured 0.68: not a stable sign


def test_spectral_low_pass_moves_the_probe_influence_down(spectral):
    _, summary = spectral
    base, low = summary["factors"]
    # With an ideal low-pass the probe has nothing above 7 cycles at 8x, so its high bands
    # cannot matter: measured 0.721 -> 0.041 (these 12 pairs; shift -0.680 [-0.917, -0.472]),
    # same sign in 100% of resamples; accuracy 1.0 -> 0.75.
    assert low["centroid_shift"] < -0.3
    assert low["centroid_shift_same_sign"] >= 0.95
    assert low["cutoff_cycles"] == 7.0 and base["cutoff_cycles"] is None
    assert low["accuracy"] < base["accuracy"]


def test_summary_and_files(bicubic):
    out, summary = bicubic
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk == json.loads(json.dumps(summary))
    assert on_disk["resample"] == "bicubic" and "bicubic" in on_disk["kernel"]
    assert on_disk["pairs"] == 30 and on_disk["genuine"] == 15 and on_disk["failed"] == []
    for entry in on_disk["factors"]:
        for key in (
            "factor",
            "accuracy",
            "fmr",
            "fnmr",
            "centroid",
            "centroid_ci",
            "centroid_shift",
            "centroid_shift_ci",
            "centroid_shift_same_sign",
            "reference",
            "profiles",
            "probe_size",
        ):
            assert key in entry
        assert set(entry["profiles"]["probe"]) == {"genuine", "impostor"}
        assert entry["profiles"]["probe"]["genuine"]["n_images"] == 15
    assert on_disk["factors"][1]["probe_size"] == 14
    rows = (out / "pairs.csv").read_text().splitlines()
    assert len(rows) == 1 + 30 * len(FACTORS)
    lines = (out / "explanations.jsonl").read_text().splitlines()
    assert len(json.loads(lines[0])["b"]["directed"]) == 8
    report = (out / "report.html").read_text()
    assert "Centroid shift" in report and report.count("<img") >= 6


def test_cli_crossres_runs_and_reports_errors_on_one_line(data_dir, tmp_path, capsys):
    pairs_file = data_dir / "lfw_aligned112" / "pairs_generated.csv"
    code = main(
        [
            "crossres",
            str(pairs_file),
            "--root",
            str(data_dir),
            "--out",
            str(tmp_path),
            "--factors",
            "1,4",
            "--limit",
            "6",
            "--bands",
            "4",
            "--model",
            "dlib_resnet",
            "--boot",
            "100",
            "--no-progress",
        ]
    )
    assert code == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [e["factor"] for e in summary["factors"]] == [1.0, 4.0]
    assert summary["model"]["name"] == "dlib_resnet" and summary["pairs"] == 6
    assert summary["genuine"] == 3  # --limit spreads over the list: both classes are kept
    capsys.readouterr()
    assert main(["crossres", str(tmp_path / "missing.csv"), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing.csv" in err[0]


# ---- exact cases -------------------------------------------------------------------------------------


def _one_hot(bands, k=4):
    """Directed influences with all of each pair's influence in one band (centroid = that band)."""
    out = np.zeros((len(bands), k))
    out[np.arange(len(bands)), bands] = 0.5
    return out


def test_centroid_numbers_are_zero_based_and_the_bootstrap_is_paired():
    """Eight pairs whose probe centroid (band index, 0-based) is 0, 1, 2, 0, 1, 2, 0, 1 at factor 1
    and exactly one band higher at factor 4. Guards against a 1-based centroid (every number would
    be 1 higher), against drawing new resamples per factor (the shift's interval would widen from
    [1, 1]), and against swapping the probe's and the reference's numbers (the reference sits in
    band 3 at both factors)."""
    from freqxfr.runs.crossres import summarise_factors

    base = [0, 1, 2, 0, 1, 2, 0, 1]
    probe = np.stack([_one_hot(base), _one_hot([b + 1 for b in base])])
    reference = np.stack([_one_hot([3] * 8), _one_hot([3] * 8)])
    same = np.array([True, False] * 4)
    scores = np.array([[0.9, 0.1] * 4, [0.5, 0.2] * 4])
    entries = summarise_factors(
        [1.0, 4.0], same, scores, {"probe": probe, "reference": reference}, 0.3, n_boot=200, seed=3
    )
    first, low = entries
    assert first["centroid"] == pytest.approx(np.mean(base))  # 7/8
    assert low["centroid"] == pytest.approx(np.mean(base) + 1)
    assert low["centroid_shift"] == pytest.approx(1.0)
    assert low["centroid_shift_ci"] == pytest.approx(
        [1.0, 1.0]
    )  # paired: every resample shifts by 1
    assert low["centroid_shift_same_sign"] == 1.0
    assert first["centroid_ci"][0] < first["centroid"] < first["centroid_ci"][1]
    assert first["centroid_shift"] == 0.0 and first["centroid_shift_ci"] == [0.0, 0.0]
    assert first["centroid_shift_same_sign"] is None
    # The documented bootstrap: n_boot resamples of the n pairs from numpy's default_rng(seed),
    # percentile interval of the mean centroid; seed 0 by default.
    from freqxfr.stats.bootstrap import percentile_ci

    draws = np.random.default_rng(3).integers(0, 8, size=(200, 8))
    expected = percentile_ci(np.mean(np.array(base)[draws], axis=1), 0.95)
    assert first["centroid_ci"] == pytest.approx(list(expected))
    default = summarise_factors(
        factors=[1.0, 4.0],
        same=same,
        scores=scores,
        threshold=0.3,
        directed={"probe": probe, "reference": reference},
        n_boot=200,
    )
    seed0 = summarise_factors(
        [1.0, 4.0], same, scores, {"probe": probe, "reference": reference}, 0.3, n_boot=200, seed=0
    )
    assert default[0]["centroid_ci"] == seed0[0]["centroid_ci"] != first["centroid_ci"]
    for entry in entries:
        ref = entry["reference"]
        assert ref["centroid"] == pytest.approx(3.0) and ref["centroid_ci"] == pytest.approx([3, 3])
        assert ref["centroid_shift"] == pytest.approx(0.0)
    assert low["reference"]["centroid_shift_ci"] == pytest.approx([0.0, 0.0])
    # genuine pairs are 0, 2, 4, 6: base bands 0, 2, 1, 0
    assert low["by_class"]["genuine"]["centroid"] == pytest.approx(np.mean([0, 2, 1, 0]) + 1)
    assert low["by_class"]["impostor"]["reference_centroid"] == pytest.approx(3.0)
    # accuracy at threshold 0.3: factor 1 all right; factor 4 every impostor (0.2) right, genuine 0.5
    assert first["accuracy"] == 1.0 and first["fmr"] == 0.0 and first["fnmr"] == 0.0
    assert low["score_mean"] == {"genuine": pytest.approx(0.5), "impostor": pytest.approx(0.2)}
    assert low["profiles"]["probe"]["genuine"]["n_images"] == 4


def test_cli_crossres_area_kernel_on_the_toy_model(tmp_path, capsys):
    """README: ``--resample area``. With the toy model (tests/_toy_model.py) the area kernel at 2x
    turns B's wave 1, 0, -1, 0 into the block means 0.5, 0.5, -0.5, -0.5, whose e[3] is 5 instead
    of 10, so the genuine pair's score goes from -10 to -5 exactly (bicubic would not give that).
    The impostor pair's probe is flat, which no kernel changes."""
    import _toy_model as toy

    card = toy.write_model(tmp_path / "model")
    toy.save(toy.flat((50, 100, 150)), tmp_path / "img" / "a.png")
    toy.save(toy.waved((50, 100, 150), 40), tmp_path / "img" / "b.png")
    toy.save(toy.flat((90, 100, 150)), tmp_path / "img" / "c.png")
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("path1,path2,same\nimg/a.png,img/b.png,1\nimg/b.png,img/c.png,0\n")
    code = main(
        [
            "crossres",
            str(pairs),
            "--root",
            str(tmp_path),
            "--out",
            str(tmp_path / "out"),
            "--factors",
            "1,2",
            "--resample",
            "area",
            "--model",
            str(card),
            "--bands",
            "4",
            "--boot",
            "50",
            "--no-progress",
        ]
    )
    assert code == 0, capsys.readouterr().err
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["resample"] == "area" and summary["factors"][1]["probe_size"] == 8
    genuine = [e["score_mean"]["genuine"] for e in summary["factors"]]
    assert genuine == pytest.approx([-10.0, -5.0], abs=1e-4)
    impostor = [e["score_mean"]["impostor"] for e in summary["factors"]]
    # e(B) - e(C) = (-20, 0, 0, 10) at both factors
    assert impostor == pytest.approx([-np.sqrt(500), -np.sqrt(500)], abs=1e-4)


@pytest.mark.browser
def test_crossres_report_passes_the_screenshot_check(bicubic, tmp_path):
    """In Chromium: no blank plot, no page wider than the window; the side-by-side maps say
    they share their colour scale."""
    from _report_browser import browser_or_skip, report_problems

    out, _ = bicubic
    assert "share one colour scale" in (out / "report.html").read_text(encoding="utf-8")
    assert report_problems(browser_or_skip(), out / "report.html", tmp_path) == []
