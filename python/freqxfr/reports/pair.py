"""The report of one explained pair: decision, FHP discs, band table, masked strip, faithfulness
curves, regions and provenance.

Drawn from the pair's record (``explanation.json``, or a dataset run's ``results.jsonl`` line with
its ``run.json`` settings) and the images the run stored beside it (``images.npz``,
:mod:`freqxfr.runs.pair`); no model runs here. :func:`render_pair` redraws a pair folder.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.colors import to_hex

from freqxfr.common.atomic import ensure_dir
from freqxfr.common.errors import InputError
from freqxfr.explanations.config import provenance_labels
from freqxfr.explanations.faithfulness import VARIANT_INFO, VARIANTS
from freqxfr.explanations.region_explanations import cells_view
from freqxfr.reports import plots
from freqxfr.reports.html import (
    Markup,
    Section,
    escape,
    fmt_range,
    html_paragraph,
    html_table,
    join,
    write_report,
)
from freqxfr.reports.regions import region_section
from freqxfr.runs.pair import read_explanation, read_images

PAIR_HOW_TO_READ = (
    "Each image of the pair was transformed to the frequency domain, one band of spatial frequencies "
    "(a ring around the centre of the spectrum, where the lowest frequencies and the mean brightness "
    "sit) was deleted, and the altered image was compared again with the other, unaltered image. "
    "A band's absolute influence is how far the score moved, |s_ref − s_k|; its directed influence "
    "s_ref − s_k is positive (blue) when the band supported the match (deleting it lowered the "
    "score) and negative (red) when it worked against the match. The discs show the influences "
    "normalised per image (absolute to [0, 1], directed to [−1, 1]) over the centred spectrum: the "
    "centre is the lowest frequencies, the rim the spectrum's corner, the dashed box its Nyquist "
    "limits. Influences are about this model and this pair, not about faces in general."
)
CURVES_HOW_TO_READ = (
    "Deletion removes bands cumulatively in an order; insertion starts from an empty spectrum and "
    "adds them in the same order. Which order and which direction count as faithful depend on the "
    "decision. For a match, the bands are ordered by how much they supported the match (directed "
    "influence, largest first): deleting them first should lower the score faster than random "
    "orders do (smaller deletion area). For a non-match, they are ordered by how much they worked "
    "against the match (most negative directed influence first): deleting them first should raise "
    "the score faster than random (larger deletion area). The paper's order (absolute influence, "
    "largest first, judged like a match) is shown too. Grey: random orders, mean ± sd over seeds."
)


def write_pair_report(
    out_dir: str | os.PathLike[str],
    explanation: Mapping[str, Any],
    faces: np.ndarray,
    views: np.ndarray | None = None,
    faithfulness: Mapping[str, Any] | None = None,
    *,
    region_weights: np.ndarray | None = None,
    embed: bool = True,
    back_link: str | None = None,
) -> Path:
    """Write the plots of one explained pair and a self-contained ``report.html``.

    Parameters
    ----------
    out_dir : path-like
        Output folder; receives ``fhp.png``, ``bands.png``, ``strip.png`` (with ``views``),
        ``curves.png`` (with ``faithfulness``) and ``report.html``.
    explanation : dict
        ``Explanation.to_dict()`` (the ``explanation.json`` shape).
    faces : ndarray, (2, H, W, 3) uint8
        The two aligned faces, a then b.
    views : ndarray, (2, K, H, W, 3), optional
        The masked images (pixel values), one per band and image.
    faithfulness : dict, optional
        ``Explainer.faithfulness(...).to_dict()``.
    region_weights : ndarray, (R, H, W), optional
        The region weights, for an explanation with ``cells``: adds the "Where and which
        frequency" section (``regions.png``: heat maps and tinted faces).
    embed : bool
        Embed the PNGs in the page (default: one file that can be mailed); ``False`` links them
        beside it (a dataset run's pair pages, kept small).
    back_link : str, optional
        A relative link, e.g. to the run's ``report.html``, shown under the title.

    Returns
    -------
    pathlib.Path
        The HTML file.
    """
    bands = plots.check_bands(explanation)  # a malformed record leaves no empty folder behind
    if explanation.get("cells") is not None and region_weights is None:
        raise InputError("an explanation with region cells needs region_weights to be drawn")
    folder = ensure_dir(out_dir)
    sources = [str(plots.check_side(explanation, s).get("source", s)) for s in ("a", "b")]
    fhp = plots.plot_pair(explanation, faces, folder / "fhp.png")
    bars = plots.plot_band_bars(explanation, folder / "bands.png")

    sections = [
        Section("Decision", _decision_table(explanation, sources), [fhp]),
        Section("How to read this", html_paragraph(PAIR_HOW_TO_READ)),
        Section("Influence per band", _pair_band_table(explanation, bands), [bars]),
    ]
    if views is not None:
        strip = plots.plot_masked_strip(views, bands, folder / "strip.png", faces=faces)
        sections.append(
            Section(
                "What the model saw",
                html_paragraph(
                    "Each column shows the image with one band deleted, in pixel values clipped to "
                    "[0, 255] for display (the model saw the unclipped values unless clipping was on)."
                ),
                [strip],
            )
        )
    if faithfulness is not None:
        curves = plots.plot_curves(faithfulness, folder / "curves.png")
        sections.append(
            Section(
                "Faithfulness",
                html_paragraph(CURVES_HOW_TO_READ) + _auc_table(faithfulness),
                [curves],
            )
        )
    if explanation.get("cells") is not None:
        assert region_weights is not None  # refused above when missing
        sections.append(region_section(folder, cells_view(explanation), faces, region_weights))
    sections.append(Section("Provenance", _provenance(explanation)))
    title = f"freqxfr: {os.path.basename(sources[0])} vs {os.path.basename(sources[1])}"
    header = (
        f'<p><a href="{escape(back_link)}">back to the run\'s report</a></p>\n' if back_link else ""
    )
    return write_report(folder, title, sections, embed=embed, header=header, kind="pair")


def _decision_table(explanation: Mapping[str, Any], sources: Sequence[str]) -> str:
    same = explanation.get("same")
    decision = bool(explanation["decision"])
    euclidean = (explanation.get("model") or {}).get("metric") == "euclidean"
    score, threshold = float(explanation["score_ref"]), float(explanation["threshold"])
    rows: list[tuple[str, Any]] = [
        # File names: a full path (e.g. inside site-packages) says little; it is the tooltip.
        ("image a", _file_name(sources[0])),
        ("image b", _file_name(sources[1])),
        ("score (reference)", score),
        ("threshold", threshold),
    ]
    if euclidean:  # the score is minus the distance; show the distance beside it
        rows += [("distance (= −score)", -score), ("threshold distance", -threshold)]
    rows.append(("decision", "match" if decision else "non-match"))
    if same is not None:
        correct = decision == bool(same)
        rows.append(
            (
                "ground truth",
                f"{'same person' if same else 'different people'} "
                f"({'correct' if correct else 'wrong'})",
            )
        )
    for name, value in (explanation.get("groups") or {}).items():
        rows.append((f"group: {name}", value))
    return html_table(("", "value"), rows)


def _file_name(path: str) -> Markup:
    name = os.path.basename(path) or path
    return Markup(f'<span title="{escape(path)}">{escape(name)}</span>')


def _pair_band_table(explanation: Mapping[str, Any], bands: Sequence[Mapping[str, Any]]) -> str:
    abs_cmap, dir_cmap = plots.fhp_cmap("absolute"), plots.fhp_cmap("directed")
    dir_norm = plots.fhp_norm("directed")
    polar = any(int(b.get("sector", 0)) for b in bands)
    header = (
        ["band", "ρ range", "cycles/image"] + (["angle (°)"] if polar else []) + ["coefficients"]
    )
    for side in ("a", "b"):
        header += [
            f"{side}: score",
            f"{side}: |Δ|",
            f"{side}: Δ",
            f"{side}: |Δ| norm",
            f"{side}: Δ norm",
        ]
    sides = {s: plots.check_side(explanation, s) for s in ("a", "b")}
    rows = []
    for k, band in enumerate(bands):
        row: list[Any] = [
            band.get("index", k),
            fmt_range(band["radius"]),
            fmt_range(band.get("cycles")),
        ]
        if polar:
            row.append(fmt_range([math.degrees(a) for a in band.get("angle", (0, math.pi))]))
        row.append(band.get("count"))
        for side in ("a", "b"):
            data = sides[side]
            scores = data.get("scores")
            a_norm = float(data["absolute_normalised"][k])
            d_norm = float(data["directed_normalised"][k])
            row += [
                None if scores is None else scores[k],
                data["absolute"][k],
                data["directed"][k],
                (a_norm, to_hex(abs_cmap(min(max(a_norm, 0.0), 1.0)))),
                (d_norm, to_hex(dir_cmap(dir_norm(d_norm)))),
            ]
        rows.append(row)
    return html_table(header, rows, caption="Δ = s_ref − s_k: score without band k")


def _auc_table(faithfulness: Mapping[str, Any]) -> str:
    rows = []
    for side in ("a", "b"):
        data = faithfulness.get(side) or {}
        areas = data.get("areas") or {}
        for name in VARIANTS:
            area = areas.get(name)
            if not area:
                continue
            label = (
                name
                if name != "decision_aware"
                else f"decision-aware ({data.get('decision_aware')})"
            )
            rows.append(
                [
                    side,
                    label,
                    VARIANT_INFO[name]["faithful_deletion"],
                    area["deletion_auc"],
                    area["random_deletion_auc"],
                    area["insertion_auc"],
                    area["random_insertion_auc"],
                    area["beats_random"],
                ]
            )
    header = [
        "image",
        "order",
        "faithful deletion",
        "deletion",
        "random deletion",
        "insertion",
        "random insertion",
        "deletion beats random",
    ]
    return html_table(header, rows, caption="areas under the curves (x = fraction of bands)")


def _provenance(explanation: Mapping[str, Any]) -> str:
    model = explanation.get("model") or {}
    schedule = explanation.get("schedule") or {}
    rows = [
        ("freqxfr version", explanation.get("freqxfr_version")),
        ("model", model.get("name")),
        ("metric", model.get("metric")),
        ("execution provider", model.get("provider")),
        ("input size", join(model.get("input_size"), "×")),
        ("channel order", model.get("channel_order")),
        *(
            (label, explanation.get(key, "not recorded"))
            for key, label in provenance_labels().items()
        ),
        (
            "band schedule",
            f"{schedule.get('kind', '?')}, {len(explanation.get('bands') or [])} bands",
        ),
    ]
    timings = explanation.get("timings_ms") or {}
    rows += [(f"time: {name} (ms)", value) for name, value in timings.items()]
    return html_table(("", "value"), rows)


def render_pair(folder: str | os.PathLike[str]) -> Path:
    """Draw ``report.html`` of a pair folder (``freqxfr explain``/``demo``) from its
    ``explanation.json`` and ``images.npz`` alone.

    Raises
    ------
    InputError
        If either file is missing or unreadable.
    """
    record = read_explanation(folder)
    images = read_images(folder)
    return write_pair_report(
        folder,
        record,
        images["faces"],
        images["views"],
        record.get("faithfulness"),
        region_weights=images["region_weights"],
    )
