"""The headline numbers of a dataset run, from its ``results.jsonl`` scores: pairs, accuracy,
AUC, EER, FMR/FNMR at the model's threshold and FNMR at FMR 1e-3 and 1e-2 where the data allow,
each with a percentile bootstrap interval.

Pairs are resampled with replacement within each class (genuine, impostor), so every resample
keeps both classes and their sizes; the same resamples serve every number. A rate at a target FMR
is given only when there are enough impostor pairs to tell that FMR from zero (at least
``1/target``); otherwise the headline says what the data do not allow.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from freqxfr.stats.bootstrap import percentile_ci, resample_indices
from freqxfr.stats.mad import auc
from freqxfr.stats.thresholds import accuracy, fmr_fnmr, roc

#: Target false match rates whose FNMR the headline states where the impostor pairs allow.
TARGET_FMRS = (1e-3, 1e-2)
HEADLINE_RESAMPLES = 1000
HEADLINE_LEVEL = 0.95


@dataclass(frozen=True)
class Number:
    """One headline number: a label, the estimate and its bootstrap interval (or why none)."""

    label: str
    value: float | None
    interval: tuple[float, float] | None = None
    note: str = ""


def scores_and_labels(
    results: Sequence[Mapping[str, Any]],
) -> tuple[np.ndarray, np.ndarray]:
    """The reference scores and ground truth of the explained pairs of known ground truth."""
    kept = [r for r in results if "error" not in r and isinstance(r.get("same"), bool)]
    scores = np.array([float(r["score_ref"]) for r in kept], dtype=np.float64)
    labels = np.array([bool(r["same"]) for r in kept], dtype=bool)
    return scores, labels


def verification_headline(
    scores: np.ndarray,
    labels: np.ndarray,
    threshold: float,
    *,
    n_boot: int = HEADLINE_RESAMPLES,
    level: float = HEADLINE_LEVEL,
    seed: int = 0,
) -> list[Number]:
    """The headline numbers with intervals; empty when no pair of known ground truth was
    explained. Needs both classes for AUC, EER and the rates at a target FMR."""
    n = int(scores.size)
    if n == 0:
        return []
    resamples = resample_indices(n, n_boot, strata=labels.tolist(), seed=seed)

    def number(label: str, stat: Any, note: str = "") -> Number:
        value = float(stat(scores, labels))
        samples = [stat(scores[i], labels[i]) for i in resamples]
        return Number(label, value, percentile_ci(samples, level), note)

    out = [number("accuracy at the model's threshold", lambda s, y: accuracy(s, y, threshold))]
    n_gen, n_imp = int(labels.sum()), int((~labels).sum())
    if n_imp:
        out.append(
            number("FMR at the model's threshold", lambda s, y: fmr_fnmr(s, y, threshold)[0])
        )
    if n_gen:
        out.append(
            number("FNMR at the model's threshold", lambda s, y: fmr_fnmr(s, y, threshold)[1])
        )
    if not (n_gen and n_imp):
        return out
    out.append(number("AUC", auc))
    out.append(number("EER", _eer))
    for target in TARGET_FMRS:
        label = f"FNMR at FMR {target:g}"
        if n_imp * target < 1.0:
            out.append(Number(label, None, None, f"needs ≥ {round(1 / target)} impostor pairs"))
        else:
            out.append(number(label, lambda s, y, t=target: _fnmr_at_fmr(s, y, t)))
    return out


def _eer(scores: np.ndarray, labels: np.ndarray) -> float:
    """The equal-error rate: the mean of FMR and FNMR where they are closest."""
    curve = roc(scores, labels)
    k = int(np.argmin(np.abs(curve.fmr - curve.fnmr)))
    return float((curve.fmr[k] + curve.fnmr[k]) / 2.0)


def _fnmr_at_fmr(scores: np.ndarray, labels: np.ndarray, target: float) -> float:
    """FNMR at the lowest threshold whose FMR is at most ``target``."""
    curve = roc(scores, labels)
    k = int(np.argmax(curve.fmr <= target))  # fmr falls along the curve and ends at 0
    return float(curve.fnmr[k])


def headline_lead(
    numbers: Sequence[Number], n_pairs: int, n_failed: int, n_unlabelled: int, level: float
) -> dict[str, Any]:
    """What ``dataset.html.j2`` puts first: formatted values, intervals and a note."""
    items = [{"label": "pairs explained", "value": str(n_pairs), "interval": ""}]
    if n_failed:
        items.append({"label": "pairs failed", "value": str(n_failed), "interval": ""})
    for num in numbers:
        items.append(
            {
                "label": num.label,
                "value": "—" if num.value is None else f"{num.value:.4g}",
                "interval": (
                    f"{100 * level:g}% CI {num.interval[0]:.4g}–{num.interval[1]:.4g}"
                    if num.interval is not None
                    else num.note
                ),
            }
        )
    note = (
        f"Intervals: percentile bootstrap, {HEADLINE_RESAMPLES} resamples of pairs within each "
        "class (genuine, impostor)."
    )
    if n_unlabelled:
        note += f" {n_unlabelled} pairs of unknown ground truth are left out of the rates."
    return {"items": items, "note": note}


def group_rates(
    results: Sequence[Mapping[str, Any]],
    threshold: float,
    *,
    n_boot: int = HEADLINE_RESAMPLES,
    level: float = HEADLINE_LEVEL,
    seed: int = 0,
) -> dict[str, list[list[Any]]]:
    """Per group column, a row per value: genuine and impostor pairs, FMR and FNMR at the
    model's threshold, each with its bootstrap interval (pairs resampled within each class)."""
    kept = [r for r in results if "error" not in r and isinstance(r.get("same"), bool)]
    columns: dict[str, dict[str, list[Mapping[str, Any]]]] = {}
    for r in kept:
        for column, value in (r.get("groups") or {}).items():
            columns.setdefault(str(column), {}).setdefault(str(value), []).append(r)
    out: dict[str, list[list[Any]]] = {}
    for column, values in columns.items():
        rows = []
        for value, records in sorted(values.items()):
            scores, labels = scores_and_labels(records)
            rows.append(
                [value, *_rates_with_intervals(scores, labels, threshold, n_boot, level, seed)]
            )
        out[column] = rows
    return out


def _rates_with_intervals(
    scores: np.ndarray, labels: np.ndarray, threshold: float, n_boot: int, level: float, seed: int
) -> list[Any]:
    """genuine n, impostor n, FMR, its interval, FNMR, its interval (None where a class is empty)."""
    n_gen, n_imp = int(labels.sum()), int((~labels).sum())
    resamples = resample_indices(int(scores.size), n_boot, strata=labels.tolist(), seed=seed)
    cells: list[Any] = [n_gen, n_imp]
    for which, n in ((0, n_imp), (1, n_gen)):
        if not n:
            cells += [None, None]
            continue
        value = fmr_fnmr(scores, labels, threshold)[which]
        samples = [fmr_fnmr(scores[i], labels[i], threshold)[which] for i in resamples]
        cells += [value, percentile_ci(samples, level)]
    return cells


#: At most this many pairs of groups per column are compared band by band.
MAX_GROUP_CONTRASTS = 6


def group_band_differences(
    results: Sequence[Mapping[str, Any]],
    *,
    n_boot: int = HEADLINE_RESAMPLES,
    level: float = HEADLINE_LEVEL,
    seed: int = 0,
) -> dict[str, list[tuple[str, str, int, int, list[int]]]]:
    """Per group column, each pair of its groups (``mixed`` left out) with their numbers of pairs
    and the bands whose difference of mean normalised directed influence has a bootstrap
    interval that excludes 0.

    A pair's profile is the mean over its two images of each image's directed influence divided
    by its largest magnitude (as ``compare`` does); the groups' pairs are resampled independently.
    """
    kept = [r for r in results if "error" not in r and r.get("groups")]
    profiles: dict[str, dict[str, list[np.ndarray]]] = {}
    for r in kept:
        sides = [np.asarray(r[s]["directed"], np.float64) for s in ("a", "b") if s in r]
        if not sides:
            continue
        peaks = [max(float(np.abs(d).max()), 1e-300) for d in sides]
        profile = np.mean([d / p for d, p in zip(sides, peaks, strict=True)], axis=0)
        for column, value in r["groups"].items():
            if str(value) != "mixed":
                profiles.setdefault(str(column), {}).setdefault(str(value), []).append(profile)
    rng = np.random.default_rng(seed)
    tail = 50.0 * (1.0 - level)
    out: dict[str, list[tuple[str, str, int, int, list[int]]]] = {}
    for column, groups in profiles.items():
        names = sorted(g for g in groups if len(groups[g]) >= 2)
        contrasts = [(a, b) for i, a in enumerate(names) for b in names[i + 1 :]]
        rows = []
        for a, b in contrasts[:MAX_GROUP_CONTRASTS]:
            pa, pb = np.array(groups[a]), np.array(groups[b])
            ia = rng.integers(0, len(pa), size=(n_boot, len(pa)))
            ib = rng.integers(0, len(pb), size=(n_boot, len(pb)))
            diffs = pa[ia].mean(axis=1) - pb[ib].mean(axis=1)  # (n_boot, bands)
            lo, hi = np.percentile(diffs, [tail, 100.0 - tail], axis=0)
            bands = [int(k) for k in np.flatnonzero((lo > 0) | (hi < 0))]
            rows.append((a, b, len(pa), len(pb), bands))
        if rows:
            out[column] = rows
    return out
