"""The report of a morphing-attack run (:mod:`freqxfr.runs.morph`): its plots and
``report.html``, drawn from the ``summary.json`` dict alone."""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.patches import Rectangle
from PIL import Image

from freqxfr.common.atomic import ensure_dir, write_output
from freqxfr.common.errors import InputError
from freqxfr.imaging.images import checked_file
from freqxfr.reports import plots
from freqxfr.reports.html import (
    Cell,
    Section,
    escape,
    html_paragraph,
    html_table,
    read_json,
    run_root_rule,
    write_report,
)
from freqxfr.reports.plots import check_vector, plot_det
from freqxfr.runs.morph import DETECTOR_NAMES
from freqxfr.runs.scenario_common import provenance_rows
from freqxfr.stats.mad import D_EER_RULE

HOW_TO_READ = (
    "Attacks are morphs compared with a probe photo of one of the two people they were made from; "
    "bona fide comparisons are a person's own photo against their probe. A morph succeeds when the "
    "model accepts it against both probes (MMPMR). The band influences are those of the enrolled "
    "image (the morph, or the bona fide photo) explained against the probe. The frequency morph "
    "score measures how far a comparison's normalised directed-influence profile lies from the "
    "bona fide comparisons of other people (leave-one-identity-out); it is unsupervised, so a high "
    "AUC means morphs make the model use different bands, not that a detector was trained. Morphs "
    "also lower the comparison score itself; the 'combined' detector shows what the frequency "
    "evidence adds to it. Every detector is oriented so that higher means more morph-like. With a "
    "few dozen comparisons, read the intervals: they are wide."
)


# ---- report --------------------------------------------------------------------------------------


def render_morph(out_dir: str | os.PathLike[str]) -> Path:
    """Draw a morphing-attack run's ``report.html`` from its ``summary.json`` alone."""
    folder = Path(out_dir)
    summary = read_json(folder / "summary.json", "the run's summary")
    # Thumbnails are read under the run's own root rule, as its explanations were.
    with run_root_rule(folder):
        return write_morph_report(out_dir, summary)


def write_morph_report(out_dir: str | os.PathLike[str], summary: dict[str, Any]) -> Path:
    """Plots and ``report.html`` of a morphing-attack summary."""
    out = ensure_dir(out_dir)
    morphs = summary["morphs"]
    scatter = plot_score_scatter(
        [m["score_a"] for m in morphs],
        [m["score_b"] for m in morphs],
        summary["threshold"],
        [m["method"] or "morph" for m in morphs],
        out / "scores.png",
    )
    prof = summary["profiles"]
    class_images = [
        plot_class_profiles(
            {
                "bona fide": (
                    prof["bona_fide"]["directed_normalised_mean"],
                    prof["bona_fide"]["directed_normalised_std"],
                ),
                "morph": (
                    prof["morph"]["directed_normalised_mean"],
                    prof["morph"]["directed_normalised_std"],
                ),
            },
            out / "profiles_normalised.png",
            ylabel="directed influence, normalised per image",
            title="enrolled image: band profile per class (the morph score's feature)",
        ),
        plot_class_profiles(
            {
                "bona fide": (
                    prof["bona_fide"]["directed_mean"],
                    prof["bona_fide"]["directed_std"],
                ),
                "morph": (prof["morph"]["directed_mean"], prof["morph"]["directed_std"]),
            },
            out / "profiles.png",
            ylabel="directed influence (score units)",
            title="enrolled image: band profile per class",
        ),
    ]
    det = plot_det(
        {
            DETECTOR_NAMES[name]: (d["det"]["apcer"], d["det"]["bpcer"])
            for name, d in summary["detectors"].items()
        },
        out / "det.png",
    )
    sections = [
        Section("Overview", _overview_table(summary)),
        Section("How to read this", html_paragraph(HOW_TO_READ)),
        Section("Attack success", _morph_table(summary), [scatter]),
        Section("The morphs", _thumbnail_table(summary, out)),
        Section("Differential morphing-attack detection", _detector_table(summary), [det]),
        Section("Band profiles", _profile_table(summary), class_images),
    ]
    return write_report(
        out,
        f"freqxfr morphing-attack report ({summary['model']['name']})",
        sections,
        kind="morph",
    )


def _overview_table(summary: dict[str, Any]) -> str:
    boot = summary["bootstrap"]
    rows = [
        *provenance_rows(summary),
        ("morphs", summary["n_morphs"]),
        (
            "comparisons (morph / bona fide)",
            f"{summary['comparisons']['morph']} / {summary['comparisons']['bona_fide']}",
        ),
        ("MMPMR", summary["mmpmr"]),
        ("bona fide comparisons accepted", summary["bona_fide_acceptance"]),
        ("explained image", summary["explained_side"]),
        (
            "morph score",
            f"{summary['distance']} distance of the {summary['feature']} from the "
            f"bona fide comparisons of other people",
        ),
        (
            "bona fide reference size",
            f"{summary['reference_sizes']['min']}–{summary['reference_sizes']['max']} comparisons",
        ),
        (
            "bootstrap",
            f"{boot['resamples']} resamples of {boot['unit']}, "
            f"{100 * boot['level']:g}% percentile intervals",
        ),
    ]
    return html_table(("", "value"), rows)


def _morph_table(summary: dict[str, Any]) -> str:
    rows = [
        (Path(m["path"]).name, m["method"], m["score_a"], m["score_b"], m["accepted_both"])
        for m in summary["morphs"]
    ]
    return html_table(
        ("morph", "method", "score vs probe A", "score vs probe B", "accepted against both"),
        rows,
        caption=f"threshold {summary['threshold']:.4g}; MMPMR {summary['mmpmr']:.3f}",
    )


MAX_THUMBNAIL_ROWS = 50
THUMBNAIL_PX = 96
THUMBS = "thumbs"  # the folder of the report's thumbnails, inside the run folder


def _thumbnail_table(summary: dict[str, Any], out: Path) -> str:
    """Each morph beside its two contributors (bona fide photos) and the two probes, as small
    thumbnails written into ``out/thumbs`` and linked by reference (the first
    MAX_THUMBNAIL_ROWS morphs)."""
    morphs = summary["morphs"]
    shown = morphs[:MAX_THUMBNAIL_ROWS]
    rows = []
    for m in shown:
        rows.append(
            [
                _thumb_cell(m.get(key), out)
                for key in ("path", "bona_fide_a", "bona_fide_b", "probe_a", "probe_b")
            ]
            + [m["accepted_both"]]
        )
    caption = "a morph, the two people it was made from and their probes" + (
        f"; the first {len(shown)} of {len(morphs)} morphs" if len(shown) < len(morphs) else ""
    )
    return html_table(
        ("morph", "contributor A", "contributor B", "probe A", "probe B", "accepted against both"),
        rows,
        caption=caption,
        css_class="thumbs",
    )


def _thumb_cell(path: Any, out: Path) -> Cell:
    """A table cell with the image's thumbnail (linked from ``out/thumbs``) and its file name;
    the name alone where the image is unknown or cannot be read."""
    if not path:
        return Cell("—", css_class="thumb")
    name = escape(Path(str(path)).name)
    link = _thumbnail_file(path, out)
    if link is None:
        return Cell(name, css_class="thumb")
    return Cell(f'<img src="{escape(link)}" alt="{name}"><br>{name}', css_class="thumb")


def _thumbnail_file(path: Any, out: Path) -> str | None:
    """A small JPEG of an image in ``out/thumbs`` (named by its path's hash); its link relative
    to ``out``, or ``None`` if the image cannot be read."""
    target = out / THUMBS / f"{hashlib.sha1(str(path).encode()).hexdigest()[:16]}.jpg"
    if not target.is_file():
        try:
            checked_file(path)  # the run's root rule, as its explanations were read
            with Image.open(str(path)) as opened:
                image = opened.convert("RGB")
                image.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
                buffer = io.BytesIO()
                image.save(buffer, format="JPEG", quality=85)
        except Exception:  # a missing or unreadable image: the name stands alone
            return None
        ensure_dir(target.parent)
        write_output(target, buffer.getvalue())
    return f"{THUMBS}/{target.name}"


def _detector_table(summary: dict[str, Any]) -> str:
    rows = []
    for name, d in summary["detectors"].items():
        rows.append(
            (
                DETECTOR_NAMES[name],
                f"{d['auc']:.3f} [{d['auc_ci'][0]:.3f}, {d['auc_ci'][1]:.3f}]",
                f"{d['d_eer']:.3f} [{d['d_eer_ci'][0]:.3f}, {d['d_eer_ci'][1]:.3f}]",
                d["bpcer_at_apcer_10"],
                d["bpcer_at_apcer_5"],
            )
        )
    return html_table(
        ("detector", "AUC [CI]", "D-EER [CI]", "BPCER @ APCER 10%", "BPCER @ APCER 5%"),
        rows,
        caption="higher detector score = more morph-like; AUC 0.5 = chance. " + D_EER_RULE,
    )


def _profile_table(summary: dict[str, Any]) -> str:
    prof = summary["profiles"]
    rows = []
    for k, band in enumerate(summary["bands"]):
        rows.append(
            (
                k,
                f"{band['radius'][0]:.3f}–{band['radius'][1]:.3f}",
                prof["bona_fide"]["directed_normalised_mean"][k],
                prof["morph"]["directed_normalised_mean"][k],
                prof["difference"]["directed_normalised_mean"][k],
                prof["bona_fide"]["directed_mean"][k],
                prof["morph"]["directed_mean"][k],
            )
        )
    return html_table(
        (
            "band",
            "ρ range",
            "bona fide Δ (norm.)",
            "morph Δ (norm.)",
            "morph − bona fide (norm.)",
            "bona fide Δ",
            "morph Δ",
        ),
        rows,
    )


# ---- plots ---------------------------------------------------------------------------------------


def plot_score_scatter(
    score_a: Sequence[float],
    score_b: Sequence[float],
    threshold: float,
    labels: Sequence[str],
    path: str | os.PathLike[str],
) -> Path:
    """Morph vs probe A against morph vs probe B, one point per morph, with the threshold lines.

    ``labels`` gives each point's class (e.g. ``"full"``, ``"spliced"``); each class gets a colour.
    The shaded quadrant holds the morphs accepted against both probes (the MMPMR's numerator).
    """
    a = check_vector(score_a, "score_a")
    b = check_vector(score_b, "score_b", a.size)
    names = [str(v) for v in labels]
    if len(names) != a.size:
        raise InputError(f"labels must have one entry per point ({a.size}), got {len(names)}")
    t = float(threshold)
    fig = plots.new_figure(5.6, 5.2)
    ax = fig.add_subplot()
    lo = min(a.min(), b.min(), t)
    hi = max(a.max(), b.max(), t)
    pad = 0.08 * (hi - lo or 1.0)
    lo, hi = lo - pad, hi + pad
    ax.add_patch(Rectangle((t, t), hi - t, hi - t, color="C3", alpha=0.08, linewidth=0))
    for i, name in enumerate(dict.fromkeys(names)):
        sel = np.array([n == name for n in names])
        ax.scatter(
            a[sel], b[sel], s=28, color=f"C{i}", label=name, edgecolor="white", linewidth=0.5
        )
    ax.axvline(t, color="0.2", linestyle="--", linewidth=0.9)
    ax.axhline(t, color="0.2", linestyle="--", linewidth=0.9, label=f"threshold {t:.4g}")
    accepted = int(((a >= t) & (b >= t)).sum())
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_aspect("equal")
    ax.set_xlabel("score: morph vs probe of subject A")
    ax.set_ylabel("score: morph vs probe of subject B")
    ax.set_title(
        f"accepted against both probes: {accepted}/{a.size} (MMPMR {accepted / a.size:.1%})",
        fontsize=9,
    )
    ax.legend(fontsize=8, loc="best")
    ax.grid(alpha=0.3)
    return plots.save_figure(fig, path)


def plot_class_profiles(
    profiles: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    path: str | os.PathLike[str],
    *,
    ylabel: str = "directed influence",
    title: str = "band profile per class",
) -> Path:
    """Mean ± sd band profile per class (e.g. bona fide vs morph), and their difference if two."""
    if not profiles:
        raise InputError("plot_class_profiles needs at least one profile")
    items = []
    for name, (mean, std) in profiles.items():
        m = check_vector(mean, f"{name}: mean")
        items.append((str(name), m, check_vector(std, f"{name}: std", m.size)))
    k = items[0][1].size
    if any(m.size != k for _, m, _ in items):
        raise InputError("every class profile must have the same number of bands")
    fig = plots.new_figure(max(6.5, 0.35 * k + 3.0), 4.2)
    ax = fig.add_subplot()
    x = np.arange(k)
    for i, (name, m, s) in enumerate(items):
        ax.plot(x, m, marker="o", markersize=3, color=f"C{i}", label=name)
        ax.fill_between(x, m - s, m + s, color=f"C{i}", alpha=0.18, linewidth=0)
    if len(items) == 2:
        ax.plot(
            x,
            items[1][1] - items[0][1],
            color="0.2",
            linestyle="--",
            linewidth=1.2,
            label=f"{items[1][0]} − {items[0][0]}",
        )
    ax.axhline(0.0, color="0.3", linewidth=0.7)
    ax.set_xticks(x, [str(i) for i in range(k)], fontsize=7)
    ax.set_xlabel("band (0 = lowest frequencies)")
    ax.set_ylabel(ylabel, parse_math=False)
    ax.set_title(title, fontsize=10, parse_math=False)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return plots.save_figure(fig, path)
