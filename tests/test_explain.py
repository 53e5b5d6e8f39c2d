"""Frequency explanations with the real models on real faces."""

from __future__ import annotations

import numpy as np
import pytest

from freqxfr.explain import Explainer
from freqxfr.pairs import Pair, read_pairs
from freqxfr.verifier import Verifier, load_model


class CountingVerifier(Verifier):
    """The real model, counting how many images it embeds (a spy, not a mock)."""

    embedded = 0

    def embed_normalised(self, x, *, batch_size=None):
        type(self).embedded += x.shape[0]
        return super().embed_normalised(x, batch_size=batch_size)


@pytest.fixture(scope="module")
def dlib_model():
    return load_model()


@pytest.fixture(scope="module")
def sface_model():
    return load_model("sface")


@pytest.fixture(scope="module")
def frll(data_dir):
    return data_dir / "frll"


def test_explanation_of_a_genuine_pair(dlib_model, frll):
    explainer = Explainer(dlib_model, 16)
    a, b = frll / "neutral" / "001_03.jpg", frll / "smiling" / "001_08.jpg"
    e = explainer.explain(a, b)
    comparison = dlib_model.compare(a, b)
    assert e.decision is True and comparison.decision is True
    assert e.score_ref == pytest.approx(comparison.score, abs=1e-5)
    assert e.threshold == dlib_model.card.threshold == -0.6
    for side in (e.a, e.b):
        assert side.scores.shape == (16,)
        np.testing.assert_allclose(side.directed, e.score_ref - side.scores)
        np.testing.assert_allclose(side.absolute, np.abs(side.directed))
        assert side.absolute_normalised.max() == pytest.approx(1.0)
        assert side.absolute_normalised.min() >= 0
        assert np.abs(side.directed_normalised).max() == pytest.approx(1.0)
    d = e.to_dict()
    for key in ("score_ref", "threshold", "decision", "bands", "a", "b", "model", "schedule",
                "backend", "timings_ms", "freqxfr_version"):
        assert key in d
    assert d["bands"][0]["radius"] == [0.0, 1 / 16]
    assert set(d["a"]) >= {"absolute", "directed", "absolute_normalised", "directed_normalised"}
    rows = e.to_rows()
    assert len(rows) == 32 and {r["image"] for r in rows} == {"a", "b"}


def test_a_pair_costs_2k_plus_2_embeddings(dlib_model, frll):
    spy = CountingVerifier(dlib_model.session, dlib_model.card, dlib_model.path,
                           input_name=dlib_model.input_name, output_name=dlib_model.output_name)
    explainer = Explainer(spy, 8)
    CountingVerifier.embedded = 0
    explainer.explain(frll / "neutral" / "003_03.jpg", frll / "smiling" / "003_08.jpg")
    assert CountingVerifier.embedded == 2 * 8 + 2


def test_cpp_and_numpy_backends_give_the_same_explanation(sface_model, lfw_images):
    cpp = Explainer(sface_model, 8, backend="cpp").explain(lfw_images[0], lfw_images[1])
    ref = Explainer(sface_model, 8, backend="numpy").explain(lfw_images[0], lfw_images[1])
    np.testing.assert_allclose(cpp.a.scores, ref.a.scores, atol=1e-4)
    np.testing.assert_allclose(cpp.b.scores, ref.b.scores, atol=1e-4)


def test_streamed_pairs_equal_single_explanations(sface_model, data_dir):
    pairs = read_pairs(data_dir / "lfw_aligned112" / "pairs_generated.csv", root=data_dir)[::150]
    explainer = Explainer(sface_model, 8, max_batch=40)  # two pairs per model call
    singles = [explainer.explain(p.path_a, p.path_b) for p in pairs]
    for overlap in (True, False):
        streamed = list(explainer.explain_pairs(pairs, overlap=overlap))
        assert len(streamed) == len(pairs)
        for s, e, pair in zip(streamed, singles, pairs, strict=True):
            assert s.same == pair.same
            np.testing.assert_allclose(s.a.scores, e.a.scores, atol=1e-5)
            np.testing.assert_allclose(s.b.scores, e.b.scores, atol=1e-5)


def test_a_bad_pair_in_a_stream_is_reported_not_fatal(sface_model, data_dir, tmp_path):
    good = read_pairs(data_dir / "lfw_aligned112" / "pairs_generated.csv", root=data_dir)[:2]
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    pairs = [good[0], Pair(broken, good[0].path_b), good[1]]
    results = list(Explainer(sface_model, 8).explain_pairs(pairs, skip_errors=True))
    assert [type(r).__name__ for r in results] == ["Explanation", "PairFailure", "Explanation"]
    assert results[1].index == 1 and "broken.jpg" in results[1].error


def _dataset_profile(explainer: Explainer, pairs: list[Pair]) -> np.ndarray:
    rows = []
    for e in explainer.explain_pairs(pairs):
        rows.extend([e.a.absolute_normalised, e.b.absolute_normalised])
    return np.mean(rows, axis=0)


@pytest.mark.parametrize("model_name", ["sface", "dlib_resnet"])
def test_low_frequency_bands_carry_the_most_influence(model_name, data_dir):
    """The paper's headline finding, on real LFW pairs, for both models. It can fail: a model
    that leaned on fine detail would put its mass in the outer rings."""
    pairs = read_pairs(data_dir / "lfw_aligned112" / "pairs_generated.csv", root=data_dir)[::50]
    explainer = Explainer(load_model(model_name), 16)
    mean = _dataset_profile(explainer, pairs)
    # Measured (30 pairs): the largest mean influence sits in band 0-2 for both models, and the
    # four lowest bands outweigh the eight highest several times over.
    assert int(np.argmax(mean)) <= 3, mean
    assert mean[:4].mean() > 3 * mean[8:].mean(), mean


def test_deletion_in_influence_order_beats_random_order(sface_model, data_dir):
    from freqxfr.faithfulness import dataset_faithfulness

    pairs = read_pairs(data_dir / "lfw_aligned112" / "pairs_generated.csv", root=data_dir)[::150]
    explainer = Explainer(sface_model, 8)
    result = dataset_faithfulness(explainer, pairs, seeds=3)
    genuine = result["by_class"]["genuine"]["absolute"]  # the paper's order, on genuine pairs
    assert genuine["deletion_auc"] < genuine["random_deletion_auc"], genuine
    assert genuine["insertion_auc"] > genuine["random_insertion_auc"], genuine
    assert result["n_images"] == 2 * len(pairs)
