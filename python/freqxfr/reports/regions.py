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
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from freqxfr.common.atomic import ensure_dir
from freqxfr.reports.html import Section, html_paragraph, html_table, write_report
from freqxfr.reports.region_plots import plot_class_region_maps, plot_pair_regions
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
    absolute influence per image."""
    figure = plot_pair_regions(explanation, faces, weights, folder / "regions.png")
    sides = [s for s in ("a", "b", "probe") if s in explanation]
    names = explanation[sides[0]]["regions"]
    rows = []
    for r, name in enumerate(names):
        shares = []
        for s in sides:
            absolute = np.asarray(explanation[s]["absolute"])
            total = absolute.sum()
            shares.append(f"{absolute[r].sum() / total:.1%}" if total > 0 else "–")
        rows.append([name, *shares])
    table = html_table(["region", *[f"share of {s}'s influence" for s in sides]], rows)
    return Section("Where and which frequency", html_paragraph(HOW_TO_READ) + table, [figure])


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
    rows = []
    for r, name in enumerate(names):
        shares = []
        for entry in by_class.values():
            absolute = np.asarray(entry["absolute_normalised_mean"])
            total = absolute.sum()
            shares.append(f"{absolute[r].sum() / total:.1%}" if total > 0 else "–")
        area = regions.get("area")
        rows.append([name, f"{area[r]:.1%}" if area else "–", *shares])
    table = html_table(
        [
            "region",
            "area",
            *[f"{c.replace('_', ' ')} ({e['n_images']} images)" for c, e in by_class.items()],
        ],
        rows,
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
