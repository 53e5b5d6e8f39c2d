"""Region sets: smooth spatial weights for *where* a band mattered.

A region set is R weight maps w_r over the model's input, each in [0, 1], summing to 1 at every
pixel (a partition of unity). With them ``mask_bands(..., regions=W)`` deletes band k only inside
region r, ``x − w_r ⊙ b_k(x)``, and the R cells of a band add up exactly to the band's deletion.

Windows have raised-cosine edges: a product with a window widens the band's spectrum by the
window's own bandwidth, so soft edges a few pixels to tens of pixels wide keep a cell's energy
mostly in its band (:func:`spectral_spread` measures it; docs/guide/regions.md gives the numbers
on real faces).

- :meth:`Regions.grid`: a rows × cols grid, a separable partition of unity;
- :meth:`Regions.face`: eyes, brows, nose, mouth, the rest of the face and the background,
  placed from the aligned template's landmarks (the ArcFace 112 template for 112×112 models,
  dlib's chip geometry for dlib's 150×150 chips);
- :meth:`Regions.from_arrays` / :meth:`Regions.from_images`: your own weight maps.

A ``Regions`` object is a recipe; :meth:`Regions.resolve` makes the weights for an input size
and alignment, as :class:`~freqxfr.core.bands.BandSchedule` does for bands.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from freqxfr.common.errors import InputError
from freqxfr.core.masking import check_region_weights, mask_bands
from freqxfr.imaging.align import ARCFACE_TEMPLATE_112, DLIB_PADDING, dlib_chip_landmarks

#: How far the weights may be from summing to 1 (float32 maps from image files, rounding).
SUM_TOLERANCE = 1e-3
FACE_REGIONS = ("left_eye", "right_eye", "brows", "nose", "mouth", "face", "background")
#: The regions a finding about the eyes sums over.
EYE_REGIONS = ("left_eye", "right_eye")


@dataclasses.dataclass(frozen=True)
class ResolvedRegions:
    """Weights (R, H, W) float32 of a region set at one input size, with names and provenance."""

    names: tuple[str, ...]
    weights: np.ndarray
    provenance: dict[str, Any]

    def __len__(self) -> int:
        return len(self.names)

    def to_dict(self) -> dict[str, Any]:
        """Names, provenance and each region's share of the image (not the maps themselves)."""
        area = self.weights.reshape(len(self.names), -1).mean(axis=1)
        return {
            "names": list(self.names),
            "provenance": self.provenance,
            "area": [round(float(a), 6) for a in area],
            "size": list(self.weights.shape[1:]),
        }


#: The most cells a region grid may have (``grid:16x16``): every cell is masked per band and
#: image, so a run's memory and time grow with rows × cols; larger grids are refused before
#: anything is allocated.
MAX_GRID_CELLS = 256


@dataclasses.dataclass(frozen=True)
class Regions:
    """A region set, resolved for an input size with :meth:`resolve`. Make one with
    :meth:`grid`, :meth:`face`, :meth:`from_arrays`, :meth:`from_images` or :meth:`parse`."""

    kind: str
    params: dict[str, Any] = dataclasses.field(default_factory=dict)
    _maps: np.ndarray | None = dataclasses.field(default=None, compare=False, repr=False)
    _names: tuple[str, ...] = ()

    # ---- constructors ---------------------------------------------------------------------

    @classmethod
    def grid(cls, rows: int, cols: int, *, edge: float = 0.5) -> Regions:
        """rows × cols cells with raised-cosine crossfades; ``edge`` is the crossfade width as a
        fraction of a cell (0: hard edges, at most 1)."""
        for name, value in (("rows", rows), ("cols", cols)):
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, np.integer))
                or not 1 <= value <= 64
            ):
                raise InputError(f"regions grid {name} must be an integer in 1..64, got {value!r}")
        if rows * cols > MAX_GRID_CELLS:
            raise InputError(
                f"regions grid {rows}x{cols} has {rows * cols} cells; at most {MAX_GRID_CELLS} "
                f"are allowed (each cell is explained per band, so memory and time grow with "
                f"the cell count), e.g. grid:16x16"
            )
        if not 0.0 <= float(edge) <= 1.0:
            raise InputError(f"grid edge must be a fraction of a cell in [0, 1], got {edge!r}")
        return cls("grid", {"rows": int(rows), "cols": int(cols), "edge": float(edge)})

    @classmethod
    def face(cls, *, edge: float = 0.3) -> Regions:
        """Eyes, brows, nose, mouth, the rest of the face and the background on the model's
        aligned template; ``edge``: the raised-cosine edge width in eye distances."""
        if not 0.05 <= float(edge) <= 1.0:
            raise InputError(f"face edge must be in [0.05, 1] eye distances, got {edge!r}")
        return cls("face", {"edge": float(edge)})

    @classmethod
    def from_arrays(
        cls,
        weights: np.ndarray,
        names: Sequence[str] | None = None,
        *,
        complete: bool = False,
        source: str = "array",
    ) -> Regions:
        """Your own maps (R, H, W) in [0, 1]. They must sum to 1 at every pixel, or to at most 1
        with ``complete=True``, which adds a region ``rest`` holding what is left."""
        arr = np.asarray(weights) if not isinstance(weights, np.ndarray) else weights
        if isinstance(arr, np.ndarray) and arr.ndim == 2:
            arr = arr[None]
        if not isinstance(arr, np.ndarray) or arr.ndim != 3:
            raise InputError(
                f"region weights must be (R, H, W), got {getattr(arr, 'shape', arr)!r}"
            )
        checked = check_region_weights(arr, arr.shape[1], arr.shape[2], name="region weights")
        assert checked is not None
        names = _names(names, len(checked))
        if complete:
            rest = 1.0 - checked.sum(axis=0, dtype=np.float64)
            if rest.min() < -SUM_TOLERANCE:
                where = np.unravel_index(int(np.argmin(rest)), rest.shape)
                raise InputError(
                    f"region weights sum to {1 - rest[where]:.4f} > 1 at pixel "
                    f"{tuple(int(i) for i in where)}; with complete=True they may sum to at most 1"
                )
            checked = np.concatenate([checked, np.clip(rest, 0, 1)[None].astype(np.float32)])
            names = (*names, "rest")
        _check_partition(checked, "region weights")
        return cls("custom", {"source": source, "complete": bool(complete)}, checked, names)

    @classmethod
    def from_images(
        cls,
        paths: Sequence[str | Path],
        names: Sequence[str] | None = None,
        *,
        complete: bool = False,
    ) -> Regions:
        """Weight maps from grayscale image files (0 → 0, 255 → 1), all of one size; they are
        resized to the model's input when resolved."""
        maps = []
        for path in paths:
            try:
                with Image.open(path) as img:
                    maps.append(np.asarray(img.convert("F"), np.float64) / 255.0)
            except (OSError, ValueError) as exc:
                raise InputError(f"region map {path}: cannot read it as an image ({exc})") from None
        if not maps:
            raise InputError("from_images needs at least one region map")
        if len({m.shape for m in maps}) != 1:
            raise InputError(
                f"region maps must share one size, got {sorted({m.shape for m in maps})}"
            )
        return cls.from_arrays(
            np.stack(maps).astype(np.float32),
            names or [Path(p).stem for p in paths],
            complete=complete,
            source=",".join(str(p) for p in paths),
        )

    @classmethod
    def parse(cls, text: str) -> Regions:
        """``face`` or ``grid:RxC`` (the command line's ``--regions``)."""
        if text == "face":
            return cls.face()
        match = re.fullmatch(r"grid:(\d+)x(\d+)", text)
        if match:
            return cls.grid(int(match.group(1)), int(match.group(2)))
        raise InputError(f"regions must be 'face' or 'grid:RxC' (e.g. grid:3x3), got {text!r}")

    # ---- resolving ------------------------------------------------------------------------

    def resolve(self, h: int, w: int, alignment: str = "arcface112") -> ResolvedRegions:
        """The weights at input size h × w for a model aligned by ``alignment``."""
        if self.kind == "grid":
            p = self.params
            weights = _grid(h, w, p["rows"], p["cols"], p["edge"])
            names = tuple(f"r{i}c{j}" for i in range(p["rows"]) for j in range(p["cols"]))
            return ResolvedRegions(names, weights, {"kind": "grid", **p})
        if self.kind == "face":
            points, template = face_landmarks(h, w, alignment)
            weights = _face(h, w, points, self.params["edge"])
            return ResolvedRegions(
                FACE_REGIONS,
                weights,
                {
                    "kind": "face",
                    "template": template,
                    "edge_eye_distances": self.params["edge"],
                    "landmarks": {k: [round(float(v), 3) for v in xy] for k, xy in points.items()},
                },
            )
        assert self._maps is not None
        maps = self._maps
        if maps.shape[1:] != (h, w):
            maps = _resized(maps, h, w)
        return ResolvedRegions(
            self._names,
            maps,
            {"kind": "custom", **self.params, "map_size": list(self._maps.shape[1:])},
        )


def as_regions(value: Regions | str | np.ndarray) -> Regions:
    """What ``Explainer(regions=...)`` accepts: a Regions, ``"face"``, ``"grid:RxC"`` or maps."""
    if isinstance(value, Regions):
        return value
    if isinstance(value, str):
        return Regions.parse(value)
    if isinstance(value, np.ndarray):
        return Regions.from_arrays(value)
    raise InputError(
        f"regions must be a freqxfr.imaging.regions.Regions, 'face', 'grid:RxC' or an array "
        f"(R, H, W); got {type(value).__name__}"
    )


# ---- the maps -------------------------------------------------------------------------------


def _rise(t: np.ndarray) -> np.ndarray:
    """0 → 1 raised-cosine step over t in [0, 1] (0 below, 1 above)."""
    return 0.5 - 0.5 * np.cos(np.pi * np.clip(t, 0.0, 1.0))


def _axis_partition(n: int, cells: int, edge: float) -> np.ndarray:
    """(cells, n) weights over pixel centres that sum to 1: each boundary is a raised-cosine
    crossfade ``edge`` cells wide."""
    x = (np.arange(n) + 0.5) / n * cells  # position in cell units
    weights = np.ones((cells, n))
    for b in range(1, cells):
        up = np.where(x >= b, 1.0, 0.0) if edge == 0 else _rise((x - b + edge / 2) / edge)
        weights[b - 1] *= 1.0 - up  # cell b-1 ends here
        for j in range(b, cells):
            weights[j] *= up if j == b else 1.0
    return weights


def _grid(h: int, w: int, rows: int, cols: int, edge: float) -> np.ndarray:
    r = _axis_partition(h, rows, edge)
    c = _axis_partition(w, cols, edge)
    return np.einsum("iy,jx->ijyx", r, c).reshape(rows * cols, h, w).astype(np.float32)


def face_landmarks(h: int, w: int, alignment: str) -> tuple[dict[str, np.ndarray], str]:
    """Eye centres, nose and mouth centre (x, y) on the aligned template of ``alignment``.

    ``arcface112``: the ArcFace 5-point template, scaled to the size. ``dlib_chip``: dlib's
    chip geometry (``get_face_chip(padding=0.25)``): the eye centres are the means of dlib's
    eye-corner points and the nose is dlib's nose base; dlib's 5 points have no mouth, so the
    mouth sits below the eye line at the ArcFace template's ratio of mouth drop to eye distance.
    """
    if alignment == "dlib_chip":
        p = dlib_chip_landmarks(w, DLIB_PADDING) * np.array([1.0, h / w])
        right, left, nose = (p[0] + p[1]) / 2, (p[2] + p[3]) / 2, p[4]  # left/right in the image
        t = ARCFACE_TEMPLATE_112
        drop = ((t[3, 1] + t[4, 1]) / 2 - (t[0, 1] + t[1, 1]) / 2) / (t[1, 0] - t[0, 0])
        eye_mid = (left + right) / 2
        mouth = eye_mid + np.array([0.0, drop * (right[0] - left[0])])
        template = f"dlib_chip {w}x{h} (padding {DLIB_PADDING}; mouth from the ArcFace ratio)"
    elif alignment in ("arcface112", "none"):
        t = ARCFACE_TEMPLATE_112 * np.array([w / 112.0, h / 112.0])
        left, right, nose, mouth = t[0], t[1], t[2], (t[3] + t[4]) / 2
        template = f"arcface112 scaled to {w}x{h}"
    else:
        raise InputError(
            f"face regions need a known alignment (dlib_chip, arcface112), got {alignment!r}"
        )
    return {"left_eye": left, "right_eye": right, "nose": nose, "mouth": mouth}, template


def _ellipse(h: int, w: int, centre: np.ndarray, ax: float, ay: float, edge: float) -> np.ndarray:
    """1 inside the ellipse, 0 outside, with a raised-cosine edge ``edge`` pixels wide across
    its boundary (distance to the boundary approximated by (ρ − 1)·min(ax, ay))."""
    yy, xx = np.mgrid[0:h, 0:w] + 0.5
    rho = np.sqrt(((xx - centre[0]) / ax) ** 2 + ((yy - centre[1]) / ay) ** 2)
    d = (rho - 1.0) * min(ax, ay)
    return 1.0 - _rise((d + edge / 2) / edge)


def _face(h: int, w: int, pts: dict[str, np.ndarray], edge: float) -> np.ndarray:
    """Parts as soft ellipses, made a partition by stick-breaking in order (eyes, brows, nose,
    mouth, face): each takes its share of what the earlier ones left; the background the rest."""
    left, right = pts["left_eye"], pts["right_eye"]
    dist = float(np.hypot(*(right - left)))
    e = edge * dist
    up = np.array([0.0, 0.4 * dist])
    eye_mid = (left + right) / 2
    nose_centre = (eye_mid + pts["nose"]) / 2 + np.array([0.0, 0.15 * dist])
    face_centre = eye_mid + np.array([0.0, 0.45 * dist])
    parts = [
        _ellipse(h, w, left, 0.36 * dist, 0.2 * dist, e),
        _ellipse(h, w, right, 0.36 * dist, 0.2 * dist, e),
        np.maximum(
            _ellipse(h, w, left - up, 0.45 * dist, 0.14 * dist, e),
            _ellipse(h, w, right - up, 0.45 * dist, 0.14 * dist, e),
        ),
        _ellipse(h, w, nose_centre, 0.28 * dist, 0.42 * dist, e),
        _ellipse(h, w, pts["mouth"], 0.55 * dist, 0.28 * dist, e),
        _ellipse(h, w, face_centre, 1.1 * dist, 1.5 * dist, e),
    ]
    remaining = np.ones((h, w))
    weights = []
    for part in parts:
        share = part * remaining
        weights.append(share)
        remaining = remaining - share
    weights.append(remaining)
    return np.clip(np.stack(weights), 0.0, 1.0).astype(np.float32)


def _resized(maps: np.ndarray, h: int, w: int) -> np.ndarray:
    """Custom maps at another size: each resized bilinearly, then renormalised to sum to 1."""
    out = np.stack(
        [
            np.asarray(
                Image.fromarray(m.astype(np.float32), "F").resize((w, h), Image.Resampling.BILINEAR)
            )
            for m in maps
        ]
    ).astype(np.float64)
    out = np.clip(out, 0.0, None)
    total = out.sum(axis=0)
    return (out / np.where(total > 0, total, 1.0)).astype(np.float32)


def _names(names: Sequence[str] | None, r: int) -> tuple[str, ...]:
    if names is None:
        return tuple(f"region{i}" for i in range(r))
    names = tuple(str(n) for n in names)
    if len(names) != r or len(set(names)) != r:
        raise InputError(f"region names must be {r} distinct names, got {list(names)}")
    return names


def _check_partition(weights: np.ndarray, name: str) -> None:
    total = weights.sum(axis=0, dtype=np.float64)
    off = np.abs(total - 1.0)
    if off.max() > SUM_TOLERANCE:
        where = tuple(int(i) for i in np.unravel_index(int(np.argmax(off)), off.shape))
        raise InputError(
            f"{name} must sum to 1 at every pixel (a partition), but sum to "
            f"{total[where]:.4f} at pixel {where}; pass complete=True to add a 'rest' "
            "region holding what is left"
        )


# ---- how far a cell spreads its band's spectrum -----------------------------------------------


def spectral_spread(
    images: np.ndarray, schedule, regions: ResolvedRegions, *, neighbours: int = 0
) -> tuple[np.ndarray, float]:
    """How far region cells spread their band's spectrum, on real images (N, H, W, C).

    A cell's image is w_r ⊙ b_k(x); windowing widens b_k's spectrum by the window's bandwidth.
    Returns the (K, R) share of each cell's spectral energy (summed over images and channels)
    that lies outside bands k − ``neighbours`` .. k + ``neighbours``, and the same share pooled
    over all cells (energy-weighted). Uses the numpy reference (float64)."""
    n, h, w, _ = images.shape
    resolved = schedule.resolve(h, w)
    labels, k, r = resolved.labels_full, len(resolved.bands), len(regions)
    cells = mask_bands(images, schedule, "keep", "numpy", regions=regions.weights)
    power = np.abs(np.fft.fft2(cells.astype(np.float64), axes=(-2, -1))) ** 2  # (N, K·R, C, H, W)
    power = power.reshape(n, k, r, *power.shape[2:]).sum(axis=(0, 3))  # (K, R, H, W)
    inside = np.stack(
        [
            (power[band] * (np.abs(labels - band) <= neighbours)).sum(axis=(-2, -1))
            for band in range(k)
        ]
    )
    total = power.sum(axis=(-2, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.nan_to_num(1.0 - inside / total)
    pooled = 1.0 - float(inside.sum() / total.sum()) if total.sum() > 0 else 0.0
    return share, pooled
