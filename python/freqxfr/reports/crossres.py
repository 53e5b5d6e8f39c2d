"""The report of a cross-resolution run (:mod:`freqxfr.runs.crossres`): its plots and
``report.html``, drawn from the ``summary.json`` dict alone."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import Normalize

from freqxfr.common.atomic import ensure_dir
from freqxfr.common.errors import InputError
from freqxfr.imaging.resolution import degrade
from freqxfr.reports import plots
from freqxfr.reports.html import Section, html_paragraph, html_table, read_json, write_report
from freqxfr.reports.plots import Kind, check_vector
from freqxfr.runs.pair import IMAGES_NAME, read_images
from freqxfr.runs.scenario_common import provenance_rows
from freqxfr.stats.identities import resampled_by

# The summary's two explained images: the probe's numbers sit in each factor's entry itself,
# the reference's under "reference".
SIDE_NAMES = ("probe", "reference")

HOW_TO_READ = (
    "Every pair was compared and explained once per downscaling factor. Only the probe (the "
    "second image of each pair) lost resolution; the reference stayed sharp. The centroid of an "
    "explained image is the mean band index weighted by each band's absolute influence: 0 means all "
    "influence sits in the lowest band, K−1 all in the highest. A falling probe centroid says the "
    "model leans on lower frequencies of the blurred probe. With the spectral kernel the probe has "
    "nothing above the cutoff, so its high bands cannot matter by construction; with bicubic or box "
    "upscaling those bands hold interpolation artefacts, and any influence they keep comes from "
    "those. The reference centroid says which bands of the sharp photo the comparison rests on. "
    "Intervals come from resampling identities, or pairs where identities are unknown "
    "(bootstrap); 'same sign' is the share of resamples whose "
    "shift has the sign of the estimate."
)


# ---- report --------------------------------------------------------------------------------------


def render_crossres(out_dir: str | os.PathLike[str]) -> Path:
    """Draw a cross-resolution run's ``report.html`` from its folder alone: ``summary.json`` and,
    where the run stored it, the example probe crop (``images.npz``)."""
    folder = Path(out_dir)
    summary = read_json(folder / "summary.json", "the run's summary")
    example = read_images(folder)["faces"][0] if (folder / IMAGES_NAME).is_file() else None
    return write_crossres_report(folder, summary, example=example)


def write_crossres_report(
    out_dir: str | os.PathLike[str], summary: dict[str, Any], *, example: np.ndarray | None = None
) -> Path:
    """Plots and ``report.html`` of a cross-resolution summary (``example``: one probe crop)."""
    out = ensure_dir(out_dir)
    entries = summary["factors"]
    factors = [e["factor"] for e in entries]
    sections = [
        Section("Overview", _overview_table(summary)),
        Section("How to read this", html_paragraph(HOW_TO_READ)),
    ]
    images = []
    if example is not None:
        images.append(
            plot_degradation_strip(example, factors, summary["resample"], out / "probes.png")
        )
    acc = plot_accuracy_vs_factor(
        factors,
        [e["accuracy"] for e in entries],
        out / "accuracy.png",
        fmr=_rates(entries, "fmr"),
        fnmr=_rates(entries, "fnmr"),
    )
    sections.append(
        Section("Verification per factor", _verification_table(summary), [*images, acc])
    )
    centroid_images = [
        plot_centroid_shift(
            factors,
            [_numbers(e, name)["centroid"] for e in entries],
            [_numbers(e, name)["centroid_ci"][0] for e in entries],
            [_numbers(e, name)["centroid_ci"][1] for e in entries],
            out / f"centroid_{name}.png",
            ci_label=f"{name}, {100 * summary['bootstrap']['level']:g}% bootstrap CI",
        )
        for name in SIDE_NAMES
    ]
    sections.append(Section("Centroid shift", _centroid_table(summary), centroid_images))
    # Maps shown side by side share their colour limits: the same colour is the same number.
    absolute = {
        n: _profile_matrix(entries, n, None, "absolute_normalised_mean") for n in SIDE_NAMES
    }
    directed = {
        label: _profile_matrix(entries, "probe", label, "directed_normalised_mean")
        for label in ("genuine", "impostor")
    }
    heat = []
    top = _shared_limit(absolute.values())
    for name, matrix in absolute.items():
        assert matrix is not None  # all pairs (label None): always a matrix
        heat.append(
            plot_profiles_by_factor(
                factors,
                matrix,
                out / f"profiles_{name}.png",
                kind="absolute",
                title=f"{name}: absolute influence, normalised per image (all pairs)",
                limit=top,
            )
        )
    lim = _shared_limit(directed.values())
    for label, matrix in directed.items():
        if matrix is not None:
            heat.append(
                plot_profiles_by_factor(
                    factors,
                    matrix,
                    out / f"profiles_probe_{label}.png",
                    kind="directed",
                    title=f"probe, {label} pairs: directed influence, normalised per image",
                    limit=lim,
                )
            )
    sections.append(
        Section(
            "Band profiles per factor",
            html_paragraph(
                f"The absolute maps share one colour scale (0 to {top:.3g}), and so do the "
                f"directed maps (±{lim:.3g}): the same colour is the same number in each."
            ),
            heat,
        )
    )
    model = summary["model"]["name"]
    return write_report(
        out,
        f"freqxfr cross-resolution report ({model}, {summary['resample']})",
        sections,
        kind="crossres",
    )


def _shared_limit(matrices: Any) -> float:
    """The largest magnitude over the matrices that are there (a tiny floor when all are 0)."""
    peaks = [float(np.abs(m).max()) for m in matrices if m is not None and m.size]
    return max([*peaks, 1e-12])


def _numbers(entry: dict[str, Any], side: str) -> dict[str, Any]:
    return entry if side == "probe" else entry["reference"]


def _profile_matrix(entries, side: str, label: str | None, key: str) -> np.ndarray | None:
    rows = []
    for entry in entries:
        profiles = entry["profiles"][side]
        if label is None:
            # all pairs: mean of the class means weighted by their image counts
            weights = [p["n_images"] for p in profiles.values()]
            values = [np.asarray(p[key]) for p in profiles.values()]
            rows.append(np.average(values, axis=0, weights=weights))
        elif label in profiles:
            rows.append(np.asarray(profiles[label][key]))
        else:
            return None
    return np.stack(rows)


def _overview_table(summary: dict[str, Any]) -> str:
    boot = summary["bootstrap"]
    rows = [
        *provenance_rows(summary),
        ("degradation", f"{summary['resample']}: {summary['kernel']}"),
        ("degraded image", summary["degraded_side"]),
        (
            "pairs (genuine / impostor)",
            f"{summary['pairs']} ({summary['genuine']} / {summary['impostor']})",
        ),
        ("images that could not be prepared", len(summary["failed"])),
        ("alignment padding", _padding_text(summary.get("alignment"))),
        (
            "bootstrap",
            f"{boot['resamples']} resamples, {100 * boot['level']:g}% "
            f"percentile intervals, seed {boot['seed']}; {resampled_by(boot)}",
        ),
    ]
    return html_table(("", "value"), rows)


def _padding_text(alignment: dict[str, Any] | None) -> str:
    """What the reader needs to know about crops that reached beyond their photos."""
    if not alignment:
        return "not recorded"
    padding = alignment["padding"]
    n, padded = alignment["images"], alignment["images_padded"]
    if padded == 0:
        return f"{padding}; no crop reached beyond its photo ({n} images)"
    fill = {
        "black": "filled black: a black band that is a strong spectral feature of its own",
        "edge": "filled by repeating the photo's edge pixels",
        "reflect": "filled by mirroring the photo at its edge",
    }.get(padding, f"filled as '{padding}'")
    return (
        f"{padding}: the re-cut crop of {padded} of {n} images reached beyond its photo; "
        f"on average {100 * alignment['padded_fraction_mean']:.1f}% of a crop's pixels "
        f"(at most {100 * alignment['padded_fraction_max']:.1f}%) lay outside and were {fill}"
    )


def _verification_table(summary: dict[str, Any]) -> str:
    header = (
        "factor",
        "probe size / cutoff",
        "accuracy",
        "FMR",
        "FNMR",
        "mean score genuine",
        "mean score impostor",
    )
    rows = []
    for e in summary["factors"]:
        size = e.get("probe_size")
        size_text = (
            f"{size}px"
            if size is not None
            else (f"{e['cutoff_cycles']:.3g} cycles" if e.get("cutoff_cycles") else "full")
        )
        rows.append(
            (
                f"{e['factor']:g}×",
                size_text,
                e["accuracy"],
                e["fmr"],
                e["fnmr"],
                e["score_mean"]["genuine"],
                e["score_mean"]["impostor"],
            )
        )
    return html_table(header, rows, caption=f"at the model's threshold {summary['threshold']:.4g}")


def _centroid_table(summary: dict[str, Any]) -> str:
    # The same three columns for the probes and for the references.
    sides = ("probe", "reference")
    header = (
        "factor",
        *(c for side in sides for c in (f"{side} centroid [CI]", "shift [CI]", "same sign")),
    )
    rows = []
    for e in summary["factors"]:
        row: list[Any] = [f"{e['factor']:g}×"]
        for numbers in (e, e["reference"]):
            row += [
                f"{numbers['centroid']:.3f} [{numbers['centroid_ci'][0]:.3f}, "
                f"{numbers['centroid_ci'][1]:.3f}]",
                f"{numbers['centroid_shift']:+.3f} [{numbers['centroid_shift_ci'][0]:+.3f}, "
                f"{numbers['centroid_shift_ci'][1]:+.3f}]",
                numbers["centroid_shift_same_sign"],
            ]
        rows.append(row)
    baseline = summary["bootstrap"]["shift_baseline_factor"]
    return html_table(
        header,
        rows,
        caption=f"shift: against factor {baseline:g}; band index 0..{len(summary['bands']) - 1}",
    )


def _rates(entries, key: str) -> list[float] | None:
    """A rate per factor, or None when a class is missing (the rate is undefined)."""
    values = [e[key] for e in entries]
    return None if any(v is None for v in values) else values


# ---- plots ---------------------------------------------------------------------------------------


def plot_degradation_strip(
    image: np.ndarray, factors: Sequence[float], resample: str, path: str | os.PathLike[str]
) -> Path:
    """One probe crop at every factor, as the model sees it."""
    fig = plots.new_figure(1.6 * len(factors) + 0.2, 2.0)
    axes = fig.subplots(1, len(factors), squeeze=False)[0]
    for ax, factor in zip(axes, factors, strict=True):
        ax.imshow(degrade(image, factor, resample), interpolation="nearest")
        ax.set_title(f"{factor:g}×", fontsize=9)
        ax.set_axis_off()
    fig.suptitle(f"probe at each factor ({resample})", fontsize=9)
    return plots.save_figure(fig, path)


def plot_accuracy_vs_factor(
    factors: Sequence[float],
    accuracy: Sequence[float],
    path: str | os.PathLike[str],
    *,
    fmr: Sequence[float] | None = None,
    fnmr: Sequence[float] | None = None,
) -> Path:
    """Verification accuracy (and optionally FMR, FNMR) against the downscaling factor."""
    f = check_vector(factors, "factors")
    fig = plots.new_figure(6.0, 4.0)
    ax = fig.add_subplot()
    ax.plot(f, check_vector(accuracy, "accuracy", f.size), marker="o", label="accuracy")
    if fmr is not None:
        ax.plot(f, check_vector(fmr, "fmr", f.size), marker="s", linestyle="--", label="FMR")
    if fnmr is not None:
        ax.plot(f, check_vector(fnmr, "fnmr", f.size), marker="^", linestyle="--", label="FNMR")
    _factor_axis(ax, f)
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("rate at the model's threshold")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("verification against resolution loss", fontsize=10)
    return plots.save_figure(fig, path)


def plot_profiles_by_factor(
    factors: Sequence[float],
    profiles: np.ndarray,
    path: str | os.PathLike[str],
    *,
    kind: Kind = "absolute",
    title: str = "band profile per factor",
    limit: float | None = None,
) -> Path:
    """Heat map of a band profile (rows: factors, columns: bands).

    ``kind="absolute"`` uses the sequential map from 0; ``kind="directed"`` the diverging map with
    symmetric limits, so that 0 is white. ``limit`` sets the colour limit (``[0, limit]`` or
    ``±limit``; default: the data's largest magnitude), so that maps shown side by side can share
    one scale.
    """
    f = check_vector(factors, "factors")
    data = np.asarray(profiles, dtype=np.float64)
    if data.ndim != 2 or data.shape[0] != f.size or not np.isfinite(data).all():
        raise InputError(f"profiles must be a finite ({f.size}, K) array, got shape {data.shape}")
    if limit is not None and not (np.isfinite(limit) and limit > 0):
        raise InputError(f"limit must be a positive number, got {limit!r}")
    if kind == "absolute":
        top = limit if limit is not None else float(data.max())
        norm = Normalize(vmin=0.0, vmax=max(top, 1e-12))
    else:
        plots.fhp_norm(kind)
        lim = max(limit if limit is not None else float(np.abs(data).max()), 1e-12)
        norm = Normalize(vmin=-lim, vmax=lim)
    k = data.shape[1]
    fig = plots.new_figure(max(6.0, 0.4 * k + 2.5), 0.45 * f.size + 2.0)
    ax = fig.add_subplot()
    image = ax.imshow(
        data, aspect="auto", cmap=plots.fhp_cmap(kind), norm=norm, interpolation="nearest"
    )
    ax.set_yticks(np.arange(f.size), [f"{_fmt_factor(v)}×" for v in f])
    ax.set_xticks(np.arange(k), [str(i) for i in range(k)], fontsize=7)
    ax.set_xlabel("band (0 = lowest frequencies)")
    ax.set_ylabel("downscaling factor")
    ax.set_title(title, fontsize=10, parse_math=False)
    fig.colorbar(image, ax=ax, label=f"{kind} influence")
    return plots.save_figure(fig, path)


def plot_centroid_shift(
    factors: Sequence[float],
    centroids: Sequence[float],
    ci_lo: Sequence[float],
    ci_hi: Sequence[float],
    path: str | os.PathLike[str],
    *,
    ci_label: str = "95% CI",
) -> Path:
    """The influence-weighted mean band index per factor, with its (bootstrap) confidence interval."""
    f = check_vector(factors, "factors")
    c = check_vector(centroids, "centroids", f.size)
    lo, hi = check_vector(ci_lo, "ci_lo", f.size), check_vector(ci_hi, "ci_hi", f.size)
    if (lo > c + 1e-12).any() or (hi < c - 1e-12).any():
        raise InputError("every centroid must lie inside its interval [ci_lo, ci_hi]")
    fig = plots.new_figure(6.0, 4.0)
    ax = fig.add_subplot()
    ax.errorbar(
        f, c, yerr=np.vstack([c - lo, hi - c]), marker="o", capsize=4, label=f"centroid, {ci_label}"
    )
    _factor_axis(ax, f)
    ax.set_ylabel("influence-weighted mean band index")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(
        "where the influence sits as resolution drops (lower = lower frequencies)", fontsize=9
    )
    return plots.save_figure(fig, path)


def _factor_axis(ax: Axes, factors: np.ndarray) -> None:
    if (factors > 0).all() and factors.max() / factors.min() > 4:
        ax.set_xscale("log", base=2)
    ax.set_xticks(factors, [f"{_fmt_factor(v)}×" for v in factors])
    ax.minorticks_off()
    ax.set_xlabel("downscaling factor")


def _fmt_factor(value: float) -> str:
    return f"{value:g}"
