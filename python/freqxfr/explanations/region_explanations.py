"""Where and at which frequency: explanations over (band, region) cells.

For image x of a pair, band k's image is b_k(x) and region r's weights w_r (a partition of unity,
:mod:`freqxfr.imaging.regions`). Deleting cell (k, r) gives x − w_r ⊙ b_k(x); its score against the other,
unaltered image is s_{k,r}, and its influence s_ref − s_{k,r} (directed) or |s_ref − s_{k,r}|
(absolute), as for bands. The R cells of a band add up exactly to the band's deletion; the
model is not linear, so their influences need not add up to the band's.

Cost: 2·K·R + 2 embeddings per pair (K·R + 1 for a one-sided explanation against a stored
template, :mod:`freqxfr.explanations.templates`). Pair explanations go through the model's engine
like band explanations (a request of 2·K·R + 2 images, batched with other callers' requests);
with ``engine=False`` they run on the caller's thread (:func:`explain_pair`).
"""

from __future__ import annotations

import base64
import concurrent.futures
import dataclasses
import hashlib
import itertools
import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from freqxfr.common.errors import FreqxfrError
from freqxfr.explanations.explainer import Explanation, ImageExplanation, PairFailure
from freqxfr.explanations.rows import influence_rows
from freqxfr.imaging.images import AlignedFace, source_label
from freqxfr.imaging.regions import Regions, ResolvedRegions, as_regions
from freqxfr.model.verifier import to_model_input

if TYPE_CHECKING:
    from freqxfr.explanations.explainer import Explainer
    from freqxfr.explanations.pairs import Pair


def resolve_for_model(regions: Regions | str | np.ndarray, card: Any) -> ResolvedRegions:
    """A region set at the model's input size, on its alignment's template."""
    h, w = card.input_size
    return as_regions(regions).resolve(h, w, card.alignment)


def _normalised(values: np.ndarray) -> np.ndarray:
    peak = float(np.abs(values).max()) if values.size else 0.0
    return values / peak if peak > 0 else np.zeros_like(values)


@dataclasses.dataclass(frozen=True)
class RegionImageExplanation(ImageExplanation):
    """One image's influences per cell: ``scores``, ``absolute``, ``directed`` and their
    normalised views are (R, K) arrays (region r, band k), normalised over all cells."""

    regions: tuple[str, ...] = ()

    # Over all cells of the image, not per region row (the band-only views divide the last
    # axis by its peak, which here would make every region's strongest band ±1).
    @property
    def absolute_relative(self) -> np.ndarray:
        """``absolute`` divided by its largest value over all cells."""
        return _normalised(self.absolute)

    @property
    def directed_relative(self) -> np.ndarray:
        """``directed`` divided by its largest magnitude over all cells."""
        return _normalised(self.directed)

    absolute_normalised = absolute_relative
    directed_normalised = directed_relative

    @property
    def directed_by_region(self) -> np.ndarray:
        """(R,) directed influence summed over the bands."""
        return self.directed.sum(axis=1)

    @property
    def directed_by_band(self) -> np.ndarray:
        """(K,) directed influence summed over the regions."""
        return self.directed.sum(axis=0)

    def region_share(self, names: tuple[str, ...] | list[str], bands: slice | list[int]) -> float:
        """The share of the absolute influence of ``bands`` that lies in the regions ``names``."""
        absolute = self.absolute[:, bands]
        total = float(absolute.sum())
        rows = [self.regions.index(n) for n in names]
        return float(absolute[rows].sum()) / total if total > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            **super().to_dict(),
            "regions": list(self.regions),
            "directed_by_region": self.directed_by_region.tolist(),
            "directed_by_band": self.directed_by_band.tolist(),
        }


@dataclasses.dataclass(frozen=True)
class RegionExplanation(Explanation):
    """A pair explanation over cells: ``a`` and ``b`` are :class:`RegionImageExplanation`;
    ``regions`` holds the names, each region's area and the weights' provenance."""

    regions: ResolvedRegions | None = None

    def to_dict(self, *, settings: bool = True) -> dict[str, Any]:
        out = super().to_dict(settings=settings)
        out["regions"] = self.regions.to_dict() if self.regions is not None else None
        return out

    def to_rows(self) -> list[dict[str, Any]]:
        """A tidy table: one row per image × band × region."""
        return influence_rows(self, (("a", self.a), ("b", self.b)))


def masked_batch(explainer: Explainer, faces: np.ndarray, cells: int) -> np.ndarray:
    """[references (n)] + [masked (n × cells)] of prepared faces, in the model's input layout."""
    shape = explainer.model.card.input_shape
    n = len(faces)
    batch = np.empty((n + n * cells, *shape), np.float32)
    batch[:n] = to_model_input(faces, explainer.model.card)
    explainer.mask(
        faces,
        batch[n:].reshape(n, cells, *shape),
        regions=None if explainer.regions is None else explainer.regions.weights,
    )
    return batch


def image_explanation(
    explainer: Explainer, source: str, scores: np.ndarray, s_ref: float
) -> ImageExplanation:
    """The side's explanation: per band, or per (region, band) cell with regions."""
    if explainer.regions is None:
        return ImageExplanation(source, scores, s_ref)
    k, r = explainer.n_bands, len(explainer.regions)
    # The core's cells are band-major (k·R + r); explanations show (region, band).
    cells = scores.reshape(k, r).T.copy()
    return RegionImageExplanation(source, cells, s_ref, regions=explainer.regions.names)


def explain_pair(
    explainer: Explainer,
    a: Any,
    b: Any,
    *,
    aligned: bool | None = None,
    same: bool | None = None,
    groups: dict[str, str] | None = None,
) -> RegionExplanation:
    """:meth:`Explainer.explain` with regions: 2·K·R + 2 embeddings."""
    assert explainer.regions is not None
    t0 = time.perf_counter()
    faces = np.stack([explainer.prepare(a, aligned), explainer.prepare(b, aligned)])
    t1 = time.perf_counter()
    batch = masked_batch(explainer, faces, explainer.cells)
    t2 = time.perf_counter()
    emb = explainer.model.embed_model_input(batch, batch_size=explainer.max_batch)
    t3 = time.perf_counter()
    timings = {"prepare": (t1 - t0) * 1e3, "mask": (t2 - t1) * 1e3, "model": (t3 - t2) * 1e3}
    sources = (source_label(a), source_label(b))
    return explanation_from_rows(explainer, emb, sources, timings, same, groups)


def explanation_from_rows(
    explainer: Explainer,
    emb: np.ndarray,
    sources: tuple[str, str],
    timings: dict[str, float],
    same: bool | None,
    groups: dict[str, str] | None,
) -> RegionExplanation:
    """The pair's explanation from its 2·K·R + 2 embeddings in a lone call's layout
    ([ref a, ref b, K·R cells of a, K·R cells of b]; the engine returns them so)."""
    score = explainer.model.score
    ref_a, ref_b = emb[0], emb[1]
    masked = emb[2:].reshape(2, explainer.cells, -1)
    s_ref = float(score(ref_a, ref_b))
    card = explainer.model.card
    return RegionExplanation(
        score_ref=s_ref,
        threshold=card.threshold,
        decision=bool(s_ref >= card.threshold),
        a=image_explanation(explainer, sources[0], score(masked[0], ref_b[None]), s_ref),
        b=image_explanation(explainer, sources[1], score(ref_a[None], masked[1]), s_ref),
        bands=explainer.bands,
        schedule=explainer.schedule,
        settings=explainer.settings(),
        timings_ms={key: round(v, 3) for key, v in timings.items()},
        same=same,
        groups=dict(groups or {}),
        regions=explainer.regions,
    )


def band_explainer(explainer: Explainer) -> Explainer:
    """The band-only twin of a region explainer: same model (shared, not reloaded), bands and
    masking options, no regions. Reports and dataset runs show the bands as without regions and
    add the cells (2·K + 2 more embeddings per pair next to the 2·K·R + 2 of the cells)."""
    return explainer.with_(regions=None)


def explain_pairs_and_cells(
    explainer: Explainer,
    pairs: Iterable[Pair],
    *,
    indices: Iterable[int],
    aligned: bool | None = None,
    overlap: bool = True,
) -> Iterator[tuple[Explanation, RegionExplanation] | PairFailure]:
    """Each pair's band explanation and its region cells, in order (a dataset run's lines).

    Each image is loaded and aligned once (:meth:`Explainer.align`) for both: the band-only twin
    (:func:`band_explainer`) and the region explainer take the aligned faces as they are. The
    band explanations are batched as :meth:`Explainer.explain_pairs` batches them (a model
    call of whole pairs), the cells go one pair at a time. With ``overlap`` the next pair is
    aligned on a worker thread while the model runs on this one. A pair whose image can't be
    used gives a :class:`PairFailure` (numbered by ``indices``)."""
    assert explainer.regions is not None
    bands = band_explainer(explainer)
    per_call = max(1, bands.max_batch // bands.images_per_pair)

    def align(item: tuple[int, Pair]) -> tuple[int, Pair, tuple[AlignedFace, AlignedFace] | str]:
        index, pair = item
        try:
            faces = (explainer.align(pair.path_a, aligned), explainer.align(pair.path_b, aligned))
        except FreqxfrError as exc:
            return index, pair, str(exc)
        return index, pair, faces

    ready = _prefetched(align, zip(indices, pairs, strict=False), overlap)
    while group := list(itertools.islice(ready, per_call)):
        usable = [(i, p, f) for i, p, f in group if not isinstance(f, str)]
        band_stream = bands.explain_pairs(
            (dataclasses.replace(p, path_a=f[0], path_b=f[1]) for _, p, f in usable),
            indices=[i for i, _, _ in usable],
            skip_errors=True,
            overlap=False,  # one model call: nothing to overlap
        )
        for index, pair, faces in group:
            band = faces if isinstance(faces, str) else next(band_stream)
            if isinstance(band, (str, PairFailure)):
                yield PairFailure(index, pair, band if isinstance(band, str) else band.error)
                continue
            try:
                cells = explainer.explain(*faces, same=pair.same, groups=pair.groups)
            except FreqxfrError as exc:
                yield PairFailure(index, pair, str(exc))
                continue
            yield band, cells


def _prefetched(work: Callable[[Any], Any], items: Iterable[Any], overlap: bool) -> Iterator[Any]:
    """``map(work, items)``, with ``overlap`` one item ahead on a worker thread."""
    if not overlap:
        yield from map(work, items)
        return
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="freqxfr-align") as pool:
        pending = None
        for item in items:
            future = pool.submit(work, item)
            if pending is not None:
                yield pending.result()
            pending = future
        if pending is not None:
            yield pending.result()


def regions_recipe(regions: ResolvedRegions) -> str:
    """JSON from which :func:`regions_from_recipe` makes the same weights in another process (a
    Dask worker): a grid's or face set's parameters, or a custom set's maps themselves."""
    provenance = regions.provenance
    recipe: dict[str, Any] = {"kind": provenance["kind"], "names": list(regions.names)}
    if provenance["kind"] == "grid":
        recipe["params"] = {k: provenance[k] for k in ("rows", "cols", "edge")}
    elif provenance["kind"] == "face":
        recipe["params"] = {"edge": provenance["edge_eye_distances"]}
    else:  # no recipe makes them: the maps travel, at the model's input size
        recipe["params"] = {k: provenance[k] for k in ("source", "complete")}
        weights = np.ascontiguousarray(
            regions.weights, np.float32
        )  # as regions_from_recipe reads it
        recipe["maps"] = base64.b64encode(weights.tobytes()).decode()
        recipe["shape"] = list(regions.weights.shape)
    return json.dumps(recipe, sort_keys=True)


def regions_from_recipe(text: str) -> Regions:
    """The region set :func:`regions_recipe` describes."""
    recipe = json.loads(text)
    if recipe["kind"] == "grid":
        p = recipe["params"]
        return Regions.grid(p["rows"], p["cols"], edge=p["edge"])
    if recipe["kind"] == "face":
        return Regions.face(edge=recipe["params"]["edge"])
    maps = np.frombuffer(base64.b64decode(recipe["maps"]), np.float32).reshape(recipe["shape"])
    return Regions("custom", recipe["params"], maps.copy(), tuple(recipe["names"]))


def regions_digest(regions: ResolvedRegions | None) -> dict[str, Any] | None:
    """Names and the sha256 of the weights: what two processes' region sets must share."""
    if regions is None:
        return None
    weights = np.ascontiguousarray(regions.weights, np.float32)
    return {"names": list(regions.names), "sha256": hashlib.sha256(weights.tobytes()).hexdigest()}


def cells_record(cells: RegionExplanation) -> dict[str, Any]:
    """The ``cells`` part of a pair record with regions: each side's (R, K) tables
    (:meth:`RegionImageExplanation.to_dict`) and the cells' own reference score."""
    return {"score_ref": cells.score_ref, "a": cells.a.to_dict(), "b": cells.b.to_dict()}


def cells_view(record: Mapping[str, Any]) -> dict[str, Any]:
    """A pair record with ``cells`` seen as a region explanation: its sides replaced by the
    cells' (what :mod:`freqxfr.reports.region_plots` draws)."""
    cells = record["cells"]
    return {**record, "score_ref": cells["score_ref"], "a": cells["a"], "b": cells["b"]}


def region_summary(records: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Mean (R, K) maps per class over pair records with region cells.

    A record is a dataset line or ``explanation.json`` with ``cells`` (or a region
    explanation's ``to_dict()``). Per explained image the cells' absolute and directed influence
    are normalised over all its cells (largest magnitude 1), then averaged over the images of
    each class as :func:`freqxfr.stats.profiles.summarise` classes pairs: ``all``, ``genuine`` and
    ``impostor`` (by ``same``), and the decision outcomes (``true_match``, ``false_match``,
    ``true_non_match``, ``false_non_match``). Classes without images are left out.
    """
    from freqxfr.stats.profiles import OUTCOMES

    maps: dict[str, list[np.ndarray]] = {}
    names: list[str] | None = None
    for record in records:
        sides_of = record.get("cells") or record
        names = names or list(sides_of["a"]["regions"])
        sides = [np.asarray(sides_of[s]["directed"], np.float64) for s in ("a", "b")]
        classes = ["all"]
        same = record.get("same")
        if same is not None:
            classes.append("genuine" if same else "impostor")
            classes.append(OUTCOMES[(bool(same), bool(record["decision"]))])
        for cls in classes:
            maps.setdefault(cls, []).extend(sides)
    out: dict[str, Any] = {"names": names, "by_class": {}}
    for cls in ("all", "genuine", "impostor", *OUTCOMES.values()):
        items = maps.get(cls)
        if not items:
            continue
        out["by_class"][cls] = {
            "n_images": len(items),
            "absolute_normalised_mean": np.mean(
                [_normalised(np.abs(d)) for d in items], axis=0
            ).tolist(),
            "directed_normalised_mean": np.mean([_normalised(d) for d in items], axis=0).tolist(),
        }
    return out
