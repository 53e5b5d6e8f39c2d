"""Faithfulness of a frequency explanation: deletion and insertion curves, decision-aware.

Deletion removes bands cumulatively in some order and scores after each step (step 0 is the
unaltered image, step K the empty spectrum). Insertion starts from the empty spectrum and adds the
bands in the same order (step K is the whole image again). Random orders (several seeds, the same
for every image) are the baseline. Areas use the trapezoid rule over x = step/K in [0, 1],
endpoints included.

Which order, and which direction counts as faithful, depends on the decision (the paper's absolute
order treats every influential band alike, but for a non-match most influence works *against* the
match, so deleting it raises the score):

- ``support``: directed influence, largest first (the bands that supported the match). Deleting
  them should *lower* the score faster than random (smaller deletion area); inserting them first
  should raise it faster (larger insertion area). The criterion for a **match**.
- ``against``: directed influence, most negative first (the bands that worked against the match).
  Deleting them should *raise* the score faster than random (larger deletion area); inserting them
  first should keep it lower (smaller insertion area). The criterion for a **non-match**.
- ``absolute``: absolute influence, largest first, judged like ``support`` (the paper's check).
- ``decision_aware``: ``support`` for images of matched pairs, ``against`` for non-matched ones.

``against`` is ``support`` reversed, and deleting the last j bands of an order keeps the first
K - j: its deletion curve is ``support``'s insertion curve read backwards (and vice versa), so it
costs no model calls. A reverse-order baseline would add nothing for the same reason, and is gone.
Cost per explained image: 2K masked images (one cumulative-delete and one cumulative-keep pass,
running sums of the per-band images, no extra FFTs) per distinct order: ``absolute`` (skipped where
it equals ``support``), ``support`` and each random seed.

Per class (``genuine``/``impostor`` by ground truth, ``match``/``non_match`` by the decision),
:func:`summarise_faithfulness` reports each variant's mean areas and the share of images that beat
the random mean, with a one-sided sign test; a criterion "holds" for a class only where the wins
are significantly more than half.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from freqxfr.common.errors import InputError
from freqxfr.common.progress import progress_bar
from freqxfr.imaging.images import ImageLike
from freqxfr.imaging.regions import ResolvedRegions


# What the curves need of an explainer and an explanation; freqxfr.Explainer and Explanation are
# such. Typed structurally so that this module does not import the explainer, which offers the
# curves as Explainer.faithfulness (one import direction: explanations -> faithfulness).
class Explainer(Protocol):
    model: Any
    max_batch: int
    regions: ResolvedRegions | None  # the region set of a region explainer

    @property
    def n_bands(self) -> int: ...

    def align(self, image: ImageLike, aligned: bool | None = None) -> Any: ...

    def explain(self, a: ImageLike, b: ImageLike, *, aligned: bool | None = None) -> Any: ...

    def mask(
        self,
        faces: np.ndarray,
        out: np.ndarray | None = None,
        mode: str | None = None,
        order: Sequence[int] | np.ndarray | None = None,
        *,
        regions: np.ndarray | None = None,
    ) -> np.ndarray: ...


class Explanation(Protocol):
    # Read-only members, so that a frozen dataclass (freqxfr.Explanation) is one.
    @property
    def a(self) -> Any: ...  # .directed: (K,) directed influences of image a ((R, K) with regions)
    @property
    def b(self) -> Any: ...
    @property
    def score_ref(self) -> float: ...
    @property
    def decision(self) -> bool: ...
    @property
    def same(self) -> bool | None: ...


VARIANTS = ("decision_aware", "support", "against", "absolute")
CLASSES = ("genuine", "impostor", "match", "non_match")
# +1: a faithful deletion curve lies above the random one (the score rises); -1: below.
_DELETION_SIGN = {"support": -1, "against": 1, "absolute": -1}
VARIANT_INFO = {
    "decision_aware": {
        "order": "support for a match, against for a non-match",
        "faithful_deletion": "lower area than random for a match, higher for a non-match",
    },
    "support": {
        "order": "directed influence, largest first (bands that supported the match)",
        "faithful_deletion": "lower area than random (deleting them lowers the score)",
    },
    "against": {
        "order": "directed influence, most negative first (bands that worked against the match)",
        "faithful_deletion": "higher area than random (deleting them raises the score)",
    },
    "absolute": {
        "order": "absolute influence, largest first (the paper's order)",
        "faithful_deletion": "lower area than random (deleting them lowers the score)",
    },
}
SIGN_TEST_LEVEL = 0.05


def curve_area(curve: np.ndarray) -> float:
    """Trapezoid area under a curve sampled at x = 0, 1/K, ..., 1."""
    curve = np.asarray(curve, dtype=np.float64)
    return float(np.trapezoid(curve, dx=1.0 / (curve.shape[-1] - 1)))


def faithful_text(decision: bool) -> str:
    """Which direction is faithful for an image of a pair with this decision."""
    if decision:
        return (
            "match: deleting the bands that supported the match first should lower the "
            "score faster than random"
        )
    return (
        "non-match: deleting the bands that worked against the match first should raise "
        "the score faster than random"
    )


@dataclasses.dataclass(frozen=True)
class VariantCurves:
    """Deletion and insertion curves of one order."""

    order: np.ndarray  # (K,) bands in deletion order
    deletion: np.ndarray  # (K+1,)
    insertion: np.ndarray  # (K+1,)


@dataclasses.dataclass(frozen=True)
class SideCurves:
    """Curves for one explained image of a pair, against the unaltered other image.

    ``order``, ``deletion`` and ``insertion`` are the ``absolute`` variant's (the paper's);
    :meth:`variant` gives any variant.
    """

    directed: np.ndarray  # (K,) directed influence of each band
    decision: bool  # the pair's decision (match)
    variants: Mapping[str, VariantCurves]  # support, against, absolute
    random_deletion: np.ndarray  # (seeds, K+1)
    random_insertion: np.ndarray

    @property
    def order(self) -> np.ndarray:
        return self.variants["absolute"].order

    @property
    def deletion(self) -> np.ndarray:
        return self.variants["absolute"].deletion

    @property
    def insertion(self) -> np.ndarray:
        return self.variants["absolute"].insertion

    @property
    def decision_variant(self) -> str:
        """The variant whose criterion fits this image's decision."""
        return "support" if self.decision else "against"

    def variant(self, name: str) -> VariantCurves:
        return self.variants[self.decision_variant if name == "decision_aware" else name]

    def auc(self) -> dict[str, float]:
        """Areas of the absolute variant and the random mean (the paper's numbers)."""
        return {
            "deletion": curve_area(self.deletion),
            "insertion": curve_area(self.insertion),
            "random_deletion_mean": float(np.mean([curve_area(c) for c in self.random_deletion])),
            "random_insertion_mean": float(np.mean([curve_area(c) for c in self.random_insertion])),
        }

    def areas(self) -> dict[str, dict[str, Any]]:
        """Per variant: areas, the random means and whether each curve beats random."""
        rnd_del = float(np.mean([curve_area(c) for c in self.random_deletion]))
        rnd_ins = float(np.mean([curve_area(c) for c in self.random_insertion]))
        out = {}
        for name in VARIANTS:
            curves = self.variant(name)
            sign = _DELETION_SIGN[self.decision_variant if name == "decision_aware" else name]
            deletion, insertion = curve_area(curves.deletion), curve_area(curves.insertion)
            out[name] = {
                "deletion_auc": deletion,
                "random_deletion_auc": rnd_del,
                "insertion_auc": insertion,
                "random_insertion_auc": rnd_ins,
                "beats_random": bool(sign * (deletion - rnd_del) > 0),
                "insertion_beats_random": bool(sign * (insertion - rnd_ins) < 0),
            }
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "order": self.order.tolist(),
            "deletion": self.deletion.tolist(),
            "insertion": self.insertion.tolist(),
            "random_deletion": self.random_deletion.tolist(),
            "random_insertion": self.random_insertion.tolist(),
            "auc": self.auc(),
            "decision_aware": self.decision_variant,
            "faithful": faithful_text(self.decision),
            "variants": {
                name: {
                    "order": v.order.tolist(),
                    "deletion": v.deletion.tolist(),
                    "insertion": v.insertion.tolist(),
                }
                for name, v in self.variants.items()
            },
            "areas": self.areas(),
        }


@dataclasses.dataclass(frozen=True)
class Faithfulness:
    a: SideCurves
    b: SideCurves
    seeds: tuple[int, ...]
    score_ref: float
    threshold: float
    decision: bool = True
    same: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": self.a.to_dict(),
            "b": self.b.to_dict(),
            "seeds": list(self.seeds),
            "score_ref": self.score_ref,
            "threshold": self.threshold,
            "decision": self.decision,
            "same": self.same,
            "faithful": faithful_text(self.decision),
            "variants": VARIANT_INFO,
        }


def seed_list(seeds: int | Sequence[int]) -> tuple[int, ...]:
    """The random orders' seeds: ``range(seeds)`` for an int; at least one is needed."""
    out = tuple(range(seeds)) if isinstance(seeds, int) else tuple(int(s) for s in seeds)
    if not out:
        raise InputError(f"faithfulness needs at least one random order (seeds), got {seeds!r}")
    return out


def pair_faithfulness(
    explainer: Explainer,
    a: ImageLike,
    b: ImageLike,
    *,
    seeds: int | Sequence[int] = 5,
    aligned: bool | None = None,
    explanation: Explanation | None = None,
    same: bool | None = None,
) -> Faithfulness:
    """Deletion/insertion curves for both images of a pair (see the module docstring)."""
    face_a, face_b = explainer.align(a, aligned), explainer.align(b, aligned)
    faces = np.stack([face_a.pixels, face_b.pixels])
    if explanation is None:
        explanation = explainer.explain(face_a, face_b, aligned=True)
    return faithfulness_of(
        explainer,
        faces,
        (explanation.a.directed, explanation.b.directed),
        explanation.score_ref,
        seeds=seeds,
        same=explanation.same if same is None else same,
    )


def faithfulness_of(
    explainer: Explainer,
    faces: np.ndarray,
    directed: tuple[np.ndarray, np.ndarray],
    score_ref: float,
    *,
    seeds: int | Sequence[int] = 5,
    same: bool | None = None,
) -> Faithfulness:
    """The curves of an explained pair from its aligned ``faces`` (2, H, W, 3) and the directed
    influences of both sides (as in ``explanation.json`` or a dataset run's results)."""
    seeds_ = seed_list(seeds)
    threshold = explainer.model.card.threshold
    decision = bool(score_ref >= threshold)
    refs = explainer.model.embed(faces)
    sides = [
        _side_curves(
            explainer,
            faces[side],
            refs[1 - side],
            np.asarray(directed[side], np.float64),
            score_ref,
            decision,
            seeds_,
        )
        for side in (0, 1)
    ]
    return Faithfulness(sides[0], sides[1], seeds_, float(score_ref), threshold, decision, same)


def _side_curves(
    explainer: Explainer,
    face: np.ndarray,
    other: np.ndarray,
    directed: np.ndarray,
    score_ref: float,
    decision: bool,
    seeds: tuple[int, ...],
) -> SideCurves:
    k = explainer.n_bands
    support = np.argsort(-directed, kind="stable")
    absolute = np.argsort(-np.abs(directed), kind="stable")
    shared = bool(np.array_equal(support, absolute))  # e.g. every band supported the match
    orders = [support] + ([] if shared else [absolute])
    orders += [np.random.default_rng(s).permutation(k) for s in seeds]
    scores = _cumulative_scores(
        explainer, face, other, orders, ("cumulative_delete", "cumulative_keep")
    )
    # Deletion starts at the unaltered image; insertion at the empty spectrum, which is the
    # last deletion step (every band removed).
    deletion = np.concatenate([np.full((len(orders), 1), score_ref), scores[:, 0]], axis=1)
    insertion = np.concatenate([scores[:, 0, -1:], scores[:, 1]], axis=1)
    sup = VariantCurves(support, deletion[0], insertion[0])
    # Deleting the first j of the reversed order keeps the first K - j of ``support``: the same
    # images as support's insertion, read backwards (step 0 is the unaltered image exactly).
    against_deletion = insertion[0][::-1].copy()
    against_deletion[0] = score_ref
    against = VariantCurves(support[::-1].copy(), against_deletion, deletion[0][::-1].copy())
    abs_curves = sup if shared else VariantCurves(absolute, deletion[1], insertion[1])
    n_fixed = 1 if shared else 2
    return SideCurves(
        directed=directed,
        decision=decision,
        variants={"support": sup, "against": against, "absolute": abs_curves},
        random_deletion=deletion[n_fixed:],
        random_insertion=insertion[n_fixed:],
    )


def _cumulative_scores(
    explainer: Explainer,
    face: np.ndarray,
    other: np.ndarray,
    orders: Sequence[np.ndarray],
    modes: Sequence[str],
    regions: np.ndarray | None = None,
) -> np.ndarray:
    """Scores against ``other`` of ``face``'s cumulative images, (orders, modes, C), C the
    bands or (with ``regions``) the band-major cells: every order's images in one model batch."""
    model = explainer.model
    shape = model.card.input_shape
    c = len(orders[0])
    batch = np.empty((len(orders), len(modes), c, *shape), np.float32)
    for i, o in enumerate(orders):
        for m, mode in enumerate(modes):
            explainer.mask(face[None], batch[i, m : m + 1], mode, o, regions=regions)
    emb = model.embed_model_input(batch.reshape(-1, *shape), batch_size=explainer.max_batch)
    return model.score(emb, other[None]).reshape(len(orders), len(modes), c)


# ---- cells: (band, region) ---------------------------------------------------------------------
#
# Faithfulness over (band, region) cells: deletion curves in influence order against random.
#
# As for bands (above), decision-aware: for an image of a matched pair the
# cells are deleted cumulatively in order of directed influence, largest first (those that supported
# the match), and a faithful explanation lowers the score faster than random cell orders (a smaller
# deletion area); for a non-match the order is most negative first, and a faithful one raises the
# score faster (a larger area). Step 0 is the unaltered image, step K·R every cell deleted (with a
# partition of unity: every band everywhere, the empty image). Areas use the trapezoid rule over
# x = step / (K·R).
#
# Cost per explained image: K·R masked images per order (the core's cumulative mode over cells:
# running sums of the weighted band images, each band image computed once), 1 + seeds orders.


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
    explanation: Explanation,
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
        _cell_side(
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


def _cell_side(
    explainer: Explainer,
    face: np.ndarray,
    other: np.ndarray,
    directed: np.ndarray,
    score_ref: float,
    decision: bool,
    seeds: tuple[int, ...],
) -> CellCurves:
    assert explainer.regions is not None
    cells = directed.T.ravel()  # (R, K) -> the core's band-major cell index k·R + r
    n = cells.size
    order = np.argsort(-cells if decision else cells, kind="stable")
    orders = [order] + [np.random.default_rng(s).permutation(n) for s in seeds]
    scores = _cumulative_scores(
        explainer, face, other, orders, ("cumulative_delete",), explainer.regions.weights
    )[:, 0]
    curves = np.concatenate([np.full((len(orders), 1), score_ref), scores], axis=1)
    return CellCurves(decision, order, curves[0], curves[1:])


# ---- many images ------------------------------------------------------------------------------


def image_records(result: Faithfulness, index: int, paths: tuple[str, str]) -> list[dict[str, Any]]:
    """One record per explained image of a pair: who it is, its decision and its areas."""
    return [
        {
            "pair": int(index),
            "side": side,
            "path": str(path),
            "same": result.same,
            "decision": result.decision,
            "score_ref": result.score_ref,
            "decision_aware": curves.decision_variant,
            "areas": curves.areas(),
        }
        for side, path, curves in (("a", paths[0], result.a), ("b", paths[1], result.b))
    ]


def image_classes(record: Mapping[str, Any]) -> list[str]:
    """The classes an image record counts in: ground truth (if known) and decision."""
    classes = ["match" if record["decision"] else "non_match"]
    if record.get("same") is not None:
        classes.insert(0, "genuine" if record["same"] else "impostor")
    return classes


def sign_test_p(wins: int, n: int) -> float:
    """One-sided exact binomial p-value of ``wins`` or more out of ``n`` at a win chance of 1/2."""
    if n == 0:
        return float("nan")
    return math.fsum(math.comb(n, i) for i in range(wins, n + 1)) / 2.0**n


def summarise_faithfulness(records: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """``by_class[cls]`` for cls in :data:`CLASSES`: ``n_images`` and per variant the mean areas,
    ``beats_random`` (share of images), ``insertion_beats_random``, ``wins``, the sign test's
    ``p_value`` and ``holds`` (wins significantly above half at :data:`SIGN_TEST_LEVEL`)."""
    members: dict[str, list[Mapping[str, Any]]] = {c: [] for c in CLASSES}
    for record in records:
        for cls in image_classes(record):
            members[cls].append(record)
    by_class: dict[str, Any] = {}
    for cls, rows in members.items():
        entry: dict[str, Any] = {"n_images": len(rows)}
        for name in VARIANTS:
            areas = [r["areas"][name] for r in rows]
            if not areas:
                entry[name] = None
                continue
            wins = sum(bool(a["beats_random"]) for a in areas)
            p = sign_test_p(wins, len(areas))
            entry[name] = {
                **{
                    key: float(np.mean([a[key] for a in areas]))
                    for key in (
                        "deletion_auc",
                        "random_deletion_auc",
                        "insertion_auc",
                        "random_insertion_auc",
                    )
                },
                "beats_random": wins / len(areas),
                "insertion_beats_random": float(
                    np.mean([a["insertion_beats_random"] for a in areas])
                ),
                "wins": wins,
                "p_value": p,
                "holds": bool(p < SIGN_TEST_LEVEL),
            }
        by_class[cls] = entry
    return by_class


def verdict(entry: Mapping[str, Any] | None, n_images: int) -> str:
    """A plain sentence on whether a criterion holds for a class (for reports and the CLI)."""
    if not entry:
        return "no images"
    wins = entry["wins"]
    text = f"{wins} of {n_images} images beat random ({entry['beats_random']:.0%})"
    if entry["holds"]:
        return f"holds: {text}"
    if n_images < 5:
        return f"too few images to tell: {text}"
    return f"does NOT hold for this class: {text}, sign test p = {entry['p_value']:.2g}"


def dataset_faithfulness(
    explainer: Explainer,
    pairs: Sequence[Any],
    *,
    seeds: int | Sequence[int] = 5,
    aligned: bool | None = None,
    indices: Sequence[int] | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Faithfulness over many pairs: per-image records and the per-class summary.

    Returns the ``faithfulness.json`` dict: ``pairs``, ``n_images``, ``seeds``, ``variants``,
    ``by_class`` (see :func:`summarise_faithfulness`) and ``per_image`` (pair index, side, path,
    ``same``, decision and areas of every explained image). ``indices`` are the pairs' places in
    their list (default 0, 1, ...), e.g. when ``pairs`` is a subset of it. ``progress`` shows a
    progress bar.
    """
    per_image: list[dict[str, Any]] = []
    bar = progress_bar(progress and len(pairs) > 1, len(pairs), desc="faithfulness")
    for index, pair in zip(range(len(pairs)) if indices is None else indices, pairs, strict=True):
        result = pair_faithfulness(
            explainer, pair.path_a, pair.path_b, seeds=seeds, aligned=aligned, same=pair.same
        )
        per_image.extend(image_records(result, index, (str(pair.path_a), str(pair.path_b))))
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return {
        "pairs": len(pairs),
        "n_images": len(per_image),
        "seeds": list(seed_list(seeds)),
        "variants": VARIANT_INFO,
        "by_class": summarise_faithfulness(per_image),
        "per_image": per_image,
    }


def summary_lines(by_class: Mapping[str, Any]) -> list[str]:
    """The per-class win rates as a small text table, and a verdict per class (for the CLI)."""
    lines = [
        "share of images whose deletion curve beats the random orders' mean, per variant:",
        f"{'class':<10} {'images':>6} " + " ".join(f"{v:>15}" for v in VARIANTS),
    ]
    verdicts = []
    for cls in CLASSES:
        entry = by_class.get(cls) or {}
        n = int(entry.get("n_images") or 0)
        if not n:
            continue
        cells = [
            f"{entry[v]['beats_random']:>14.1%}{'*' if entry[v]['holds'] else ' '}"
            for v in VARIANTS
        ]
        lines.append(f"{cls:<10} {n:>6} " + " ".join(cells))
        verdicts.append(f"  {cls}: decision-aware criterion {verdict(entry['decision_aware'], n)}")
    lines.append(
        "(* = holds: wins significantly above half, one-sided sign test p < "
        f"{SIGN_TEST_LEVEL}; match: deletion should lower the score, non-match: raise it)"
    )
    return lines + verdicts
