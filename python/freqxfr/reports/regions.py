"""The "Where and which frequency" sections of reports, and the report of a one-sided
explanation against a template.

- :func:`region_section`: a pair's section (heat maps, tinted faces, each region's share), which
  :func:`freqxfr.reports.pair.write_pair_report` adds for an explanation with region cells;
- :func:`dataset_region_section`: a dataset run's mean maps per class;
- :func:`write_template_report`: the report of ``freqxfr explain A --template T.npy [--regions ...]``,
  drawn from the folder :func:`freqxfr.runs.pair.write_template_outputs` wrote.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from freqxfr.common.atomic import ensure_dir
from freqxfr.reports.html import Section, html_paragraph, html_table, write_report
from freqxfr.reports.region_plots import (
    overlay_gain,
    plot_class_region_maps,
    plot_pair_regions,
    top_bands,
)
from freqxfr.runs.pair import read_explanation, read_images

HOW_TO_READ = (
    "Each row of the heat map is a region of the aligned face, each column a frequency band "
    "(0 = lowest). A cell is the score change when that band is deleted inside that region only "
    "(its weights sum to 1 over the regions, so a band's cells add up to deleting the band): blue "
    "where it supported the match, red where it worked against it, normalised per image. The "
    "faces show the most influential bands, each region tinted by its cell's influence."
)


def region_section(
    folder: Path, explanation: Mapping[str, Any], faces: np.ndarray, weights: np.ndarray
) -> Section:
    """The report section: the heat maps and tinted faces, and each region's share of the
    absolute influence per image beside its area, ranked by share per unit area."""
    figure = plot_pair_regions(explanation, faces, weights, folder / "regions.png")
    sides = [s for s in ("a", "b", "probe") if s in explanation]
    names = explanation[sides[0]]["regions"]
    w = np.asarray(weights, np.float64)
    area = w.reshape(w.shape[0], -1).sum(axis=1)
    shares = np.array([_shares(explanation[s]["absolute"]) for s in sides]).T  # (regions, sides)
    table = share_table(names, area, shares, [f"{s}" for s in sides])
    gains = "; ".join(
        f"{s}: "
        + ", ".join(
            f"band {k} ×{overlay_gain(explanation[s], k):.3g}" for k in top_bands(explanation[s], 3)
        )
        for s in sides
    )
    text = html_paragraph(HOW_TO_READ) + html_paragraph(
        "Each tinted face is amplified so that its band's largest cell is full colour; the "
        f"gains: {gains}."
    )
    return Section("Where and which frequency", text + table, [figure])


def _shares(absolute: Any) -> np.ndarray:
    """Each region's share of an image's (or a class's) absolute influence (NaN if none)."""
    values = np.asarray(absolute, np.float64)
    per_region = values.reshape(values.shape[0], -1).sum(axis=1)
    total = per_region.sum()
    return per_region / total if total > 0 else np.full(per_region.shape, np.nan)


def share_table(names: Sequence[str], area: Any, shares: np.ndarray, columns: Sequence[str]) -> str:
    """Regions ranked by share of influence per unit area (the mean over ``columns``), each with
    its area (share of the region weights) and, per column, the raw share and that ratio."""
    area_share = np.asarray(area, np.float64)
    area_share = area_share / area_share.sum() if area_share.sum() > 0 else area_share
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = shares / area_share[:, None]
    key = np.where(np.isfinite(ratio), ratio, -np.inf).mean(axis=1)
    order = np.argsort(-key, kind="stable")
    header = ["region", "area"]
    for c in columns:
        header += [f"{c}: share", f"{c}: share ÷ area"]
    rows = []
    for r in order:
        row: list[Any] = [names[r], _percent(area_share[r])]
        for j in range(len(columns)):
            row += [_percent(shares[r, j]), _times(ratio[r, j])]
        rows.append(row)
    return html_table(
        header,
        rows,
        caption=(
            "ranked by share of the absolute influence per unit area (share ÷ area: 1 = as much "
            "as the region's size alone would give, above 1 = more)"
        ),
    )


def _percent(value: float) -> str | None:
    return f"{value:.1%}" if np.isfinite(value) else None


def _times(value: float) -> str | None:
    return f"×{value:.3g}" if np.isfinite(value) else None


DATASET_HOW_TO_READ = (
    "Each heat map is the mean over a class's explained images (two per pair) of their region × "
    "band cells, each image's directed influence normalised over all its cells first (largest "
    "magnitude 1), so every image weighs the same. Blue: deleting that band inside that region "
    "lowered the score (it supported the match); red: it raised it. Genuine/impostor is the "
    "ground truth, match/non-match the model's decision. The table gives each region's share of "
    "the mean absolute (normalised) influence per class."
)


def dataset_region_section(folder: Path, regions: Mapping[str, Any]) -> Section:
    """A dataset run's section: the mean region × band maps per class (``summary.json``'s
    ``regions``, :func:`freqxfr.explanations.region_explanations.region_summary`) and each region's share."""
    by_class = regions["by_class"]
    names = regions["names"]
    figure = plot_class_region_maps(regions, folder / "regions.png")
    shares = np.array([_shares(entry["absolute_normalised_mean"]) for entry in by_class.values()]).T
    area = regions.get("area")
    columns = [f"{c.replace('_', ' ')} ({e['n_images']} images)" for c, e in by_class.items()]
    if area:
        table = share_table(names, area, shares, columns)
    else:  # an older summary without the regions' areas: raw shares only
        table = html_table(
            ["region", *columns],
            [[n, *[_percent(v) for v in shares[r]]] for r, n in enumerate(names)],
            caption="share of the mean absolute influence per class",
        )
    provenance = html_paragraph(
        f"Regions: {', '.join(names)}; weights: {json.dumps(regions.get('provenance'))}"
    )
    return Section(
        "Where and which frequency",
        html_paragraph(DATASET_HOW_TO_READ) + provenance + table,
        [figure],
    )


def write_template_report(folder: str | os.PathLike[str]) -> Path:
    """``report.html`` (and ``regions.png``, with regions) of a template explanation, drawn from
    ``explanation.json`` and the images the run stored beside it (no model runs)."""
    out = ensure_dir(folder)
    record = read_explanation(out)
    images = read_images(out)
    decision = "match" if record["decision"] else "non-match"
    sections = [
        Section(
            "Decision",
            html_table(
                ["score", "threshold", "decision", "model"],
                [
                    [
                        f"{record['score_ref']:.4f}",
                        f"{record['threshold']:.4f}",
                        decision,
                        record["model"]["name"],
                    ]
                ],
            ),
        )
    ]
    if record.get("regions") is not None:
        weights = images["region_weights"]
        assert weights is not None, "a region run stores its region weights"
        sections.append(region_section(out, record, images["faces"], weights))
    sections.append(
        Section(
            "Provenance",
            "<pre>"
            + json.dumps(
                {
                    k: record[k]
                    for k in ("model", "schedule", "mode", "domain", "backend", "regions")
                    if k in record
                },
                indent=1,
            ).replace("<", "&lt;")
            + "</pre>",
        )
    )
    probe = Path(str(record["probe"].get("source", "probe"))).name
    template = Path(str(record.get("template", "template"))).name
    return write_report(out, f"freqxfr: {probe} vs template {template}", sections, kind="regions")
