"""The calibrated null of the faithfulness curves on exact cases: the comparison with a null
distribution, the threshold statistic, the sanity orders, the class rule, and the toy model's curves
(tests/_toy_model.py) with the null beside an unchanged baseline."""

from __future__ import annotations

import _toy_model as toy
import numpy as np
import pytest

from freqxfr.common.errors import InputError
from freqxfr.explanations.explainer import Explainer
from freqxfr.explanations.faithfulness import (
    null_comparison,
    null_seeds,
    pair_faithfulness,
    pinned_order,
    summarise_faithfulness,
    summarise_null_tests,
    threshold_statistic,
)

pytestmark = pytest.mark.unit


def test_null_comparison_counts_ties_half_and_signs_the_effect():
    """Guards against a percentile that counts ties as wins, a p-value that can reach 0, and an
    effect size whose sign ignores the faithful direction."""
    null = np.array([1.0, 2.0, 3.0, 4.0])
    smaller = null_comparison(2.0, null, -1)  # smaller is faithful: beats 3 and 4, ties 2
    assert smaller["percentile"] == pytest.approx(2.5 / 4)
    assert smaller["p_value"] == pytest.approx((1 + 2) / 5)  # 1.0 and 2.0 are at least as good
    sd = np.std(null, ddof=1)
    assert smaller["effect_size"] == pytest.approx((2.5 - 2.0) / sd)
    assert smaller["beats"] and smaller["null_mean"] == 2.5
    larger = null_comparison(2.0, null, 1)
    assert larger["percentile"] == pytest.approx(1.5 / 4) and not larger["beats"]
    assert larger["effect_size"] == pytest.approx(-smaller["effect_size"])
    best = null_comparison(9.0, null, 1)
    assert best["percentile"] == 1.0 and best["p_value"] == pytest.approx(1 / 5)
    flat = null_comparison(1.0, np.ones(3), 1)
    assert flat["effect_size"] is None and flat["percentile"] == 0.5 and not flat["beats"]


def test_threshold_statistic_averages_the_distance_closed_capped_at_the_flip():
    """Per step, the share of the distance to the threshold closed, 1 once the decision has
    flipped (a non-match at or above the threshold, a match below it), averaged over steps."""
    # non-match: s_ref 0.2, threshold 0.5 (distance 0.3); step 2 reaches it, step 4 falls back
    value, step = threshold_statistic(np.array([0.2, 0.35, 0.5, 0.8, 0.1]), 0.5, False)
    assert step == 2 and value == pytest.approx((0.5 + 1 + 1 - 1 / 3) / 4)
    value, step = threshold_statistic(np.array([0.2, 0.3, 0.4, 0.35]), 0.5, False)
    assert step is None and value == pytest.approx((1 / 3 + 2 / 3 + 0.5) / 3)
    # match: s_ref 0.8, threshold 0.5; 0.5 is still a match, 0.49 is not
    value, step = threshold_statistic(np.array([0.8, 0.65, 0.49, 0.9]), 0.5, True)
    assert step == 2 and value == pytest.approx((0.5 + 1 - 1 / 3) / 3)
    # moving away from the threshold counts against
    assert threshold_statistic(np.array([0.2, 0.1, 0.0]), 0.5, False)[0] < 0


def test_sanity_orders_pin_one_band_and_shuffle_the_rest():
    first = pinned_order(8, 3, True, 0)
    last = pinned_order(8, 3, False, 0)
    assert first[0] == 3 and last[-1] == 3
    assert sorted(first) == sorted(last) == list(range(8))
    assert np.array_equal(first[1:], last[:-1])  # the same seed shuffles the rest alike
    assert not np.array_equal(pinned_order(8, 3, True, 1), first)


def test_null_seeds_start_with_the_baseline():
    assert null_seeds((0, 1, 2), 5) == (0, 1, 2, 3, 4)
    assert null_seeds((2, 3), 4) == (2, 3, 4, 5)
    assert null_seeds((0, 1, 2), 2) == (0, 1, 2)  # never fewer than the baseline
    with pytest.raises(InputError, match="at least one"):
        null_seeds((0,), 0)


def _test(test: str, random: tuple[float, bool], sanity: tuple[float, bool]) -> dict:
    def comparison(percentile, beats):
        return {"percentile": percentile, "p_value": 0.5, "effect_size": None, "beats": beats}

    judged = {"random": comparison(*random), "sanity": comparison(*sanity)}
    other = {"random": comparison(0.0, False), "sanity": comparison(0.0, False)}
    return {"test": test, test: judged, "threshold" if test == "area" else "area": other}


def test_the_rule_needs_both_nulls_beaten_and_reads_each_images_own_test():
    """Guards against a rule that passes on the random null alone (what a meaningless order that
    keeps the trivial information also does), and against judging a non-match by the area test."""
    wins = [_test("threshold", (0.9, True), (0.8, True)) for _ in range(6)]
    assert summarise_null_tests(wins)["holds"]
    trivial = [_test("threshold", (0.9, True), (0.4, False)) for _ in range(6)]
    summary = summarise_null_tests(trivial)
    assert summary["random"]["holds"] and not summary["sanity"]["holds"]
    assert not summary["holds"]
    assert summary["sanity"]["wins"] == 0 and summary["sanity"]["percentile"] == 0.4
    assert summary["tests"] == {"area": 0, "threshold": 6}
    assert not summarise_null_tests(wins[:4])["holds"]  # 4 of 4 is no evidence (p = 1/16)


def test_class_summary_carries_the_null_test_per_class():
    test = _test("area", (0.9, True), (0.9, True))
    area = {
        "deletion_auc": 0.0,
        "random_deletion_auc": 0.0,
        "insertion_auc": 0.0,
        "random_insertion_auc": 0.0,
        "beats_random": True,
        "insertion_beats_random": True,
        "percentile": 0.75,
        "p_value": 0.25,
        "effect_size": 1.5,
    }
    records = [
        {
            "same": True,
            "decision": True,
            "areas": dict.fromkeys(("decision_aware", "support", "against", "absolute"), area),
            "null_test": test,
        }
    ] * 5
    by_class = summarise_faithfulness(records)
    assert by_class["genuine"]["null_test"]["holds"]  # 5 of 5: p = 1/32
    assert by_class["impostor"]["null_test"] is None
    assert by_class["match"]["support"]["percentile"] == 0.75
    assert by_class["match"]["support"]["effect_size"] == 1.5


@pytest.fixture(scope="module")
def toy_curves(tmp_path_factory):
    explainer = Explainer(toy.load(tmp_path_factory.mktemp("toy")), 4, threads=1)
    pair = toy.flat((50, 100, 150)), toy.waved((50, 100, 150), 40)
    return (
        pair_faithfulness(explainer, *pair, seeds=[2, 3], null_orders=6),
        pair_faithfulness(explainer, *pair, seeds=[2, 3], null_orders=2),
    )


def test_the_null_adds_to_the_baseline_without_changing_it(toy_curves):
    """The null's random orders start with the baseline's (seeds 2, 3 then 4, 5, 6, 7); the
    baseline's curves and areas do not depend on the null's size."""
    with_null, small = toy_curves
    for side, other in ((with_null.a, small.a), (with_null.b, small.b)):
        assert side.null_deletion.shape == side.sanity_deletion.shape == (6, 5)
        assert np.array_equal(side.null_deletion[:2], side.random_deletion)
        assert np.array_equal(side.random_deletion, other.random_deletion)
        areas, areas_small = side.areas(), other.areas()
        for name in areas:
            for key in ("deletion_auc", "random_deletion_auc", "insertion_auc", "beats_random"):
                assert areas[name][key] == areas_small[name][key]
        assert side.sanity_deletion[:, 0] == pytest.approx(with_null.score_ref)


def test_sanity_curves_delete_the_pinned_band_where_the_decision_puts_it(toy_curves):
    """The toy pair is a match (s_ref = -10, threshold -20): the sanity orders delete the most
    supportive band first, image A's band 0 (its only influential one), so every sanity curve
    drops at step 1 to the score without it, like the explanation's own support order."""
    curves = toy_curves[0]
    assert curves.decision
    side = curves.a
    test = side.null_test()
    assert test["criterion"] == "support" and test["test"] == "area"
    assert test["pinned_at"] == "first" and test["pinned_band"] == 0 == side.order[0]
    assert test["null_orders"] == 6
    np.testing.assert_allclose(side.sanity_deletion[:, 1], side.variant("support").deletion[1])
    # With only band 0 mattering, every sanity order is as good as the explanation: ties, so the
    # explanation does not beat the sanity null (the trivial information is all there is).
    assert test["area"]["sanity"]["percentile"] == 0.5 and not test["beats_sanity"]
    assert test["beats_random"] == test["area"]["random"]["beats"]
    record = side.to_dict()
    assert len(record["null_deletion_areas"]) == len(record["sanity_deletion_areas"]) == 6
