"""Region × band explanations and one-sided explanations against a template, with the real
models on real faces."""

from __future__ import annotations

import json

import numpy as np
import pytest

from freqxfr import InputError
from freqxfr.explanations.explainer import Explainer, Explanation
from freqxfr.explanations.results import ImageExplanation
from freqxfr.explanations.templates import TemplateExplanation
from freqxfr.imaging.regions import FACE_REGIONS, Regions

pytestmark = pytest.mark.model


@pytest.fixture(scope="module", params=["dlib_resnet", "sface"])
def model(request):
    # the run's verifiers (conftest.py)
    return request.getfixturevalue(
        {"dlib_resnet": "dlib_model", "sface": "sface_model"}[request.param]
    )


@pytest.fixture(scope="module")
def genuine_faces(model, data_dir):
    """A genuine LFW pair, aligned for the model."""
    folder = data_dir / "lfw_aligned112" / "images" / "Abdullah_Gul"
    return np.stack(
        [
            model.align(folder / "Abdullah_Gul_0001.jpg"),
            model.align(folder / "Abdullah_Gul_0006.jpg"),
        ]
    )


def test_one_all_ones_region_reproduces_the_band_explanation(model, genuine_faces):
    """Guards against the cell layout (band-major in the core, (R, K) in the explanation)
    or the masking of cells differing from band-only explanations."""
    h, w = model.card.input_size
    bands = Explainer(model, 8).explain(*genuine_faces, aligned=True)
    cells = Explainer(model, 8, regions=np.ones((1, h, w), np.float32)).explain(
        *genuine_faces, aligned=True
    )
    assert cells.regions is not None and bands.regions is None  # one type, regions or not
    assert type(cells) is type(bands) and type(cells.a) is type(bands.a)
    assert cells.score_ref == bands.score_ref
    for one, band in ((cells.a, bands.a), (cells.b, bands.b)):
        assert one.scores.shape == (1, 8)
        np.testing.assert_allclose(one.scores[0], band.scores, rtol=0, atol=1e-6)
        np.testing.assert_allclose(one.directed_relative[0], band.directed_relative, atol=1e-5)


def test_face_regions_explanation_has_cells_views_and_provenance(model, genuine_faces):
    explainer = Explainer(model, 4, regions="face")
    e = explainer.explain(*genuine_faces, aligned=True, same=True)
    r = len(FACE_REGIONS)
    for side in (e.a, e.b):
        assert side.scores.shape == side.absolute.shape == side.directed_relative.shape == (r, 4)
        assert side.regions == FACE_REGIONS
        assert np.abs(side.directed_relative).max() == pytest.approx(1.0)
        np.testing.assert_allclose(side.directed_by_band, side.directed.sum(axis=0))
        # Deleting a band inside one region changes the score less than deleting the band
        # everywhere does, but not nothing: cells carry real, distinct influences.
        assert np.abs(side.directed).max() > 1e-3
        assert len({round(float(v), 6) for v in side.scores.ravel()}) > r
    d = json.loads(json.dumps(e.to_dict()))
    assert d["regions"]["names"] == list(FACE_REGIONS)
    assert d["regions"]["provenance"]["kind"] == "face"
    assert model.card.alignment in d["regions"]["provenance"]["template"]
    assert np.array(d["a"]["directed"]).shape == (r, 4) and d["a"]["regions"] == list(FACE_REGIONS)
    rows = e.to_rows()
    assert len(rows) == 2 * 4 * r
    row = next(x for x in rows if x["image"] == "b" and x["band"] == 2 and x["region"] == "nose")
    assert row["directed"] == pytest.approx(float(e.b.directed[FACE_REGIONS.index("nose"), 2]))
    assert row["same"] is True


def test_without_regions_the_explanation_is_as_before(model, genuine_faces):
    e = Explainer(model, 4).explain(*genuine_faces, aligned=True)
    assert type(e) is Explanation and "regions" not in e.to_dict()
    assert len(e.to_rows()) == 8 and "region" not in e.to_rows()[0]


def test_explain_pairs_with_regions_streams_results_and_failures(model, genuine_faces, tmp_path):
    explainer = Explainer(model, 2, regions=Regions.grid(2, 2))
    missing = tmp_path / "missing.jpg"
    results = list(
        explainer.explain_pairs(
            [(genuine_faces[0], genuine_faces[1]), (missing, genuine_faces[1])],
            aligned=True,
            skip_errors=True,
        )
    )
    assert results[0].regions is not None and results[0].a.scores.shape == (4, 2)
    assert results[1].index == 1 and "missing.jpg" in results[1].error


@pytest.mark.parametrize("regions", [None, "grid:2x2"])
def test_template_explanation_with_the_references_embedding_is_that_side(
    model, genuine_faces, regions
):
    """explain_template(A, f(B)) is side a of explain(A, B), and (B, f(A)) side b."""
    explainer = Explainer(model, 4, regions=regions)
    pair = explainer.explain(*genuine_faces, aligned=True)
    emb = model.embed(genuine_faces)
    for side, probe, template in (
        (pair.a, genuine_faces[0], emb[1]),
        (pair.b, genuine_faces[1], emb[0]),
    ):
        one = explainer.explain_template(probe, template, aligned=True)
        assert isinstance(one, TemplateExplanation)
        assert one.score_ref == pytest.approx(pair.score_ref, abs=1e-6)
        assert one.decision == pair.decision and one.threshold == model.card.threshold
        np.testing.assert_allclose(one.probe.scores, side.scores, rtol=0, atol=1e-6)
    rows = one.to_rows()
    assert len(rows) == 4 * (1 if regions is None else 4)
    assert json.loads(json.dumps(one.to_dict()))["kind"] == "template"


def test_template_from_a_npy_file(model, genuine_faces, tmp_path):
    path = tmp_path / "t.npy"
    np.save(path, model.embed(genuine_faces[1:]))  # (1, D) as embed returns it
    one = Explainer(model, 4).explain_template(genuine_faces[0], path, aligned=True)
    assert one.template == str(path) and one.decision is True


def test_bad_templates_are_refused_naming_the_problem(model, genuine_faces, tmp_path):
    explainer = Explainer(model, 2)
    d = model.card.embedding_size
    emb = model.embed(genuine_faces[1:])[0].astype(np.float64)
    cases = [
        (np.zeros(d + 1), f"has {d + 1} values, but model '{model.card.name}' makes {d}-d"),
        (np.full(d, np.nan), r"NaN or Inf \(first at index 0\)"),
        (np.zeros((2, d)), r"one embedding \(D,\) or \(1, D\)"),
        (np.array(["x"] * d), "must hold numbers"),
    ]
    if model.card.metric == "cosine":
        cases.append((np.zeros(d), "all zeros"))
    else:  # dlib: a Euclidean metric compares raw embeddings, not unit vectors
        cases.append((emb / np.linalg.norm(emb), "L2-normalised"))
    for template, message in cases:
        with pytest.raises(InputError, match=message):
            explainer.explain_template(genuine_faces[0], template, aligned=True)
    (tmp_path / "bad.npy").write_text("no array")
    with pytest.raises(InputError, match=r"bad.npy: not a .npy array file"):
        explainer.explain_template(genuine_faces[0], tmp_path / "bad.npy", aligned=True)


def test_cell_views_are_normalised_over_all_cells_not_per_region():
    """Guards against the band-only normalisation (each row divided by its own peak) being used
    for (R, K) cells: that made every region's strongest band ±1, so the heat maps and the
    per-class mean maps showed a weak region as strong as the strongest one."""
    scores = np.array([[0.5, 0.4], [0.9, 1.2]])  # directed [[0.5, 0.6], [0.1, -0.2]]
    side = ImageExplanation("x", scores, 1.0, regions=("p", "q"))
    np.testing.assert_allclose(side.directed_relative, [[0.5 / 0.6, 1.0], [0.1 / 0.6, -0.2 / 0.6]])
    np.testing.assert_allclose(side.absolute_relative, np.abs(side.directed_relative))
    assert side.to_dict()["directed_normalised"] == side.directed_relative.tolist()
    row = next(
        r
        for r in Explanation(
            score_ref=1.0,
            threshold=0.5,
            decision=True,
            a=side,
            b=side,
            bands=_bands(2),
            schedule=None,
            settings={},
            timings_ms={},
        ).to_rows()
        if r["region"] == "q" and r["band"] == 1 and r["image"] == "a"
    )
    assert row["directed_normalised"] == pytest.approx(-0.2 / 0.6)


def _bands(k):
    from freqxfr.core.bands import BandSchedule

    return BandSchedule.rings(k).resolve(16, 16).bands


def test_one_row_builder_gives_band_cell_and_template_rows_the_same_columns(model, genuine_faces):
    """Pair rows, cell rows and template rows come from one builder: the same columns in the
    same order (cells add ``region``; a template has no ``same``/groups), values read from the
    explanation's own views."""
    bands = Explainer(model, 2).explain(*genuine_faces, aligned=True, same=True, groups={"g": "x"})
    cells = Explainer(model, 2, regions="grid:1x2").explain(*genuine_faces, aligned=True)
    probe = Explainer(model, 2).explain_template(
        genuine_faces[0], model.embed(genuine_faces[1:]), aligned=True
    )
    band_cols = list(bands.to_rows()[0])
    assert band_cols[-3:] == ["decision", "same", "group_g"]
    cell_cols = list(cells.to_rows()[0])
    assert cell_cols == [*band_cols[:5], "region", *band_cols[5:-1]]
    assert list(probe.to_rows()[0]) == band_cols[:-2]
    last = bands.to_rows()[-1]
    assert (last["image"], last["band"]) == ("b", 1)
    assert last["directed_normalised"] == pytest.approx(float(bands.b.directed_relative[1]))
    assert [r["region"] for r in cells.to_rows()[:4]] == ["r0c0", "r0c0", "r0c1", "r0c1"]
