"""Self-contained HTML reports: one pair's explanation, or a dataset run.

A report is one HTML file with every picture embedded as a base64 data URI, so it can be mailed or
archived on its own. :func:`write_report` assembles sections; :func:`write_pair_report` and
:func:`write_dataset_report` draw the plots (``plots``) and build their sections, and scenario
commands add their own sections with :class:`Section` and :func:`html_table`.

Every string that comes from the input (file names, group values, model names) is HTML-escaped
here; a :class:`Section`'s ``html`` is trusted markup, so build it with :func:`html_table` and
:func:`html_paragraph`, which escape their text.

After load, a small inline script counts the images that failed to decode and writes the count to
``<body data-broken-images>`` (and appends it to the title), so a headless browser can check that
the report rendered.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.colors import to_hex

from freqxfr.common.atomic import ensure_dir, write_output
from freqxfr.common.errors import InputError
from freqxfr.explanations.config import SETTINGS_KEYS, provenance_labels
from freqxfr.reports import plots

REPORT_NAME = "report.html"
_MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".svg": "image/svg+xml"}

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
DATASET_HOW_TO_READ = (
    "Each explained image contributes one influence per band. Lines are means over images and the "
    "shade is ± one standard deviation; normalised profiles average the per-image normalised values, "
    "which weighs every image equally. Compare the shapes across classes, outcomes and groups: "
    "where a group leans on different bands than another, the model compares their faces differently."
)


@dataclass(frozen=True)
class Section:
    """One section of a report: a heading, trusted HTML, and images to embed (PNG/JPEG/SVG paths)."""

    title: str
    html: str = ""
    images: Sequence[str | os.PathLike[str]] = field(default_factory=tuple)


SectionLike = Section | tuple[str, str] | tuple[str, str, Sequence[str | os.PathLike[str]]]


# --- the generic report -----------------------------------------------------------------------


def write_report(
    out_dir: str | os.PathLike[str],
    title: str,
    sections: Iterable[SectionLike],
    *,
    filename: str = REPORT_NAME,
) -> Path:
    """Write a self-contained HTML report of ``sections`` to ``out_dir/filename``.

    Parameters
    ----------
    out_dir : path-like
        Output folder; created if needed.
    title : str
        Page title and heading (escaped).
    sections : iterable of Section or (title, html[, image paths]) tuples
        ``html`` is trusted markup; image files are read and embedded as data URIs.
    filename : str
        Name of the HTML file.

    Returns
    -------
    pathlib.Path
        The written HTML file.

    Raises
    ------
    OutputError
        If the folder or file cannot be written.
    InputError
        If an image to embed is missing or of an unknown type.
    """
    folder = ensure_dir(out_dir)
    parts = [_as_section(s) for s in sections]
    # Figures plus inline pictures in the sections' markup (e.g. thumbnails), for the browser check.
    n_images = sum(len(s.images) + s.html.count("<img ") for s in parts)
    body = "\n".join(_render_section(s) for s in parts)
    page = _PAGE.format(
        title=_esc(title), n_images=n_images, body=body, style=_STYLE, script=_SCRIPT
    )
    return write_output(folder / filename, page)


def html_table(
    header: Sequence[Any], rows: Iterable[Sequence[Any]], *, caption: str | None = None
) -> str:
    """An HTML table; every cell is formatted (numbers to 4 significant digits) and escaped.

    A cell may be a ``(value, background_colour)`` pair to shade it.
    """
    head = "".join(f"<th>{_esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(_cell(c) for c in row) + "</tr>" for row in rows)
    cap = f"<caption>{_esc(caption)}</caption>" if caption else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def html_paragraph(text: str) -> str:
    """A paragraph of escaped text."""
    return f"<p>{_esc(text)}</p>"


# --- one pair ---------------------------------------------------------------------------------


EXPLANATION_NAME = "explanation.json"


@dataclass(frozen=True)
class PairOutputs:
    """What :func:`write_pair_outputs` wrote: the explanation and the files."""

    explanation: Any  # freqxfr.Explanation
    json_path: Path
    report_path: Path | None
    faithfulness: dict[str, Any] | None = None
    cells: Any = None  # freqxfr.explanations.results.Explanation of the cells, with regions
    record: dict[str, Any] | None = None  # what explanation.json holds


def write_pair_outputs(
    explainer: Any,
    a: Any,
    b: Any,
    out_dir: str | os.PathLike[str],
    *,
    aligned: bool | None = None,
    same: bool | None = None,
    faithfulness: bool = False,
    seeds: int = 5,
    report: bool = True,
    overwrite: bool = False,
) -> PairOutputs:
    """Explain one pair and write ``explanation.json`` (and the plots and ``report.html``).

    What ``freqxfr explain`` and ``freqxfr demo`` write, for library users.

    Parameters
    ----------
    explainer : Explainer
        The explainer to use. With regions, the bands are explained as without them and the
        region × band cells are added (``cells`` in ``explanation.json``, a "Where and which
        frequency" section in the report).
    a, b : path, PIL image or array
        The two images; paths are named in the outputs as given.
    out_dir : path-like
        Output folder; created if needed.
    aligned : bool, optional
        As for :meth:`Explainer.explain`.
    same : bool, optional
        Ground truth (same person?), recorded in ``explanation.json`` and the report.
    faithfulness : bool
        Also compute deletion/insertion curves with ``seeds`` random orders.
    report : bool
        Draw the plots and write ``report.html``; ``False`` writes the JSON only.
    overwrite : bool
        Replace the outputs of *another* pair found in ``out_dir``; by default that is refused
        (the same pair is always rewritten).

    Returns
    -------
    PairOutputs

    Raises
    ------
    OutputError
        If ``out_dir`` holds another pair's explanation and ``overwrite`` is false, or cannot be
        written.
    """
    check_pair_folder(out_dir, a, b, overwrite=overwrite)
    folder = ensure_dir(out_dir)
    # Aligned once; the faces keep the names the user gave, which the explanation reports.
    face_a, face_b = explainer.align(a, aligned), explainer.align(b, aligned)
    faces = np.stack([face_a.pixels, face_b.pixels])
    cells, weights = None, None
    if explainer.regions is not None:
        from freqxfr.explanations.region_explanations import band_explainer

        weights = explainer.regions.weights
        cells = explainer.explain(face_a, face_b, same=same)
        explainer = band_explainer(explainer)
    explanation = explainer.explain(face_a, face_b, same=same)
    curves = None
    if faithfulness:
        curves = explainer.faithfulness(
            face_a, face_b, seeds=seeds, explanation=explanation
        ).to_dict()
    plain = explanation.to_dict()
    if cells is not None:
        from freqxfr.explanations.region_explanations import cells_record

        plain.update(regions=cells.regions.to_dict(), cells=cells_record(cells))
    record = explanation_record(plain)
    if curves is not None:
        record["faithfulness"] = curves
    json_path = write_output(
        folder / EXPLANATION_NAME, json.dumps(record, indent=2, allow_nan=False) + "\n"
    )
    html = None
    if report:
        html = write_pair_report(
            folder, plain, faces, explainer.masked_views(faces), curves, region_weights=weights
        )
    return PairOutputs(explanation, json_path, html, curves, cells, record)


def explanation_record(record: dict[str, Any]) -> dict[str, Any]:
    """``Explanation.to_dict()`` with the distances beside the scores for Euclidean models.

    Scores are "higher is more alike" for every model (a Euclidean score is the negative
    distance); ``distance_ref`` and ``distance_threshold`` spare a reader the sign flip.
    """
    if (record.get("model") or {}).get("metric") == "euclidean":
        record = {
            **record,
            "distance_ref": -record["score_ref"],
            "distance_threshold": -record["threshold"],
        }
    return record


def check_pair_folder(
    out_dir: str | os.PathLike[str],
    a: Any,
    b: Any,
    *,
    overwrite: bool = False,
    hint: str = "choose another output folder, or overwrite=True",
) -> None:
    """Refuse an output folder that holds the explanation of a pair other than ``a``, ``b``.

    Raises
    ------
    OutputError
        Naming the folder, the pair it holds and ``hint``.
    """
    from freqxfr.common.errors import OutputError
    from freqxfr.imaging.images import source_label

    if overwrite:
        return
    path = Path(out_dir) / EXPLANATION_NAME
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
        old_sources = (str(old["a"]["source"]), str(old["b"]["source"]))
    except (FileNotFoundError, NotADirectoryError):
        return
    except (OSError, ValueError, KeyError, TypeError):
        old_sources = ("?", "?")  # unreadable: not ours to replace silently either
    if old_sources != (source_label(a), source_label(b)):
        names = " vs ".join(os.path.basename(s) for s in old_sources)
        raise OutputError(f"{path.parent} holds the explanation of another pair ({names}); {hint}")


def write_pair_report(
    out_dir: str | os.PathLike[str],
    explanation: Mapping[str, Any],
    faces: np.ndarray,
    views: np.ndarray | None = None,
    faithfulness: Mapping[str, Any] | None = None,
    *,
    region_weights: np.ndarray | None = None,
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

    Returns
    -------
    pathlib.Path
        The HTML file.
    """
    folder = ensure_dir(out_dir)
    bands = plots.check_bands(explanation)
    if explanation.get("cells") is not None and region_weights is None:
        raise InputError("an explanation with region cells needs region_weights to be drawn")
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
        from freqxfr.explanations.region_explanations import cells_view
        from freqxfr.reports.regions import region_section

        sections.append(region_section(folder, cells_view(explanation), faces, region_weights))
    sections.append(Section("Provenance", _provenance(explanation)))
    title = f"freqxfr: {os.path.basename(sources[0])} vs {os.path.basename(sources[1])}"
    return write_report(folder, title, sections)


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


class _Markup(str):
    """Trusted, already escaped HTML for a table cell."""


def _file_name(path: str) -> _Markup:
    name = os.path.basename(path) or path
    return _Markup(f'<span title="{_esc(path)}">{_esc(name)}</span>')


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
            _range(band["radius"]),
            _range(band.get("cycles")),
        ]
        if polar:
            row.append(_range([math.degrees(a) for a in band.get("angle", (0, math.pi))]))
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
    from freqxfr.explanations.faithfulness import VARIANT_INFO, VARIANTS

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


def faithfulness_section(folder: Path, faithfulness: Mapping[str, Any]) -> Section:
    """The per-class faithfulness summary of a dataset run: table, verdicts and plot."""
    from freqxfr.explanations.faithfulness import CLASSES, VARIANT_INFO, VARIANTS, verdict

    by_class = faithfulness.get("by_class") or {}
    rows = []
    verdicts = []
    for cls in CLASSES:
        entry = by_class.get(cls) or {}
        n = entry.get("n_images") or 0
        if not n:
            continue
        for name in VARIANTS:
            e = entry[name]
            rows.append(
                [
                    plots.display_name(cls),
                    n,
                    name.replace("_", "-"),
                    VARIANT_INFO[name]["faithful_deletion"],
                    e["deletion_auc"],
                    e["random_deletion_auc"],
                    e["insertion_auc"],
                    e["random_insertion_auc"],
                    e["beats_random"],
                    e["insertion_beats_random"],
                    "holds" if e["holds"] else "does not hold",
                ]
            )
        verdicts.append(
            f"{plots.display_name(cls)}: the decision-aware criterion "
            f"{verdict(entry['decision_aware'], n)}; the paper's absolute order "
            f"{verdict(entry['absolute'], n)}."
        )
    text = html_paragraph(CURVES_HOW_TO_READ) + html_paragraph(
        "Per class, each variant's mean areas and the share of images whose deletion curve beats "
        "the random orders' mean in the faithful direction. A criterion holds for a class when its "
        "wins are significantly more than half (one-sided sign test, p < 0.05); where it does not, "
        "the table says so rather than pooling it away. Genuine/impostor is the ground truth, "
        "match/non-match the model's decision; the decision-aware variant uses the support order "
        "for matched pairs and the against order for non-matched ones."
    )
    text += "".join(html_paragraph(v) for v in verdicts)
    text += html_table(
        [
            "class",
            "images",
            "order",
            "faithful deletion",
            "deletion AUC",
            "random deletion AUC",
            "insertion AUC",
            "random insertion AUC",
            "deletion beats random",
            "insertion beats random",
            "criterion",
        ],
        rows,
    )
    images = []
    if any((by_class.get(c) or {}).get("n_images") for c in CLASSES):
        images.append(plots.plot_faithfulness_classes(by_class, folder / "faithfulness.png"))
    return Section("Faithfulness per class", text, images)


def _provenance(explanation: Mapping[str, Any]) -> str:
    model = explanation.get("model") or {}
    schedule = explanation.get("schedule") or {}
    rows = [
        ("freqxfr version", explanation.get("freqxfr_version")),
        ("model", model.get("name")),
        ("metric", model.get("metric")),
        ("execution provider", model.get("provider")),
        ("input size", _join(model.get("input_size"), "×")),
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


# --- a dataset run ----------------------------------------------------------------------------


def write_dataset_report(
    out_dir: str | os.PathLike[str],
    summary: Mapping[str, Any],
    extra_sections: Sequence[SectionLike] | None = None,
    *,
    results: Sequence[Mapping[str, Any]] | None = None,
    pair_pages: Mapping[int, str] | None = None,
) -> Path:
    """Write the profile plots and tables of a dataset run and a self-contained ``report.html``.

    Parameters
    ----------
    out_dir : path-like
        Output folder; receives ``profiles.png``, ``outcomes.png`` and ``groups.png`` (when the
        summary has outcomes and groups) and ``report.html``.
    summary : dict
        The ``summary.json`` dict of a dataset run.
    extra_sections : sequence of Section or (title, html, [png paths]), optional
        Sections appended by scenario commands (cross-resolution, morphing attacks).
    results : sequence of dict, optional
        The run's ``results.jsonl`` records. With them the report adds score histograms per
        class with the threshold, ROC and DET curves (``scores.png``, ``roc.png``,
        ``verification_det.png``) and the lists of false matches and false non-matches.
    pair_pages : mapping of int to str, optional
        Pair index → the pair's own page, relative to ``out_dir`` (see :func:`write_pair_pages`);
        the lists link to them.

    Returns
    -------
    pathlib.Path
        The HTML file.
    """
    folder = ensure_dir(out_dir)
    bands = plots.check_bands(summary)
    pages = dict(pair_pages or {})
    sections = [
        Section("Overview", _overview(summary)),
        Section("How to read this", html_paragraph(DATASET_HOW_TO_READ)),
    ]
    if results is not None:
        sections += _verification_sections(folder, summary, results, pages)
    classes = plots.usable_profiles(summary.get("classes"))
    if classes:
        img = plots.plot_profiles(summary, folder / "profiles.png")
        sections.append(Section("Genuine vs impostor", _profile_table(classes, bands), [img]))
    outcomes = plots.usable_profiles(summary.get("outcomes"))
    img = plots.plot_outcome_profiles(summary, folder / "outcomes.png")
    if img is not None:
        sections.append(Section("Decision outcomes", _profile_table(outcomes, bands), [img]))
    img = plots.plot_group_profiles(summary, folder / "groups.png")
    if img is not None:
        sections.append(Section("Groups", _group_tables(summary, bands), [img]))
    failures = summary.get("failures") or []
    if failures:
        sections.append(Section("Failed pairs", _failure_table(failures, pages)))
    if summary.get("faithfulness"):
        sections.append(faithfulness_section(folder, summary["faithfulness"]))
    if (summary.get("regions") or {}).get("by_class"):
        from freqxfr.reports.regions import dataset_region_section

        sections.append(dataset_region_section(folder, summary["regions"]))
    sections += [_as_section(s) for s in extra_sections or ()]
    model = (summary.get("model") or {}).get("name", "?")
    return write_report(folder, f"freqxfr dataset report ({model})", sections)


MAX_FAILURE_ROWS = 200
MAX_LISTED_PAIRS = 200
PAIR_PAGES = "pairs"  # the folder of the per-pair pages inside a run folder
THUMBNAIL_PX = 72


def _failure_table(failures: Sequence[Mapping[str, Any]], pages: Mapping[int, str]) -> str:
    """The pairs that could not be explained, with thumbnails and the reason (the first
    MAX_FAILURE_ROWS), each linking to its page where there is one."""
    shown = failures[:MAX_FAILURE_ROWS]
    more = len(failures) - len(shown)
    caption = (
        f"{_count(len(failures), 'pair')} failed; running the same command again retries them"
        + (f"; the first {len(shown)} are shown, all are in summary.json" if more else "")
    )
    rows = [
        (f.get("index"), f.get("line"), f.get("path_a"), f.get("path_b"), f.get("error"))
        for f in shown
    ]
    return _pair_list(("pair", "line", "image a", "image b", "reason"), rows, pages, caption)


def _pair_list(
    header: Sequence[str], rows: Sequence[Sequence[Any]], pages: Mapping[int, str], caption: str
) -> str:
    """A table of pairs: index (linked to its page), then cells; image paths get a thumbnail."""
    body = []
    for index, *cells in rows:
        page = pages.get(int(index)) if index is not None else None
        first = f'<a href="{_esc(page)}">{_fmt(index)}</a>' if page else _fmt(index)
        parts = [f"<td>{first}</td>"]
        for name, cell in zip(header[1:], cells, strict=True):
            if name.startswith("image") and cell:
                thumb = _thumbnail(cell)
                label = _esc(os.path.basename(str(cell)))
                parts.append(
                    f'<td class="thumb">{thumb}<br>{label}</td>'
                    if thumb
                    else f'<td class="thumb">{label}</td>'
                )
            elif name == "reason":
                parts.append(f'<td class="reason">{_fmt(cell)}</td>')
            else:
                parts.append(_cell(cell))
        body.append("<tr>" + "".join(parts) + "</tr>")
    head = "".join(f"<th>{_esc(h)}</th>" for h in header)
    return (
        f'<table class="pairs"><caption>{_esc(caption)}</caption><thead><tr>{head}</tr>'
        f"</thead><tbody>{''.join(body)}</tbody></table>"
    )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _thumbnail(path: Any) -> str | None:
    """An inline JPEG thumbnail of an image file, or ``None`` if it cannot be read."""
    from PIL import Image

    try:
        with Image.open(str(path)) as image:
            image = image.convert("RGB")
            image.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
            buffer = io.BytesIO()
            image.save(buffer, format="JPEG", quality=80)
    except Exception:  # a missing or broken image is what some failures are about
        return None
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img src="data:image/jpeg;base64,{data}" alt="{_esc(os.path.basename(str(path)))}">'


def _verification_sections(
    folder: Path,
    summary: Mapping[str, Any],
    results: Sequence[Mapping[str, Any]],
    pages: Mapping[int, str],
) -> list[Section]:
    """Score histograms per class, ROC and DET, and the lists of wrong decisions."""
    from freqxfr.stats.thresholds import fmr_fnmr, roc

    explained = [r for r in results if "error" not in r]
    threshold = float(summary.get("threshold", explained[0]["threshold"] if explained else 0.0))
    metric = (summary.get("model") or {}).get("metric", "")
    genuine = [float(r["score_ref"]) for r in explained if r.get("same") is True]
    impostor = [float(r["score_ref"]) for r in explained if r.get("same") is False]
    sections = []
    if genuine or impostor:
        images = [
            plots.plot_score_histograms(
                genuine, impostor, threshold, folder / "scores.png", metric=metric
            )
        ]
        text = html_paragraph(
            f"Comparison scores of {len(genuine)} genuine and {len(impostor)} impostor pairs "
            f"(higher is more alike{'; the score is minus the distance' if metric == 'euclidean' else ''}), "
            f"with the model's threshold {threshold:.4g}. Pairs of unknown ground truth are left out."
        )
        if genuine and impostor:
            scores, labels = genuine + impostor, [True] * len(genuine) + [False] * len(impostor)
            curve = roc(scores, labels)
            point = fmr_fnmr(scores, labels, threshold)
            images.append(
                plots.plot_roc(curve.fmr, curve.fnmr, folder / "roc.png", operating_point=point)
            )
            images.append(
                plots.plot_verification_det(
                    curve.fmr, curve.fnmr, folder / "verification_det.png", operating_point=point
                )
            )
            text += html_table(
                ("", "value"),
                [
                    ("false match rate at the threshold (impostor pairs matched)", point[0]),
                    ("false non-match rate at the threshold (genuine pairs rejected)", point[1]),
                ],
            )
        sections.append(Section("Scores, ROC and DET", text, images))
    for title, same, decision, what, verb in (
        ("False matches", False, True, "impostor pair", "the model matched"),
        ("False non-matches", True, False, "genuine pair", "the model rejected"),
    ):
        wrong = [r for r in explained if r.get("same") is same and bool(r["decision"]) is decision]
        if not wrong:
            continue
        wrong.sort(key=lambda r: -abs(float(r["score_ref"]) - threshold))  # worst first
        shown = wrong[:MAX_LISTED_PAIRS]
        rows = [
            (
                r["index"],
                r["a"].get("source"),
                r["b"].get("source"),
                f"score {float(r['score_ref']):.4g} vs threshold {threshold:.4g}",
            )
            for r in shown
        ]
        caption = (
            f"{_count(len(wrong), what)} {verb}, farthest from the threshold first"
            + (f"; the first {len(shown)} are shown" if len(shown) < len(wrong) else "")
            + ("; the pair number links to the pair's own explanation" if pages else "")
        )
        sections.append(
            Section(
                title, _pair_list(("pair", "image a", "image b", "reason"), rows, pages, caption)
            )
        )
    return sections


def write_pair_pages(
    out_dir: str | os.PathLike[str],
    explainer: Any,
    summary: Mapping[str, Any],
    results: Sequence[Mapping[str, Any]],
    *,
    which: str = "errors",
    aligned: bool | None = None,
) -> dict[int, str]:
    """Write a page per pair of a dataset run into ``out_dir/pairs/<index>/report.html``.

    ``which``: ``"errors"`` (wrongly decided and failed pairs), ``"all"`` or ``"none"``. An
    explained pair's page is its pair report, drawn from its record in ``results`` (no model
    runs again); a failed pair's page gives its reason. Returns pair index → page path relative
    to ``out_dir``, for :func:`write_dataset_report`.
    """
    if which not in ("errors", "all", "none"):
        raise InputError(f"which must be 'errors', 'all' or 'none', got {which!r}")
    folder = Path(out_dir)
    pages: dict[int, str] = {}
    if which == "none":
        return pages
    static = {k: summary[k] for k in (*SETTINGS_KEYS, "threshold", "regions") if k in summary}
    # A run with regions: its pages get the region section too (the weights are the explainer's).
    regions = getattr(explainer, "regions", None)
    weights = None if regions is None else regions.weights
    for record in results:
        index = int(record["index"])
        failed = "error" in record
        wrong = (
            not failed
            and record.get("same") is not None
            and (bool(record["decision"]) != bool(record["same"]))
        )
        if which == "errors" and not (failed or wrong):
            continue
        target = folder / PAIR_PAGES / f"{index:06d}"
        if failed:
            rows = [
                ("pair", index),
                ("line", record.get("line")),
                ("image a", record.get("path_a")),
                ("image b", record.get("path_b")),
                ("reason", record.get("error")),
            ]
            write_report(
                target,
                f"freqxfr: pair {index} failed",
                [Section("Failure", html_table(("", "value"), rows))],
            )
        else:
            explanation = {**static, **record}
            sources = (record["a"]["source"], record["b"]["source"])
            faces = np.stack([explainer.prepare(p, aligned) for p in sources])
            write_pair_report(
                target, explanation, faces, explainer.masked_views(faces), region_weights=weights
            )
        pages[index] = f"{PAIR_PAGES}/{index:06d}/{REPORT_NAME}"
    return pages


def _overview(summary: Mapping[str, Any]) -> str:
    model = summary.get("model") or {}
    schedule = summary.get("schedule") or {}
    rows = [
        ("pairs explained", summary.get("pairs")),
        ("pairs failed", summary.get("failed")),
        ("accuracy at the model's threshold", summary.get("accuracy")),
        ("model", model.get("name")),
        ("metric", model.get("metric")),
        ("execution provider", model.get("provider")),
        ("band schedule", f"{schedule.get('kind', '?')}, {len(summary.get('bands') or [])} bands"),
    ]
    counts = [
        (f"images: {plots.display_name(name)}", p.get("n_images"))
        for name, p in plots.usable_profiles(summary.get("classes")).items()
    ]
    counts += [
        (f"images: {plots.display_name(name)}", p.get("n_images"))
        for name, p in plots.usable_profiles(summary.get("outcomes")).items()
    ]
    return html_table(("", "value"), rows + counts)


def _profile_table(
    profiles: Mapping[str, Mapping[str, Any]], bands: Sequence[Mapping[str, Any]]
) -> str:
    header = ["band", "ρ range"]
    for name, prof in profiles.items():
        # Counts are explained images (two per pair), and say so.
        label = f"{plots.display_name(name)} ({prof.get('n_images', '?')} images)"
        header += [f"{label}: |Δ| mean ± sd", f"{label}: Δ mean ± sd"]
    rows = []
    for k, band in enumerate(bands):
        row: list[Any] = [band.get("index", k), _range(band["radius"])]
        for prof in profiles.values():
            row.append(_pm(prof, "absolute", k))
            row.append(_pm(prof, "directed", k))
        rows.append(row)
    return html_table(header, rows)


def _group_tables(summary: Mapping[str, Any], bands: Sequence[Mapping[str, Any]]) -> str:
    parts = []
    for column, values in (summary.get("groups") or {}).items():
        profiles = plots.usable_profiles(values)
        if profiles:
            parts.append(f"<h3>{_esc(column)}</h3>" + _profile_table(profiles, bands))
    return "\n".join(parts)


def _pm(profile: Mapping[str, Any], kind: str, k: int) -> str:
    mean = profile[f"{kind}_mean"][k]
    std = (profile.get(f"{kind}_std") or [None] * (k + 1))[k]
    return _fmt(mean) if std is None else f"{_fmt(mean)} ± {_fmt(std)}"


# --- rendering --------------------------------------------------------------------------------


def _as_section(section: SectionLike) -> Section:
    if isinstance(section, Section):
        return section
    if isinstance(section, tuple) and len(section) in (2, 3):
        title, fragment = section[0], section[1]
        images = tuple(section[2]) if len(section) == 3 else ()
        return Section(str(title), str(fragment), images)
    raise InputError(
        f"a report section must be a Section or a (title, html[, images]) tuple, got {section!r:.80}"
    )


def _render_section(section: Section) -> str:
    figures = "\n".join(_figure(p) for p in section.images)
    return f"<section>\n<h2>{_esc(section.title)}</h2>\n{section.html}\n{figures}\n</section>"


def _figure(path: str | os.PathLike[str]) -> str:
    file = Path(path)
    mime = _MIME.get(file.suffix.lower())
    if mime is None:
        raise InputError(f"cannot embed {file}: only {', '.join(_MIME)} images are supported")
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot embed image {file}: {exc.strerror or exc}") from None
    encoded = base64.b64encode(data).decode("ascii")
    name = _esc(file.name)
    return (
        f'<figure><img src="data:{mime};base64,{encoded}" alt="{name}">'
        f"<figcaption>{name}</figcaption></figure>"
    )


def _cell(value: Any) -> str:
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], str):
        shade, text = value[1], _fmt(value[0])
        ink = "#fff" if _is_dark(shade) else "#000"
        return f'<td style="background:{_esc(shade)};color:{ink}">{text}</td>'
    return f"<td>{_fmt(value)}</td>"


def _fmt(value: Any) -> str:
    if isinstance(value, _Markup):
        return str(value)
    if value is None:
        return "—"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.4g}"
    return _esc(value)


def _range(values: Any) -> str | None:
    """``lo–hi`` in the tables' number format; word joiners keep it on one line."""
    if values is None:
        return None
    lo, hi = values
    return f"{float(lo):.4g}\u2060–\u2060{float(hi):.4g}"


def _join(values: Any, sep: str) -> str | None:
    return None if values is None else sep.join(str(v) for v in values)


def _is_dark(colour: str) -> bool:
    r, g, b = (int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b < 0.45


def _esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto;
       max-width: 1200px; padding: 0 1em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; border-bottom: 1px solid #ccc; margin-top: 2em; }
table { border-collapse: collapse; font-size: 0.8em; margin: 0.8em 0; display: block;
        overflow-x: auto; max-width: 100%; }
th, td { border: 1px solid #ddd; padding: 2px 6px; text-align: right; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
caption { caption-side: bottom; font-size: 0.9em; color: #666; text-align: left; }
figure { margin: 1em 0; } figure img { max-width: 100%; height: auto; }
td.thumb { text-align: center; font-size: 0.9em; } td.reason { text-align: left; max-width: 40em; }
td { white-space: nowrap; } td.reason { white-space: normal; }
figcaption { font-size: 0.75em; color: #777; }
p { max-width: 60em; line-height: 1.45; }
"""

# Counts images that failed to decode once everything has loaded, for a headless-browser check.
_SCRIPT = """
window.addEventListener("load", function () {
  var broken = 0;
  var images = document.getElementsByTagName("img");
  for (var i = 0; i < images.length; i++) {
    if (!images[i].complete || images[i].naturalWidth === 0) { broken += 1; }
  }
  document.body.dataset.brokenImages = String(broken);
  document.body.dataset.loadedImages = String(images.length - broken);
  document.title += broken ? " [" + broken + " broken images]" : " [rendered]";
});
"""

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="freqxfr">
<title>{title}</title>
<style>{style}</style>
</head>
<body data-expected-images="{n_images}">
<h1>{title}</h1>
{body}
<script>{script}</script>
</body>
</html>
"""


# --- comparing runs ---------------------------------------------------------------------------

COMPARE_HOW_TO_READ = (
    "Each line is one run's mean band influence, normalised per explained image (absolute to "
    "[0, 1], directed to [−1, 1]), over the images of its pairs in the class; the shade is a "
    "percentile bootstrap interval over pairs. Below, each pair of runs' paired difference (later "
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
        f"resamples of pairs, {100 * summary['bootstrap']['level']:g}% percentile intervals."
    )
    sections = [
        Section("Runs", overview),
        Section("How to read this", html_paragraph(COMPARE_HOW_TO_READ)),
    ]
    for kind in ("absolute", "directed"):
        img = plots.plot_run_comparison(summary, folder / f"compare_{kind}.png", kind)
        sections.append(
            Section(
                f"Profiles and differences: {kind} influence",
                _comparison_table(summary, kind),
                [img],
            )
        )
    sections.append(Section("Centroid band", _centroid_table(summary)))
    sections.append(Section("Decisions", _decision_agreement(summary)))
    names = " vs ".join(r["name"] for r in runs)
    return write_report(folder, f"freqxfr compare: {names}", sections)


def _comparison_table(summary: Mapping[str, Any], kind: str) -> str:
    parts = []
    runs = [r["name"] for r in summary["runs"]]
    keys = [d["key"] for d in summary["differences"]]
    for cls in ("genuine", "impostor", "match", "non_match", "all"):
        bands = summary["bands"]
        if not any(bands[0][cls]["n_pairs"].get(r) for r in runs):
            continue
        header = ["band", "ρ range", *[f"{r}: mean" for r in runs]]
        header += [f"{k} [CI], same sign" for k in keys]
        rows = []
        for b in bands:
            entry = b[cls]
            row: list[Any] = [b["index"], _range(b["radius"])]
            row += [entry["mean"][r][kind] for r in runs]
            for k in keys:
                d = entry["diff"][k][kind]
                row.append(
                    "—"
                    if d is None
                    else f"{d:+.4g} [{entry['ci_lo'][k][kind]:+.4g}, "
                    f"{entry['ci_hi'][k][kind]:+.4g}], {entry['same_sign'][k][kind]:.0%}"
                )
            rows.append(row)
        n = ", ".join(f"{name} {v}" for name, v in bands[0][cls]["n_pairs"].items())
        parts.append(
            f"<h3>{_esc(plots.display_name(cls))}</h3>"
            + html_table(header, rows, caption=f"pairs: {n}")
        )
    return "\n".join(parts)


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
        top = (
            ", ".join(
                f"band {b['band']} ({b['mean_abs_directed_diff']:.3f})"
                for b in d["bands_differing_most"]
            )
            or "—"
        )
        parts.append(
            html_paragraph(
                f"{key}: the runs agree on {d['agreement']:.1%} of the pairs ({d['n_disagree']} "
                f"decided differently). Where they disagree, the normalised directed influence "
                f"differs most in: {top}."
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
                    caption="first 50 pairs decided differently" if len(d["pairs"]) > 50 else None,
                )
            )
    return "\n".join(parts)
