"""Outputs of a region (or template) explanation: ``explanation.json``, ``regions.png`` and a
``report.html`` with a "Where and which frequency" section; used by ``freqxfr explain
--regions`` and ``--template``. :func:`region_section` is the section a pair report can add."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import ensure_dir, write_output
from .region_plots import plot_pair_regions
from .report import Section, html_paragraph, html_table, write_report

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


def write_region_outputs(
    explainer: Any, a: Any, b: Any, out: Path, *, aligned: bool | None, template: Any = None
) -> tuple[Any, Path]:
    """Explain a pair (or ``a`` against ``template``) with the explainer's regions and write
    ``explanation.json``, ``regions.png`` and ``report.html`` into ``out``."""
    folder = ensure_dir(out)
    # Aligned once; the faces keep the names the user gave, which the explanation reports.
    if template is not None:
        probe = explainer.align(a, aligned)
        faces = probe.pixels[None]
        result = explainer.explain_template(probe, template)
    else:
        face_a, face_b = explainer.align(a, aligned), explainer.align(b, aligned)
        faces = np.stack([face_a.pixels, face_b.pixels])
        result = explainer.explain(face_a, face_b)
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
    title = (
        f"freqxfr: {Path(str(a)).name} vs {Path(str(template if template is not None else b)).name}"
    )
    return result, write_report(folder, title, sections)
