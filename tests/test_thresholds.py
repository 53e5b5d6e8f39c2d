"""Thresholds: hand-computed small cases, then real SFace scores checked by brute force."""

from __future__ import annotations

import numpy as np
import pytest

from freqxfr.common.errors import InputError
from freqxfr.stats.thresholds import (
    accuracy,
    best_accuracy_threshold,
    fmr_fnmr,
    kfold_accuracy,
    roc,
    threshold_at_eer,
    threshold_at_fmr,
)

# Two impostor scores (0.1, 0.4) and two genuine scores (0.35, 0.8), in mixed order.
SCORES = np.array([0.1, 0.35, 0.4, 0.8])
LABELS = np.array([0, 1, 0, 1])


@pytest.mark.unit
def test_fmr_fnmr_counts_ties_as_accepted():
    # At 0.4 the impostor 0.4 is accepted (score >= threshold) and the genuine 0.35 rejected.
    assert fmr_fnmr(SCORES, LABELS, 0.4) == (0.5, 0.5)
    assert fmr_fnmr(SCORES, LABELS, 0.41) == (0.0, 0.5)
    assert fmr_fnmr(SCORES, LABELS, 0.0) == (1.0, 0.0)
    assert fmr_fnmr(SCORES, LABELS, 0.9) == (0.0, 1.0)


@pytest.mark.unit
def test_roc_by_hand():
    curve = roc(SCORES, LABELS)
    np.testing.assert_allclose(curve.thresholds[:4], [0.1, 0.225, 0.375, 0.6])
    assert curve.thresholds[4] > 0.8 and curve.thresholds[4] == np.nextafter(0.8, 1)
    np.testing.assert_allclose(curve.fmr, [1.0, 0.5, 0.5, 0.0, 0.0])
    np.testing.assert_allclose(curve.fnmr, [0.0, 0.0, 0.5, 0.5, 1.0])


@pytest.mark.unit
def test_calibration_by_hand():
    eer = threshold_at_eer(SCORES, LABELS)
    assert eer.threshold == pytest.approx(0.375)
    assert (eer.fmr, eer.fnmr, eer.eer) == (0.5, 0.5, 0.5)
    assert (eer.n_genuine, eer.n_impostor, eer.criterion) == (2, 2, "eer")

    at = threshold_at_fmr(SCORES, LABELS, 0.3)
    assert at.threshold == pytest.approx(0.6)
    assert (at.fmr, at.fnmr) == (0.0, 0.5)
    assert at.criterion == "fmr<=0.3"
    # FMR 0.5 is allowed: the lowest threshold accepting one impostor of two.
    assert threshold_at_fmr(SCORES, LABELS, 0.5).threshold == pytest.approx(0.225)

    # Accuracy 3/4 at 0.225 and at 0.6; the lower threshold wins the tie.
    assert best_accuracy_threshold(SCORES, LABELS) == pytest.approx(0.225)
    assert accuracy(SCORES, LABELS, 0.225) == 0.75


@pytest.mark.unit
def test_separable_scores_give_zero_error():
    scores, labels = [0.1, 0.2, 0.5, 0.9], [False, False, True, True]
    assert best_accuracy_threshold(scores, labels) == pytest.approx(0.35)
    eer = threshold_at_eer(scores, labels)
    assert (eer.threshold, eer.eer) == (pytest.approx(0.35), 0.0)


@pytest.mark.unit
def test_kfold_by_hand():
    # Fold 0: impostors 0.1, 0.3, genuine 0.6, 0.7. Fold 1: impostors 0.2, 0.65, genuine 0.5, 0.9.
    scores = [0.1, 0.3, 0.6, 0.7, 0.2, 0.65, 0.5, 0.9]
    labels = [0, 0, 1, 1, 0, 0, 1, 1]
    folds = [0, 0, 0, 0, 1, 1, 1, 1]
    result = kfold_accuracy(scores, labels, folds)
    # Trained on fold 1 -> 0.35, which gets fold 0 all right; trained on fold 0 -> 0.45,
    # which accepts fold 1's impostor 0.65.
    np.testing.assert_allclose(result.thresholds, [0.35, 0.45])
    np.testing.assert_allclose(result.accuracies, [1.0, 0.75])
    assert result.mean == pytest.approx(0.875)
    assert result.std == pytest.approx(0.125)


@pytest.mark.unit
def test_integer_folds_are_stratified():
    labels = np.arange(40) >= 20  # all impostors first, as in many pair lists
    scores = np.where(labels, 0.6, 0.0) + np.tile(np.linspace(0, 0.4, 20), 2)
    result = kfold_accuracy(scores, labels, 4)
    assert result.accuracies.size == 4
    assert result.mean == 1.0  # separable, and every fold has both kinds


@pytest.mark.unit
@pytest.mark.parametrize(
    ("scores", "labels", "match"),
    [
        ([0.1, 0.2], [1], "differ in length"),
        ([0.1, np.nan], [1, 0], "NaN"),
        ([0.1, 0.2], [1, 2], "labels must be"),
        ([[0.1], [0.2]], [[1], [0]], "1-D"),
        ([0.1, 0.2], [1, 1], "both genuine and impostor"),
    ],
)
def test_bad_inputs_are_named(scores, labels, match):
    with pytest.raises(InputError, match=match):
        threshold_at_eer(scores, labels)


@pytest.mark.unit
def test_target_fmr_must_be_a_rate():
    with pytest.raises(InputError, match="target_fmr"):
        threshold_at_fmr(SCORES, LABELS, 0.0)


# --- real scores ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_scores(data_dir, sface_model):
    """SFace cosine scores of 200 of the pairs in lfw_aligned112/pairs_generated.csv (the first
    100 genuine and 100 impostor pairs): enough for every threshold to be checked by brute force."""
    import _lfw_subset

    scores, labels = _lfw_subset.scores(data_dir, "sface", n_pairs=200, verifier=sface_model)
    assert scores.size == 200 and labels.sum() == 100
    return scores, labels


def check_roc_by_brute_force(scores, labels):
    curve = roc(scores, labels)
    assert np.all(np.diff(curve.thresholds) > 0)
    for k in range(curve.thresholds.size):
        assert fmr_fnmr(scores, labels, curve.thresholds[k]) == (curve.fmr[k], curve.fnmr[k])


def check_calibration_by_brute_force(scores, labels):
    grid = np.unique(scores)
    rates = np.array([fmr_fnmr(scores, labels, t) for t in grid])

    at = threshold_at_fmr(scores, labels, 1e-2)
    assert at.fmr <= 1e-2
    assert fmr_fnmr(scores, labels, at.threshold) == (at.fmr, at.fnmr)
    # No threshold with a lower FNMR keeps the FMR within the target.
    assert np.all(rates[rates[:, 1] < at.fnmr, 0] > 1e-2)

    eer = threshold_at_eer(scores, labels)
    assert abs(eer.fmr - eer.fnmr) <= np.min(np.abs(rates[:, 0] - rates[:, 1])) + 1e-12

    best = best_accuracy_threshold(scores, labels)
    brute = max(accuracy(scores, labels, t) for t in grid)
    assert accuracy(scores, labels, best) == pytest.approx(brute)


def synthetic_scores(seed: int = 0):
    """300 overlapping genuine/impostor scores rounded to 0.01, so that many of them tie."""
    rng = np.random.default_rng(seed)
    labels = np.repeat([1, 0], 150)
    scores = np.round(
        np.where(labels == 1, rng.normal(0.5, 0.15, 300), rng.normal(0.2, 0.15, 300)), 2
    )
    return scores, labels


@pytest.mark.unit
def test_roc_matches_brute_force_on_synthetic_scores():
    check_roc_by_brute_force(*synthetic_scores())


@pytest.mark.unit
def test_calibration_is_optimal_on_synthetic_scores():
    check_calibration_by_brute_force(*synthetic_scores())


@pytest.mark.model
def test_roc_matches_brute_force_on_real_scores(real_scores):
    check_roc_by_brute_force(*real_scores)


@pytest.mark.model
def test_calibration_is_optimal_on_real_scores(real_scores):
    check_calibration_by_brute_force(*real_scores)
