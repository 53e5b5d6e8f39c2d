"""PNG plots of frequency explanations: FHP discs, band bars, masked strips, curves and profiles.

Every figure is a ``matplotlib.figure.Figure`` drawn on its own Agg canvas; pyplot and its global
state are never touched, so no figure is registered anywhere or leaked. Matplotlib does not promise
thread safety, so rendering (where text layout uses shared caches) is serialised by a lock; drawing
is GIL-bound anyway, so the lock costs no throughput, and plots may be made from several threads.
Each ``plot_*`` function takes plain data (the dicts of ``explanation.json``, ``summary.json`` and
faithfulness results, or arrays) and a path, writes the PNG atomically and returns the path.

A pair report's pictures (:func:`plot_pair`'s FHP discs, :func:`plot_band_bars`,
:func:`plot_masked_strip`) are drawn without a figure: the discs rasterised with numpy
(:func:`fhp_raster`), coloured by the same colormap and norm objects, and composed with Pillow in
matplotlib's DejaVu Sans, because a figure with its layout engine cost more than explaining the
pair (about 0.3 s for the three instead of 2 s; ``benchmarks/bench_drawing.py``).

Colours: absolute influence uses a sequential map on [0, 1], directed influence a diverging map on
[-1, 1] whose centre (white) is 0. Positive directed influence (blue) means the band supported the
match: deleting it lowered the score.

FHP geometry: the disc is the centred spectrum as ``imshow(fftshift(F))`` shows it, DC in the
middle, horizontal frequency to the right and vertical frequency downwards. The displayed radius is
the relative radius (1 = the spectrum's corner) on the ``radial`` scale: ``"linear"`` (true
radius), ``"area"`` (every band's ring the same area; the default, because on real faces almost
all influence sits in the lowest bands, which a linear disc squeezes into its inner fifth) or
``"log"``. Rings are labelled with their band index.
"""

from __future__ import annotations

import functools
import io
import itertools
import math
import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from statistics import NormalDist
from typing import Any, Literal

import matplotlib
import numpy as np
from matplotlib import colormaps, font_manager
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Colormap, Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Circle, Wedge
from matplotlib.ticker import MaxNLocator
from PIL import Image, ImageDraw, ImageFont

from freqxfr.common.atomic import write_output
from freqxfr.common.errors import InputError

ABSOLUTE_CMAP = "viridis"
DIRECTED_CMAP = "RdBu"
DPI = 110
_RENDER_LOCK = threading.Lock()
Kind = Literal["absolute", "directed"]
Radial = Literal["linear", "area", "log"]
RADIAL_SCALES: tuple[str, ...] = ("linear", "area", "log")
DEFAULT_RADIAL: Radial = "area"

_SIDES = ("a", "b")
_PROFILE_PANELS = (
    ("absolute_mean", "absolute_std", "absolute influence |Δscore|"),
    ("absolute_normalised_mean", None, "absolute, normalised per image"),
    ("directed_mean", "directed_std", "directed influence Δscore"),
    ("directed_normalised_mean", None, "directed, normalised per image"),
)


# --- figure plumbing --------------------------------------------------------------------------


def new_figure(
    width: float, height: float, *, layout: Literal["constrained"] | None = "constrained"
) -> Figure:
    """A figure with its own Agg canvas and constrained layout (no pyplot state); ``layout=None``
    for a figure whose axes are placed by hand (no layout engine: about half the drawing time)."""
    fig = Figure(figsize=(width, height), dpi=DPI, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path: str | os.PathLike[str]) -> Path:
    """Render ``fig`` as PNG into memory, then write it to ``path`` atomically.

    Raises ``OutputError`` naming the folder if it cannot be written.
    """
    buffer = io.BytesIO()
    with _RENDER_LOCK:
        fig.savefig(buffer, format="png", dpi=DPI, facecolor="white")
    return write_output(path, buffer.getvalue())


def fhp_norm(kind: Kind) -> Normalize:
    """The colour scale of an FHP: [0, 1] for absolute, symmetric [-1, 1] (0 at the centre) for directed."""
    if kind == "absolute":
        return Normalize(vmin=0.0, vmax=1.0, clip=True)
    if kind == "directed":
        return Normalize(vmin=-1.0, vmax=1.0, clip=True)
    raise InputError(f"kind must be 'absolute' or 'directed', got {kind!r}")


def fhp_cmap(kind: Kind) -> Colormap:
    """The colormap of an FHP of this kind (sequential for absolute, diverging for directed)."""
    fhp_norm(kind)  # validates kind
    return colormaps[ABSOLUTE_CMAP if kind == "absolute" else DIRECTED_CMAP]


def display_uint8(images: np.ndarray) -> np.ndarray:
    """Pixel values (e.g. masked images from ``mask_bands``) clipped to [0, 255] and rounded to uint8."""
    values = np.asarray(images)
    if values.dtype == np.uint8:
        return values
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


# --- the frequency heat plot ------------------------------------------------------------------


def fhp_disc(
    ax: Axes,
    values: Sequence[float] | np.ndarray,
    bands: Sequence[Mapping[str, Any]],
    *,
    kind: Kind,
    size: Sequence[int] | None = None,
    colorbar: bool = True,
    radial: str = DEFAULT_RADIAL,
    label_rings: bool = True,
) -> ScalarMappable:
    """Draw a frequency heat plot: a disc of rings (or ring sectors) coloured by band.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Where to draw; its aspect is set to equal and its frame is hidden.
    values : sequence of K floats
        One value per band: normalised absolute influences in [0, 1] for ``kind="absolute"``,
        normalised directed influences in [-1, 1] for ``kind="directed"``. Values outside the
        range saturate.
    bands : sequence of K dicts
        ``Band.to_dict()`` entries: ``"radius"`` [lo, hi] relative radius and ``"angle"`` [lo, hi]
        in [0, π]. A sector narrower than π is drawn as a wedge and its mirror by π.
    kind : {"absolute", "directed"}
    size : (H, W), optional
        The spectrum's size; if given, its border (the Nyquist box) is outlined.
    colorbar : bool
        Add a colourbar beside ``ax``.
    radial : {"area", "linear", "log"}
        How relative radius maps to the disc (see the module docstring).
    label_rings : bool
        Write the band index on each ring that is wide enough to read.

    Returns
    -------
    matplotlib.cm.ScalarMappable
        The colour scale used, e.g. for a shared colourbar.
    """
    vals = _band_values(values, bands, "values")
    norm, cmap = fhp_norm(kind), fhp_cmap(kind)
    mappable = ScalarMappable(norm=norm, cmap=cmap)
    scale = radial_scale(bands, radial)
    for value, band in zip(vals, bands, strict=True):
        r_lo, r_hi = (float(scale(x)) for x in band["radius"])
        a_lo, a_hi = (float(x) for x in band.get("angle", (0.0, math.pi)))
        colour = cmap(norm(value))
        for theta1, theta2 in _screen_angles(a_lo, a_hi):
            ax.add_patch(
                Wedge(
                    (0.0, 0.0),
                    r_hi,
                    theta1,
                    theta2,
                    width=r_hi - r_lo,
                    facecolor=colour,
                    edgecolor="white",
                    linewidth=0.4,
                )
            )
    r_max = float(scale(max(float(b["radius"][1]) for b in bands)))
    if size is not None:
        xs, ys = _nyquist_box(size, scale, 50, endpoint=True)
        ax.plot(xs, ys, color="0.55", linestyle="--", linewidth=0.8)
    # The disc's rim, so that a pale directed disc stays visible on a white page.
    ax.add_patch(Circle((0.0, 0.0), r_max, fill=False, edgecolor="0.55", linewidth=0.8))
    if label_rings:
        _label_rings(ax, bands, scale)
    lim = 1.03 * max(r_max, 1e-9)
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    if colorbar:
        bar = ax.figure.colorbar(mappable, ax=ax, shrink=0.8)
        bar.set_label("normalised |Δscore|" if kind == "absolute" else "normalised Δscore")
    return mappable


_RADIAL_NOTE = {
    "linear": "radius ∝ frequency",
    "area": "every ring the same area (low bands enlarged)",
    "log": "log radius (low bands enlarged)",
}


def radial_scale(bands: Sequence[Mapping[str, Any]], radial: str = DEFAULT_RADIAL):
    """The displayed radius (0..1) of a relative radius, as a vectorised function.

    ``"linear"``: the relative radius itself. ``"area"``: piecewise linear between the ring
    edges, with edge i of n at ``sqrt(i / n)``, so that every ring covers the same area. ``"log"``:
    ``log(1 + ρ/ρ₁) / log(1 + ρ_max/ρ₁)`` with ρ₁ the first ring's outer radius.
    """
    if radial not in RADIAL_SCALES:
        raise InputError(f"radial scale must be one of {', '.join(RADIAL_SCALES)}, got {radial!r}")
    edges = np.unique(np.array([float(x) for b in bands for x in b["radius"]]))
    top = float(edges[-1]) if edges.size else 1.0
    if radial == "linear" or edges.size < 2:
        return lambda rho: np.asarray(rho, dtype=float)
    if radial == "area":
        shown = np.sqrt(np.arange(edges.size) / (edges.size - 1)) * top
        return lambda rho: np.interp(rho, edges, shown)
    first = float(edges[1])
    return lambda rho: top * np.log1p(np.asarray(rho, dtype=float) / first) / np.log1p(top / first)


def _nyquist_box(
    size: Sequence[int], scale, n: int, *, endpoint: bool
) -> tuple[np.ndarray, np.ndarray]:
    """The border of an (H, W) spectrum (the Nyquist box) on the disc's radial ``scale``: x and y
    of ``n`` points a side, traced point by point, since on a non-linear scale it is no longer
    square."""
    height, width = (int(s) for s in size)
    corner = math.hypot(height // 2, width // 2)
    half_w, half_h = (width / 2) / corner, (height / 2) / corner
    t = np.linspace(0.0, 1.0, n, endpoint=endpoint)
    xs = np.concatenate(
        [
            -half_w + 2 * half_w * t,
            np.full(n, half_w),
            half_w - 2 * half_w * t,
            np.full(n, -half_w),
        ]
    )
    ys = np.concatenate(
        [
            np.full(n, -half_h),
            -half_h + 2 * half_h * t,
            np.full(n, half_h),
            half_h - 2 * half_h * t,
        ]
    )
    rho = np.hypot(xs, ys)
    shown = scale(rho) / np.maximum(rho, 1e-12)
    return xs * shown, ys * shown


def _label_rings(ax: Axes, bands: Sequence[Mapping[str, Any]], scale) -> None:
    """Band indices on every ring, staggered over rays so that they keep apart; at least
    :data:`RING_LABEL_PX` tall on the figure."""
    fontsize = RING_LABEL_PX * 72.0 / float(ax.figure.dpi)
    for mid, index, angle in ring_labels(bands, scale):
        ax.text(
            mid * math.cos(angle),
            mid * math.sin(angle),
            str(index),
            ha="center",
            va="center",
            fontsize=fontsize,
            color="0.1",
            bbox={"boxstyle": "round,pad=0.1", "facecolor": "white", "alpha": 0.6, "linewidth": 0},
        )


def _screen_angles(a_lo: float, a_hi: float) -> list[tuple[float, float]]:
    """Wedge angles in degrees (counter-clockwise on screen) for a band's orientation range.

    Band angles are measured from the horizontal-frequency axis towards +vertical frequency, which
    points *down* in the centred spectrum's usual display, so the screen angle is the negative.
    """
    if a_hi - a_lo >= math.pi - 1e-9:
        return [(0.0, 360.0)]
    lo, hi = -math.degrees(a_hi), -math.degrees(a_lo)
    return [(lo, hi), (lo + 180.0, hi + 180.0)]


# --- one pair ---------------------------------------------------------------------------------


def plot_pair(
    explanation: Mapping[str, Any],
    faces: np.ndarray,
    path: str | os.PathLike[str],
    *,
    radial: str = DEFAULT_RADIAL,
) -> Path:
    """Each face beside its absolute and directed FHP discs; score, threshold and decision on top.

    Parameters
    ----------
    explanation : dict
        An ``explanation.json`` dict (``Explanation.to_dict()``).
    faces : ndarray, (2, H, W, 3) uint8
        The two aligned faces, a then b, as the model saw them before masking.
    path : path-like
        Where to write the PNG.
    """
    check_bands(explanation)
    faces = _check_faces(faces)
    if radial not in RADIAL_SCALES:
        radial_scale([], radial)  # the one error message
    return _save_png(_pair_picture(explanation, faces, radial), path)


def plot_band_bars(explanation: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """Bar charts per band: absolute and directed influence (raw Δscore) for images a and b.

    Absolute bars take the FHP's sequential colour of their normalised value; directed bars are
    blue where the band supported the match and red where it worked against it.
    """
    return _save_png(_bars_picture(explanation), path)


def plot_masked_strip(
    views: np.ndarray,
    bands: Sequence[Mapping[str, Any]],
    path: str | os.PathLike[str],
    *,
    faces: np.ndarray | None = None,
    row_labels: Sequence[str] = ("a", "b"),
    columns: int = 6,
) -> Path:
    """What the model saw with each band deleted: per image, its tiles in rows of ``columns``.

    Parameters
    ----------
    views : ndarray, (N, K, H, W, 3)
        Masked images in pixel values; uint8, or float (clipped to [0, 255] for display, see
        :func:`display_uint8`).
    bands : sequence of K band dicts
    path : path-like
    faces : ndarray, (N, H, W, 3), optional
        The unmasked images, shown in an extra first column.
    row_labels : sequence of str
        One name per image, written in each of its tiles' labels.
    columns : int
        Tiles per row.
    """
    views = np.asarray(views)
    if views.ndim != 5 or views.shape[-1] != 3 or views.shape[1] != len(bands):
        raise InputError(
            f"views must have shape (N, K={len(bands)}, H, W, 3), got {tuple(views.shape)}"
        )
    tiles = display_uint8(views)
    titles = [
        f"−band {b.get('index', k)}  (ρ {b['radius'][0]:.2f}–{b['radius'][1]:.2f})"
        for k, b in enumerate(bands)
    ]
    if faces is not None:
        originals = display_uint8(np.asarray(faces))
        if originals.shape != (tiles.shape[0], *tiles.shape[2:]):
            raise InputError(
                f"faces must have shape {(tiles.shape[0], *tiles.shape[2:])} to match views, "
                f"got {originals.shape}"
            )
        tiles = np.concatenate([originals[:, None], tiles], axis=1)
        titles.insert(0, "original")
    images, per_image, h, w = tiles.shape[:4]
    # Wrapped into rows of `columns` tiles, each STRIP_TILE_PX wide, so that a tile and its label
    # can be read at the report's width (1200 px) whatever the number of bands. Drawn as one
    # picture with Pillow (no matplotlib figure: the strip is most of a pair report's pixels).
    cols = min(columns, per_image)
    rows_per_image = -(-per_image // cols)
    tile_w = STRIP_TILE_PX
    tile_h = max(1, round(h * tile_w / w))
    label_h, gap, foot = 18, 8, 24
    cell_h, cell_w = tile_h + label_h, tile_w + gap
    rows = images * rows_per_image
    width = cols * cell_w - gap
    height = rows * cell_h + gap * (images - 1) + foot
    mosaic = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(mosaic)
    font, small = _font(11), _font(12)
    for i in range(images):
        name = row_labels[i] if i < len(row_labels) else str(i)
        for t in range(per_image):
            r, c = i * rows_per_image + t // cols, t % cols
            top = r * cell_h + i * gap + label_h
            left = c * cell_w
            tile = Image.fromarray(tiles[i, t]).resize((tile_w, tile_h), Image.Resampling.BICUBIC)
            mosaic.paste(tile, (left, top))
            draw.text(
                (left + tile_w / 2, top - 3), f"{name}: {titles[t]}", fill="black", font=font,
                anchor="md",
            )  # fmt: skip
    draw.text(
        (width / 2, height - 4),
        "each image with one band deleted, as the model saw it (clipped to [0, 255] for display)",
        fill=(77, 77, 77),
        font=small,
        anchor="md",
    )
    return _save_png(mosaic, path)


STRIP_TILE_PX = 168  # a strip tile's width: 6 tiles and their gaps fit in 1,200 px


def plot_curves(faithfulness: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """Deletion and insertion curves per image: the decision-aware order, the paper's absolute
    order and the random orders' mean ± sd; each row's title says which direction is faithful.

    Parameters
    ----------
    faithfulness : dict
        ``Explainer.faithfulness(...).to_dict()``: per side ``variants`` (``support``,
        ``against``, ``absolute``: ``deletion`` and ``insertion``), ``decision_aware``,
        ``random_*`` (one curve per seed) and ``areas``.
    path : path-like
    """
    # Axes placed by hand: constrained layout took half of this figure's drawing time.
    fig = new_figure(10.0, 9.6, layout=None)
    axes = fig.subplots(2, 2)
    fig.subplots_adjust(left=0.08, right=0.98, top=0.93, bottom=0.135, wspace=0.18, hspace=0.52)
    threshold = faithfulness.get("threshold")
    for row, side in enumerate(_SIDES):
        data = faithfulness.get(side)
        if not isinstance(data, Mapping) or not isinstance(data.get("variants"), Mapping):
            raise InputError(f"faithfulness is missing side {side!r} or its variants")
        aware = str(data.get("decision_aware", "support"))
        areas = data.get("areas") or {}
        shown = [(aware, "C0", "-", f"decision-aware: {aware} order")]
        if aware != "absolute":
            shown.append(("absolute", "C1", "--", "absolute order (paper)"))
        for col, curve in enumerate(("deletion", "insertion")):
            ax = axes[row, col]
            size = None
            for name, colour, style, label in shown:
                values = data["variants"].get(name) or {}
                main = _curve(values, curve, f"faithfulness.{side}.variants.{name}.{curve}")
                size = main.size
                x = np.linspace(0.0, 1.0, main.size)
                auc = (areas.get(name) or {}).get(f"{curve}_auc")
                ax.plot(
                    x,
                    main,
                    color=colour,
                    linestyle=style,
                    marker="o",
                    markersize=3,
                    linewidth=1.8 if colour == "C0" else 1.2,
                    label=f"{label} (AUC {_fmt_auc(auc)})",
                )
            randoms = data.get(f"random_{curve}")
            if randoms:
                rnd = np.asarray(randoms, dtype=np.float64)
                if rnd.ndim != 2 or rnd.shape[1] != size:
                    raise InputError(
                        f"faithfulness.{side}.random_{curve} must be (seeds, {size}), got {rnd.shape}"
                    )
                x = np.linspace(0.0, 1.0, rnd.shape[1])
                mean, sd = rnd.mean(axis=0), rnd.std(axis=0)
                ax.fill_between(x, mean - sd, mean + sd, color="0.6", alpha=0.35, linewidth=0)
                auc = (areas.get(aware) or {}).get(f"random_{curve}_auc")
                ax.plot(
                    x,
                    mean,
                    color="0.35",
                    linewidth=1.3,
                    label=f"random, mean ± sd of {rnd.shape[0]} (AUC {_fmt_auc(auc)})",
                )
            if threshold is not None:
                ax.axhline(
                    float(threshold), color="0.2", linestyle=":", linewidth=1.0, label="threshold"
                )
            rises = aware == "against"
            if curve == "deletion":
                goal = (
                    "faithful: ABOVE random (score rises)"
                    if rises
                    else "faithful: BELOW random (score falls)"
                )
            else:
                goal = "faithful: BELOW random" if rises else "faithful: ABOVE random"
            ax.set_title(f"{side}: {curve}, {goal}", fontsize=9)
            ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.07), ncols=1)
            ax.grid(alpha=0.3)
        axes[row, 0].set_ylabel("score")
    fig.supxlabel("x: fraction of bands deleted (left) or inserted (right)", fontsize=9, y=0.01)
    decision = faithfulness.get("decision")
    if decision is None:
        headline = "faithfulness: deletion and insertion against random orders"
    elif decision:
        headline = (
            "match: deleting the bands that supported the match first should lower the "
            "score faster than random"
        )
    else:
        headline = (
            "non-match: deleting the bands that worked against the match first should "
            "raise the score faster than random"
        )
    fig.suptitle(headline, fontsize=10)
    return save_figure(fig, path)


_FAITHFUL_CLASSES = ("genuine", "impostor", "match", "non_match")
_FAITHFUL_VARIANTS = ("decision_aware", "support", "against", "absolute")


def plot_faithfulness_classes(by_class: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """Per class and variant: the share of images whose deletion beats random, and the mean
    deletion area minus the random mean (its faithful sign differs by variant).

    ``by_class`` is ``summary["faithfulness"]["by_class"]``.
    """
    classes = [c for c in _FAITHFUL_CLASSES if (by_class.get(c) or {}).get("n_images")]
    if not classes:
        raise InputError("faithfulness summary has no class with explained images")
    fig = new_figure(11.0, 4.2)
    ax_rate, ax_gap = fig.subplots(1, 2)
    x = np.arange(len(classes))
    width = 0.8 / len(_FAITHFUL_VARIANTS)
    for i, name in enumerate(_FAITHFUL_VARIANTS):
        rates = [by_class[c][name]["beats_random"] for c in classes]
        gaps = [
            by_class[c][name]["deletion_auc"] - by_class[c][name]["random_deletion_auc"]
            for c in classes
        ]
        offset = (i - (len(_FAITHFUL_VARIANTS) - 1) / 2) * width
        label = display_name(name).replace("decision aware", "decision-aware")
        ax_rate.bar(x + offset, rates, width, color=f"C{i}", label=label)
        ax_gap.bar(x + offset, gaps, width, color=f"C{i}", label=label)
        for j, c in enumerate(classes):
            if not by_class[c][name]["holds"]:
                ax_rate.text(
                    x[j] + offset,
                    rates[j] + 0.01,
                    "x",
                    ha="center",
                    fontsize=8,
                    color="C3",
                    fontweight="bold",
                )
    labels = [f"{display_name(c)}\n(n={by_class[c]['n_images']})" for c in classes]
    ax_rate.axhline(0.5, color="0.3", linestyle=":", linewidth=1.0)
    ax_rate.set_ylim(0, 1.08)
    ax_rate.set_xticks(x, labels, fontsize=8)
    ax_rate.set_ylabel("share of images beating random")
    ax_rate.set_title("deletion beats random (x: the criterion does not hold)", fontsize=9)
    ax_rate.legend(fontsize=7, loc="lower left")
    ax_gap.axhline(0.0, color="0.3", linewidth=0.8)
    ax_gap.set_xticks(x, labels, fontsize=8)
    ax_gap.set_ylabel("deletion AUC − random AUC")
    ax_gap.set_title(
        "faithful: below 0 for support/absolute, above 0 for against;\n"
        "decision-aware: below for matches, above for non-matches",
        fontsize=9,
    )
    for ax in (ax_rate, ax_gap):
        ax.grid(alpha=0.3, axis="y")
    return save_figure(fig, path)


# --- dataset profiles -------------------------------------------------------------------------


def plot_profiles(summary: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """Band profiles of genuine vs impostor pairs: mean ± sd of absolute and directed influence."""
    classes = usable_profiles(summary.get("classes"))
    if not classes:
        raise InputError("summary has no class profiles (summary['classes'] is empty)")
    return _profile_figure(summary, [("genuine vs impostor", classes)], path)


def plot_outcome_profiles(summary: Mapping[str, Any], path: str | os.PathLike[str]) -> Path | None:
    """Band profiles per decision outcome (true/false match/non-match); ``None`` if there are none."""
    outcomes = usable_profiles(summary.get("outcomes"))
    if not outcomes:
        return None
    return _profile_figure(summary, [("decision outcomes", outcomes)], path)


def plot_group_profiles(summary: Mapping[str, Any], path: str | os.PathLike[str]) -> Path | None:
    """Band profiles per value of each group column (one row per column); ``None`` if there are none."""
    groups = summary.get("groups") or {}
    rows = []
    for column, values in groups.items():
        profiles = usable_profiles(values)
        if profiles:
            rows.append((f"group: {column}", profiles))
    if not rows:
        return None
    return _profile_figure(summary, rows, path)


def _profile_figure(
    summary: Mapping[str, Any],
    rows: list[tuple[str, dict[str, Mapping[str, Any]]]],
    path: str | os.PathLike[str],
) -> Path:
    bands = check_bands(summary)
    fig = new_figure(15.0, 3.3 * len(rows) + 0.4)
    axes = np.asarray(fig.subplots(len(rows), len(_PROFILE_PANELS), squeeze=False, sharex=True))
    x = np.arange(len(bands))
    for r, (row_title, profiles) in enumerate(rows):
        for c, (mean_key, std_key, title) in enumerate(_PROFILE_PANELS):
            ax = axes[r, c]
            for i, (name, prof) in enumerate(profiles.items()):
                mean = _band_values(prof[mean_key], bands, f"{row_title}.{name}.{mean_key}")
                label = f"{display_name(name)} (n={prof.get('n_images', '?')})"
                ax.plot(x, mean, marker="o", markersize=3, color=f"C{i}", label=label)
                if std_key and prof.get(std_key) is not None:
                    sd = _band_values(prof[std_key], bands, f"{row_title}.{name}.{std_key}")
                    ax.fill_between(x, mean - sd, mean + sd, color=f"C{i}", alpha=0.18, linewidth=0)
            if mean_key.startswith("directed"):
                ax.axhline(0.0, color="0.3", linewidth=0.7)
            ax.set_title(title if r == 0 else "", fontsize=9)
            ax.grid(alpha=0.3)
            _band_ticks(ax, bands)
            if r == len(rows) - 1:
                ax.set_xlabel("band (0 = lowest frequencies)")
        axes[r, 0].set_ylabel(row_title, parse_math=False)
        axes[r, 0].legend(fontsize=7, loc="best")
    fig.suptitle("band profiles (line: mean over explained images; shade: ± sd)", fontsize=10)
    return save_figure(fig, path)


# --- raster drawing (numpy + Pillow, no matplotlib figure) ----------------------------------------
#
# The pair report's pictures (FHP discs, band bars, masked strip) are drawn here: a matplotlib
# figure with its layout engine cost about a second each, more than explaining the pair. Colours
# come from the same matplotlib colormap and norm objects (no figure), text is matplotlib's own
# DejaVu Sans drawn with Pillow.

FHP_DISC_PX = 250  # an FHP disc's diameter in the pair figure
_SUPERSAMPLE = 2  # sub-pixels per pixel (each way) when rasterising rings: smooth edges
_INK = (26, 26, 26)
_GREY = (140, 140, 140)  # matplotlib's "0.55"
_NOTE = (77, 77, 77)  # "0.3"
_PNG_LEVEL = 3  # zlib level of the written PNGs: much faster than the default 6, a few % larger
_FONTS: dict[int, Any] = {}


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Matplotlib's own DejaVu Sans at ``size`` px (it has the minus sign, ρ and Δ), cached."""
    font = _FONTS.get(size)
    if font is None:
        path = os.path.join(matplotlib.get_data_path(), "fonts", "ttf", "DejaVuSans.ttf")
        try:
            font = ImageFont.truetype(path, size)
        except OSError:
            try:
                font = ImageFont.truetype(font_manager.findfont("DejaVu Sans"), size)
            except OSError:  # no TrueType support in this Pillow: its built-in font
                font = ImageFont.load_default()
        _FONTS[size] = font
    return font


def _rgb(colour: Sequence[float]) -> tuple[int, int, int]:
    return tuple(round(float(c) * 255) for c in colour[:3])  # type: ignore[return-value]


def _save_png(image: Image.Image, path: str | os.PathLike[str]) -> Path:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=_PNG_LEVEL)
    return write_output(path, buffer.getvalue())


def _text(draw: ImageDraw.ImageDraw, xy, text: str, size: int, fill=_INK, anchor="la") -> None:
    draw.text(xy, text, fill=fill, font=_font(size), anchor=anchor)


def _vertical_text(image: Image.Image, centre: tuple[float, float], text: str, size: int) -> None:
    """``text`` rotated by 90° (reading upwards), centred on ``centre``."""
    font = _font(size)
    box = font.getbbox(text)
    label = Image.new("L", (int(box[2] - box[0]) + 4, int(box[3] - box[1]) + 4), 0)
    ImageDraw.Draw(label).text((2 - box[0], 2 - box[1]), text, fill=255, font=font)
    label = label.rotate(90, expand=True)
    left, top = round(centre[0] - label.width / 2), round(centre[1] - label.height / 2)
    ink = Image.new("RGB", label.size, _INK)
    image.paste(ink, (left, top), label)


def fhp_raster(
    values: Sequence[float] | np.ndarray,
    bands: Sequence[Mapping[str, Any]],
    *,
    kind: Kind,
    size: Sequence[int] | None = None,
    radial: str = DEFAULT_RADIAL,
    label_rings: bool = True,
    px: int = FHP_DISC_PX,
) -> Image.Image:
    """The frequency heat plot of :func:`fhp_disc` as a ``px`` × ``px`` RGB picture, rasterised
    with numpy: the same rings (or ring sectors and their mirrors), colours, radial scale,
    Nyquist box, rim and ring labels, without a matplotlib figure.

    Screen geometry as ``imshow(fftshift(F))``: horizontal frequency to the right, vertical
    frequency downwards; band angles run from the horizontal-frequency axis towards +vertical.
    """
    vals = _band_values(values, bands, "values")
    colours = fhp_cmap(kind)(fhp_norm(kind)(vals))[:, :3].astype(np.float32)
    scale = radial_scale(bands, radial)
    r_max = float(scale(max(float(b["radius"][1]) for b in bands)))
    lim = 1.03 * max(r_max, 1e-9)
    key = tuple(
        (*(float(v) for v in b["radius"]), *(float(v) for v in b.get("angle", (0.0, math.pi))))
        for b in bands
    )
    subs = _disc_labels(key, radial, px)
    palette = np.vstack([colours, np.ones((1, 3), np.float32)])  # index -1: white
    # Each pixel: the mean colour of its sub-pixels (smooth ring edges).
    rgb = sum(palette[sub] for sub in subs) / len(subs)
    image = Image.fromarray(np.round(rgb * 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image, "RGBA")

    def to_px(xs: np.ndarray, ys: np.ndarray) -> list[tuple[float, float]]:
        return list(
            zip(
                ((xs + lim) / (2 * lim) * px).tolist(),
                ((ys + lim) / (2 * lim) * px).tolist(),
                strict=True,
            )
        )

    if size is not None:
        points = to_px(*_nyquist_box(size, scale, 60, endpoint=False))
        points.append(points[0])
        _dashed(draw, points, dash=4.0, gap=2.5)
    centre = px / 2
    radius = r_max / (2 * lim) * px
    draw.ellipse(
        (centre - radius, centre - radius, centre + radius, centre + radius), outline=_GREY, width=1
    )
    if label_rings:
        font = _font(RING_LABEL_PX + 1)
        for mid, index, angle in ring_labels(bands, scale):
            # Along its ray (screen y points down), in a half-transparent white box.
            x, y = mid * math.cos(angle), mid * math.sin(angle)
            ((cx, cy),) = to_px(np.array([x]), np.array([-y]))
            box = draw.textbbox((cx, cy), str(index), font=font, anchor="mm")
            draw.rectangle(
                (box[0] - 1, box[1] - 1, box[2] + 1, box[3] + 1), fill=(255, 255, 255, 153)
            )
            draw.text((cx, cy), str(index), fill=_INK, font=font, anchor="mm")
    return image


@functools.lru_cache(maxsize=16)
def _disc_labels(
    key: tuple[tuple[float, ...], ...], radial: str, px: int
) -> tuple[np.ndarray, ...]:
    """The band index (-1: none, or a white edge between bands) of every sub-pixel of a disc,
    as the ``_SUPERSAMPLE²`` interleaved (px, px) grids; the same for every disc of a schedule,
    so computed once."""
    bands = [{"radius": k[:2], "angle": k[2:]} for k in key]
    scale = radial_scale(bands, radial)
    r_max = float(scale(max(k[1] for k in key)))
    lim = 1.03 * max(r_max, 1e-9)
    n = px * _SUPERSAMPLE
    axis = (np.arange(n) + 0.5) / n * (2 * lim) - lim
    x, y_down = axis[None, :], axis[:, None]  # screen x right, y down (= +vertical frequency)
    rho = np.hypot(x, y_down)
    polar = any(k[3] - k[2] < math.pi - 1e-9 for k in key)
    # The band angle of every sub-pixel, folded by π (a band and its mirror share a colour).
    phi = np.mod(np.arctan2(y_down, x), math.pi) if polar else None
    labels = np.full((n, n), -1, np.int32)
    for k, (lo, hi, a_lo, a_hi) in enumerate(key):
        r_lo, r_hi = float(scale(lo)), float(scale(hi))
        inside = (rho >= r_lo) & (rho < r_hi)
        if phi is not None and a_hi - a_lo < math.pi - 1e-9:
            inside &= (phi >= a_lo) & (phi < a_hi)
        labels[inside] = k
    # Thin white lines between bands (matplotlib's white wedge edges).
    edge = np.zeros((n, n), bool)
    edge[1:, :] |= labels[1:, :] != labels[:-1, :]
    edge[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    labels[edge] = -1
    step = _SUPERSAMPLE
    grids = tuple(labels[i::step, j::step].copy() for i in range(step) for j in range(step))
    for grid in grids:
        grid.flags.writeable = False  # cached: shared by every later disc of this schedule
    return grids


def _dashed(
    draw: ImageDraw.ImageDraw, points: list[tuple[float, float]], dash: float, gap: float
) -> None:
    """A dashed polyline through ``points`` (Pillow draws solid lines only)."""
    period, travelled = dash + gap, 0.0
    for (x0, y0), (x1, y1) in itertools.pairwise(points):
        length = math.hypot(x1 - x0, y1 - y0)
        start = 0.0
        while start < length:
            phase = (travelled + start) % period
            step = min(length - start, (dash - phase) if phase < dash else (period - phase))
            if phase < dash:
                f0, f1 = start / length, (start + step) / length
                draw.line(
                    (
                        x0 + f0 * (x1 - x0),
                        y0 + f0 * (y1 - y0),
                        x0 + f1 * (x1 - x0),
                        y0 + f1 * (y1 - y0),
                    ),
                    fill=_GREY,
                    width=1,
                )
            start += max(step, 1e-9)
        travelled += length


#: The least height of a ring label, in pixels of the picture.
RING_LABEL_PX = 10
#: The rays ring labels sit on, in turn (radians, counter-clockwise from the right).
_LABEL_RAYS = tuple(math.radians(a) for a in (45, 135, 225, 315, 90, 270, 0, 180))


def ring_labels(bands: Sequence[Mapping[str, Any]], scale) -> list[tuple[float, int, float]]:
    """(displayed mid-radius, band index, ray angle) of every ring: each label goes on the first
    ray of :data:`_LABEL_RAYS` where it keeps a label's height from the previous label on that
    ray (the ray with the most room when none does), so thin rings are labelled too."""
    rings: dict[tuple[float, float], int] = {}
    for k, band in enumerate(bands):
        key = (float(band["radius"][0]), float(band["radius"][1]))
        rings.setdefault(key, int(band.get("ring", band.get("index", k))))
    ordered = sorted(rings.items())
    if not ordered:
        return []
    gap = 0.1 * float(scale(ordered[-1][0][1]))  # a label and a margin on a 250 px disc
    last = dict.fromkeys(_LABEL_RAYS, -math.inf)
    shown: list[tuple[float, int, float]] = []
    for (lo, hi), index in ordered:
        mid = (float(scale(lo)) + float(scale(hi))) / 2
        ray = next((a for a in _LABEL_RAYS if mid - last[a] >= gap), None)
        if ray is None:
            ray = min(_LABEL_RAYS, key=lambda a: last[a])
        last[ray] = mid
        shown.append((mid, index, ray))
    return shown


def colorbar_raster(kind: Kind, height: int) -> Image.Image:
    """A vertical colour bar of an FHP (its map and limits), ticks and label, ``height`` px tall."""
    norm, cmap = fhp_norm(kind), fhp_cmap(kind)
    vmin, vmax = float(norm.vmin or 0.0), float(norm.vmax or 1.0)  # set by fhp_norm
    bar_w, width = 14, 74
    image = Image.new("RGB", (width, height), "white")
    top, bottom = 6, height - 6
    span = bottom - top
    levels = np.linspace(vmax, vmin, span)  # top = largest value
    strip = np.round(cmap(norm(levels))[:, :3] * 255).astype(np.uint8)
    image.paste(Image.fromarray(np.repeat(strip[:, None], bar_w, axis=1), "RGB"), (2, top))
    draw = ImageDraw.Draw(image)
    draw.rectangle((2, top, 2 + bar_w, bottom), outline=_INK, width=1)
    ticks = np.linspace(0.0, 1.0, 6) if kind == "absolute" else np.linspace(-1.0, 1.0, 5)
    for value in ticks:
        y = bottom - (value - vmin) / (vmax - vmin) * span
        draw.line((2 + bar_w, y, 2 + bar_w + 3, y), fill=_INK, width=1)
        _text(
            draw,
            (2 + bar_w + 5, y),
            _tick_text(value, 0.2 if kind == "absolute" else 0.5),
            10,
            anchor="lm",
        )
    label = "normalised |Δscore|" if kind == "absolute" else "normalised Δscore"
    _vertical_text(image, (width - 9, (top + bottom) / 2), label, 11)
    return image


def _tick_text(value: float, step: float) -> str:
    decimals = max(0, -math.floor(math.log10(step) + 1e-9)) if step > 0 else 0
    text = f"{value:.{decimals}f}"
    if float(text) == 0:
        text = text.lstrip("-")
    return text.replace("-", "−")


def _fit_face(face: np.ndarray, side: int) -> Image.Image:
    image = Image.fromarray(face)
    scale = side / max(image.width, image.height)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS)


def _pair_picture(explanation: Mapping[str, Any], faces: np.ndarray, radial: str) -> Image.Image:
    bands = check_bands(explanation)
    size = (explanation.get("model") or {}).get("input_size")
    disc, gap, bar_w = FHP_DISC_PX, 26, 74
    title_lines = _decision_title(explanation).split("\n")
    head = 12 + 19 * len(title_lines)
    caption_h, row_gap, foot = 20, 14, 26
    col_x = [gap, gap + disc + gap]
    col_x.append(col_x[1] + disc + bar_w + gap)
    width = col_x[2] + disc + bar_w + gap
    row_h = caption_h + disc
    height = head + 2 * row_h + row_gap + foot
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(title_lines):
        _text(draw, (width / 2, 10 + 19 * i), line, 15 if i == 0 else 13, anchor="ma")
    bars = {kind: colorbar_raster(kind, round(disc * 0.8)) for kind in ("absolute", "directed")}
    for row, side in enumerate(_SIDES):
        data = check_side(explanation, side)
        top = head + row * (row_h + row_gap)
        face = _fit_face(faces[row], disc)
        image.paste(
            face, (col_x[0] + (disc - face.width) // 2, top + caption_h + (disc - face.height) // 2)
        )
        _text(
            draw,
            (col_x[0] + disc / 2, top + 2),
            f"{side}: {_short(data.get('source'))}",
            12,
            anchor="ma",
        )
        kinds: tuple[tuple[int, Kind], ...] = ((1, "absolute"), (2, "directed"))
        for col, kind in kinds:
            values = _band_values(data[f"{kind}_normalised"], bands, f"{side}.{kind}_normalised")
            image.paste(
                fhp_raster(values, bands, kind=kind, size=size, radial=radial),
                (col_x[col], top + caption_h),
            )
            image.paste(bars[kind], (col_x[col] + disc + 4, top + caption_h + round(disc * 0.1)))
            _text(draw, (col_x[col] + disc / 2, top + 2), f"{kind} FHP", 12, anchor="ma")
    _text(
        draw,
        (width / 2, height - 6),
        "centre: low frequencies (DC)   edge: spectrum corner   dashed: Nyquist box   "
        "numbers: band index   " + _RADIAL_NOTE[radial],
        11,
        fill=_NOTE,
        anchor="md",
    )
    return image


def _nice_ticks(lo: float, hi: float) -> tuple[np.ndarray, float, float, float]:
    """Ticks (matplotlib's MaxNLocator, no figure), their step and the axis limits covering
    [lo, hi] with a 5 % margin and 0."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    if hi - lo <= 0:
        hi = lo + 1.0
    pad = 0.05 * (hi - lo)
    lo_l, hi_l = (lo - pad if lo < 0 else lo), (hi + pad if hi > 0 else hi)
    ticks = np.asarray(MaxNLocator(nbins=5, steps=[1, 2, 2.5, 5, 10]).tick_values(lo_l, hi_l))
    ticks = ticks[(ticks >= lo_l - 1e-12) & (ticks <= hi_l + 1e-12)]
    step = float(ticks[1] - ticks[0]) if ticks.size > 1 else 1.0
    return ticks, step, lo_l, hi_l


def _bar_panel(
    image: Image.Image,
    box: tuple[int, int, int, int],
    values: np.ndarray,
    colours: Sequence[tuple[int, int, int]],
    limits: tuple[np.ndarray, float, float, float],
    *,
    y_labels: bool,
    x_ticks: Sequence[tuple[int, str]] | None,
    zero_line: bool,
) -> None:
    """One bar chart in ``box`` (left, top, right, bottom) of ``image``: frame, y grid ticks,
    bars with dark edges, optional zero line and x tick labels."""
    draw = ImageDraw.Draw(image)
    left, top, right, bottom = box
    ticks, step, lo, hi = limits
    k = values.size

    def y_of(v: float) -> float:
        return bottom - (v - lo) / (hi - lo) * (bottom - top)

    def x_of(i: float) -> float:
        return left + (i + 0.5 + 0.1) / (k + 0.2) * (right - left)

    for v in ticks:
        y = y_of(float(v))
        draw.line((left - 3, y, left, y), fill=_INK)
        if y_labels:
            _text(draw, (left - 5, y), _tick_text(float(v), step), 10, anchor="rm")
    half = 0.4 / (k + 0.2) * (right - left)
    base = y_of(0.0)
    for i, (value, colour) in enumerate(zip(values.tolist(), colours, strict=True)):
        xc, yv = x_of(i), y_of(value)
        draw.rectangle(
            (xc - half, min(base, yv), xc + half, max(base, yv)), fill=colour, outline=(51, 51, 51)
        )
    if zero_line:
        draw.line((left, base, right, base), fill=(51, 51, 51), width=1)
    draw.rectangle((left, top, right, bottom), outline=_INK, width=1)
    for i, text in x_ticks or ():
        x = x_of(i)
        draw.line((x, bottom, x, bottom + 3), fill=_INK)
        _text(draw, (x, bottom + 5), text, 10, anchor="ma")


def _bar_tick_labels(bands: Sequence[Mapping[str, Any]]) -> list[tuple[int, str]]:
    k = len(bands)
    if any(int(b.get("sector", 0)) for b in bands):
        starts = [i for i, b in enumerate(bands) if int(b.get("sector", 0)) == 0]
        return [(i, f"r{bands[i].get('ring', i)}") for i in starts]
    step = 1 if k <= 24 else math.ceil(k / 16)
    return [(i, str(i)) for i in range(0, k, step)]


def _bars_picture(explanation: Mapping[str, Any]) -> Image.Image:
    bands = check_bands(explanation)
    k = len(bands)
    abs_cmap, dir_cmap = fhp_cmap("absolute"), fhp_cmap("directed")
    palette = [_rgb(dir_cmap(0.85)), _rgb(dir_cmap(0.15))]
    data = {}
    for side in _SIDES:
        d = check_side(explanation, side)
        absolute = _band_values(d["absolute"], bands, f"{side}.absolute")
        abs_norm = _band_values(d["absolute_normalised"], bands, f"{side}.absolute_normalised")
        directed = _band_values(d["directed"], bands, f"{side}.directed")
        data[side] = (
            d,
            absolute,
            [_rgb(c) for c in abs_cmap(np.clip(abs_norm, 0, 1))],
            directed,
            [palette[0] if v >= 0 else palette[1] for v in directed.tolist()],
        )
    rows = [
        _nice_ticks(
            min(float(data[s][1].min()) for s in _SIDES),
            max(float(data[s][1].max()) for s in _SIDES),
        ),
        _nice_ticks(
            min(float(data[s][3].min()) for s in _SIDES),
            max(float(data[s][3].max()) for s in _SIDES),
        ),
    ]
    title_lines = _decision_title(explanation).split("\n")
    head = 12 + 18 * len(title_lines) + 22
    panel_w = max(340, 26 * k)
    panel_h, left_pad, mid_gap, row_gap, foot = 180, 92, 30, 22, 44
    width = left_pad + 2 * panel_w + mid_gap + 20
    height = head + 2 * panel_h + row_gap + foot
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(title_lines):
        _text(draw, (width / 2, 10 + 18 * i), line, 14 if i == 0 else 12, anchor="ma")
    ticks = _bar_tick_labels(bands)
    for col, side in enumerate(_SIDES):
        d, absolute, abs_colours, directed, dir_colours = data[side]
        left = left_pad + col * (panel_w + mid_gap)
        _text(
            draw,
            (left + panel_w / 2, head - 18),
            f"{side}: {_short(d.get('source'))}",
            12,
            anchor="ma",
        )
        for row, (values, colours) in enumerate(((absolute, abs_colours), (directed, dir_colours))):
            top = head + row * (panel_h + row_gap)
            _bar_panel(
                image,
                (left, top, left + panel_w, top + panel_h),
                values,
                colours,
                rows[row],
                y_labels=col == 0,
                x_ticks=ticks if row == 1 else None,
                zero_line=row == 1,
            )
        _text(
            draw, (left + panel_w / 2, height - 8), "band (0 = lowest frequencies)", 12, anchor="md"
        )
    for row, label in enumerate(("absolute |s_ref − s_k|", "directed s_ref − s_k")):
        top = head + row * (panel_h + row_gap)
        _vertical_text(image, (14, top + panel_h / 2), label, 12)
    return image


# --- helpers ----------------------------------------------------------------------------------


def display_name(key: str) -> str:
    """A summary key as a label: ``"true_non_match"`` → ``"true non-match"``."""
    return str(key).replace("non_match", "non-match").replace("_", " ")


def check_bands(data: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The ``"bands"`` list of an explanation or summary dict, checked; ``InputError`` otherwise."""
    bands = data.get("bands")
    if not isinstance(bands, Sequence) or not bands:
        raise InputError("the explanation/summary has no 'bands' list")
    for i, band in enumerate(bands):
        if not isinstance(band, Mapping) or len(band.get("radius", ())) != 2:
            raise InputError(f"band {i} must be a dict with a 'radius' [lo, hi] entry")
    return list(bands)


def check_side(explanation: Mapping[str, Any], side: str) -> Mapping[str, Any]:
    """The per-image dict ``explanation[side]`` with its influence lists; ``InputError`` otherwise."""
    data = explanation.get(side)
    if not isinstance(data, Mapping):
        raise InputError(f"explanation is missing image {side!r}")
    for key in ("absolute", "directed", "absolute_normalised", "directed_normalised"):
        if key not in data:
            raise InputError(f"explanation is missing '{side}.{key}'")
    return data


def _band_values(values: Any, bands: Sequence[Any], name: str) -> np.ndarray:
    return check_vector(values, name, len(bands))


def check_vector(values: Any, name: str, size: int | None = None) -> np.ndarray:
    """``values`` as a finite, non-empty 1-D float array (of ``size`` values if given), or an
    :class:`InputError` naming it."""
    try:
        out = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a sequence of numbers") from None
    if out.ndim != 1 or (size is not None and out.size != size) or out.size == 0:
        want = f"{size} values" if size is not None else "a non-empty 1-D sequence"
        raise InputError(f"{name} must be {want}, got shape {out.shape}")
    if not np.isfinite(out).all():
        raise InputError(f"{name} holds NaN or infinite values")
    return out


def _curve(data: Mapping[str, Any], key: str, name: str) -> np.ndarray:
    if key not in data:
        raise InputError(f"{name} is missing")
    return check_vector(data[key], name)


def _check_faces(faces: np.ndarray) -> np.ndarray:
    arr = np.asarray(faces)
    if arr.ndim != 4 or arr.shape[0] != 2 or arr.shape[-1] != 3:
        raise InputError(f"faces must have shape (2, H, W, 3), got {tuple(arr.shape)}")
    return display_uint8(arr)


def usable_profiles(profiles: Mapping[str, Any] | None) -> dict[str, Mapping[str, Any]]:
    """The PROFILE dicts of ``profiles`` that hold at least one explained image, by name."""
    return {
        str(name): p
        for name, p in (profiles or {}).items()
        if isinstance(p, Mapping) and p.get("n_images") and "absolute_mean" in p
    }


def _band_ticks(ax: Axes, bands: Sequence[Mapping[str, Any]]) -> None:
    k = len(bands)
    if any(int(b.get("sector", 0)) for b in bands):
        starts = [i for i, b in enumerate(bands) if int(b.get("sector", 0)) == 0]
        ax.set_xticks(starts, [f"r{bands[i].get('ring', i)}" for i in starts], fontsize=7)
    else:
        step = 1 if k <= 24 else math.ceil(k / 16)
        ticks = list(range(0, k, step))
        ax.set_xticks(ticks, [str(i) for i in ticks], fontsize=7)


def _fmt_auc(value: Any) -> str:
    return "n/a" if value is None else f"{float(value):.3f}"


def _short(source: Any, limit: int = 40) -> str:
    text = "?" if source is None else os.path.basename(str(source)) or str(source)
    return text if len(text) <= limit else "…" + text[-(limit - 1) :]


def _decision_title(explanation: Mapping[str, Any]) -> str:
    for key in ("score_ref", "threshold", "decision"):
        if key not in explanation:
            raise InputError(f"explanation is missing {key!r}")
    decision = "match" if explanation["decision"] else "non-match"
    model = explanation.get("model") or {}
    text = (
        f"score {float(explanation['score_ref']):.4g}   threshold {float(explanation['threshold']):.4g}"
        f"   → {decision}"
    )
    same = explanation.get("same")
    if same is not None:
        text += f"   (truth: {'same person' if same else 'different people'})"
    if model.get("name"):
        text += f"\nmodel {model['name']}"
        if model.get("metric"):
            text += f", {model['metric']} score"
    return text


# --- run comparisons --------------------------------------------------------------------------


def plot_run_comparison(
    summary: Mapping[str, Any],
    path: str | os.PathLike[str],
    kind: Kind = "absolute",
    classes: Sequence[str] = ("genuine", "impostor"),
) -> Path:
    """Overlaid band profiles of compared runs (mean normalised ``kind`` influence, shaded with
    its bootstrap interval) per class, and below them each pair of runs' paired difference with
    its interval. ``summary`` is ``compare``'s ``summary.json``."""
    bands = summary.get("bands") or []
    runs = [r["name"] for r in summary.get("runs") or []]
    if not bands or len(runs) < 2:
        raise InputError("a comparison summary needs bands and at least two runs")
    shown = [
        c
        for c in classes
        if any(
            (bands[0].get(c) or {}).get("mean", {}).get(r, {}).get(kind) is not None for r in runs
        )
    ]
    if not shown:
        raise InputError(f"no class of {list(classes)} has pairs in this comparison")
    x = np.arange(len(bands))
    fig = new_figure(max(6.0, 4.4 * len(shown)), 6.4)
    axes = np.asarray(fig.subplots(2, len(shown), squeeze=False, sharex=True))
    label = "absolute" if kind == "absolute" else "directed"
    for c, cls in enumerate(shown):
        top, bottom = axes[0, c], axes[1, c]
        for i, run in enumerate(runs):
            mean = np.array([_num(b[cls]["mean"][run][kind]) for b in bands])
            lo = np.array([_num((b[cls]["mean_ci"][run][kind] or [None])[0]) for b in bands])
            hi = np.array([_num((b[cls]["mean_ci"][run][kind] or [None, None])[1]) for b in bands])
            n = bands[0][cls]["n_pairs"].get(run)
            top.plot(x, mean, marker="o", markersize=3, color=f"C{i}", label=f"{run} (n={n} pairs)")
            top.fill_between(x, lo, hi, color=f"C{i}", alpha=0.22, linewidth=0)
        for j, diff in enumerate(summary.get("differences") or []):
            key = diff["key"]
            d = np.array([_num(b[cls]["diff"][key][kind]) for b in bands])
            lo = np.array([_num(b[cls]["ci_lo"][key][kind]) for b in bands])
            hi = np.array([_num(b[cls]["ci_hi"][key][kind]) for b in bands])
            colour = f"C{len(runs) + j}"
            bottom.plot(x, d, marker="o", markersize=3, color=colour, label=key)
            bottom.fill_between(x, lo, hi, color=colour, alpha=0.22, linewidth=0)
        bottom.axhline(0.0, color="0.3", linewidth=0.8)
        if kind == "directed":
            top.axhline(0.0, color="0.3", linewidth=0.8)
        top.set_title(display_name(cls), fontsize=10)
        for ax in (top, bottom):
            ax.grid(alpha=0.3)
            _band_ticks(ax, bands)
        bottom.set_xlabel("band (0 = lowest frequencies)")
        top.legend(fontsize=7, loc="best")
        bottom.legend(fontsize=7, loc="best")
    axes[0, 0].set_ylabel(f"{label} influence,\nnormalised per image")
    level = (summary.get("bootstrap") or {}).get("level", 0.95)
    axes[1, 0].set_ylabel(f"paired difference\n({100 * float(level):g}% bootstrap CI)")
    fig.suptitle(
        f"band profiles of the compared runs ({label}; shade: bootstrap interval over pairs)",
        fontsize=10,
    )
    return save_figure(fig, path)


def plot_comparison_forest(
    summary: Mapping[str, Any],
    path: str | os.PathLike[str],
    classes: Sequence[str] = ("genuine", "impostor"),
) -> Path:
    """Forest plot of ``compare``'s per-band paired differences: a row per band, a column per
    class, absolute influence above and directed below; each difference is a dot with its
    bootstrap interval, filled where the interval excludes 0."""
    bands = summary.get("bands") or []
    keys = [d["key"] for d in summary.get("differences") or []]
    if not bands or not keys:
        raise InputError("a comparison summary needs bands and at least one difference")
    shown = [
        c
        for c in classes
        if any((bands[0].get(c) or {}).get("diff", {}).get(k, {}).get("absolute") is not None
               for k in keys)
    ]  # fmt: skip
    if not shown:
        raise InputError(f"no class of {list(classes)} has differences in this comparison")
    y = np.arange(len(bands))
    step = 0.7 / max(1, len(keys))
    fig = new_figure(max(6.0, 3.6 * len(shown)), 2.0 + 0.5 * len(bands))
    axes = np.asarray(fig.subplots(2, len(shown), squeeze=False, sharey=True))
    for r, kind in enumerate(("absolute", "directed")):
        for c, cls in enumerate(shown):
            ax = axes[r, c]
            for j, key in enumerate(keys):
                d = np.array([_num(b[cls]["diff"][key][kind]) for b in bands])
                lo = np.array([_num(b[cls]["ci_lo"][key][kind]) for b in bands])
                hi = np.array([_num(b[cls]["ci_hi"][key][kind]) for b in bands])
                yy = y + (j - (len(keys) - 1) / 2) * step
                colour = f"C{j}"
                ax.hlines(yy, lo, hi, color=colour, linewidth=1.4)
                excludes = (lo > 0) | (hi < 0)
                ax.plot(
                    d[~excludes],
                    yy[~excludes],
                    "o",
                    color=colour,
                    markerfacecolor="white",
                    markersize=5,
                    label=f"{key} (interval holds 0)",
                )
                ax.plot(d[excludes], yy[excludes], "o", color=colour, markersize=5,
                        label=f"{key} (interval excludes 0)")  # fmt: skip
            ax.axvline(0.0, color="0.3", linewidth=0.8)
            ax.grid(alpha=0.3)
            ax.set_title(f"{display_name(cls)}: {kind}", fontsize=10)
            ax.set_xlabel("paired difference of normalised influence")
    for ax in axes[:, 0]:
        ax.set_yticks(y, [str(b.get("index", k)) for k, b in enumerate(bands)], fontsize=7)
        ax.set_ylabel("band (0 = lowest frequencies)")
    axes[0, 0].invert_yaxis()  # band 0 on top; the axes share y, so once inverts them all
    axes[0, -1].legend(fontsize=7, loc="best")
    level = (summary.get("bootstrap") or {}).get("level", 0.95)
    fig.suptitle(
        f"per-band differences with {100 * float(level):g}% bootstrap intervals "
        "(filled: the interval excludes 0)",
        fontsize=10,
    )
    return save_figure(fig, path)


def _num(value: Any) -> float:
    return float("nan") if value is None else float(value)


# --- verification on a dataset run: score histograms, ROC and DET ----------------------------


def plot_score_histograms(
    genuine: Sequence[float],
    impostor: Sequence[float],
    threshold: float,
    path: str | os.PathLike[str],
    *,
    metric: str = "",
) -> Path:
    """Histograms of the comparison scores of genuine and impostor pairs, with the threshold.

    Scores are "higher is more alike" (a Euclidean score is the negative distance)."""
    gen = check_vector(genuine, "genuine scores") if len(genuine) else np.zeros(0)
    imp = check_vector(impostor, "impostor scores") if len(impostor) else np.zeros(0)
    both = np.concatenate([gen, imp, [float(threshold)]])
    bins = np.linspace(both.min(), both.max(), 31).tolist() if np.ptp(both) > 0 else 10
    fig = new_figure(6.4, 3.6)
    ax = fig.add_subplot()
    for scores, name, colour in ((gen, "genuine", "C0"), (imp, "impostor", "C3")):
        if scores.size:
            ax.hist(
                scores,
                bins=bins,
                alpha=0.55,
                color=colour,
                edgecolor=colour,
                label=f"{name} ({scores.size} pairs)",
            )
    ax.axvline(
        float(threshold),
        color="0.15",
        linestyle="--",
        linewidth=1.2,
        label=f"threshold {float(threshold):.4g}",
    )
    ax.set_xlabel(
        "score (higher = more alike" + (", = −distance)" if metric == "euclidean" else ")")
    )
    ax.set_ylabel("pairs")
    ax.legend(fontsize=8)
    ax.set_title("Scores per class; pairs right of the threshold are matches", fontsize=10)
    return save_figure(fig, path)


def plot_roc(
    fmr: Sequence[float] | np.ndarray,
    fnmr: Sequence[float] | np.ndarray,
    path: str | os.PathLike[str],
    *,
    operating_point: tuple[float, float] | None = None,
) -> Path:
    """ROC: true match rate (1 − FNMR) against FMR (log axis), with the model's operating point."""
    x = check_vector(fmr, "fmr")
    y = 1.0 - check_vector(fnmr, "fnmr", x.size)
    floor = 1e-3 if x[x > 0].size == 0 else min(1e-3, float(x[x > 0].min()) / 2)
    fig = new_figure(4.8, 4.2)
    ax = fig.add_subplot()
    ax.plot(np.clip(x, floor, 1.0), y, color="C0", linewidth=1.6, clip_on=False, label="ROC")
    if operating_point is not None:
        ax.plot(
            [max(operating_point[0], floor)],
            [1.0 - operating_point[1]],
            "o",
            color="0.15",
            clip_on=False,
            label="model's threshold",
        )
    ax.set_xscale("log")
    # Margins beyond the floor and above 1: a curve with no errors runs along x = floor and
    # y = 1, and would hide in the axes' frame without them.
    ax.set_xlim(floor / 2.0, 1.3)
    ax.set_ylim(-0.02, 1.04)
    ax.set_xlabel(f"false match rate (FMR; 0 drawn at {floor:.0e})")
    ax.set_ylabel("true match rate (1 − FNMR)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title("ROC", fontsize=10)
    return save_figure(fig, path)


#: The rates a DET plot labels. Rates below the first (0 included) are drawn on the first, those
#: above the last on the last, with a margin to the axes so that such points stay visible.
DET_TICKS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 0.95)
_DET_MARGIN = 0.3  # probit units between the outermost ticks and the axes
_DET_STYLES = (("-", "o"), ("--", "s"), ("-.", "^"), (":", "D"))


def det_coordinates(
    x_rates: Any, y_rates: Any, name: str = "detector", axes: tuple[str, str] = ("apcer", "bpcer")
) -> tuple[np.ndarray, np.ndarray]:
    """A DET curve's points as :func:`plot_det` draws them: probit of each rate, with rates
    outside :data:`DET_TICKS`' range (0 and 1 included, which have no probit) moved onto its
    first or last tick."""
    x = check_vector(x_rates, f"{name}: {axes[0]}")
    y = check_vector(y_rates, f"{name}: {axes[1]}", x.size)
    if ((x < 0) | (x > 1) | (y < 0) | (y > 1)).any():
        raise InputError(f"{name}: error rates must lie in [0, 1]")
    lo, hi = DET_TICKS[0], DET_TICKS[-1]
    return probit(np.clip(x, lo, hi)), probit(np.clip(y, lo, hi))


def det_limits() -> tuple[float, float]:
    """The axis limits of :func:`plot_det` (probit units, the same for both axes)."""
    return (
        float(probit(np.array(DET_TICKS[0]))) - _DET_MARGIN,
        float(probit(np.array(DET_TICKS[-1]))) + _DET_MARGIN,
    )


def plot_det(
    curves: Mapping[str, tuple[Sequence[float] | np.ndarray, Sequence[float] | np.ndarray]],
    path: str | os.PathLike[str],
    *,
    axes: tuple[str, str] = ("APCER", "BPCER"),
    operating_point: tuple[float, float] | None = None,
) -> Path:
    """DET curves (the second rate against the first) on normal-deviate (probit) axes.

    The one DET plotter: morphing-attack detectors (APCER, BPCER) and verification
    (``axes=("FMR", "FNMR")``). ``curves`` maps a curve's name to its (x, y) rate arrays.
    Every curve is drawn the same way: a line through its operating points, marked (at most about
    40 marks a curve), each with its own colour, dash pattern and mark, so that curves that
    coincide (two perfect detectors, say) all stay visible. Rates of 0 or 1, which have no probit,
    are drawn on the outermost ticks, labelled "≤0.1" and "≥95", inside the axes.
    ``operating_point`` (x, y) marks the model's threshold.
    """
    if not curves:
        raise InputError("plot_det needs at least one curve")
    ticks = np.asarray(DET_TICKS)
    keys = (axes[0].lower(), axes[1].lower())
    fig = new_figure(5.6, 5.2)
    ax = fig.add_subplot()
    for i, (name, (x_rates, y_rates)) in enumerate(curves.items()):
        x, y = det_coordinates(x_rates, y_rates, name, keys)
        linestyle, marker = _DET_STYLES[i % len(_DET_STYLES)]
        ax.plot(
            x,
            y,
            color=f"C{i}",
            linewidth=1.6,
            linestyle=linestyle,
            marker=marker,
            markersize=4,
            markevery=max(1, x.size // 40),
            markerfacecolor="none",
            label=name,
        )
    if operating_point is not None:
        px, py = det_coordinates([operating_point[0]], [operating_point[1]], "threshold", keys)
        ax.plot(px, py, "o", color="0.15", label="model's threshold")
    edge = probit(ticks[[0, -1]])
    ax.plot(
        edge,
        edge,
        color="0.5",
        linestyle=":",
        linewidth=0.9,
        label=f"{axes[0]} = {axes[1]} (EER)",
    )
    labels = [f"{100 * t:g}" for t in ticks]
    labels[0], labels[-1] = f"≤{labels[0]}", f"≥{labels[-1]}"
    ax.set_xticks(probit(ticks), labels, fontsize=7)
    ax.set_yticks(probit(ticks), labels, fontsize=7)
    ax.set_xlim(*det_limits())
    ax.set_ylim(*det_limits())
    ax.set_aspect("equal")
    ax.set_xlabel(f"{axes[0]} (%)")
    ax.set_ylabel(f"{axes[1]} (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")
    ax.set_title("DET (probit axes)", fontsize=10)
    return save_figure(fig, path)


def probit(p: np.ndarray) -> np.ndarray:
    """The standard normal quantile of each value (the axes of DET plots)."""
    # statistics.NormalDist keeps scipy optional; these are a few hundred points at most.
    dist = NormalDist()
    return np.array([dist.inv_cdf(float(v)) for v in np.ravel(p)]).reshape(np.shape(p))
