"""An unsupervised, frequency-based morph score: how far a comparison's band profile lies from the
profile of bona fide comparisons.

Each comparison contributes one feature vector: the directed influences of its enrolled image,
normalised per image to [-1, 1] (``directed_normalised``), so that the vector describes *which*
bands carry the decision and not how high the score is (the comparison score says that already).
The morph score of a comparison is its distance from the bona fide comparisons:

``"mahalanobis"`` (default)
    ``sqrt((x - m)ᵀ C⁻¹ (x - m))`` with ``m`` the mean and ``C`` the covariance of the bona fide
    vectors, shrunk towards a scaled identity with the Ledoit-Wolf intensity (Ledoit & Wolf 2004,
    "A well-conditioned estimator for large-dimensional covariance matrices"). With about as
    many bona fide comparisons as bands the plain covariance is singular or nearly so.
``"cosine"``
    ``1 - cos(x, m)``.

Leave-one-identity-out: the bona fide mean and covariance used for a comparison exclude every bona
fide comparison of a person in it (for a morph, both of its subjects), so no one's own photos score
their own comparisons. Nothing is fitted to morphs: the score needs bona fide comparisons only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from freqxfr.common.errors import InputError

DISTANCES = ("mahalanobis", "cosine")
DEFAULT_DISTANCE = "mahalanobis"


def ledoit_wolf(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Mean, shrunk covariance and shrinkage intensity of the rows of ``x`` (n, p).

    ``C = (1 - λ) S + λ μ I`` with ``S`` the (1/n) sample covariance, ``μ = tr(S)/p`` and
    ``λ = min(b², d²) / d²``, where ``d² = ‖S − μI‖²/p`` and
    ``b² = Σ_k ‖x_k x_kᵀ − S‖² / (n² p)`` over the centred rows (Frobenius norms).
    """
    x = np.asarray(x, dtype=np.float64)
    n, p = x.shape
    mean = x.mean(axis=0)
    xc = x - mean
    s = xc.T @ xc / n
    mu = np.trace(s) / p
    d2 = np.sum((s - mu * np.eye(p)) ** 2) / p
    # ‖x xᵀ − S‖² = ‖x‖⁴ − 2 xᵀ S x + ‖S‖², summed over rows
    norms2 = np.sum(xc**2, axis=1)
    b2_bar = np.sum(norms2**2 - 2.0 * np.einsum("ij,jk,ik->i", xc, s, xc) + np.sum(s**2))
    b2_bar /= n * n * p
    shrinkage = 0.0 if d2 <= 0 else float(min(b2_bar, d2) / d2)
    cov = (1.0 - shrinkage) * s + shrinkage * mu * np.eye(p)
    return mean, cov, shrinkage


def distance_from(
    x: np.ndarray, reference: np.ndarray, distance: str = DEFAULT_DISTANCE
) -> np.ndarray:
    """Distances of the rows of ``x`` (m, p) from the rows of ``reference`` (n, p) as a class."""
    if distance not in DISTANCES:
        raise InputError(f"distance must be one of {', '.join(DISTANCES)}, got {distance!r}")
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    reference = np.asarray(reference, dtype=np.float64)
    if distance == "cosine":
        m = reference.mean(axis=0)
        norms = np.linalg.norm(x, axis=1) * np.linalg.norm(m)
        return 1.0 - (x @ m) / np.maximum(norms, 1e-30)
    mean, cov, _ = ledoit_wolf(reference)
    diff = x - mean
    # cov is symmetric positive definite once shrunk (μ > 0 unless every vector is equal)
    solved = np.linalg.lstsq(cov, diff.T, rcond=None)[0].T
    return np.sqrt(np.maximum(np.sum(diff * solved, axis=1), 0.0))


def leave_identity_out_scores(
    features: np.ndarray,
    is_bona_fide: Sequence[bool] | np.ndarray,
    identities: Sequence[Sequence[str]],
    distance: str = DEFAULT_DISTANCE,
    *,
    min_reference: int = 2,
) -> tuple[np.ndarray, np.ndarray]:
    """The morph score of every comparison, leave-one-identity-out.

    Parameters
    ----------
    features : array, (n, K)
        One vector per comparison.
    is_bona_fide : sequence of bool, (n,)
        Which comparisons form the bona fide reference.
    identities : sequence of sequences of str, (n,)
        The people in each comparison.
    distance : {"mahalanobis", "cosine"}
    min_reference : int
        Fewest bona fide comparisons a reference may have.

    Returns
    -------
    scores : array, (n,)
        Higher = further from bona fide = more morph-like.
    reference_sizes : int array, (n,)
        How many bona fide comparisons each score was measured against.

    Raises
    ------
    InputError
        A comparison has fewer than ``min_reference`` bona fide comparisons without its people.
    """
    x = np.asarray(features, dtype=np.float64)
    bona_fide = np.asarray(is_bona_fide, dtype=bool)
    people = [set(ids) for ids in identities]
    if x.ndim != 2 or x.shape[0] != bona_fide.size or len(people) != bona_fide.size:
        raise InputError(
            f"features ({x.shape}), is_bona_fide ({bona_fide.size}) and identities "
            f"({len(people)}) must describe the same comparisons"
        )
    scores = np.empty(x.shape[0])
    sizes = np.empty(x.shape[0], dtype=np.int64)
    for i in range(x.shape[0]):
        ref = [j for j in np.flatnonzero(bona_fide) if not people[j] & people[i]]
        if len(ref) < min_reference:
            raise InputError(
                f"comparison {i + 1} ({', '.join(sorted(people[i]))}) has {len(ref)} bona fide "
                f"comparisons of other people to be scored against; at least {min_reference} "
                f"are needed"
            )
        scores[i] = distance_from(x[i], x[ref], distance)[0]
        sizes[i] = len(ref)
    return scores, sizes
