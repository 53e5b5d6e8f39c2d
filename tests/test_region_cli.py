"""``freqxfr explain --regions`` and ``--template`` as a user runs them, and the region pictures.

The CLI's plumbing is under test, not the model: the runs use the default model (dlib's ResNet;
SFace costs ~6x per image)."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest

from freqxfr.explanations.region_explanations import region_summary
from freqxfr.reports.region_plots import plot_region_heatmap, plot_region_tints, tint

pytestmark = pytest.mark.integration


def freqxfr(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "freqxfr", *args], capture_output=True, text=True, timeout=600
    )


@pytest.fixture(scope="module")
def gul(data_dir):
    folder = data_dir / "lfw_aligned112" / "images" / "Abdullah_Gul"
    return folder / "Abdullah_Gul_0001.jpg", folder / "Abdullah_Gul_0006.jpg"


def test_explain_with_face_regions_writes_one_pair_report_with_bands_and_regions(gul, tmp_path):
    """``explain --regions`` writes the pair's usual outputs (band explanation, FHP, band table,
    masked strip) plus the region cells (``cells`` in explanation.json, a region section in the
    same report): one product, not a region-only page beside the band report."""
    out = tmp_path / "out"
    done = freqxfr(
        "explain",
        str(gul[0]),
        str(gul[1]),
        "--bands",
        "4",
        "--regions",
        "face",
        "--out",
        str(out),
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("MATCH")
    # Ranked per unit area, each with its share and its area (the face region is 41% of it).
    assert "regions with the most influence per unit area: a: " in done.stdout
    assert "% (area " in done.stdout
    record = json.loads((out / "explanation.json").read_text())
    assert record["regions"]["names"][:2] == ["left_eye", "right_eye"]
    assert np.array(record["a"]["directed"]).shape == (4,)  # the bands, as without --regions
    assert np.array(record["cells"]["a"]["directed"]).shape == (7, 4)
    assert record["cells"]["score_ref"] == pytest.approx(record["score_ref"], abs=1e-5)
    assert record["a"]["source"] == str(gul[0])
    html = (out / "report.html").read_text()
    titles = re.findall(r"<h2>(.*?)</h2>", html)
    assert titles[:4] == [
        "Decision",
        "How to read this",
        "Influence per band",
        "What the model saw",
    ]
    assert titles[-2:] == ["Where and which frequency", "Provenance"]
    for name in ("fhp.png", "bands.png", "strip.png", "regions.png"):
        assert f'alt="{name}"' in html, name
    assert (out / "regions.png").stat().st_size > 10_000
    # --json prints what explanation.json holds.
    again = freqxfr(
        "explain", str(gul[0]), str(gul[1]), "--bands", "4", "--regions", "face",
        "--out", str(out), "--json",
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    printed = json.loads(again.stdout)
    np.testing.assert_allclose(printed["cells"]["a"]["directed"], record["cells"]["a"]["directed"])


def test_explain_against_a_template(gul, dlib_model, tmp_path):
    model = dlib_model  # the default model, which the command below uses
    template = tmp_path / "t.npy"
    np.save(template, model.embed(model.align(gul[1])[None]))
    out = tmp_path / "out"
    done = freqxfr(
        "explain",
        str(gul[0]),
        "--template",
        str(template),
        "--bands",
        "4",
        "--regions",
        "grid:2x2",
        "--out",
        str(out),
        "--json",
    )
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert record["kind"] == "template" and record["template"] == str(template)
    assert np.array(record["probe"]["scores"]).shape == (4, 4)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--regions", "grid:3"], "regions must be 'face' or 'grid:RxC'"),
        (["--template", "missing.npy"], "missing.npy: file not found"),
    ],
)
def test_bad_region_options_exit_2_with_one_line(gul, tmp_path, args, message):
    done = freqxfr(
        "explain",
        str(gul[0]),
        *([] if "--template" in args else [str(gul[1])]),
        "--model",
        "sface",
        "--bands",
        "2",
        "--out",
        str(tmp_path / "o"),
        *args,
    )
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "o").exists()


def test_tint_colours_regions_by_sign_and_leaves_zero_gray():
    face = np.full((4, 4, 3), 128, np.uint8)
    weights = np.zeros((2, 4, 4), np.float32)
    weights[0, :, :2], weights[1, :, 2:] = 1, 1
    rgb = tint(face, weights, np.array([1.0, 0.0]))
    assert rgb[0, 0, 2] > rgb[0, 0, 0]  # supported: blue
    np.testing.assert_allclose(rgb[0, 3], 128 / 255)  # no influence: the gray face
    against = tint(face, weights, np.array([-1.0, 0.0]))[0, 0]
    assert against[0] > against[2] + 0.2  # against: red


def test_region_pictures_and_summary(tmp_path):
    rng = np.random.default_rng(0)
    directed = rng.normal(size=(3, 5))
    side = {
        "source": "x.jpg",
        "regions": ["r0", "r1", "r2"],
        "directed": directed.tolist(),
        "absolute": np.abs(directed).tolist(),
        "directed_normalised": (directed / np.abs(directed).max()).tolist(),
    }
    explanation = {
        "a": side,
        "b": side,
        "score_ref": 0.5,
        "threshold": 0.3,
        "decision": True,
        "same": True,
        "regions": {"names": side["regions"]},
    }
    assert plot_region_heatmap(explanation, tmp_path / "h.png").stat().st_size > 5_000
    faces = rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)
    weights = np.full((3, 8, 8), 1 / 3, np.float32)
    assert plot_region_tints(faces, weights, side, tmp_path / "t.png").exists()
    summary = region_summary([explanation, {**explanation, "same": False}])
    assert summary["names"] == ["r0", "r1", "r2"]
    assert summary["by_class"]["all"]["n_images"] == 4
    np.testing.assert_allclose(
        summary["by_class"]["genuine"]["directed_normalised_mean"],
        directed / np.abs(directed).max(),
    )
