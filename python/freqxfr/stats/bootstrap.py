"""Bootstrap resampling and percentile confidence intervals. Pure numpy.

The scenarios use it to put intervals on statistics of explained pairs: the cross-resolution
centroid and its shift, the band differences of ``compare`` and the dataset summary's intervals
(resampling identities when they are known, pairs otherwise: :mod:`freqxfr.stats.identities`),
and the morphing-attack detectors' AUC (resampling identities within each class, so that
correlated comparisons move together).

Pairs that share a person are resampled together (a cluster bootstrap): drawing identities with
replacement and taking all of their pairs keeps the dependence between those pairs inside every
resample, so the interval widens by as much as the pairs of one person resemble each other. When
every identity has one pair it is the pair bootstrap, draw for draw (the same seed gives the same
interval). For signs, :func:`cluster_sign_test` counts identities, not pairs: each identity's
mean is one vote, the sign test's independence assumption then holds across people (pairs of
one person are never counted as independent evidence), and no model of the within-person
correlation is needed (unlike a mixed model).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence

import numpy as np
import numpy.typing as npt

from freqxfr.common.errors import InputError

DEFAULT_RESAMPLES = 2000
#: The most resamples any bootstrap draws: 50 times the default, far more than a percentile
#: interval needs. Each resample is a row of (resamples, items) arrays, so an absurd count would
#: take all memory or run for days instead of being refused.
MAX_RESAMPLES = 100_000
DEFAULT_LEVEL = 0.95


def check_resamples(n_boot: object, name: str = "n_boot") -> None:
    """Refuse a resample count that is not an integer in 1..:data:`MAX_RESAMPLES` (``InputError``
    naming ``name``, e.g. the command line's ``--resamples``)."""
    if (
        isinstance(n_boot, bool)
        or not isinstance(n_boot, (int, np.integer))
        or not 1 <= n_boot <= MAX_RESAMPLES
    ):
        raise InputError(
            f"{name} must be a positive integer, at most {MAX_RESAMPLES}, got {n_boot!r}"
        )


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
    check_resamples(n_boot, "n_boot")
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


def cluster_weights(
    n: int,
    n_boot: int = DEFAULT_RESAMPLES,
    *,
    clusters: Sequence[Hashable] | None = None,
    seed: int = 0,
) -> np.ndarray:
    """How often each of ``n`` items is in each of ``n_boot`` cluster-bootstrap resamples.

    Each resample draws as many clusters as there are, with replacement, from
    ``numpy.random.default_rng(seed).integers(0, n_clusters, size=(n_boot, n_clusters))``
    (clusters numbered in order of first appearance), and takes every item of a drawn cluster.
    Without ``clusters`` every item is its own cluster: the draws are then
    ``integers(0, n, size=(n_boot, n))``, and a list in which every cluster holds one item gives
    exactly the same weights.

    Returns
    -------
    numpy.ndarray of int64, shape (n_boot, n)
        A weighted mean ``w @ x / w.sum(axis=1)`` is the resample's mean of ``x``.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise InputError(f"n must be a positive integer, got {n!r}")
    check_resamples(n_boot, "n_boot")
    number, n_clusters = _cluster_numbers(clusters, n)
    draws = np.random.default_rng(seed).integers(0, n_clusters, size=(int(n_boot), n_clusters))
    counts = np.zeros((int(n_boot), n_clusters), np.int64)
    np.add.at(counts, (np.arange(int(n_boot))[:, None], draws), 1)
    return counts[:, number]


def weighted_means(weights: np.ndarray, values: npt.ArrayLike) -> np.ndarray:
    """Per resample (rows of ``weights``, from :func:`cluster_weights`) the weighted mean of
    ``values`` (n,) or of each column of ``values`` (n, m), NaNs left out."""
    x = np.asarray(values, np.float64)
    flat = x.ndim == 1
    x = x[:, None] if flat else x
    finite = np.isfinite(x)
    w = weights.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = (w @ np.where(finite, x, 0.0)) / (w @ finite.astype(np.float64))
    return means[:, 0] if flat else means


def cluster_sign_test(
    values: npt.ArrayLike, clusters: Sequence[Hashable] | None = None
) -> dict[str, object]:
    """A two-sided sign test of ``values`` around 0 with one vote per cluster.

    Each cluster's vote is the sign of the mean of its finite values (a mean of exactly 0 and a
    cluster without finite values abstain); without ``clusters`` every value votes. Returns
    ``unit`` ("identity" or "pair"), ``n`` (votes), ``positive``, ``negative`` and ``p`` (exact
    binomial, ``None`` without votes).
    """
    x = np.asarray(values, np.float64).ravel()
    number, n_clusters = _cluster_numbers(clusters, x.size)
    finite = np.isfinite(x)
    sums = np.bincount(number[finite], weights=x[finite], minlength=n_clusters)
    counts = np.bincount(number[finite], minlength=n_clusters)
    means = sums[counts > 0] / counts[counts > 0]
    positive, negative = int(np.sum(means > 0)), int(np.sum(means < 0))
    return {
        "unit": "pair" if clusters is None else "identity",
        "n": positive + negative,
        "positive": positive,
        "negative": negative,
        "p": binomial_two_sided(min(positive, negative), positive + negative),
    }


def binomial_two_sided(k: int, n: int) -> float | None:
    """P(X <= k or X >= n - k) for X ~ Binomial(n, 1/2) with ``k <= n / 2`` (exact); ``None``
    when ``n`` is 0."""
    if n == 0:
        return None
    tail = sum(math.comb(n, i) for i in range(0, k + 1)) / 2.0**n
    return float(min(1.0, 2.0 * tail))


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


def _cluster_numbers(clusters: Sequence[Hashable] | None, n: int) -> tuple[np.ndarray, int]:
    """Each item's cluster number (clusters numbered in order of first appearance), and how
    many clusters there are."""
    if clusters is None:
        return np.arange(n), n
    numbers: dict[Hashable, int] = {}
    number = np.array(
        [numbers.setdefault(c, len(numbers)) for c in _labels(clusters, n, "clusters")], np.intp
    )
    return number, len(numbers)


def _labels(values: Sequence[Hashable], n: int, name: str) -> list[Hashable]:
    labels = list(values)
    if len(labels) != n:
        raise InputError(f"{name} must give one label per item ({n}), got {len(labels)}")
    return labels
