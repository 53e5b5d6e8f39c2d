"""Faithfulness over (band, region) cells: deletion curves in influence order against random.

As for bands (:mod:`freqxfr.explanations.faithfulness`), decision-aware: for an image of a matched pair the
cells are deleted cumulatively in order of directed influence, largest first (those that supported
the match), and a faithful explanation lowers the score faster than random cell orders (a smaller
deletion area); for a non-match the order is most negative first, and a faithful one raises the
score faster (a larger area). Step 0 is the unaltered image, step K·R every cell deleted (with a
partition of unity: every band everywhere, the empty image). Areas use the trapezoid rule over
x = step / (K·R).

Cost per explained image: K·R masked images per order (the core's cumulative mode over cells:
running sums of the weighted band images, each band image computed once), 1 + seeds orders.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from freqxfr.common.errors import InputError
from freqxfr.explanations.faithfulness import curve_area, seed_list

if TYPE_CHECKING:
    from freqxfr.explanations.explainer import Explainer
    from freqxfr.explanations.region_explanations import RegionExplanation


@dataclasses.dataclass(frozen=True)
class CellCurves:
    """Deletion curves of one explained image over its K·R cells."""

    decision: bool
    order: np.ndarray  # (K·R,) cells (index k·R + r) in the decision-aware order
    deletion: np.ndarray  # (K·R + 1,)
    random_deletion: np.ndarray  # (seeds, K·R + 1)

    @property
    def area(self) -> float:
        return curve_area(self.deletion)

    @property
    def random_area(self) -> float:
        return float(np.mean([curve_area(c) for c in self.random_deletion]))

    @property
    def beats_random(self) -> bool:
        """Faithful for its decision: a smaller area than random for a match, larger otherwise."""
        return self.area < self.random_area if self.decision else self.area > self.random_area

    def to_dict(self) -> dict[str, Any]:
        return {
            "decision": self.decision,
            "order": self.order.tolist(),
            "deletion": self.deletion.tolist(),
            "random_deletion": self.random_deletion.tolist(),
            "deletion_auc": self.area,
            "random_deletion_auc": self.random_area,
            "beats_random": self.beats_random,
        }


def cell_faithfulness(
    explainer: Explainer,
    faces: np.ndarray,
    explanation: RegionExplanation,
    *,
    seeds: int | Sequence[int] = 5,
) -> tuple[CellCurves, CellCurves]:
    """Curves of both sides of a region explanation of the aligned ``faces`` (2, H, W, 3)."""
    if (
        explainer.regions is None
        or getattr(explanation.a, "regions", ()) != explainer.regions.names
    ):
        raise InputError(
            "cell faithfulness needs an explainer with regions and its own region explanation"
        )
    seeds_ = seed_list(seeds)
    refs = explainer.model.embed(faces)
    return tuple(  # type: ignore[return-value]
        _side(
            explainer,
            faces[i],
            refs[1 - i],
            side.directed,
            explanation.score_ref,
            explanation.decision,
            seeds_,
        )
        for i, side in enumerate((explanation.a, explanation.b))
    )


def _side(
    explainer: Explainer,
    face: np.ndarray,
    other: np.ndarray,
    directed: np.ndarray,
    score_ref: float,
    decision: bool,
    seeds: tuple[int, ...],
) -> CellCurves:
    model = explainer.model
    assert explainer.regions is not None
    cells = directed.T.ravel()  # (R, K) -> the core's band-major cell index k·R + r
    n = cells.size
    order = np.argsort(-cells if decision else cells, kind="stable")
    orders = [order] + [np.random.default_rng(s).permutation(n) for s in seeds]
    shape = model.card.input_shape
    batch = np.empty((len(orders), n, *shape), np.float32)
    for i, o in enumerate(orders):
        explainer.mask(
            face[None],
            batch[i : i + 1],
            mode="cumulative_delete",
            order=o,
            regions=explainer.regions.weights,
        )
    emb = model.embed_model_input(batch.reshape(-1, *shape), batch_size=explainer.max_batch)
    scores = model.score(emb, other[None]).reshape(len(orders), n)
    curves = np.concatenate([np.full((len(orders), 1), score_ref), scores], axis=1)
    return CellCurves(decision, order, curves[0], curves[1:])
