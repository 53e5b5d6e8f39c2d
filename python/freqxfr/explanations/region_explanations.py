"""Where and at which frequency: explanations over (band, region) cells.

For image x of a pair, band k's image is b_k(x) and region r's weights w_r (a partition of unity,
:mod:`freqxfr.imaging.regions`). Deleting cell (k, r) gives x − w_r ⊙ b_k(x); its score against the other,
unaltered image is s_{k,r}, and its influence s_ref − s_{k,r} (directed) or |s_ref − s_{k,r}|
(absolute), as for bands. The R cells of a band add up exactly to the band's deletion; the
model is not linear, so their influences need not add up to the band's.

Cost: 2·K·R + 2 embeddings per pair (K·R + 1 for a one-sided explanation against a stored
template, :mod:`freqxfr.explanations.templates`). Pair explanations go through the model's engine
like band explanations (a request of 2·K·R + 2 images, batched with other callers' requests);
with ``engine=False`` they run on the caller's thread; both use the one batch layout of
:mod:`freqxfr.explanations.kernel`, and the result is the one
:class:`~freqxfr.explanations.results.Explanation` whose sides hold (R, K) cells.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from freqxfr.explanations.explainer import Explainer
from freqxfr.explanations.results import Explanation, relative_over_cells
from freqxfr.imaging.regions import Regions, ResolvedRegions
from freqxfr.stats.profiles import OUTCOMES


def band_explainer(explainer: Explainer) -> Explainer:
    """The band-only twin of a region explainer: same model (shared, not reloaded), bands and
    masking options, no regions. Reports and dataset runs show the bands as without regions and
    add the cells (2·K + 2 more embeddings per pair next to the 2·K·R + 2 of the cells)."""
    return explainer.with_(regions=None)


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


def cells_record(cells: Explanation) -> dict[str, Any]:
    """The ``cells`` part of a pair record with regions: each side's (R, K) tables
    (:meth:`~freqxfr.explanations.results.ImageExplanation.to_dict`) and the cells' own reference score."""
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
                [relative_over_cells(np.abs(d)) for d in items], axis=0
            ).tolist(),
            "directed_normalised_mean": np.mean(
                [relative_over_cells(d) for d in items], axis=0
            ).tolist(),
        }
    return out
