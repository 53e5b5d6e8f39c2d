"""Band profiles: influence statistics per band over many explained images.

One profile summarises a set of explained images (two per pair): mean and spread of the absolute
and directed influences per band, raw (score units) and normalised per image. Dataset runs and the
scenarios group them by class (genuine/impostor), decision outcome and any group column.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from freqxfr.stats.bootstrap import (
    DEFAULT_LEVEL,
    DEFAULT_RESAMPLES,
    cluster_weights,
    percentile_ci,
    weighted_means,
)
from freqxfr.stats.identities import pair_clusters, resampling

OUTCOMES = {
    (True, True): "true_match",
    (False, True): "false_match",
    (False, False): "true_non_match",
    (True, False): "false_non_match",
}


def relative_to_peak(values: np.ndarray) -> np.ndarray:
    """Influences relative to each image's largest one: every row (last axis) divided by its
    largest magnitude, so the most influential band is ±1; a row of zeros stays zeros.

    This is what the JSON keys ``absolute_normalised``/``directed_normalised`` hold (the paper's
    per-image normalisation for the heat plots); it has nothing to do with the model's input
    normalisation or ``domain="normalised"``.
    """
    values = np.asarray(values)
    if not np.issubdtype(values.dtype, np.floating):
        values = values.astype(np.float64)
    if values.size == 0:
        return np.zeros_like(values)
    peak = np.abs(values).max(axis=-1, keepdims=True)
    return np.divide(values, peak, out=np.zeros_like(values), where=peak > 0)


def profile(directed: np.ndarray) -> dict[str, Any]:
    """The profile of explained images given their directed influences, shape (n_images, K)."""
    directed = np.asarray(directed, dtype=np.float64)
    absolute = np.abs(directed)
    return {
        "n_images": int(directed.shape[0]),
        "absolute_mean": absolute.mean(axis=0).tolist(),
        "absolute_std": absolute.std(axis=0).tolist(),
        "absolute_normalised_mean": relative_to_peak(absolute).mean(axis=0).tolist(),
        "directed_mean": directed.mean(axis=0).tolist(),
        "directed_std": directed.std(axis=0).tolist(),
        "directed_normalised_mean": relative_to_peak(directed).mean(axis=0).tolist(),
    }


def centroid(absolute: np.ndarray) -> np.ndarray:
    """Influence-weighted mean band index per image (rows of ``absolute``): low = low frequencies."""
    absolute = np.abs(np.asarray(absolute, dtype=np.float64))
    weights = absolute.sum(axis=-1)
    index = np.arange(absolute.shape[-1])
    return np.divide(
        absolute @ index, weights, out=np.full(weights.shape, np.nan), where=weights > 0
    )


def summarise(records: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Profiles of explanation records (``Explanation.to_dict()`` rows) by class, outcome and group.

    Returns the ``classes``, ``outcomes``, ``groups`` and ``all`` parts of a run's summary, plus
    ``pairs`` and ``accuracy`` (at the model's threshold, over pairs with known labels).
    """
    buckets: dict[tuple[str, ...], list[np.ndarray]] = defaultdict(list)
    pairs = labelled = correct = 0
    for record in records:
        pairs += 1
        sides = np.array([record["a"]["directed"], record["b"]["directed"]], dtype=np.float64)
        keys: list[tuple[str, ...]] = [("all",)]
        same, decision = record.get("same"), bool(record["decision"])
        if same is not None:
            labelled += 1
            correct += int(bool(same) == decision)
            keys.append(("classes", "genuine" if same else "impostor"))
            keys.append(("outcomes", OUTCOMES[(bool(same), decision)]))
        for name, value in (record.get("groups") or {}).items():
            keys.append(("groups", str(name), str(value)))
        for key in keys:
            buckets[key].append(sides)
    summary: dict[str, Any] = {
        "pairs": pairs,
        "accuracy": correct / labelled if labelled else None,
        "classes": {},
        "outcomes": {},
        "groups": {},
    }
    for key, chunks in sorted(buckets.items()):
        prof = profile(np.concatenate(chunks))
        if key == ("all",):
            summary["all"] = prof
        elif key[0] == "groups":
            summary["groups"].setdefault(key[1], {})[key[2]] = prof
        else:
            summary[key[0]][key[1]] = prof
    return summary


def class_intervals(
    records: Iterable[Mapping[str, Any]],
    identities: Iterable[tuple[str | None, str | None]],
    *,
    n_boot: int = DEFAULT_RESAMPLES,
    level: float = DEFAULT_LEVEL,
    seed: int = 0,
) -> dict[str, Any]:
    """Bootstrap intervals of a run's headline numbers, per class, resampling identities.

    Per class (``all``, ``genuine``, ``impostor``): the mean over pairs of the normalised
    absolute influence per band (each pair's two images averaged) and of the influence-weighted
    centroid band (:func:`centroid`), each with a percentile interval. The resamples draw
    identities with all of their pairs (the identity of image A,
    :func:`freqxfr.stats.identities.pair_clusters`) when every pair's is known, pairs otherwise;
    ``bootstrap`` says which.
    """
    rows = list(records)
    ids = list(identities)
    clusters = pair_clusters(ids)
    out: dict[str, Any] = {
        "bootstrap": {
            "resamples": int(n_boot),
            "level": float(level),
            "seed": int(seed),
            **resampling(clusters, len(rows)),
        },
        "classes": {},
    }
    if not rows:
        return out
    directed = np.array([[r["a"]["directed"], r["b"]["directed"]] for r in rows], np.float64)
    absolute = relative_to_peak(np.abs(directed)).mean(axis=1)  # (n, K)
    cents = centroid(np.abs(directed))  # (n, 2)
    with np.errstate(invalid="ignore"):
        cent = np.nanmean(np.where(np.isfinite(cents), cents, np.nan), axis=1)
    same = [r.get("same") for r in rows]
    members = {
        "all": np.ones(len(rows), bool),
        "genuine": np.array([s is True for s in same]),
        "impostor": np.array([s is False for s in same]),
    }
    for name, sel in members.items():
        n = int(sel.sum())
        if n == 0:
            continue
        units = (
            None if clusters is None else [c for c, keep in zip(clusters, sel, strict=True) if keep]
        )
        w = cluster_weights(n, n_boot, clusters=units, seed=seed)
        band_boot = weighted_means(w, absolute[sel])
        cent_boot = weighted_means(w, cent[sel])
        finite = cent[sel][np.isfinite(cent[sel])]
        out["classes"][name] = {
            "n_pairs": n,
            "n_units": n if units is None else len(set(units)),
            "absolute_normalised_mean": absolute[sel].mean(axis=0).tolist(),
            "absolute_normalised_mean_ci": [
                list(percentile_ci(band_boot[:, k], level)) for k in range(absolute.shape[1])
            ],
            "centroid": float(finite.mean()) if finite.size else None,
            "centroid_ci": list(percentile_ci(cent_boot, level)) if finite.size else None,
        }
    return out
