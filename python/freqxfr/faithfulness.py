"""Faithfulness of a frequency explanation: deletion and insertion curves (the paper's check).

Deletion: remove bands cumulatively, most influential first, and score after each step (step 0 is
the unaltered image). Insertion: start from the empty spectrum and add bands in the same order.
The same curves for random orders (several seeds) and the reverse order are the baselines. A
faithful explanation makes the score fall faster under deletion than a random order does, i.e. a
lower area under the deletion curve.

The curves come from the core's cumulative modes (running sums of the per-band images), so they
cost model calls, not extra FFTs. Areas use the trapezoid rule over x = step/K in [0, 1], endpoints
included.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .explain import Explainer, Explanation


def curve_area(curve: np.ndarray) -> float:
    """Trapezoid area under a curve sampled at x = 0, 1/K, ..., 1."""
    curve = np.asarray(curve, dtype=np.float64)
    return float(np.trapezoid(curve, dx=1.0 / (curve.shape[-1] - 1)))


@dataclasses.dataclass(frozen=True)
class SideCurves:
    """Curves for one explained image of a pair, against the unaltered other image."""

    order: np.ndarray  # (K,) bands, most influential first
    deletion: np.ndarray  # (K+1,)
    insertion: np.ndarray
    reverse_deletion: np.ndarray
    reverse_insertion: np.ndarray
    random_deletion: np.ndarray  # (seeds, K+1)
    random_insertion: np.ndarray

    def auc(self) -> dict[str, float]:
        return {
            "deletion": curve_area(self.deletion),
            "insertion": curve_area(self.insertion),
            "reverse_deletion": curve_area(self.reverse_deletion),
            "reverse_insertion": curve_area(self.reverse_insertion),
            "random_deletion_mean": float(np.mean([curve_area(c) for c in self.random_deletion])),
            "random_insertion_mean": float(np.mean([curve_area(c) for c in self.random_insertion])),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "order": self.order.tolist(),
            "deletion": self.deletion.tolist(),
            "insertion": self.insertion.tolist(),
            "reverse_deletion": self.reverse_deletion.tolist(),
            "reverse_insertion": self.reverse_insertion.tolist(),
            "random_deletion": self.random_deletion.tolist(),
            "random_insertion": self.random_insertion.tolist(),
            "auc": self.auc(),
        }


@dataclasses.dataclass(frozen=True)
class Faithfulness:
    a: SideCurves
    b: SideCurves
    seeds: tuple[int, ...]
    score_ref: float
    threshold: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": self.a.to_dict(),
            "b": self.b.to_dict(),
            "seeds": list(self.seeds),
            "score_ref": self.score_ref,
            "threshold": self.threshold,
        }


def pair_faithfulness(
    explainer: Explainer,
    a: Any,
    b: Any,
    *,
    seeds: int | Sequence[int] = 5,
    aligned: bool | None = None,
    explanation: Explanation | None = None,
) -> Faithfulness:
    """Deletion/insertion curves for both images of a pair (see the module docstring)."""
    seed_list = tuple(range(seeds)) if isinstance(seeds, int) else tuple(int(s) for s in seeds)
    faces = np.stack([explainer.prepare(a, aligned), explainer.prepare(b, aligned)])
    if explanation is None:
        explanation = explainer.explain(faces[0], faces[1], aligned=True)
    model = explainer.model
    refs = model.embed(faces)
    k = explainer.n_bands
    sides = []
    for side, influence in ((0, explanation.a.absolute), (1, explanation.b.absolute)):
        order = np.argsort(-influence, kind="stable")
        orders = [order, order[::-1]] + [np.random.default_rng(s).permutation(k) for s in seed_list]
        # Every order's cumulative images of this side in one model batch: (orders, 2, K, ...).
        batch = np.empty((len(orders), 2, k, *model.card.input_shape), np.float32)
        for i, o in enumerate(orders):
            explainer._mask(faces[side : side + 1], batch[i, 0:1], "cumulative_delete", o)
            explainer._mask(faces[side : side + 1], batch[i, 1:2], "cumulative_keep", o)
        emb = model.embed_normalised(batch.reshape(-1, *model.card.input_shape),
                                     batch_size=explainer.max_batch)
        other = refs[1 - side][None]
        scores = model.score(emb, other).reshape(len(orders), 2, k)
        # Deletion starts at the unaltered image; insertion at the empty spectrum, which is the
        # last deletion step (every band removed).
        deletion = np.concatenate([np.full((len(orders), 1), explanation.score_ref), scores[:, 0]], 1)
        insertion = np.concatenate([scores[:, 0, -1:], scores[:, 1]], axis=1)
        sides.append(SideCurves(
            order=order, deletion=deletion[0], insertion=insertion[0],
            reverse_deletion=deletion[1], reverse_insertion=insertion[1],
            random_deletion=deletion[2:], random_insertion=insertion[2:],
        ))
    return Faithfulness(sides[0], sides[1], seed_list, explanation.score_ref, explanation.threshold)


def dataset_faithfulness(
    explainer: Explainer, pairs: Sequence[Any], *, seeds: int | Sequence[int] = 5,
    aligned: bool | None = None,
) -> dict[str, Any]:
    """Faithfulness over many pairs: mean areas, and how often deletion in influence order beats
    the random orders (lower deletion area) for an explained image."""
    per_image: list[dict[str, float]] = []
    for pair in pairs:
        result = pair_faithfulness(explainer, pair.path_a, pair.path_b, seeds=seeds, aligned=aligned)
        per_image.extend((result.a.auc(), result.b.auc()))
    if not per_image:
        return {"images": 0, "mean_auc": {}, "deletion_beats_random": float("nan")}
    keys = per_image[0].keys()
    return {
        "images": len(per_image),
        "pairs": len(pairs),
        "seeds": list(seeds) if not isinstance(seeds, int) else list(range(seeds)),
        "mean_auc": {k: float(np.mean([r[k] for r in per_image])) for k in keys},
        "deletion_beats_random": float(np.mean(
            [r["deletion"] < r["random_deletion_mean"] for r in per_image])),
        "insertion_beats_random": float(np.mean(
            [r["insertion"] > r["random_insertion_mean"] for r in per_image])),
        "per_image": per_image,
    }
