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

**Calibrated null** (:data:`NULL_INFO`). The mean of a few random orders says nothing about how
unusual an explanation's area is, and a meaningless order can beat it: for a non-match, any order
that merely deletes the most supportive band last does. So each explained image also gets a
distribution of ``null_orders`` seeded random orders (the baseline's seeds, then the next ones:
deletion curves only) and the same number of **sanity** orders, random but for the explanation's
most supportive band, which keeps the place the decision-aware order gives it (first for a match,
last for a non-match): the trivial information. Against each null an image gets a percentile (the
share of null orders it beats, ties counting half), an exact permutation p-value and an effect
size (its distance from the null mean in null standard deviations, positive = faithful). The test
depends on the decision:

- **match**: the ``support`` order's deletion area (smaller is faithful);
- **non-match**: deletion measured **toward the threshold**, not the mirror of the match test:
  after each of the ``against`` order's K deletions, the share of the distance from the unaltered
  score to the threshold that it has closed, capped at 1 once the decision has flipped, averaged
  over the steps (larger is faithful). Its own null is the point: the same statistic of the
  random orders' and of the sanity orders' deletion curves, the latter exactly the orders that
  made the old criterion pass without information. (Not the smallest flipping set against random
  *sets of its size*: that size is picked where the order happened to cross, which favours any
  order, a shuffled one too; and on LFW impostor pairs almost nothing flips.)

An image beats a null when its percentile exceeds 1/2 (beats the null's median); the decision rule
**holds** for a class when the images beating the random null and the images beating the sanity
null are each significantly more than half (one-sided sign test, p < :data:`SIGN_TEST_LEVEL`).

**Sign tests per identity** (:func:`unit_vote`). The two images of a genuine pair are one person,
and an image reused across pairs is judged more than once: they are not independent. Where every
image's identity is known (an explicit list, a record's ``identity``, or its path:
:func:`freqxfr.stats.identities.identity_from_path` for LFW and FRLL), each identity votes once:
a win if more than half of its images beat the baseline or null, a loss if fewer, no vote at
exactly half; the sign test runs over the votes, and its ``p_value`` and ``holds`` are the ones
reported (``unit`` "identity"). Where any identity is unknown, images are the units (``unit``
"image", with a ``note`` saying so), as before. ``wins`` and the shares stay per image.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple, Protocol

import numpy as np

from freqxfr.common.errors import InputError
from freqxfr.common.progress import progress_bar
from freqxfr.imaging.images import ImageLike
from freqxfr.imaging.regions import ResolvedRegions
from freqxfr.stats.identities import IDENTITY, identity_from_path


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

    # As the curves call it: into ``out``, in ``mode`` and ``order`` (the explainer's own mask
    # takes these as optional overrides).
    def mask(
        self,
        faces: np.ndarray,
        out: np.ndarray,
        mode: str,
        order: np.ndarray,
        *,
        regions: np.ndarray | None,
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
#: Random orders (and as many sanity orders) per explained image for the calibrated null.
NULL_ORDERS = 20
#: The version of ``faithfulness.json`` (schema: ``freqxfr/schemas/faithfulness.schema.json``).
#: Files without a ``format`` field predate it (no calibrated null).
FAITHFULNESS_FORMAT = "freqxfr.faithfulness/1"
NULL_INFO = {
    "random": "seeded random band orders (the baseline's seeds first), deletion curves",
    "sanity": (
        "random orders but for the explanation's most supportive band, kept where the "
        "decision-aware order puts it (first for a match, last for a non-match)"
    ),
    "match": "support order's deletion area, smaller is faithful",
    "non_match": (
        "toward the threshold: per deletion step of the against order, the share of the "
        "distance to the threshold closed (1 once the decision flipped), averaged over the "
        "steps; larger is faithful"
    ),
    "percentile": "share of null orders the explanation beats (ties count half)",
    "p_value": "exact permutation p-value, (1 + null orders at least as good) / (1 + orders)",
    "effect_size": "(explanation - null mean) / null sd, signed so that positive is faithful",
    "beats": "percentile above 1/2 (beats the null's median)",
    "holds": (
        "images beating the random null and images beating the sanity null each significantly "
        "more than half (one-sided sign test, p < 0.05; one vote per identity where identities are "
        "known, else per image)"
    ),
}


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
    # The calibrated null (absent in curves made without it): the deletion curves of the null's
    # random orders (the baseline's first) and sanity orders, the band the sanity orders pin and
    # the model's threshold (for the threshold statistic).
    null_deletion: np.ndarray | None = None  # (null orders, K+1)
    sanity_deletion: np.ndarray | None = None  # (null orders, K+1)
    pinned_band: int | None = None
    threshold: float | None = None

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
        """Per variant: areas, the random means and whether each curve beats random; with the
        calibrated null also the deletion area's ``percentile``, ``p_value`` and ``effect_size``
        against the null's random orders."""
        rnd_del = float(np.mean([curve_area(c) for c in self.random_deletion]))
        rnd_ins = float(np.mean([curve_area(c) for c in self.random_insertion]))
        null = None if self.null_deletion is None else _areas(self.null_deletion)
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
            if null is not None:
                versus = null_comparison(deletion, null, sign)
                out[name].update({key: versus[key] for key in _PER_VARIANT})
        return out

    def null_test(self) -> dict[str, Any] | None:
        """The decision-aware test against the calibrated null (see the module docstring):
        ``area`` and ``threshold``, each with the explanation's ``value`` and its comparison with the
        ``random`` and ``sanity`` nulls; ``test`` names the one the decision rule uses, and
        ``beats_random``/``beats_sanity`` are that test's. None without the null."""
        if self.null_deletion is None or self.sanity_deletion is None or self.threshold is None:
            return None
        name = self.decision_variant
        curve = self.variant(name).deletion
        sign = _DELETION_SIGN[name]
        area = curve_area(curve)
        toward, step = threshold_statistic(curve, self.threshold, self.decision)
        tests: dict[str, dict[str, Any]] = {
            "area": {
                "value": area,
                "random": null_comparison(area, _areas(self.null_deletion), sign),
                "sanity": null_comparison(area, _areas(self.sanity_deletion), sign),
            },
            "threshold": {
                "value": toward,
                "flip_step": step,
                "random": null_comparison(
                    toward, _toward(self.null_deletion, self.threshold, self.decision), 1
                ),
                "sanity": null_comparison(
                    toward, _toward(self.sanity_deletion, self.threshold, self.decision), 1
                ),
            },
        }
        test = "area" if self.decision else "threshold"
        return {
            "criterion": name,
            "test": test,
            "pinned_band": self.pinned_band,
            "pinned_at": "first" if self.decision else "last",
            "null_orders": int(self.null_deletion.shape[0]),
            **tests,
            "beats_random": tests[test]["random"]["beats"],
            "beats_sanity": tests[test]["sanity"]["beats"],
        }

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
            "null_test": self.null_test(),
            "null_deletion_areas": None
            if self.null_deletion is None
            else _areas(self.null_deletion).tolist(),
            "sanity_deletion_areas": None
            if self.sanity_deletion is None
            else _areas(self.sanity_deletion).tolist(),
        }


_PER_VARIANT = ("percentile", "p_value", "effect_size")


def _areas(curves: np.ndarray) -> np.ndarray:
    return np.array([curve_area(c) for c in curves], np.float64)


def threshold_statistic(
    curve: np.ndarray, threshold: float, decision: bool
) -> tuple[float, int | None]:
    """How far a deletion curve moves the pair toward the other decision: the share of the
    distance from the unaltered score to the threshold that each step 1..K has closed, capped at
    1 (the decision flipped), averaged over the steps (larger is faithful, negative where the
    deletions moved away); and the first step that flips the decision (None where none does).
    A match flips below the threshold, a non-match at or above it."""
    curve = np.asarray(curve, np.float64)
    steps = curve[1:]
    distance = abs(float(curve[0]) - threshold) or 1.0
    closed = (curve[0] - steps) if decision else (steps - curve[0])
    flipped = steps < threshold if decision else steps >= threshold
    share = np.where(flipped, 1.0, np.minimum(closed / distance, 1.0))
    return float(share.mean()), (int(np.argmax(flipped)) + 1 if flipped.any() else None)


def _toward(curves: np.ndarray, threshold: float, decision: bool) -> np.ndarray:
    return np.array([threshold_statistic(c, threshold, decision)[0] for c in curves], np.float64)


def null_comparison(value: float, null: np.ndarray, sign: int) -> dict[str, Any]:
    """``value`` against a null distribution; ``sign`` +1 where larger is faithful, -1 where
    smaller is. ``percentile``: the share of the null it beats (ties half); ``p_value``:
    (1 + null values at least as good) / (1 + n); ``effect_size``: sign·(value − mean)/sd (None
    where the null does not vary); ``beats``: percentile above 1/2."""
    null = np.asarray(null, np.float64)
    n = null.size
    better, worse = sign * value, sign * null
    beaten = int(np.sum(worse < better))
    ties = int(np.sum(worse == better))
    percentile = (beaten + 0.5 * ties) / n
    sd = float(np.std(null, ddof=1)) if n > 1 else 0.0
    mean = float(np.mean(null))
    return {
        "percentile": percentile,
        "p_value": (1 + n - beaten) / (1 + n),
        "effect_size": sign * (value - mean) / sd if sd > 0 else None,
        "null_mean": mean,
        "null_sd": sd,
        "beats": bool(percentile > 0.5),
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


def null_seeds(seeds: tuple[int, ...], null_orders: int) -> tuple[int, ...]:
    """The null's random orders: the baseline's seeds, then the seeds after their largest, up to
    ``null_orders`` in all (never fewer than the baseline's)."""
    if null_orders < 1:
        raise InputError(f"the calibrated null needs at least one order, got {null_orders!r}")
    extra = max(0, null_orders - len(seeds))
    return seeds + tuple(range(max(seeds) + 1, max(seeds) + 1 + extra))


def pinned_order(k: int, band: int, first: bool, seed: int) -> np.ndarray:
    """A sanity order: ``band`` first (or last), the other bands in a seeded random order."""
    rest = np.delete(np.arange(k), band)[np.random.default_rng(seed).permutation(k - 1)]
    return np.concatenate([[band], rest] if first else [rest, [band]])


def pair_faithfulness(
    explainer: Explainer,
    a: ImageLike,
    b: ImageLike,
    *,
    seeds: int | Sequence[int] = 5,
    aligned: bool | None = None,
    explanation: Explanation | None = None,
    same: bool | None = None,
    null_orders: int = NULL_ORDERS,
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
        null_orders=null_orders,
    )


def faithfulness_of(
    explainer: Explainer,
    faces: np.ndarray,
    directed: tuple[np.ndarray, np.ndarray],
    score_ref: float,
    *,
    seeds: int | Sequence[int] = 5,
    same: bool | None = None,
    null_orders: int = NULL_ORDERS,
) -> Faithfulness:
    """The curves of an explained pair from its aligned ``faces`` (2, H, W, 3) and the directed
    influences of both sides (as in ``explanation.json`` or a dataset run's results), with the
    calibrated null of ``null_orders`` random and as many sanity orders."""
    seeds_ = seed_list(seeds)
    nulls = null_seeds(seeds_, null_orders)
    threshold = explainer.model.card.threshold
    decision = bool(score_ref >= threshold)
    directed = (np.asarray(directed[0], np.float64), np.asarray(directed[1], np.float64))
    a, b = (
        _side_curves(explainer, side, seeds_, nulls, threshold)
        for side in _pair_sides(explainer, faces, directed, score_ref, decision)
    )
    return Faithfulness(a, b, seeds_, float(score_ref), threshold, decision, same)


class _Side(NamedTuple):
    """One image of an explained pair as its curves see it: its aligned face, the *other*
    image's reference embedding (what each masked copy is scored against), its directed
    influences, and the pair's score and decision."""

    face: np.ndarray
    other: np.ndarray
    directed: np.ndarray
    score_ref: float
    decision: bool


def _pair_sides(
    explainer: Explainer,
    faces: np.ndarray,
    directed: tuple[np.ndarray, np.ndarray],
    score_ref: float,
    decision: bool,
) -> tuple[_Side, _Side]:
    """Both sides of a pair of aligned ``faces`` (2, H, W, 3): each face with the other's
    reference embedding (one model call for the two)."""
    refs = explainer.model.embed(faces)
    return (
        _Side(faces[0], refs[1], directed[0], score_ref, decision),
        _Side(faces[1], refs[0], directed[1], score_ref, decision),
    )


def _side_curves(
    explainer: Explainer,
    side: _Side,
    seeds: tuple[int, ...],
    nulls: tuple[int, ...],
    threshold: float,
) -> SideCurves:
    face, other, directed, score_ref, decision = side
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
    # The calibrated null: deletion curves only, of the random orders beyond the baseline's and
    # of the sanity orders (the most supportive band first for a match, last for a non-match).
    pinned = int(support[0])
    extra = [np.random.default_rng(s).permutation(k) for s in nulls[len(seeds) :]]
    sanity = [pinned_order(k, pinned, decision, s) for s in nulls]
    null_scores = _deletion_scores(explainer, face, other, extra + sanity)
    null_curves = np.concatenate([np.full((len(null_scores), 1), score_ref), null_scores], axis=1)
    return SideCurves(
        directed=directed,
        decision=decision,
        variants={"support": sup, "against": against, "absolute": abs_curves},
        random_deletion=deletion[n_fixed:],
        random_insertion=insertion[n_fixed:],
        null_deletion=np.concatenate([deletion[n_fixed:], null_curves[: len(extra)]]),
        sanity_deletion=null_curves[len(extra) :],
        pinned_band=pinned,
        threshold=float(threshold),
    )


def _deletion_scores(
    explainer: Explainer,
    face: np.ndarray,
    other: np.ndarray,
    orders: Sequence[np.ndarray],
    chunk: int = 8,
) -> np.ndarray:
    """Cumulative-delete scores (orders, K) of many orders, a few orders per model batch."""
    return np.concatenate(
        [
            _cumulative_scores(
                explainer, face, other, orders[i : i + chunk], ("cumulative_delete",)
            )[:, 0]
            for i in range(0, len(orders), chunk)
        ]
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
    directed = (explanation.a.directed, explanation.b.directed)
    sides = _pair_sides(explainer, faces, directed, explanation.score_ref, explanation.decision)
    return _cell_side(explainer, sides[0], seeds_), _cell_side(explainer, sides[1], seeds_)


def _cell_side(explainer: Explainer, side: _Side, seeds: tuple[int, ...]) -> CellCurves:
    assert explainer.regions is not None
    face, other, directed, score_ref, decision = side
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


def image_records(
    result: Faithfulness,
    index: int,
    paths: tuple[str, str],
    identities: Sequence[str | None] = (None, None),
) -> list[dict[str, Any]]:
    """One record per explained image of a pair: who it is (``identity``: the one given, else
    its path's, else ``None``), its decision and its areas."""
    return [
        {
            "pair": int(index),
            "side": side,
            "path": str(path),
            "identity": given or identity_from_path(path),
            "same": result.same,
            "decision": result.decision,
            "score_ref": result.score_ref,
            "decision_aware": curves.decision_variant,
            "areas": curves.areas(),
            "null_test": curves.null_test(),
        }
        for side, path, given, curves in (
            ("a", paths[0], identities[0], result.a),
            ("b", paths[1], identities[1], result.b),
        )
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


#: The sign test's unit where an identity is unknown.
IMAGE = "image"


def record_identity(record: Mapping[str, Any]) -> str | None:
    """An image record's identity: its ``identity`` field, else its ``path``'s
    (:func:`~freqxfr.stats.identities.identity_from_path`), else ``None``."""
    given = record.get("identity")
    if isinstance(given, str) and given:
        return given
    path = record.get("path")
    return identity_from_path(path) if isinstance(path, str) else None


def unit_vote(beats: Sequence[bool], identities: Sequence[str | None] | None) -> dict[str, Any]:
    """The one-sided sign test over independent units, from each image's win (``beats``).

    With every identity known, an identity votes a win if more than half of its images win, a
    loss if fewer, and not at all at exactly half; the test runs over the votes. Returns
    ``unit`` ("identity"), ``n_units`` (identities), ``unit_wins``, ``unit_ties`` (identities
    without a vote) and ``p_value`` (1 without votes). With ``identities`` ``None`` or any of
    them unknown, images are the units: ``unit`` "image", ``n_units`` and ``unit_wins`` the
    images and their wins, and a ``note`` saying why.
    """
    n = len(beats)
    if identities is not None and len(identities) != n:
        raise InputError(f"identities: {len(identities)} given for {n} images")
    if identities is None or not all(identities):
        wins = sum(bool(b) for b in beats)
        why = "not given" if identities is None else "unknown for some images"
        return {
            "unit": IMAGE,
            "n_units": n,
            "unit_wins": wins,
            "unit_ties": 0,
            "p_value": sign_test_p(wins, n),
            "note": f"identities {why}: the sign test counts images, so the two images of a "
            "pair and images reused across pairs count as independent",
        }
    tally: dict[str, list[int]] = {}
    for won, who in zip(beats, identities, strict=True):
        counts = tally.setdefault(str(who), [0, 0])
        counts[0] += bool(won)
        counts[1] += 1
    wins = sum(2 * w > k for w, k in tally.values())
    ties = sum(2 * w == k for w, k in tally.values())
    votes = len(tally) - ties
    return {
        "unit": IDENTITY,
        "n_units": len(tally),
        "unit_wins": wins,
        "unit_ties": ties,
        "p_value": sign_test_p(wins, votes) if votes else 1.0,
    }


def summarise_faithfulness(
    records: Iterable[Mapping[str, Any]], identities: Sequence[str | None] | None = None
) -> dict[str, Any]:
    """``by_class[cls]`` for cls in :data:`CLASSES`: ``n_images`` and per variant the mean areas,
    ``beats_random`` (share of images), ``insertion_beats_random``, ``wins`` (images), the sign
    test's ``p_value`` and ``holds`` (wins significantly above half at :data:`SIGN_TEST_LEVEL`),
    with the test's ``unit``, ``n_units``, ``unit_wins``, ``unit_ties`` and, for images,
    ``note`` (:func:`unit_vote`), and ``image_p_value`` (the test over images); with the
    calibrated null also per variant the median ``percentile`` and ``effect_size`` of the
    deletion area against the null's random orders, and ``null_test`` (see
    :func:`summarise_null_tests`).

    The sign test votes per identity when every image's identity is known: ``identities`` (one
    per record), else each record's (:func:`record_identity`); otherwise per image. ``p_value``
    and ``holds`` are then the identity-level test's.
    """
    records = list(records)
    if identities is None:
        identities = [record_identity(r) for r in records]
    elif len(identities) != len(records):
        raise InputError(f"identities: {len(identities)} given for {len(records)} images")
    members: dict[str, list[tuple[Mapping[str, Any], str | None]]] = {c: [] for c in CLASSES}
    for record, who in zip(records, identities, strict=True):
        for cls in image_classes(record):
            members[cls].append((record, who))
    by_class: dict[str, Any] = {}
    for cls, listed in members.items():
        rows = [r for r, _ in listed]
        ids = [who for _, who in listed]
        entry: dict[str, Any] = {"n_images": len(rows)}
        for name in VARIANTS:
            areas = [r["areas"][name] for r in rows]
            if not areas:
                entry[name] = None
                continue
            wins = sum(bool(a["beats_random"]) for a in areas)
            vote = unit_vote([bool(a["beats_random"]) for a in areas], ids)
            p = vote["p_value"]
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
                **vote,
                "image_p_value": sign_test_p(wins, len(areas)),
                "holds": bool(p < SIGN_TEST_LEVEL),
            }
            if all("percentile" in a for a in areas):
                entry[name]["percentile"] = float(np.median([a["percentile"] for a in areas]))
                entry[name]["effect_size"] = _median([a["effect_size"] for a in areas])
        if rows and all(r.get("null_test") for r in rows):
            entry["null_test"] = summarise_null_tests([r["null_test"] for r in rows], ids)
        elif not rows:
            entry["null_test"] = None
        by_class[cls] = entry
    return by_class


def _median(values: Iterable[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return float(np.median(kept)) if kept else None


def summarise_null_tests(
    tests: Sequence[Mapping[str, Any]], identities: Sequence[str | None] | None = None
) -> dict[str, Any]:
    """The decision rule over images' :meth:`SideCurves.null_test`: per null (``random``,
    ``sanity``) the ``wins`` (images beating its median), their share ``beats``, the sign test's
    ``p_value`` and ``holds`` with its ``unit``, ``n_units``, ``unit_wins`` and ``unit_ties``
    (:func:`unit_vote`) and ``image_p_value`` (the test over images), the median ``percentile``
    and ``effect_size`` and the share of images ``significant`` on their own (permutation p <
    :data:`SIGN_TEST_LEVEL`); ``holds`` where both hold; ``unit``, ``n_units`` (and ``note`` for
    images) of the tests; ``tests``: how many images each test judged (area for matches,
    threshold otherwise).

    With ``identities`` (one per test) all known, each identity votes once and ``p_value`` and
    ``holds`` are the identity-level test's; without them (or with any unknown) images vote.
    """
    n = len(tests)
    out: dict[str, Any] = {"n_images": n}
    for null in ("random", "sanity"):
        judged = [t[t["test"]][null] for t in tests]
        wins = sum(bool(j["beats"]) for j in judged)
        vote = unit_vote([bool(j["beats"]) for j in judged], identities)
        out.update({k: vote[k] for k in ("unit", "n_units", "note") if k in vote})
        p = vote["p_value"]
        out[null] = {
            "wins": wins,
            "beats": wins / n,
            **{k: vote[k] for k in ("unit", "n_units", "unit_wins", "unit_ties", "p_value")},
            "image_p_value": sign_test_p(wins, n),
            "holds": bool(p < SIGN_TEST_LEVEL),
            "percentile": float(np.median([j["percentile"] for j in judged])),
            "effect_size": _median(j["effect_size"] for j in judged),
            "significant": float(np.mean([j["p_value"] < SIGN_TEST_LEVEL for j in judged])),
        }
    out["holds"] = bool(out["random"]["holds"] and out["sanity"]["holds"])
    out["tests"] = {name: sum(t["test"] == name for t in tests) for name in ("area", "threshold")}
    return out


def verdict(entry: Mapping[str, Any] | None, n_images: int) -> str:
    """A plain sentence on whether a criterion holds for a class (for reports and the CLI)."""
    if not entry:
        return "no images"
    wins = entry["wins"]
    text = f"{wins} of {n_images} images beat random ({entry['beats_random']:.0%})"
    units = _units(entry, n_images)
    if entry.get("unit") == IDENTITY:
        text += f", {_votes(entry)}"
    if entry["holds"]:
        return f"holds: {text}"
    if units < 5:
        return f"too few {_unit_name(entry)} to tell: {text}"
    return f"does NOT hold for this class: {text}, sign test p = {entry['p_value']:.2g}"


def dataset_faithfulness(
    explainer: Explainer,
    pairs: Sequence[Any],
    *,
    seeds: int | Sequence[int] = 5,
    aligned: bool | None = None,
    indices: Sequence[int] | None = None,
    progress: bool = False,
    null_orders: int = NULL_ORDERS,
) -> dict[str, Any]:
    """Faithfulness over many pairs: per-image records and the per-class summary.

    Returns the ``faithfulness.json`` dict: ``format``, ``pairs``, ``n_images``, ``seeds``,
    ``null_orders``, ``variants``, ``null`` (:data:`NULL_INFO`), ``by_class`` (see
    :func:`summarise_faithfulness`: sign tests per identity where every image's is known) and
    ``per_image`` (pair index, side, path, ``identity`` (the pair list's, else the path's, else
    ``None``), ``same``, decision, areas and ``null_test`` of every explained image). ``indices`` are the pairs' places in their
    list (default 0, 1, ...), e.g. when ``pairs`` is a subset of it. ``progress`` shows a progress
    bar.
    """
    nulls = null_seeds(seed_list(seeds), null_orders)
    per_image: list[dict[str, Any]] = []
    bar = progress_bar(progress and len(pairs) > 1, len(pairs), desc="faithfulness")
    for index, pair in zip(range(len(pairs)) if indices is None else indices, pairs, strict=True):
        result = pair_faithfulness(
            explainer,
            pair.path_a,
            pair.path_b,
            seeds=seeds,
            aligned=aligned,
            same=pair.same,
            null_orders=null_orders,
        )
        paths = (str(pair.path_a), str(pair.path_b))
        given = getattr(pair, "identities", None) or (None, None)
        per_image.extend(image_records(result, index, paths, given))
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return {
        "format": FAITHFULNESS_FORMAT,
        "pairs": len(pairs),
        "n_images": len(per_image),
        "seeds": list(seed_list(seeds)),
        "null_orders": len(nulls),
        "variants": VARIANT_INFO,
        "null": NULL_INFO,
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
    return lines + verdicts + null_lines(by_class)


def null_lines(by_class: Mapping[str, Any]) -> list[str]:
    """The decision rule against the calibrated null, per class (for the CLI)."""
    rows: list[tuple[str, Mapping[str, Any]]] = []
    for cls in CLASSES:
        entry = (by_class.get(cls) or {}).get("null_test")
        if entry:
            rows.append((cls, entry))
    if not rows:
        return []
    lines = [
        "decision rule against the calibrated null (match: deletion area; non-match: deletion "
        "toward the threshold), "
        "share of images beating the null's median, median percentile and effect size:",
        f"{'class':<10} {'images':>6} {'random':>8} {'pct':>5} {'effect':>7} "
        f"{'sanity':>8} {'pct':>5} {'effect':>7}  rule",
    ]
    for cls, entry in rows:
        cells = []
        for null in ("random", "sanity"):
            e = entry[null]
            effect = "-" if e["effect_size"] is None else f"{e['effect_size']:.2f}"
            cells.append(
                f"{e['beats']:>7.1%}{'*' if e['holds'] else ' '} {e['percentile']:>5.2f} "
                f"{effect:>7}"
            )
        lines.append(f"{cls:<10} {entry['n_images']:>6} {' '.join(cells)}  {_rule(entry)}")
    units = ", ".join(f"{cls} {_unit_count(entry)}" for cls, entry in rows)
    lines.append(
        "(* = significantly more than half beat that null, one-sided sign test p < "
        f"{SIGN_TEST_LEVEL}, one vote per identity where identities are known; the rule holds "
        "where both do; sanity: random orders but for the most supportive band, first for a "
        f"match, last for a non-match; sign test units: {units})"
    )
    return lines


def _units(entry: Mapping[str, Any], n_images: int) -> int:
    """The sign test's units: identities, or images (summaries before identities: images)."""
    return int(entry.get("n_units", n_images))


def _unit_name(entry: Mapping[str, Any]) -> str:
    return "identities" if entry.get("unit") == IDENTITY else "images"


def _unit_count(entry: Mapping[str, Any]) -> str:
    return f"{_units(entry, entry['n_images'])} {_unit_name(entry)}"


def _votes(entry: Mapping[str, Any]) -> str:
    ties = entry.get("unit_ties") or 0
    tied = f" ({ties} tied, no vote)" if ties else ""
    return f"{entry['unit_wins']} of {entry['n_units']} identities by majority{tied}"


def _rule(entry: Mapping[str, Any]) -> str:
    if entry["holds"]:
        return "holds"
    if _units(entry, entry["n_images"]) < 5:
        return f"too few {_unit_name(entry)} to tell"
    return "does NOT hold"


def null_verdict(entry: Mapping[str, Any] | None) -> str:
    """A plain sentence on the decision rule against the calibrated null for a class."""
    if not entry:
        return "no images"
    n = entry["n_images"]
    text = (
        f"{entry['random']['wins']} of {n} images beat the random null's median, "
        f"{entry['sanity']['wins']} of {n} the sanity null's"
    )
    if entry.get("unit") == IDENTITY:
        text += (
            f" (one vote per identity: {_votes(entry['random'])} against the random null, "
            f"{_votes(entry['sanity'])} against the sanity null)"
        )
    rule = _rule(entry)
    return f"{rule}: {text}" if rule != "does NOT hold" else f"does NOT hold for this class: {text}"
