"""Decision thresholds from labelled scores: FMR/FNMR, calibration at a target FMR or at the
equal-error rate, and LFW's 10-fold accuracy protocol. Pure numpy.

Conventions: a higher score means more similar, and a pair is accepted as a match when
``score >= threshold``. Labels are ``True`` (1) for genuine pairs and ``False`` (0) for impostor
pairs. FMR is the share of impostor pairs accepted; FNMR is the share of genuine pairs rejected.

Calibrated thresholds lie halfway between two neighbouring distinct scores (or at the lowest
score, or just above the highest), so a threshold never sits on a score it was fitted to.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import numpy.typing as npt

from freqxfr.common.errors import InputError


@dataclasses.dataclass(frozen=True)
class Calibration:
    """A threshold and the error rates it gives on the pairs it was chosen on.

    Attributes
    ----------
    threshold : float
        Accept a pair when ``score >= threshold``.
    fmr, fnmr : float
        False match rate and false non-match rate at ``threshold``.
    criterion : str
        How the threshold was chosen, e.g. ``"fmr<=0.001"`` or ``"eer"``.
    n_genuine, n_impostor : int
        Number of genuine and impostor pairs used.
    """

    threshold: float
    fmr: float
    fnmr: float
    criterion: str
    n_genuine: int
    n_impostor: int

    @property
    def eer(self) -> float:
        """Mean of FMR and FNMR (the equal-error rate when ``criterion == "eer"``)."""
        return 0.5 * (self.fmr + self.fnmr)


@dataclasses.dataclass(frozen=True)
class KFoldResult:
    """Result of a k-fold accuracy protocol such as LFW's View 2.

    Attributes
    ----------
    mean, std : float
        Mean and (population) standard deviation of the per-fold accuracies, in [0, 1].
    accuracies : numpy.ndarray
        Accuracy on each test fold.
    thresholds : numpy.ndarray
        Threshold chosen on the other folds for each test fold.
    """

    mean: float
    std: float
    accuracies: np.ndarray
    thresholds: np.ndarray


@dataclasses.dataclass(frozen=True)
class Roc:
    """Error rates at every distinct threshold, thresholds ascending.

    ``fmr`` falls and ``fnmr`` rises along the arrays. The first threshold accepts every pair
    and the last rejects every pair.
    """

    thresholds: np.ndarray
    fmr: np.ndarray
    fnmr: np.ndarray


def checked_scores(scores: npt.ArrayLike, labels: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Scores as finite float64 and labels as bool, both 1-D of one length (1/True = genuine, or
    attack in :mod:`freqxfr.stats.mad`); :class:`InputError` otherwise."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels)
    if s.ndim != 1 or y.ndim != 1:
        raise InputError(f"scores and labels must be 1-D, got shapes {s.shape} and {y.shape}")
    if s.shape != y.shape:
        raise InputError(f"scores and labels differ in length: {s.size} and {y.size}")
    if not np.all(np.isfinite(s)):
        raise InputError(f"scores contain {np.count_nonzero(~np.isfinite(s))} NaN/inf value(s)")
    if y.dtype != bool:
        if not np.all(np.isin(y, (0, 1))):
            raise InputError("labels must be booleans or 0/1 (1 = genuine, 0 = impostor)")
        y = y.astype(bool)
    return s, y


def _need_both(y: np.ndarray, what: str) -> None:
    if not y.any() or y.all():
        raise InputError(f"{what} needs both genuine and impostor pairs")


def fmr_fnmr(scores: npt.ArrayLike, labels: npt.ArrayLike, threshold: float) -> tuple[float, float]:
    """False match rate and false non-match rate at ``threshold``.

    Parameters
    ----------
    scores : array_like of float, shape (n,)
    labels : array_like of bool, shape (n,)
        ``True`` for genuine pairs.
    threshold : float
        Pairs with ``score >= threshold`` are accepted.

    Returns
    -------
    fmr, fnmr : float
        NaN for a rate whose pair class is empty.
    """
    s, y = checked_scores(scores, labels)
    accepted = s >= threshold
    n_imp, n_gen = np.count_nonzero(~y), np.count_nonzero(y)
    fmr = np.count_nonzero(accepted & ~y) / n_imp if n_imp else float("nan")
    fnmr = np.count_nonzero(~accepted & y) / n_gen if n_gen else float("nan")
    return float(fmr), float(fnmr)


def accuracy(scores: npt.ArrayLike, labels: npt.ArrayLike, threshold: float) -> float:
    """Share of pairs decided correctly at ``threshold`` (accept when ``score >= threshold``)."""
    s, y = checked_scores(scores, labels)
    if s.size == 0:
        raise InputError("accuracy needs at least one pair")
    return float(np.count_nonzero((s >= threshold) == y) / s.size)


def roc(scores: npt.ArrayLike, labels: npt.ArrayLike) -> Roc:
    """FMR and FNMR at every threshold that changes a decision.

    The thresholds are the lowest score, the midpoints between neighbouring distinct scores,
    and the float just above the highest score.
    """
    s, y = checked_scores(scores, labels)
    _need_both(y, "an ROC curve")
    distinct = np.unique(s)
    # Midpoints between distinct neighbours; where two floats are adjacent the midpoint rounds
    # onto the lower one, so fall back to the upper one to keep the decisions it stands for.
    mids = distinct[:-1] + 0.5 * np.diff(distinct)
    mids = np.where(mids > distinct[:-1], mids, distinct[1:])
    thresholds = np.concatenate([distinct[:1], mids, [np.nextafter(distinct[-1], np.inf)]])
    gen = np.sort(s[y])
    imp = np.sort(s[~y])
    # Count the pairs below each threshold (rejected) with one binary search per class.
    fnmr = np.searchsorted(gen, thresholds, side="left") / gen.size
    fmr = (imp.size - np.searchsorted(imp, thresholds, side="left")) / imp.size
    return Roc(thresholds, fmr, fnmr)


def threshold_at_fmr(
    scores: npt.ArrayLike, labels: npt.ArrayLike, target_fmr: float = 1e-3
) -> Calibration:
    """The lowest threshold whose FMR on these pairs is at most ``target_fmr``.

    With ``n`` impostor pairs an FMR below ``1/n`` cannot be told from zero; the threshold then
    rejects every impostor pair seen.

    Raises
    ------
    InputError
        ``target_fmr`` is not in (0, 1), or a pair class is missing.
    """
    if not 0.0 < target_fmr < 1.0:
        raise InputError(f"target_fmr must lie in (0, 1), got {target_fmr}")
    curve = roc(scores, labels)
    k = int(np.argmax(curve.fmr <= target_fmr))  # fmr is non-increasing; the last entry is 0
    return _calibration(labels, curve, k, f"fmr<={target_fmr:g}")


def threshold_at_eer(scores: npt.ArrayLike, labels: npt.ArrayLike) -> Calibration:
    """The threshold where FMR and FNMR are closest (the equal-error rate).

    The result's ``eer`` property is the mean of the two rates there.
    """
    curve = roc(scores, labels)
    k = int(np.argmin(np.abs(curve.fmr - curve.fnmr)))
    return _calibration(labels, curve, k, "eer")


def _calibration(labels: npt.ArrayLike, curve: Roc, k: int, criterion: str) -> Calibration:
    y = np.asarray(labels).astype(bool)
    return Calibration(
        float(curve.thresholds[k]),
        float(curve.fmr[k]),
        float(curve.fnmr[k]),
        criterion,
        int(np.count_nonzero(y)),
        int(np.count_nonzero(~y)),
    )


def best_accuracy_threshold(scores: npt.ArrayLike, labels: npt.ArrayLike) -> float:
    """The threshold that decides the most pairs correctly (the lowest one on ties)."""
    curve = roc(scores, labels)
    _, y = checked_scores(scores, labels)
    n_gen, n_imp = np.count_nonzero(y), np.count_nonzero(~y)
    correct = n_gen * (1.0 - curve.fnmr) + n_imp * (1.0 - curve.fmr)
    return float(curve.thresholds[int(np.argmax(correct))])


def kfold_accuracy(
    scores: npt.ArrayLike, labels: npt.ArrayLike, folds: npt.ArrayLike | int = 10
) -> KFoldResult:
    """Cross-validated accuracy: LFW's protocol.

    For each fold, the threshold is chosen on all other folds to maximise accuracy
    (:func:`best_accuracy_threshold`) and then tested on the fold.

    Parameters
    ----------
    scores, labels : array_like, shape (n,)
    folds : array_like of int, shape (n,), or int
        The fold of each pair (e.g. ``Pair.fold`` from LFW's ``pairs.txt``), or a number of
        folds to deal the pairs into: the genuine pairs and the impostor pairs are each dealt
        round-robin, in order, so every fold gets both kinds.

    Returns
    -------
    KFoldResult
    """
    s, y = checked_scores(scores, labels)
    if isinstance(folds, (int, np.integer)):
        if not 2 <= folds <= s.size:
            raise InputError(f"folds must lie between 2 and the number of pairs, got {folds}")
        fold_of = np.empty(s.size, dtype=np.int64)
        for kind in (y, ~y):
            fold_of[kind] = np.arange(np.count_nonzero(kind)) % int(folds)
    else:
        fold_of = np.asarray(folds)
        if fold_of.shape != s.shape:
            raise InputError(f"folds must give one fold per pair: {fold_of.shape} vs {s.shape}")
    ids = np.unique(fold_of)
    if ids.size < 2:
        raise InputError("k-fold accuracy needs at least two folds")
    accuracies, thresholds = [], []
    for fold in ids:
        test = fold_of == fold
        threshold = best_accuracy_threshold(s[~test], y[~test])
        thresholds.append(threshold)
        accuracies.append(accuracy(s[test], y[test], threshold))
    acc = np.asarray(accuracies)
    return KFoldResult(float(acc.mean()), float(acc.std()), acc, np.asarray(thresholds))
