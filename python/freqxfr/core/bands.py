"""Band schedules: which spatial-frequency band each coefficient of a 2-D spectrum belongs to.

A schedule is defined on the *relative radius* ρ = r / r_corner, where r is the Euclidean distance of a
coefficient to DC in cycles per image, ``r² = fu² + fv²`` with ``fu ∈ (-H/2, H/2]`` and
``fv ∈ (-W/2, W/2]``, and ``r_corner² = (H//2)² + (W//2)²`` is the radius of the spectrum's corner.
So one schedule serves every model input size. Explicit edges may also be given in cycles per image.

Boundary rule: band i holds the coefficients with ``edge_i ≤ r < edge_{i+1}``; when the last edge
reaches the corner (ρ = 1) the last band also holds the corner itself, so that equal-width rings
out to the corner partition every coefficient. The comparison is exact: squared edges are kept as
fractions (irrational ones, e.g. log-spaced edges, are rounded to a denominator ≤ 10⁶) and compared
with integer squared radii, so a coefficient on a ring edge (common at 112×112) never lands in a
band by floating-point chance.

A coefficient and its complex conjugate always share a band, so every band-limited image is real.
Polar bands add angular sectors over [0, π) (a direction and its opposite are the same
orientation); a coefficient on a sector edge belongs to the sector that starts there.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Literal

import numpy as np

from freqxfr.common.errors import InputError

Unit = Literal["relative", "cycles"]
_MAX_DENOMINATOR = 10**6
_NYQUIST_SQ = Fraction(1, 2)  # ρ² of the Nyquist radius of a square image


@dataclass(frozen=True)
class Band:
    """One band of a schedule resolved at an H×W size."""

    index: int
    ring: int
    sector: int
    radius_lo: float  # relative radius ρ
    radius_hi: float
    cycles_lo: float  # cycles per image
    cycles_hi: float
    angle_lo: float  # radians in [0, π); 0 and π for rings
    angle_hi: float
    count: int  # coefficients of the full H×W spectrum in this band

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "ring": self.ring,
            "sector": self.sector,
            "radius": [self.radius_lo, self.radius_hi],
            "cycles": [self.cycles_lo, self.cycles_hi],
            "angle": [self.angle_lo, self.angle_hi],
            "count": self.count,
        }


@dataclass(frozen=True)
class ResolvedBands:
    """A schedule applied to an H×W spectrum."""

    height: int
    width: int
    labels_full: np.ndarray  # (H, W) int32 band of every coefficient, -1 = none; fft2 order
    bands: tuple[Band, ...]

    @property
    def labels_half(self) -> np.ndarray:
        """Labels of the rfft2 half spectrum, (H, W//2 + 1), C-contiguous int32."""
        return np.ascontiguousarray(self.labels_full[:, : self.width // 2 + 1])

    @property
    def dc_band(self) -> int:
        return int(self.labels_full[0, 0])

    @property
    def is_partition(self) -> bool:
        return bool((self.labels_full >= 0).all())


def _as_fraction_sq(edge: float | Fraction) -> Fraction:
    if isinstance(edge, Fraction):
        return edge * edge
    return Fraction(float(edge) ** 2).limit_denominator(_MAX_DENOMINATOR)


@dataclass(frozen=True)
class BandSchedule:
    """K bands over a 2-D spectrum: rings (optionally split into angular sectors).

    Use the constructors :meth:`rings`, :meth:`log_rings`, :meth:`from_edges` and :meth:`polar`.
    """

    kind: str
    edges_squared: tuple[Fraction, ...]  # squared ring edges, increasing, in `unit`² units
    unit: Unit = "relative"
    sectors: int = 1

    def __post_init__(self) -> None:
        edges = self.edges_squared
        if len(edges) < 2:
            raise InputError(f"a band schedule needs at least two edges, got {len(edges)}")
        if edges[0] < 0:
            raise InputError(f"band edges must be >= 0, got first edge {math.sqrt(edges[0])}")
        for i in range(len(edges) - 1):
            if not edges[i] < edges[i + 1]:
                raise InputError(
                    f"band edges must increase: edge {i + 1} ({math.sqrt(edges[i + 1]):.6g}) "
                    f"is not above edge {i} ({math.sqrt(edges[i]):.6g})"
                )
        if self.unit == "relative" and edges[-1] > 1:
            raise InputError(
                f"relative band edges must lie in [0, 1] (1 is the spectrum's corner), "
                f"got last edge {math.sqrt(edges[-1]):.6g}"
            )
        if self.unit not in ("relative", "cycles"):
            raise InputError(f"unit must be 'relative' or 'cycles', got {self.unit!r}")
        if not isinstance(self.sectors, int) or self.sectors < 1:
            raise InputError(f"sectors must be a positive integer, got {self.sectors!r}")

    # ---- constructors ------------------------------------------------------------------------

    @classmethod
    def rings(cls, k: int = 16, extent: Literal["corner", "nyquist"] = "corner") -> BandSchedule:
        """``k`` equal-width rings from DC out to the spectrum's corner (a partition, the default)
        or out to the Nyquist radius of a square image (the corners then belong to no band)."""
        k = _check_count(k, "k")
        outer = Fraction(1) if extent == "corner" else _extent_sq(extent)
        edges = tuple(Fraction(i * i, k * k) * outer for i in range(k + 1))
        return cls(kind="rings", edges_squared=edges)

    @classmethod
    def log_rings(
        cls, k: int = 16, first: float = 0.02, extent: Literal["corner", "nyquist"] = "corner"
    ) -> BandSchedule:
        """A disc around DC of relative radius ``first``, then ``k - 1`` log-spaced rings out to
        ``extent``: fine bands at low frequencies, where face models look most."""
        k = _check_count(k, "k")
        outer = math.sqrt(float(_extent_sq(extent)))
        if not 0 < first < outer:
            raise InputError(f"first must lie in (0, {outer:.4g}), got {first}")
        radii = [0.0, *np.geomspace(first, outer, k).tolist()]
        edges = [_as_fraction_sq(r) for r in radii]
        edges[-1] = _extent_sq(extent)  # the outer edge stays exact
        return cls(kind="log_rings", edges_squared=tuple(edges))

    @classmethod
    def from_edges(cls, edges: Any, unit: Unit = "relative") -> BandSchedule:
        """Rings between explicit radius edges, relative (0 = DC, 1 = corner) or in cycles per image."""
        values = np.asarray(edges, dtype=np.float64)
        if values.ndim != 1 or not np.isfinite(values).all():
            raise InputError("edges must be a 1-D sequence of finite numbers")
        return cls(
            kind="edges",
            edges_squared=tuple(_as_fraction_sq(v) for v in values.tolist()),
            unit=unit,
        )

    @classmethod
    def polar(
        cls, k: int = 8, sectors: int = 4, extent: Literal["corner", "nyquist"] = "corner"
    ) -> BandSchedule:
        """``k`` equal-width rings × ``sectors`` orientation sectors over [0, π).

        Band index = ring * sectors + sector; sector 0 starts at the horizontal frequency axis."""
        base = cls.rings(k, extent)
        return cls(
            kind="polar", edges_squared=base.edges_squared, sectors=_check_count(sectors, "sectors")
        )

    # ---- properties --------------------------------------------------------------------------

    @property
    def n_rings(self) -> int:
        return len(self.edges_squared) - 1

    @property
    def n_bands(self) -> int:
        return self.n_rings * self.sectors

    @property
    def edges(self) -> tuple[float, ...]:
        return tuple(math.sqrt(e) for e in self.edges_squared)

    # ---- resolution --------------------------------------------------------------------------

    def resolve(self, height: int, width: int) -> ResolvedBands:
        """Apply the schedule to an ``height × width`` spectrum.

        Raises ``ValueError`` if the schedule has more rings than the spectrum has distinct radii,
        or if a band holds no coefficient at this size."""
        return _resolve(self, int(height), int(width))

    # ---- serialisation -----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "unit": self.unit,
            "sectors": self.sectors,
            "n_bands": self.n_bands,
            "edges": list(self.edges),
            "edges_squared": [str(e) for e in self.edges_squared],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BandSchedule:
        try:
            if "edges_squared" in data:
                edges_sq = tuple(Fraction(str(e)) for e in data["edges_squared"])
            else:
                edges_sq = tuple(_as_fraction_sq(e) for e in data["edges"])
            return cls(
                kind=str(data.get("kind", "edges")),
                edges_squared=edges_sq,
                unit=data.get("unit", "relative"),
                sectors=int(data.get("sectors", 1)),
            )
        except (KeyError, TypeError, ValueError, ZeroDivisionError) as exc:
            if isinstance(exc, InputError):
                raise
            raise InputError(f"not a valid band schedule: {exc}") from None

    @classmethod
    def from_json(cls, text: str) -> BandSchedule:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"band schedule JSON is malformed: {exc}") from None
        if not isinstance(data, dict):
            raise InputError("band schedule JSON must be an object")
        return cls.from_dict(data)


def _check_count(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InputError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _extent_sq(extent: str) -> Fraction:
    if extent == "corner":
        return Fraction(1)
    if extent == "nyquist":
        return _NYQUIST_SQ
    raise InputError(f"extent must be 'corner' or 'nyquist', got {extent!r}")


def signed_frequencies(n: int) -> np.ndarray:
    """Signed frequency of each DFT index, in (-n/2, n/2] (Nyquist counted positive)."""
    k = np.arange(n, dtype=np.int64)
    return np.where(k <= n // 2, k, k - n)


@functools.lru_cache(maxsize=64)
def _resolve(schedule: BandSchedule, height: int, width: int) -> ResolvedBands:
    if height < 1 or width < 1:
        raise InputError(f"cannot resolve bands for a {height}×{width} image")
    fu = signed_frequencies(height)[:, None]
    fv = signed_frequencies(width)[None, :]
    r2 = fu * fu + fv * fv  # exact integers
    corner_sq = (height // 2) ** 2 + (width // 2) ** 2
    scale = corner_sq if schedule.unit == "relative" else 1  # edge² in r² units = e² * scale

    edges = schedule.edges_squared
    n_radii = len(np.unique(r2[r2 <= _max_r2(edges[-1], scale)]))
    if schedule.n_rings > n_radii:
        raise InputError(
            f"the schedule has {schedule.n_rings} rings but a {height}×{width} spectrum has only "
            f"{n_radii} distinct radii in its range"
        )

    ring = np.full(r2.shape, -1, dtype=np.int32)
    for i in range(schedule.n_rings):
        lo, hi = edges[i], edges[i + 1]
        # lo <= r²/scale  <=>  lo.num * scale <= r² * lo.den, all in integers.
        inside = lo.numerator * scale <= r2 * lo.denominator
        last_to_corner = i == schedule.n_rings - 1 and hi * scale >= corner_sq
        if last_to_corner:
            inside &= r2 * hi.denominator <= hi.numerator * scale
        else:
            inside &= r2 * hi.denominator < hi.numerator * scale
        ring[inside] = i

    labels = ring
    if schedule.sectors > 1:
        angle = np.mod(np.arctan2(fu, fv).astype(np.float64), np.pi)
        # The tiny nudge sends a coefficient lying on a sector edge to the sector starting there.
        sector = np.minimum(
            np.floor(angle * schedule.sectors / np.pi + 1e-9).astype(np.int32), schedule.sectors - 1
        )
        labels = np.where(ring >= 0, ring * schedule.sectors + sector, -1).astype(np.int32)

    # A coefficient and its conjugate (-u, -v) take the lower of their two labels (a no-op for
    # rings; it settles Nyquist rows and columns of even sizes, whose sign is ambiguous).
    conj = labels[(-np.arange(height)) % height][:, (-np.arange(width)) % width]
    both = (labels >= 0) & (conj >= 0)
    labels = np.where(both, np.minimum(labels, conj), np.maximum(labels, conj)).astype(np.int32)

    counts = np.bincount(labels[labels >= 0].ravel(), minlength=schedule.n_bands)
    corner = math.sqrt(corner_sq)
    bands = []
    for index in range(schedule.n_bands):
        ring_i, sector_i = divmod(index, schedule.sectors)
        lo_c = math.sqrt(edges[ring_i] * scale)
        hi_c = math.sqrt(edges[ring_i + 1] * scale)
        if schedule.unit == "relative":  # exact edges, not a round trip through cycles
            lo_r, hi_r = math.sqrt(edges[ring_i]), math.sqrt(edges[ring_i + 1])
        else:
            lo_r, hi_r = (lo_c / corner, hi_c / corner) if corner else (0.0, 0.0)
        if counts[index] == 0:
            raise InputError(
                f"band {index} (radius {lo_c:.4g} to {hi_c:.4g} cycles per image) holds no "
                f"coefficient of a {height}×{width} spectrum; use fewer bands"
            )
        bands.append(
            Band(
                index=index,
                ring=ring_i,
                sector=sector_i,
                radius_lo=lo_r,
                radius_hi=hi_r,
                cycles_lo=lo_c,
                cycles_hi=hi_c,
                angle_lo=math.pi * sector_i / schedule.sectors,
                angle_hi=math.pi * (sector_i + 1) / schedule.sectors,
                count=int(counts[index]),
            )
        )
    labels.setflags(write=False)
    return ResolvedBands(height=height, width=width, labels_full=labels, bands=tuple(bands))


def _max_r2(edge_sq: Fraction, scale: int) -> float:
    return float(edge_sq * scale)
