"""Morphing-attack detection (MAD) metrics: APCER/BPCER, D-EER, BPCER at a fixed APCER, DET
curves and the rank-based AUC, with bootstrap intervals. Pure numpy.

Conventions (ISO/IEC 30107-3 terms): a detector gives each comparison a score where *higher means
more attack-like* (a morph); a comparison is flagged as an attack when ``score >= threshold``.
APCER is the share of attack presentations (morph comparisons) not flagged; BPCER is the share of
bona fide presentations flagged. ``is_attack`` labels are ``True`` for morphs.

The error-rate curve is :func:`freqxfr.stats.thresholds.roc` with attacks in the role of genuine pairs:
its FNMR (genuine rejected) is the APCER and its FMR (impostors accepted) the BPCER, at the same
thresholds (the lowest score, midpoints between distinct scores, and just above the highest).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from freqxfr.common.errors import InputError
from freqxfr.stats.bootstrap import (
    DEFAULT_LEVEL,
    DEFAULT_RESAMPLES,
    percentile_ci,
    resample_indices,
)
from freqxfr.stats.thresholds import checked_scores, roc


@dataclasses.dataclass(frozen=True)
class DetCurve:
    """APCER and BPCER at every threshold that changes a decision, thresholds ascending.

    APCER rises and BPCER falls along the arrays.
    """

    thresholds: np.ndarray
    apcer: np.ndarray
    bpcer: np.ndarray


def apcer_bpcer(
    scores: npt.ArrayLike, is_attack: npt.ArrayLike, threshold: float
) -> tuple[float, float]:
    """APCER and BPCER when comparisons with ``score >= threshold`` are flagged as attacks."""
    s, y = checked_scores(scores, is_attack)
    flagged = s >= threshold
    n_att, n_bf = np.count_nonzero(y), np.count_nonzero(~y)
    apcer = np.count_nonzero(~flagged & y) / n_att if n_att else float("nan")
    bpcer = np.count_nonzero(flagged & ~y) / n_bf if n_bf else float("nan")
    return float(apcer), float(bpcer)


def det_curve(scores: npt.ArrayLike, is_attack: npt.ArrayLike) -> DetCurve:
    """The DET curve: (APCER, BPCER) at every distinct threshold (see the module docstring)."""
    curve = roc(scores, is_attack)
    return DetCurve(curve.thresholds, curve.fnmr, curve.fmr)


D_EER_RULE = (
    "D-EER: where the DET curve crosses APCER = BPCER, linearly interpolated between the two "
    "neighbouring operating points (the last with APCER < BPCER and the first with APCER >= BPCER); "
    "exact where an operating point lies on the diagonal."
)


def d_eer(scores: npt.ArrayLike, is_attack: npt.ArrayLike) -> float:
    """The detection equal-error rate: where the DET curve crosses APCER = BPCER.

    Along ascending thresholds APCER - BPCER rises from -1 to 1. Between the last operating
    point below the diagonal and the next one (on or above it) the curve is taken as the straight
    segment joining them, and the D-EER is where that segment meets the diagonal. Unlike picking
    the threshold whose two rates are closest, this has no tie to break: with few comparisons two
    thresholds can be equally close, and choosing either moves the result by a whole step.
    """
    curve = det_curve(scores, is_attack)
    gap = curve.apcer - curve.bpcer  # non-decreasing; -1 at the first threshold, 1 at the last
    j = int(np.argmax(gap >= 0.0))  # the first point on or above the diagonal (j >= 1)
    if gap[j] == 0.0:
        return float(curve.apcer[j])
    i = j - 1
    t = -gap[i] / (gap[j] - gap[i])
    return float(curve.apcer[i] + t * (curve.apcer[j] - curve.apcer[i]))


def bpcer_at_apcer(scores: npt.ArrayLike, is_attack: npt.ArrayLike, apcer: float) -> float:
    """The lowest BPCER among the thresholds whose APCER is at most ``apcer`` (e.g. 0.1).

    With ``n`` attacks, APCER moves in steps of ``1/n``; the result is for the largest step not
    above ``apcer``.
    """
    if not 0.0 <= apcer <= 1.0:
        raise InputError(f"apcer must lie in [0, 1], got {apcer}")
    curve = det_curve(scores, is_attack)
    # APCER never falls as the threshold rises, and BPCER never rises, so the last threshold
    # that keeps APCER within the bound has the lowest BPCER. The first threshold has APCER 0.
    k = int(np.flatnonzero(curve.apcer <= apcer + 1e-12)[-1])
    return float(curve.bpcer[k])


def auc(scores: npt.ArrayLike, is_attack: npt.ArrayLike) -> float:
    """Area under the ROC curve: P(attack score > bona fide score) + ½ P(tie).

    The Mann-Whitney U statistic over the product of the class sizes, from average ranks.
    """
    s, y = checked_scores(scores, is_attack)
    n_att, n_bf = np.count_nonzero(y), np.count_nonzero(~y)
    if n_att == 0 or n_bf == 0:
        raise InputError("an AUC needs both attack and bona fide comparisons")
    ranks = average_ranks(s)
    u = ranks[y].sum() - n_att * (n_att + 1) / 2.0
    return float(u / (n_att * n_bf))


def average_ranks(values: npt.ArrayLike) -> np.ndarray:
    """Ranks 1..n of ``values``, ties sharing the mean of their ranks (as scipy's ``rankdata``)."""
    v = np.asarray(values, dtype=np.float64)
    order = np.argsort(v, kind="mergesort")
    sorted_v = v[order]
    # Start of each run of equal values, and the run each sorted position belongs to.
    starts = np.flatnonzero(np.concatenate([[True], sorted_v[1:] != sorted_v[:-1]]))
    run = np.cumsum(np.concatenate([[True], sorted_v[1:] != sorted_v[:-1]])) - 1
    ends = np.concatenate([starts[1:], [v.size]])
    mean_rank = (starts + 1 + ends) / 2.0  # ranks start..end-1 shifted to 1-based: (s+1 + e)/2
    ranks = np.empty(v.size)
    ranks[order] = mean_rank[run]
    return ranks


def evaluate_detector(
    scores: npt.ArrayLike,
    is_attack: npt.ArrayLike,
    *,
    clusters: Sequence[Hashable] | None = None,
    n_boot: int = DEFAULT_RESAMPLES,
    level: float = DEFAULT_LEVEL,
    seed: int = 0,
) -> dict[str, Any]:
    """Every MAD number for one detector, with a bootstrap interval on the AUC and the D-EER.

    Parameters
    ----------
    scores : array_like, shape (n,)
        Detector scores, higher = more attack-like.
    is_attack : array_like of bool, shape (n,)
    clusters : sequence, optional
        A label per comparison whose comparisons are resampled together (e.g. the identities
        involved). Resampling is stratified by class either way.
    n_boot, level, seed
        Bootstrap resamples, interval level and seed.

    Returns
    -------
    dict
        ``auc``, ``auc_ci``, ``d_eer``, ``d_eer_ci``, ``bpcer_at_apcer_10``, ``bpcer_at_apcer_5``,
        ``det`` (``{"apcer": [...], "bpcer": [...]}``), ``n_attack``, ``n_bona_fide``.
    """
    s, y = checked_scores(scores, is_attack)
    curve = det_curve(s, y)

    # Both statistics from the same resamples; classes keep their sizes (stratified).
    samples = np.array(
        [
            (auc(s[idx], y[idx]), d_eer(s[idx], y[idx]))
            for idx in resample_indices(
                s.size, n_boot, clusters=clusters, strata=y.tolist(), seed=seed
            )
        ]
    )
    return {
        "auc": auc(s, y),
        "auc_ci": list(percentile_ci(samples[:, 0], level)),
        "d_eer": d_eer(s, y),
        "d_eer_ci": list(percentile_ci(samples[:, 1], level)),
        "bpcer_at_apcer_10": bpcer_at_apcer(s, y, 0.10),
        "bpcer_at_apcer_5": bpcer_at_apcer(s, y, 0.05),
        "det": {"apcer": curve.apcer.tolist(), "bpcer": curve.bpcer.tolist()},
        "n_attack": int(np.count_nonzero(y)),
        "n_bona_fide": int(np.count_nonzero(~y)),
    }
