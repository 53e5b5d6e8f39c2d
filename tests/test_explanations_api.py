"""The public face of ``freqxfr.explanations.explainer``: the one-call ``freqxfr.explain``, faces aligned
once that keep their names, and the one settings dict every result carries.

The API's plumbing is under test, not the model: dlib's ResNet (the default model; SFace costs ~6x
per image)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import freqxfr
from freqxfr.explanations.explainer import SETTINGS_KEYS, Explainer
from freqxfr.imaging.images import AlignedFace

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def explainer(dlib_model):
    """An explainer of the run's dlib verifier (conftest.py) with 8 ring bands."""
    return Explainer(dlib_model, 8)


@pytest.fixture(scope="module")
def lfw_paths(data_dir):
    paths = sorted((data_dir / "lfw_aligned112" / "images").rglob("*.jpg"))
    return paths[0], paths[len(paths) // 2]


def test_freqxfr_explain_is_a_function_with_the_explainers_numbers(explainer, lfw_paths):
    """``freqxfr.explain`` was the module's name: it must be a callable that gives exactly what an
    Explainer with the same options gives (guards against a convenience call that drops an
    option on the way)."""
    assert callable(freqxfr.explain)
    a, b = lfw_paths
    got = freqxfr.explain(a, b, model="dlib_resnet", schedule=8, same=False)
    want = explainer.explain(a, b, same=False)
    assert got.score_ref == want.score_ref
    np.testing.assert_array_equal(got.a.scores, want.a.scores)
    np.testing.assert_array_equal(got.b.scores, want.b.scores)
    assert got.same is False and got.a.source == str(a) and got.b.source == str(b)
    keep = freqxfr.explain(a, b, model="dlib_resnet", schedule=8, mode="keep")
    assert keep.mode == "keep"
    assert not np.array_equal(keep.a.scores, got.a.scores)  # the option reached the explainer


def test_aligned_faces_keep_their_names_and_numbers(explainer, lfw_paths):
    """Faces aligned once and explained later are named as the user gave them, not "<array>"
    (the mistake: callers aligned first and patched the labels afterwards), in single calls and
    in streams, and give the same numbers as the paths themselves."""
    a, b = lfw_paths
    face_a, face_b = explainer.align(a), explainer.align(b, name="probe")
    assert isinstance(face_a, AlignedFace) and face_a.name == str(a) and face_b.name == "probe"
    assert face_a.pixels.shape == (150, 150, 3) and face_a.pixels.dtype == np.uint8
    from_paths = explainer.explain(a, b)
    from_faces = explainer.explain(face_a, face_b)
    assert (from_faces.a.source, from_faces.b.source) == (str(a), "probe")
    np.testing.assert_array_equal(from_faces.a.scores, from_paths.a.scores)
    np.testing.assert_array_equal(from_faces.b.scores, from_paths.b.scores)
    darker = dataclasses.replace(face_b, pixels=(face_b.pixels // 2).astype(np.uint8))
    streamed = list(explainer.explain_pairs([(face_a, face_b), (face_a, darker)]))
    assert [(e.a.source, e.b.source) for e in streamed] == [(str(a), "probe")] * 2
    np.testing.assert_array_equal(streamed[0].a.scores, from_paths.a.scores)
    assert streamed[1].score_ref != streamed[0].score_ref  # the changed pixels were used
    assert explainer.align(face_a) is face_a


def test_one_settings_dict_for_every_result(explainer, lfw_paths):
    """The settings an explanation records are the explainer's ``settings()``, and a copy: a
    caller editing its copy must not change what later explanations record."""
    settings = explainer.settings()
    assert tuple(settings) == SETTINGS_KEYS
    assert settings["model"]["name"] == "dlib_resnet" and len(settings["bands"]) == 8
    assert settings["freqxfr_version"] == freqxfr.__version__
    settings["mode"] = "edited"
    settings["model"]["name"] = "edited"
    record = explainer.explain(*lfw_paths).to_dict()
    assert {k: record[k] for k in SETTINGS_KEYS} == explainer.settings()
    assert record["mode"] == "delete" and record["model"]["name"] == "dlib_resnet"
    lean = explainer.explain(*lfw_paths).to_dict(settings=False)
    assert not set(SETTINGS_KEYS) & set(lean) and "score_ref" in lean


def test_relative_influence_keeps_its_json_names(explainer, lfw_paths):
    """``*_relative`` (divided by the image's peak) is what JSON calls ``*_normalised``; the
    silent ``*_normalised`` attribute aliases are gone ("normalised" names the model's input)."""
    e = explainer.explain(*lfw_paths)
    record = e.to_dict()
    for side, data in (("a", e.a), ("b", e.b)):
        assert not hasattr(data, "absolute_normalised") and not hasattr(data, "directed_normalised")
        assert record[side]["absolute_normalised"] == data.absolute_relative.tolist()
        assert np.abs(data.directed_relative).max() == pytest.approx(1.0)
