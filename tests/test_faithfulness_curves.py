"""Faithfulness curves on exact cases: the toy model (tests/_toy_model.py) and hand-made curves.

These test the curves and the area, not the layout of the summaries built from them.
"""

from __future__ import annotations

import _toy_model as toy
import numpy as np
import pytest

from freqxfr.explanations.explainer import Explainer
from freqxfr.explanations.faithfulness import curve_area, pair_faithfulness

pytestmark = pytest.mark.unit

# The toy pair of test_explain: A flat (50, 100, 150), B = A + 40·P on red; s_ref = -10.
# Scores of B against A when a set of bands is deleted (only bands 0 and 1 hold anything):
BLACK = -np.sqrt(25**2 + 50**2 + 75**2)  # both bands gone: e = (-5, -10, -15, 0)
WAVE_ONLY = -np.sqrt(25**2 + 50**2 + 75**2 + 10**2)  # B without DC; also black A against B
B_AGAINST_A = {  # (band 0 deleted, band 1 deleted) -> score
    (False, False): -10.0,
    (True, False): WAVE_ONLY,
    (False, True): 0.0,  # B without its wave is A
    (True, True): BLACK,
}


@pytest.fixture(scope="module")
def curves(tmp_path_factory):
    explainer = Explainer(toy.load(tmp_path_factory.mktemp("toy")), 4, threads=1)
    # Seeds 2 and 3: their random orders (3 2 0 1, 3 2 1 0) differ from the influence order.
    return explainer.faithfulness(
        toy.flat((50, 100, 150)), toy.waved((50, 100, 150), 40), seeds=[2, 3]
    )


def test_trapezoid_area_includes_both_endpoints():
    """README: areas use the trapezoid rule over x = step/K, endpoints included. Guards against
    dropping the x = 0 (or x = 1) sample or using the wrong spacing."""
    assert curve_area(np.array([1.0, 0.0])) == pytest.approx(0.5)
    assert curve_area(np.array([0.0, 1.0, 1.0])) == pytest.approx(0.75)
    assert curve_area(np.array([4.0, 0.0, 0.0, 0.0, 0.0])) == pytest.approx(0.5)
    assert curve_area(np.array([0.0, 0.0, 0.0, 0.0, 4.0])) == pytest.approx(0.5)
    assert curve_area(np.full(17, -3.0)) == pytest.approx(-3.0)


def test_deletion_starts_at_s_ref_and_deletes_the_most_influential_band_first(curves):
    """Image A's only influential band is 0, so deletion in influence order drops to the black
    image's score at step 1 and stays there. Guards against a reversed order (band 0 would go
    last) and against a deletion curve that does not start at the unaltered image."""
    a = curves.a
    assert curves.score_ref == pytest.approx(-10.0, abs=1e-4)
    assert a.order[0] == 0
    np.testing.assert_allclose(
        a.deletion, [-10, WAVE_ONLY, WAVE_ONLY, WAVE_ONLY, WAVE_ONLY], atol=1e-4
    )
    np.testing.assert_allclose(a.insertion, [WAVE_ONLY, -10, -10, -10, -10], atol=1e-4)
    assert curve_area(a.deletion) == pytest.approx(
        0.25 * ((-10 + WAVE_ONLY) / 2 + 3 * WAVE_ONLY), abs=1e-4
    )


def test_curves_follow_their_own_order_step_by_step(curves):
    """Each deletion step k of image B is B with bands order[:k] deleted; each insertion step is B
    with only those bands kept, starting from the empty spectrum (the last deletion step) and
    ending at s_ref. Whatever order the explanation gives, the scores follow from the table."""
    for side in (curves.b, curves.a):
        assert sorted(side.order.tolist()) == [0, 1, 2, 3]
    b = curves.b
    deletion = [B_AGAINST_A[(0 in b.order[:k], 1 in b.order[:k])] for k in range(5)]
    insertion = [B_AGAINST_A[(0 not in b.order[:k], 1 not in b.order[:k])] for k in range(5)]
    np.testing.assert_allclose(b.deletion, deletion, atol=1e-4)
    np.testing.assert_allclose(b.insertion, insertion, atol=1e-4)
    assert b.deletion[0] == pytest.approx(curves.score_ref)
    assert b.insertion[0] == pytest.approx(BLACK, abs=1e-4) and b.insertion[-1] == pytest.approx(
        curves.score_ref, abs=1e-4
    )
    for seeded in (b.random_deletion, b.random_insertion):
        assert seeded.shape == (2, 5)
    assert b.random_deletion[:, 0] == pytest.approx(curves.score_ref)
    np.testing.assert_allclose(b.random_deletion[:, -1], BLACK, atol=1e-4)


class AlignmentSpy(Explainer):
    """The real explainer, recording the ``aligned`` argument of every ``aligned_crop`` (a spy)."""

    def aligned_crop(self, image, aligned=None):
        self.seen.append(aligned)
        return super().aligned_crop(image, aligned)


def test_prepared_crops_are_not_aligned_again_and_five_seeds_by_default(tmp_path):
    """The pair is prepared once as the caller says; the explanation then gets the prepared crops
    with ``aligned=True`` (re-aligning a crop would move the face). Default: 5 random orders."""
    spy = AlignmentSpy(toy.load(tmp_path), 4, threads=1)
    spy.seen = []
    curves = pair_faithfulness(
        explainer=spy, a=toy.flat((50, 100, 150)), b=toy.waved((50, 100, 150), 40)
    )
    assert spy.seen == [None, None, True, True]
    assert curves.seeds == (0, 1, 2, 3, 4) and curves.a.random_deletion.shape == (5, 5)
