"""Pictures of region × band explanations: where and at which frequency.

- :func:`plot_region_heatmap`: per image, a region × band heat map of the normalised directed
  influence (diverging map, white = 0, blue = the cell supported the match);
- :func:`plot_region_tints`: small multiples of the face for the most influential bands, each
  region tinted by its directed influence in that band (Σ_r w_r · d[r, k]), each band scaled to
  its own peak (the title gives the factor);
- :func:`plot_pair_regions`: both images of a pair, heat map and tints in one figure (the pair
  report's section);
- :func:`plot_class_region_maps`: a dataset run's mean maps, one heat map per class.

Figures follow :mod:`freqxfr.reports.plots`: their own Agg canvas, written atomically, plain data in
(the dicts of ``explanation.json``, the aligned faces and the weights).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes

from freqxfr.common.errors import InputError
from freqxfr.reports.plots import display_name, fhp_cmap, fhp_norm, new_figure, save_figure

_SIDES = ("a", "b")


def _cells(side: Mapping[str, Any], key: str = "directed_normalised") -> np.ndarray:
    values = np.asarray(side.get(key), dtype=np.float64)
    if values.ndim != 2:
        raise InputError(f"{key} must be a (regions, bands) table; is this a region explanation?")
    return values


def top_bands(side: Mapping[str, Any], count: int = 3) -> list[int]:
    """The bands with the largest absolute influence summed over the regions, in band order."""
    absolute = _cells(side, "absolute").sum(axis=0)
    return sorted(np.argsort(-absolute, kind="stable")[:count].tolist())


def _heatmap(ax: Axes, side: Mapping[str, Any], title: str) -> Any:
    values = _cells(side)
    regions = side.get("regions") or [str(i) for i in range(values.shape[0])]
    image = ax.imshow(values, cmap=fhp_cmap("directed"), norm=fhp_norm("directed"), aspect="auto")
    ax.set_yticks(range(len(regions)), [str(r) for r in regions], fontsize=7)
    ax.set_xticks(range(values.shape[1]), [str(k) for k in range(values.shape[1])], fontsize=7)
    ax.set_xlabel("band (0 = lowest frequencies)", fontsize=8)
    ax.set_title(title, fontsize=9, parse_math=False)
    return image


def tint(face: np.ndarray, weights: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The face in gray, tinted per pixel by Σ_r w_r · values[r] on the directed map (RGB float)."""
    gray = np.asarray(face, np.float64).mean(axis=-1) / 255.0
    field = np.tensordot(values, np.asarray(weights, np.float64), axes=(0, 0))  # (H, W)
    colour = fhp_cmap("directed")(fhp_norm("directed")(field))[..., :3]
    alpha = np.clip(np.abs(field), 0, 1)[..., None] * 0.75
    return (1 - alpha) * gray[..., None] + alpha * colour


def _tints(
    axes: Sequence[Axes] | np.ndarray,
    face: np.ndarray,
    weights: np.ndarray,
    side: Mapping[str, Any],
    bands: Sequence[int],
) -> None:
    values = _cells(side)
    for ax, k in zip(axes, bands, strict=False):
        # Each band on its own scale (the title says by how much), so that a weaker band still
        # shows where its influence sits.
        gain = overlay_gain(side, k)
        ax.imshow(tint(face, weights, values[:, k] * gain))
        ax.set_title(f"band {k} (gain ×{gain:.3g})", fontsize=8)
        ax.set_axis_off()


def overlay_gain(side: Mapping[str, Any], band: int) -> float:
    """The factor a band's tinted face is amplified by, so that its largest cell is full colour."""
    peak = float(np.abs(_cells(side)[:, band]).max())
    return 1.0 / peak if peak > 0 else 1.0


def _check(face: np.ndarray, weights: np.ndarray, side: Mapping[str, Any]) -> None:
    values = _cells(side)
    if weights.ndim != 3 or weights.shape[0] != values.shape[0]:
        raise InputError(f"weights must be ({values.shape[0]}, H, W), got {weights.shape}")
    if face.shape[:2] != weights.shape[1:]:
        raise InputError(f"face {face.shape[:2]} and weights {weights.shape[1:]} differ in size")


def plot_region_heatmap(explanation: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """Region × band heat maps of the normalised directed influence, one per image."""
    sides = [s for s in ("a", "b", "probe") if s in explanation]
    fig = new_figure(4.2 * len(sides) + 0.8, 3.4)
    axes = np.atleast_1d(fig.subplots(1, len(sides)))
    image = None
    for ax, s in zip(axes, sides, strict=True):
        image = _heatmap(ax, explanation[s], f"{s}: {Path(str(explanation[s].get('source'))).name}")
    assert image is not None  # an explanation has sides a and b
    fig.colorbar(image, ax=list(axes), label="directed, normalised", shrink=0.9)
    return save_figure(fig, path)


def plot_region_tints(
    face: np.ndarray,
    weights: np.ndarray,
    side: Mapping[str, Any],
    path: str | os.PathLike[str],
    *,
    count: int = 3,
) -> Path:
    """Small multiples of one face for its ``count`` most influential bands."""
    _check(face, weights, side)
    bands = top_bands(side, count)
    fig = new_figure(2.0 * len(bands), 2.3)
    _tints(np.atleast_1d(fig.subplots(1, len(bands))), face, weights, side, bands)
    return save_figure(fig, path)


def plot_pair_regions(
    explanation: Mapping[str, Any],
    faces: np.ndarray,
    weights: np.ndarray,
    path: str | os.PathLike[str],
    *,
    count: int = 3,
    title: str | None = None,
) -> Path:
    """Per image of the pair: the region × band heat map and the face tinted for its ``count``
    most influential bands."""
    sides = [s for s in ("a", "b", "probe") if s in explanation]
    fig = new_figure(3.6 + 1.9 * count, 2.6 * len(sides) + 0.4)
    grid = fig.add_gridspec(len(sides), count + 1, width_ratios=[2.2] + [1.0] * count)
    image = None
    for row, s in enumerate(sides):
        _check(faces[row], weights, explanation[s])
        image = _heatmap(
            fig.add_subplot(grid[row, 0]),
            explanation[s],
            f"{s}: {Path(str(explanation[s].get('source'))).name}",
        )
        axes = [fig.add_subplot(grid[row, 1 + i]) for i in range(count)]
        _tints(axes, faces[row], weights, explanation[s], top_bands(explanation[s], count))
    assert image is not None  # an explanation has sides a and b
    fig.colorbar(
        image,
        ax=fig.axes,
        label="directed, normalised (blue: supported the match)",
        shrink=0.6,
        location="bottom",
    )
    if title is None:
        score, threshold = explanation.get("score_ref"), explanation.get("threshold")
        decision = "match" if explanation.get("decision") else "non-match"
        title = f"{explanation.get('model', {}).get('name', '')}: score {score:.3f} vs {threshold} → {decision}"
    fig.suptitle(title, fontsize=10, parse_math=False)
    return save_figure(fig, path)


def plot_class_region_maps(
    summary: Mapping[str, Any], path: str | os.PathLike[str], *, title: str | None = None
) -> Path:
    """A dataset run's mean region × band maps (directed, normalised per image), one heat map
    per class of ``summary["by_class"]`` (:func:`freqxfr.explanations.region_explanations.region_summary`)."""
    by_class = summary.get("by_class") or {}
    if not by_class:
        raise InputError("the region summary holds no class with explained images")
    names = summary.get("names")
    cols = min(3, len(by_class))
    rows = -(-len(by_class) // cols)
    fig = new_figure(4.0 * cols + 0.8, 3.0 * rows + 0.4)
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    image = None
    for ax, (cls, entry) in zip(axes, by_class.items(), strict=False):
        side = {"directed_normalised": entry["directed_normalised_mean"], "regions": names}
        image = _heatmap(ax, side, f"{display_name(cls)} ({entry['n_images']} images)")
    for ax in axes[len(by_class) :]:
        ax.set_axis_off()
    assert image is not None  # by_class is not empty (checked above)
    fig.colorbar(
        image,
        ax=list(axes),
        label="mean directed, normalised per image (blue: supported the match)",
        shrink=0.8,
    )
    if title:
        fig.suptitle(title, fontsize=10, parse_math=False)
    return save_figure(fig, path)
