"""What an explainer returns: one result type for bands and (band, region) cells.

An image's influences are (R, K) *cells*: region r, band k. Band explanations (the paper) are
the case R = 1, the whole image as one region, and their views are (K,) rows; region
explanations (``Explainer(regions=...)``) have R named regions and (R, K) views. The relative
views divide by the largest influence over all the image's cells
(:func:`freqxfr.stats.profiles.relative_to_peak`), so for bands the most influential band is ±1.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from freqxfr.core.bands import Band, BandSchedule
from freqxfr.explanations.config import SETTINGS_KEYS
from freqxfr.explanations.pairs import Pair
from freqxfr.explanations.rows import influence_rows
from freqxfr.imaging.regions import ResolvedRegions
from freqxfr.stats.profiles import relative_to_peak


def relative_over_cells(values: np.ndarray) -> np.ndarray:
    """``values`` divided by their largest magnitude over all cells (a row of bands: over the
    bands, as :func:`~freqxfr.stats.profiles.relative_to_peak`); zeros stay zeros."""
    values = np.asarray(values)
    return relative_to_peak(values.reshape(-1)).reshape(values.shape)


@dataclasses.dataclass(frozen=True)
class ImageExplanation:
    """The influences of one image, explained against the other image of its pair (or a
    template), per (region, band) cell.

    ``cells`` holds the score with cell (r, k) of this image masked, (R, K); a band explanation
    has one region (R = 1, ``regions`` empty) and is given and shown as (K,) rows. The views
    ``scores``, ``directed`` and ``absolute`` (score units) and ``directed_relative`` and
    ``absolute_relative`` (divided by the image's largest influence over all its cells, as the
    heat plots show them; in JSON ``directed_normalised`` and ``absolute_normalised``) are (K,)
    for bands and (R, K) with regions.
    """

    source: str
    cells: np.ndarray  # (R, K) scores with cell (r, k) masked; (K,) may be given for bands
    score_ref: float
    regions: tuple[str, ...] = ()  # the R regions' names; () for bands (R = 1)

    def __post_init__(self) -> None:
        cells = np.asarray(self.cells)
        if cells.ndim == 1:
            cells = cells[None]
        rows = len(self.regions) or 1
        if cells.ndim != 2 or cells.shape[0] != rows:
            raise ValueError(f"cells must be ({rows}, K), got shape {cells.shape}")
        object.__setattr__(self, "cells", cells)
        object.__setattr__(self, "regions", tuple(self.regions))

    def _view(self, values: np.ndarray) -> np.ndarray:
        return values if self.regions else values[0]

    @property
    def scores(self) -> np.ndarray:
        return self._view(self.cells)

    @property
    def directed(self) -> np.ndarray:
        return self._view(self.score_ref - self.cells)

    @property
    def absolute(self) -> np.ndarray:
        return np.abs(self.directed)

    @property
    def absolute_relative(self) -> np.ndarray:
        """``absolute`` divided by its largest value over all cells."""
        return relative_over_cells(self.absolute)

    @property
    def directed_relative(self) -> np.ndarray:
        """``directed`` divided by its largest magnitude over all cells."""
        return relative_over_cells(self.directed)

    @property
    def directed_by_region(self) -> np.ndarray:
        """(R,) directed influence summed over the bands."""
        return (self.score_ref - self.cells).sum(axis=1)

    @property
    def directed_by_band(self) -> np.ndarray:
        """(K,) directed influence summed over the regions."""
        return (self.score_ref - self.cells).sum(axis=0)

    def region_share(self, names: tuple[str, ...] | list[str], bands: slice | list[int]) -> float:
        """The share of the absolute influence of ``bands`` that lies in the regions ``names``."""
        absolute = np.abs(self.score_ref - self.cells)[:, bands]
        total = float(absolute.sum())
        rows = [self.regions.index(n) for n in names]
        return float(absolute[rows].sum()) / total if total > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        out = {
            "source": self.source,
            "scores": self.scores.tolist(),
            "absolute": self.absolute.tolist(),
            "directed": self.directed.tolist(),
            "absolute_normalised": self.absolute_relative.tolist(),
            "directed_normalised": self.directed_relative.tolist(),
        }
        if self.regions:
            out["regions"] = list(self.regions)
            out["directed_by_region"] = self.directed_by_region.tolist()
            out["directed_by_band"] = self.directed_by_band.tolist()
        return out


def _setting(key: str, doc: str) -> Any:
    """A read-only attribute of an :class:`Explanation` that reads ``settings[key]``."""
    return property(lambda self: self.settings[key], doc=doc)


@dataclasses.dataclass(frozen=True, kw_only=True)
class _Explained:
    """What every explanation holds: the model's score and decision, and the bands (and region
    cells) and settings it was explained with."""

    score_ref: float
    threshold: float
    decision: bool
    bands: tuple[Band, ...]
    schedule: BandSchedule
    settings: Mapping[str, Any]  # the explainer's provenance (Explainer.settings())
    timings_ms: dict[str, float]
    regions: ResolvedRegions | None = None

    model = _setting("model", "The model part of the settings (:meth:`Explainer.model_info`).")
    version = _setting("freqxfr_version", "The freqxfr version that made the explanation.")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Explanation(_Explained):
    """Why a model matched or rejected one pair, band by band (or cell by cell, with
    ``regions``: the region set's names, areas and provenance). See :meth:`to_dict`.

    The explainer's settings (:data:`~freqxfr.explanations.config.SETTINGS_KEYS`) read as
    attributes: ``explanation.mode`` is ``explanation.settings["mode"]``.
    """

    a: ImageExplanation
    b: ImageExplanation
    same: bool | None = None
    groups: dict[str, str] = dataclasses.field(default_factory=dict)

    def to_dict(self, *, settings: bool = True) -> dict[str, Any]:
        """A JSON-ready dict; its keys are those of ``explanation.json``.

        ``settings=False`` leaves out the explainer's settings (:data:`SETTINGS_KEYS`), for
        files that record them once for many explanations (a dataset run's ``run.json``).
        """
        head = copy.deepcopy(dict(self.settings)) if settings else {}
        out = {
            **head,
            "score_ref": self.score_ref,
            "threshold": self.threshold,
            "decision": self.decision,
            "a": self.a.to_dict(),
            "b": self.b.to_dict(),
            "timings_ms": self.timings_ms,
            "same": self.same,
            "groups": dict(self.groups),
        }
        if self.regions is not None:
            out["regions"] = self.regions.to_dict()
        return out

    def to_rows(self) -> list[dict[str, Any]]:
        """A tidy table: one row per image × band (× region)."""
        return influence_rows(self, (("a", self.a), ("b", self.b)))


# The other settings as attributes too (explanation.mode, .padding, .planner, ...), from the one
# list of keys; the fields (schedule, bands) and the two above keep theirs.
_OWN = {f.name for f in dataclasses.fields(Explanation)} | {"model", "freqxfr_version"}
for _key in SETTINGS_KEYS:
    if _key not in _OWN:
        setattr(Explanation, _key, _setting(_key, f"The ``{_key}`` of the settings."))


@dataclasses.dataclass(frozen=True)
class PairFailure:
    """A pair of a stream that could not be explained (missing file, no face, ...)."""

    index: int
    pair: Pair
    error: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class TemplateExplanation(_Explained):
    """Why the model matched or rejected a probe against a template, band by band (or cell by
    cell): ``probe`` is the probe's :class:`ImageExplanation`."""

    probe: ImageExplanation
    template: str

    def to_dict(self) -> dict[str, Any]:
        return {
            **copy.deepcopy(dict(self.settings)),
            "kind": "template",
            "score_ref": self.score_ref,
            "threshold": self.threshold,
            "decision": self.decision,
            "template": self.template,
            "probe": self.probe.to_dict(),
            "regions": self.regions.to_dict() if self.regions is not None else None,
            "timings_ms": self.timings_ms,
        }

    def to_rows(self) -> list[dict[str, Any]]:
        """One row per band (per band × region with regions), as a pair's rows for one image."""
        return influence_rows(self, (("probe", self.probe),))
