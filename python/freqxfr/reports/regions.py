"""The "Where and which frequency" sections of reports, and the outputs of a one-sided
explanation against a template.

- :func:`region_section`: a pair's section (heat maps, tinted faces, each region's share), which
  :func:`freqxfr.reports.report.write_pair_report` adds for an explanation with region cells;
- :func:`dataset_region_section`: a dataset run's mean maps per class;
- :func:`write_template_outputs`: ``freqxfr explain A --template T.npy [--regions ...]``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from freqxfr.common.atomic import ensure_dir, write_output
from freqxfr.reports.region_plots import plot_class_region_maps, plot_pair_regions
from freqxfr.reports.report import Section, html_paragraph, html_table, write_report

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


def write_template_outputs(
    explainer: Any, probe: Any, template: Any, out: Path, *, aligned: bool | None
) -> tuple[Any, Path]:
    """Explain ``probe`` against a stored ``template`` (with the explainer's regions, if any) and
    write ``explanation.json``, ``regions.png`` (with regions) and ``report.html`` into ``out``."""
    folder = ensure_dir(out)
    # Aligned once; the face keeps the name the user gave, which the explanation reports.
    face = explainer.align(probe, aligned)
    faces = face.pixels[None]
    result = explainer.explain_template(face, template)
    record = result.to_dict()
    write_output(folder / "explanation.json", json.dumps(record, indent=2, allow_nan=False) + "\n")
    sections = []
    decision = "match" if record["decision"] else "non-match"
    sections.append(
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
    )
    if explainer.regions is not None:
        sections.append(region_section(folder, record, faces, explainer.regions.weights))
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
    title = f"freqxfr: {Path(str(probe)).name} vs template {Path(str(template)).name}"
    return result, write_report(folder, title, sections)
