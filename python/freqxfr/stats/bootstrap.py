"""Bootstrap resampling and percentile confidence intervals. Pure numpy.

The scenarios use it to put intervals on statistics of explained pairs: the cross-resolution
centroid and its shift (resampling pairs), and the morphing-attack detectors' AUC (resampling
identities within each class, so that correlated comparisons move together).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np
import numpy.typing as npt

from freqxfr.common.errors import InputError

DEFAULT_RESAMPLES = 2000
DEFAULT_LEVEL = 0.95


def resample_indices(
    n: int,
    n_boot: int = DEFAULT_RESAMPLES,
    *,
    clusters: Sequence[Hashable] | None = None,
    strata: Sequence[Hashable] | None = None,
    seed: int = 0,
) -> list[np.ndarray]:
    """Index arrays of ``n_boot`` bootstrap resamples of ``n`` items.

    Parameters
    ----------
    n : int
        Number of items.
    n_boot : int
        Number of resamples.
    clusters : sequence, optional
        A cluster label per item; whole clusters are drawn with replacement (default: every
        item is its own cluster).
    strata : sequence, optional
        A stratum label per item (e.g. the class); each stratum is resampled on its own, so every
        resample keeps each stratum's number of clusters. A cluster must lie in one stratum.
    seed : int
        Seed of the random generator; the same arguments give the same resamples.

    Returns
    -------
    list of numpy.ndarray of int
        One index array per resample. Its length varies when clusters differ in size.
    """
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise InputError(f"n must be a positive integer, got {n!r}")
    if not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise InputError(f"n_boot must be a positive integer, got {n_boot!r}")
    cluster_of = _labels(clusters, n, "clusters") if clusters is not None else list(range(n))
    stratum_of = _labels(strata, n, "strata") if strata is not None else [0] * n
    # members[stratum] = list of index arrays, one per cluster
    members: dict[Hashable, dict[Hashable, list[int]]] = {}
    home: dict[Hashable, Hashable] = {}
    for i, (c, s) in enumerate(zip(cluster_of, stratum_of, strict=True)):
        if home.setdefault(c, s) != s:
            raise InputError(f"cluster {c!r} spans two strata ({home[c]!r} and {s!r})")
        members.setdefault(s, {}).setdefault(c, []).append(i)
    groups = [[np.asarray(m) for m in by_cluster.values()] for by_cluster in members.values()]
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(int(n_boot)):
        parts = []
        for group in groups:
            for k in rng.integers(0, len(group), size=len(group)):
                parts.append(group[k])
        out.append(np.concatenate(parts))
    return out


def percentile_ci(samples: npt.ArrayLike, level: float = DEFAULT_LEVEL) -> tuple[float, float]:
    """The central ``level`` percentile interval of bootstrap ``samples`` (NaNs ignored).

    Raises
    ------
    InputError
        ``level`` is not in (0, 1), or no sample is finite.
    """
    if not 0.0 < level < 1.0:
        raise InputError(f"level must lie in (0, 1), got {level}")
    values = np.asarray(samples, dtype=np.float64).ravel()
    values = values[np.isfinite(values)]
    if values.size == 0:
        raise InputError("no finite bootstrap samples to take an interval from")
    tail = 50.0 * (1.0 - level)
    lo, hi = np.percentile(values, [tail, 100.0 - tail])
    return float(lo), float(hi)


def sign_stability(samples: npt.ArrayLike, estimate: float) -> float:
    """Share of bootstrap ``samples`` with the same sign as ``estimate`` (0 counts as neither)."""
    values = np.asarray(samples, dtype=np.float64).ravel()
    if values.size == 0:
        raise InputError("no bootstrap samples")
    sign = np.sign(estimate)
    if sign == 0:
        return float(np.mean(values == 0))
    return float(np.mean(np.sign(values) == sign))


def _labels(values: Sequence[Hashable], n: int, name: str) -> list[Hashable]:
    labels = list(values)
    if len(labels) != n:
        raise InputError(f"{name} must give one label per item ({n}), got {len(labels)}")
    return labels
