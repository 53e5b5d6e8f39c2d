"""The report of ``freqxfr compare``: runs, profiles, differences, centroids and decisions, drawn
from the comparison's ``summary.json`` (:func:`freqxfr.runs.comparison.compare_runs`)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from freqxfr.common.atomic import ensure_dir
from freqxfr.reports import plots
from freqxfr.reports.html import (
    Markup,
    Section,
    escape,
    fmt_range,
    html_details,
    html_paragraph,
    html_table,
    read_json,
    write_report,
)
from freqxfr.stats.identities import resampled_by

COMPARE_HOW_TO_READ = (
    "Each line is one run's mean band influence, normalised per explained image (absolute to "
    "[0, 1], directed to [−1, 1]), over the images of its pairs in the class; the shade is a "
    "percentile bootstrap interval (over identities when known). Below, each pair of runs' paired difference (later "
    "run minus earlier run, pair by pair, then averaged) with its interval; every band uses the "
    "same resamples. A band whose interval excludes 0 is used differently by the two runs on "
    "these pairs. Match/non-match are each run's own decisions; their differences are over the "
    "pairs both runs decided that way."
)


def write_comparison_report(out_dir: str | os.PathLike[str], summary: Mapping[str, Any]) -> Path:
    """``report.html`` of ``freqxfr compare``: runs, profiles, differences, centroids, decisions."""
    folder = ensure_dir(out_dir)
    runs = summary["runs"]
    run_rows = [
        (
            r["name"],
            r["model"],
            r["metric"],
            r["mode"],
            r["domain"],
            r["clip"],
            r.get("padding") or "not recorded",
            r["accuracy"],
            r["failed_pairs"],
        )
        for r in runs
    ]
    overview = html_table(
        (
            "run",
            "model",
            "metric",
            "mode",
            "domain",
            "clip",
            "alignment padding",
            "accuracy (common pairs)",
            "failed pairs",
        ),
        run_rows,
    )
    overview += html_paragraph(
        f"{summary['n_pairs']} pairs common to every run ({len(summary['excluded_pairs'])} left "
        f"out because a run failed on them); bootstrap: {summary['bootstrap']['resamples']} "
        f"resamples, {100 * summary['bootstrap']['level']:g}% percentile intervals, "
        f"{resampled_by(summary['bootstrap'])}."
    )
    forest = plots.plot_comparison_forest(summary, folder / "compare_forest.png")
    sections = [
        Section(
            "Differences per band",
            html_paragraph(
                "Each dot is a band's paired difference of normalised influence (later run minus "
                "earlier run), the line its bootstrap interval; a filled dot's interval excludes "
                "0. The tables with every number are folded below each section."
            ),
            [forest],
        ),
        Section("Runs", overview),
        Section("How to read this", html_paragraph(COMPARE_HOW_TO_READ)),
    ]
    for kind in ("absolute", "directed"):
        img = plots.plot_run_comparison(summary, folder / f"compare_{kind}.png", kind)
        sections.append(
            Section(
                f"Profiles and differences: {kind} influence",
                html_details(
                    f"the {kind} numbers per band and class", _comparison_table(summary, kind)
                ),
                [img],
            )
        )
    sections.append(Section("Centroid band", _centroid_table(summary)))
    sections.append(Section("Decisions", _decision_agreement(summary)))
    names = " vs ".join(r["name"] for r in runs)
    return write_report(
        folder,
        f"freqxfr compare: {names}",
        sections,
        kind="compare",
        lead={"paragraphs": verdict(summary)},
    )


#: The classes the verdict and the forest plot speak for (each run's own decisions, match and
#: non-match, are in the tables).
VERDICT_CLASSES = ("genuine", "impostor")


def verdict(summary: Mapping[str, Any]) -> list[str]:
    """The compare report's first paragraph(s), one per pair of runs: how often the decisions
    agree, and the bands whose difference interval excludes 0, named per class and kind."""
    level = 100 * float((summary.get("bootstrap") or {}).get("level", 0.95))
    decisions = summary.get("decisions") or {}
    out = []
    for diff in summary.get("differences") or []:
        key = diff["key"]
        d = decisions.get(key) or {}
        parts = [f"{key}, over {summary['n_pairs']} common pairs:"]
        if d:
            parts.append(
                f"the decisions agree on {d['agreement']:.1%} of the pairs "
                f"({d['n_disagree']} decided differently)."
            )
        named = []
        for kind in ("absolute", "directed"):
            for cls in VERDICT_CLASSES:
                bands = differing_bands(summary, key, cls, kind)
                if bands is None:
                    continue
                where = ", ".join(str(b) for b in bands) if bands else "none"
                named.append(f"{kind} influence, {plots.display_name(cls)} pairs: {where}")
        if named:
            parts.append(
                f"Bands whose {level:g}% interval of the difference excludes 0 — "
                + "; ".join(named)
                + "."
            )
        out.append(" ".join(parts))
    return out


def differing_bands(summary: Mapping[str, Any], key: str, cls: str, kind: str) -> list[int] | None:
    """The band indices whose difference interval excludes 0; ``None`` if the class has none."""
    found: list[int] = []
    for k, band in enumerate(summary["bands"]):
        entry = band.get(cls) or {}
        lo = ((entry.get("ci_lo") or {}).get(key) or {}).get(kind)
        hi = ((entry.get("ci_hi") or {}).get(key) or {}).get(kind)
        if lo is None or hi is None:
            return None if k == 0 else found
        if lo > 0 or hi < 0:
            found.append(int(band.get("index", k)))
    return found


#: The shade of a difference whose interval excludes 0.
DIFFERS = "#fde9a9"


def _comparison_table(summary: Mapping[str, Any], kind: str) -> str:
    parts = []
    runs = [r["name"] for r in summary["runs"]]
    keys = [d["key"] for d in summary["differences"]]
    bands = summary["bands"]
    for cls in ("genuine", "impostor", "match", "non_match", "all"):
        if not any(bands[0][cls]["n_pairs"].get(r) for r in runs):
            continue
        twin = _same_as(bands, cls)
        if twin is not None:
            parts.append(
                html_paragraph(
                    f"{plots.display_name(cls)}: the same pairs as {plots.display_name(twin)} "
                    "(every decision agrees with the ground truth), so not repeated."
                )
            )
            continue
        header = ["band", "ρ range", *[f"{r}: mean" for r in runs]]
        for k in keys:
            header += [f"{k}: difference", f"{k}: interval", f"{k}: same sign"]
        rows = []
        for b in bands:
            entry = b[cls]
            row: list[Any] = [b["index"], fmt_range(b["radius"])]
            row += [entry["mean"][r][kind] for r in runs]
            for k in keys:
                d = entry["diff"][k][kind]
                if d is None:
                    row += [None, None, None]
                    continue
                lo, hi = entry["ci_lo"][k][kind], entry["ci_hi"][k][kind]
                interval = fmt_range((lo, hi))
                row += [
                    (d, DIFFERS) if lo > 0 or hi < 0 else d,
                    (Markup(interval), DIFFERS) if lo > 0 or hi < 0 else Markup(interval),
                    f"{entry['same_sign'][k][kind]:.0%}",
                ]
            rows.append(row)
        n = ", ".join(f"{name} {v}" for name, v in bands[0][cls]["n_pairs"].items())
        parts.append(
            f"<h3>{escape(plots.display_name(cls))}</h3>"
            + html_table(header, rows, caption=f"pairs: {n}; shaded: the interval excludes 0")
        )
    return "\n".join(parts)


def _same_as(bands: Any, cls: str) -> str | None:
    """The ground-truth class whose entries a decision class repeats exactly (``None`` if not)."""
    twin = {"match": "genuine", "non_match": "impostor"}.get(cls)
    if twin is None:
        return None
    same = all(b[cls] == b[twin] for b in bands)
    return twin if same else None


def _centroid_table(summary: Mapping[str, Any]) -> str:
    runs = [r["name"] for r in summary["runs"]]
    keys = [d["key"] for d in summary["differences"]]
    rows = []
    for cls, c in summary["centroid"].items():
        row: list[Any] = [plots.display_name(cls), *[c["mean"][r] for r in runs]]
        for k in keys:
            d = c["diff"][k]
            row.append(
                "—"
                if d is None
                else f"{d:+.4g} [{c['ci_lo'][k]:+.4g}, {c['ci_hi'][k]:+.4g}], "
                f"{c['same_sign'][k]:.0%}"
            )
        rows.append(row)
    return html_paragraph(
        "The centroid is each explained image's influence-weighted mean band index (0 = lowest "
        "band), averaged over the pair's two images and then over pairs."
    ) + html_table(
        ["class", *[f"{r}: centroid" for r in runs], *[f"{k} [CI], same sign" for k in keys]], rows
    )


def _decision_agreement(summary: Mapping[str, Any]) -> str:
    parts = []
    for key, d in summary["decisions"].items():
        top = ", ".join(
            f"band {b['band']} ({b['mean_abs_directed_diff']:.3f})"
            for b in d["bands_differing_most"]
        )
        where = (
            f" Where they disagree, the normalised directed influence differs most in: {top}."
            if top
            else ""
        )
        parts.append(
            html_paragraph(
                f"{key}: the runs agree on {d['agreement']:.1%} of the pairs ({d['n_disagree']} "
                f"decided differently).{where}"
            )
        )
        rows = [
            (
                p["index"],
                ", ".join(os.path.basename(str(x)) for x in p["paths"]),
                p["same"],
                *p["decision"].values(),
                *p["score"].values(),
                ", ".join(map(str, p["bands_differing_most"])),
            )
            for p in d["pairs"][:50]
        ]
        if rows:
            names = list(d["pairs"][0]["decision"])
            parts.append(
                html_details(
                    f"the {len(d['pairs'])} pairs decided differently",
                    html_table(
                        [
                            "pair",
                            "images",
                            "same person",
                            *[f"{n}: match" for n in names],
                            *[f"{n}: score" for n in names],
                            "bands differing most",
                        ],
                        rows,
                        caption="first 50 pairs decided differently"
                        if len(d["pairs"]) > 50
                        else None,
                    ),
                )
            )
    return "\n".join(parts)


def render_comparison(out_dir: str | os.PathLike[str]) -> Path:
    """Draw ``report.html`` of a comparison folder from its ``summary.json`` alone."""
    summary = read_json(Path(out_dir) / "summary.json", "the comparison's summary")
    return write_comparison_report(out_dir, summary)
