"""MAD metrics, bootstrap helpers and the frequency morph score against hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from freqxfr.common.errors import InputError
from freqxfr.stats.bootstrap import percentile_ci, resample_indices, sign_stability
from freqxfr.stats.mad import (
    apcer_bpcer,
    auc,
    average_ranks,
    bpcer_at_apcer,
    d_eer,
    det_curve,
    evaluate_detector,
)
from freqxfr.stats.morph_score import (
    distance_from,
    leave_identity_out_scores,
    ledoit_wolf,
)

pytestmark = pytest.mark.unit

# Attacks score 2, 4, 6, 8 and bona fide comparisons 1, 3, 5, 7 (higher = more morph-like).
# Thresholds and rates by hand (flag when score >= t):
#   t:      1    1.5   2.5   3.5   4.5   5.5   6.5   7.5   >8
#   APCER:  0    0     1/4   1/4   2/4   2/4   3/4   3/4   1
#   BPCER:  1    3/4   3/4   2/4   2/4   1/4   1/4   0     0
ATTACK = [2.0, 4.0, 6.0, 8.0]
BONA_FIDE = [1.0, 3.0, 5.0, 7.0]
SCORES = np.array(ATTACK + BONA_FIDE)
IS_ATTACK = np.array([True] * 4 + [False] * 4)


def test_det_curve_matches_the_hand_table():
    curve = det_curve(SCORES, IS_ATTACK)
    assert curve.thresholds[:8].tolist() == [1.0, 1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5]
    assert curve.apcer.tolist() == [0, 0, 0.25, 0.25, 0.5, 0.5, 0.75, 0.75, 1]
    assert curve.bpcer.tolist() == [1, 0.75, 0.75, 0.5, 0.5, 0.25, 0.25, 0, 0]


def test_rates_at_a_threshold_and_at_fixed_apcer():
    assert apcer_bpcer(SCORES, IS_ATTACK, 4.5) == (0.5, 0.5)
    assert apcer_bpcer(SCORES, IS_ATTACK, 6.0) == (0.5, 0.25)  # 6 itself is flagged
    assert bpcer_at_apcer(SCORES, IS_ATTACK, 0.10) == 0.75  # only APCER 0 is allowed
    assert bpcer_at_apcer(SCORES, IS_ATTACK, 0.05) == 0.75
    assert bpcer_at_apcer(SCORES, IS_ATTACK, 0.25) == 0.5
    assert bpcer_at_apcer(SCORES, IS_ATTACK, 1.0) == 0.0


def test_d_eer_where_the_rates_meet():
    assert d_eer(SCORES, IS_ATTACK) == 0.5  # APCER = BPCER = 1/2 at t = 4.5
    # A perfect detector and a reversed one.
    assert d_eer([5, 6, 1, 2], [1, 1, 0, 0]) == 0.0
    assert d_eer([1, 2, 5, 6], [1, 1, 0, 0]) == 1.0


def test_d_eer_interpolates_where_two_thresholds_are_equally_close():
    """Guards against taking the first of two equally close thresholds for the D-EER.

    Attacks 2, 4, 6 and bona fide 1, 5. At t = 3 (APCER 1/3, BPCER 1/2) and t = 4.5 (APCER 2/3,
    BPCER 1/2) the two rates are 1/6 apart either way; the old rule took the first and gave
    (1/3 + 1/2)/2 = 5/12. The segment joining the two points crosses the diagonal at 1/2.
    """
    scores, is_attack = [2.0, 4.0, 6.0, 1.0, 5.0], [True, True, True, False, False]
    curve = det_curve(scores, is_attack)
    assert curve.apcer.tolist() == pytest.approx([0, 0, 1 / 3, 2 / 3, 2 / 3, 1])
    assert curve.bpcer.tolist() == pytest.approx([1, 0.5, 0.5, 0.5, 0, 0])
    assert d_eer(scores, is_attack) == pytest.approx(0.5)
    # A crossing inside a diagonal step (an attack and a bona fide comparison tie at 3):
    # (APCER, BPCER) goes from (0, 1/2) to (1/2, 0); the segment meets the diagonal at 1/4.
    assert d_eer([3.0, 4.0, 1.0, 3.0], [True, True, False, False]) == pytest.approx(0.25)


def _crossing(fpr: np.ndarray, fnr: np.ndarray) -> float:
    """Where the polyline through (fnr, fpr), ordered by fnr, meets fnr = fpr (independent code)."""
    order = np.lexsort((-fpr, fnr))
    x, y = fnr[order], fpr[order]
    for (x0, y0), (x1, y1) in zip(
        zip(x, y, strict=True), zip(x[1:], y[1:], strict=True), strict=False
    ):
        if (x0 - y0) <= 0 <= (x1 - y1) and (x1 - y1) != (x0 - y0):
            s = (y0 - x0) / ((x1 - x0) - (y1 - y0))
            return float(x0 + s * (x1 - x0))
        if x0 == y0:
            return float(x0)
    raise AssertionError("no crossing")


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_det_points_and_d_eer_agree_with_scikit_learn(seed):
    """Our operating points are scikit-learn's roc_curve points (APCER = 1 - TPR, BPCER = FPR),
    and the D-EER is where the polyline through them crosses the diagonal. Scores are rounded
    so that ties between and within classes occur, as on the 60 FRLL comparisons."""
    from sklearn.metrics import roc_curve

    rng = np.random.default_rng(seed)
    is_attack = np.array([True] * 40 + [False] * 20)
    scores = np.round(rng.normal(size=60) + 0.8 * is_attack, 1)
    fpr, tpr, _ = roc_curve(is_attack, scores, drop_intermediate=False)
    curve = det_curve(scores, is_attack)
    ours = sorted(zip(curve.apcer.tolist(), curve.bpcer.tolist(), strict=True))
    theirs = sorted(zip((1 - tpr).tolist(), fpr.tolist(), strict=True))
    assert np.allclose(ours, theirs, atol=1e-12)
    assert d_eer(scores, is_attack) == pytest.approx(_crossing(fpr, 1 - tpr), abs=1e-12)


def test_auc_is_the_mann_whitney_share():
    # Attack beats bona fide in 1 + 2 + 3 + 4 of the 16 cross pairs.
    assert auc(SCORES, IS_ATTACK) == pytest.approx(10 / 16)
    assert auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == pytest.approx(0.75)
    assert auc([1.0, 1.0], [True, False]) == 0.5  # a tie counts half
    assert auc([3.0, 1.0, 1.0], [True, True, False]) == pytest.approx(0.75)
    with pytest.raises(InputError, match="both attack and bona fide"):
        auc([1.0, 2.0], [True, True])


def test_average_ranks_share_ties():
    assert average_ranks([3.0, 1.0, 3.0, 2.0]).tolist() == [3.5, 1.0, 3.5, 2.0]
    assert average_ranks([5.0, 5.0, 5.0]).tolist() == [2.0, 2.0, 2.0]


def test_evaluate_detector_holds_every_number():
    result = evaluate_detector(SCORES, IS_ATTACK, n_boot=200)
    assert result["auc"] == pytest.approx(10 / 16)
    assert result["auc_ci"][0] <= result["auc"] <= result["auc_ci"][1]
    assert result["d_eer"] == 0.5
    assert (result["bpcer_at_apcer_10"], result["bpcer_at_apcer_5"]) == (0.75, 0.75)
    assert result["n_attack"] == result["n_bona_fide"] == 4
    assert len(result["det"]["apcer"]) == len(result["det"]["bpcer"]) == 9


def test_resamples_keep_clusters_together_and_strata_sizes():
    clusters = ["p", "p", "q", "q", "r", "s"]
    strata = ["m", "m", "m", "m", "b", "b"]
    for idx in resample_indices(6, 50, clusters=clusters, strata=strata, seed=1):
        picked = idx.tolist()
        # Members of a cluster come in twos (0 with 1, 2 with 3)
        assert picked.count(0) == picked.count(1) and picked.count(2) == picked.count(3)
        assert sum(i < 4 for i in picked) == 4 and sum(i >= 4 for i in picked) == 2
    first = resample_indices(6, 3, seed=7)
    assert all(
        np.array_equal(a, b) for a, b in zip(first, resample_indices(6, 3, seed=7), strict=True)
    )
    with pytest.raises(InputError, match="spans two strata"):
        resample_indices(2, 1, clusters=["x", "x"], strata=[0, 1])


def test_percentile_interval_and_sign_stability():
    samples = np.arange(1, 101, dtype=float)
    lo, hi = percentile_ci(samples, 0.9)
    assert lo == pytest.approx(5.95) and hi == pytest.approx(95.05)
    assert sign_stability([-1.0, 2.0, 3.0, 0.0], 1.5) == 0.5
    assert sign_stability([-1.0, -2.0, 3.0], -0.1) == pytest.approx(2 / 3)
    with pytest.raises(InputError, match="level"):
        percentile_ci(samples, 1.5)


def _sklearn_style_shrinkage(x: np.ndarray) -> float:
    """Ledoit-Wolf intensity in the algebra sklearn uses, written independently of ours."""
    n, p = x.shape
    xc = x - x.mean(axis=0)
    x2 = xc**2
    trace = x2.sum(axis=0) / n
    mu = trace.sum() / p
    beta_ = np.sum(x2.T @ x2)
    delta_ = np.sum((xc.T @ xc) ** 2) / n**2
    beta = (beta_ / n - delta_) / (p * n)
    delta = (delta_ - 2.0 * mu * trace.sum() + p * mu**2) / p
    return float(min(beta, delta) / delta)


def test_ledoit_wolf_intensity_matches_an_independent_formula():
    rng = np.random.default_rng(3)
    for n, p in ((12, 16), (40, 8), (200, 5)):
        x = rng.normal(size=(n, p)) @ rng.normal(size=(p, p))
        mean, cov, shrinkage = ledoit_wolf(x)
        assert shrinkage == pytest.approx(_sklearn_style_shrinkage(x), rel=1e-9)
        assert np.allclose(mean, x.mean(axis=0))
        assert np.all(np.linalg.eigvalsh(cov) > 0)


def test_mahalanobis_with_full_shrinkage_is_scaled_euclidean():
    # Isotropic rows: the sample covariance is already μI (μ = 0.5), so the distance is ‖x − m‖/√μ.
    ref = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    mean, cov, _ = ledoit_wolf(ref)
    assert np.allclose(mean, 0.0) and np.allclose(cov, 0.5 * np.eye(2))
    assert distance_from([[2.0, 0.0]], ref)[0] == pytest.approx(2.0 / np.sqrt(0.5))
    assert distance_from([[2.0, 0.0]], ref + np.array([1.0, 1.0]), "cosine")[0] == pytest.approx(
        1 - 2 / (2 * np.sqrt(2))
    )


def test_leave_one_identity_out_excludes_the_people_in_a_comparison():
    # Four bona fide comparisons (people A-D) and a morph of A and B. A's own vector is an outlier;
    # it must not be in A's reference, nor in the morph's.
    feats = np.array([[9.0, 9.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.5, 0.5]])
    bona_fide = [True, True, True, True, False]
    people = [("A",), ("B",), ("C",), ("D",), ("A", "B")]
    scores, sizes = leave_identity_out_scores(feats, bona_fide, people, "cosine")
    assert sizes.tolist() == [3, 3, 3, 3, 2]
    assert scores[0] == pytest.approx(distance_from(feats[0], feats[[1, 2, 3]], "cosine")[0])
    assert scores[4] == pytest.approx(distance_from(feats[4], feats[[2, 3]], "cosine")[0])
    with pytest.raises(InputError, match="at least 3"):
        leave_identity_out_scores(feats, bona_fide, people, min_reference=3)


# ---- edges and wiring found by mutation testing (docs/design/mutants.md) ----------------------------------


def test_bpcer_at_apcer_accepts_the_closed_interval_only():
    """APCER bounds 0 and 1 are allowed (0: no attack may pass), anything outside is refused."""
    assert bpcer_at_apcer(SCORES, IS_ATTACK, 0.0) == 0.75
    for bad in (-0.1, 1.5):
        with pytest.raises(InputError, match="apcer must lie in"):
            bpcer_at_apcer(SCORES, IS_ATTACK, bad)


def test_auc_needs_attacks_as_well():
    with pytest.raises(InputError, match="both attack and bona fide"):
        auc([1.0, 2.0], [False, False])


def test_det_curve_is_immutable():
    import dataclasses

    curve = det_curve(SCORES, IS_ATTACK)
    with pytest.raises(dataclasses.FrozenInstanceError):
        curve.apcer = np.zeros(3)  # type: ignore[misc]


def test_intervals_of_a_perfect_detector_are_points():
    """Every stratified resample of a perfect detector has AUC 1 and D-EER 0, so the two intervals
    are [1, 1] and [0, 0]. Guards against reporting one statistic's interval for the other."""
    result = evaluate_detector(
        scores=[5.0, 6.0, 7.0, 1.0, 2.0], is_attack=[1, 1, 1, 0, 0], n_boot=100
    )
    assert (result["auc"], result["d_eer"]) == (1.0, 0.0)
    assert result["auc_ci"] == [1.0, 1.0] and result["d_eer_ci"] == [0.0, 0.0]


def test_bootstrap_seed_defaults_to_zero():
    default = evaluate_detector(SCORES, IS_ATTACK, n_boot=200)
    assert default["auc_ci"] == evaluate_detector(SCORES, IS_ATTACK, n_boot=200, seed=0)["auc_ci"]
    assert default["auc_ci"] != evaluate_detector(SCORES, IS_ATTACK, n_boot=200, seed=1)["auc_ci"]


def test_ledoit_wolf_covariance_is_the_shrunk_sample_covariance():
    rng = np.random.default_rng(5)
    for scale in (1.0, 0.01):  # small scale: ‖S - μI‖² well below 1
        x = rng.normal(size=(10, 4)) * [1.0, 2.0, 0.5, 3.0] * scale
        _, cov, shrinkage = ledoit_wolf(x)
        sample = np.cov(x.T, bias=True)
        mu = np.trace(sample) / 4
        assert 0 < shrinkage < 1 and shrinkage == pytest.approx(_sklearn_style_shrinkage(x))
        np.testing.assert_allclose(cov, (1 - shrinkage) * sample + shrinkage * mu * np.eye(4))


def test_mahalanobis_row_by_row_from_a_shifted_reference():
    # The isotropic reference of the test above, moved to mean (1, 1): covariance 0.5 I.
    ref = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]]) + 1.0
    got = distance_from([[3.0, 1.0], [1.0, 2.0], [1.0, 1.0], [1.2, 1.0]], ref)
    np.testing.assert_allclose(got, np.array([2.0, 1.0, 0.0, 0.2]) / np.sqrt(0.5))


def test_cosine_distance_row_by_row_and_of_a_zero_vector():
    ref = np.array([[1.0, 0.0], [1.0, 0.0]])  # mean (1, 0)
    got = distance_from([[0.0, 3.0], [2.0, 0.0], [1.0, 1.0], [0.0, 0.0], [0.5, 0.0]], ref, "cosine")
    np.testing.assert_allclose(got, [1.0, 0.0, 1 - 1 / np.sqrt(2), 1.0, 0.0], atol=1e-15)


def test_leave_identity_out_checks_its_inputs_and_numbers_comparisons_from_one():
    feats = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.5, 0.5]])
    people = [("A",), ("B",), ("C",), ("A", "B")]
    scores, _ = leave_identity_out_scores(
        features=feats,
        is_bona_fide=[1, 1, 1, 0],
        identities=people,
        distance="cosine",
        min_reference=1,
    )
    assert scores.shape == (4,)
    with pytest.raises(InputError, match="same comparisons"):
        leave_identity_out_scores(feats[:3], [1, 1, 1, 0], people)
    with pytest.raises(InputError, match="same comparisons"):
        leave_identity_out_scores(feats, [1, 1, 1, 0], people[:3])
    with pytest.raises(InputError, match=r"comparison 4 \(A, B\) has 1 bona fide"):
        leave_identity_out_scores(feats, [1, 1, 1, 0], people, "cosine")
