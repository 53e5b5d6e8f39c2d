"""The report of a dataset run and its pair pages, drawn from the run folder's JSON.

:func:`write_dataset_report` draws ``report.html`` from ``summary.json`` and the
``results.jsonl`` records; :func:`write_pair_pages` draws a page per pair that the run chose
(``OUT/pairs/<index>/``, with the images the run stored there, :mod:`freqxfr.runs.pair`);
:func:`render_dataset` does both from the folder alone. No model runs here.
"""

from __future__ import annotations

import base64
import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from freqxfr.common.atomic import ensure_dir
from freqxfr.common.errors import InputError
from freqxfr.explanations.config import SETTINGS_KEYS
from freqxfr.explanations.faithfulness import (
    CLASSES,
    VARIANT_INFO,
    VARIANTS,
    null_verdict,
    verdict,
)
from freqxfr.imaging.images import checked_file
from freqxfr.reports import headline, plots
from freqxfr.reports.html import (
    REPORT_NAME,
    Section,
    SectionLike,
    as_section,
    escape,
    fmt,
    fmt_range,
    html_paragraph,
    html_table,
    plural,
    read_json,
    run_root_rule,
    table_cell,
    write_report,
)
from freqxfr.reports.pair import CURVES_HOW_TO_READ, write_pair_report
from freqxfr.reports.regions import dataset_region_section
from freqxfr.runs.folder import read_results
from freqxfr.runs.pair import (
    PAGE_CHOICES,
    PAIR_PAGES,
    page_folder,
    read_images,
    wrongly_decided,
)
from freqxfr.stats.identities import resampled_by
from freqxfr.stats.thresholds import fmr_fnmr, roc

MAX_FAILURE_ROWS = 200
MAX_LISTED_PAIRS = 200
THUMBNAIL_PX = 72

#: The summary keys a pair page shows beside the pair's own record (they are in ``run.json``).
PAGE_SETTINGS = (*SETTINGS_KEYS, "threshold", "regions")

DATASET_HOW_TO_READ = (
    "Each explained image contributes one influence per band. Lines are means over images and the "
    "shade is ± one standard deviation; normalised profiles average the per-image normalised values, "
    "which weighs every image equally. Compare the shapes across classes, outcomes and groups: "
    "where a group leans on different bands than another, the model compares their faces differently."
)


def faithfulness_section(folder: Path, faithfulness: Mapping[str, Any]) -> Section:
    """The per-class faithfulness summary of a dataset run: table, verdicts and plot."""
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
    text += _null_table(by_class)
    images = []
    if any((by_class.get(c) or {}).get("n_images") for c in CLASSES):
        images.append(plots.plot_faithfulness_classes(by_class, folder / "faithfulness.png"))
    return Section("Faithfulness per class", text, images)


def _null_table(by_class: Mapping[str, Any]) -> str:
    """The decision rule against the calibrated null per class (absent in older summaries)."""
    rows, verdicts = [], []
    for cls in CLASSES:
        entry = (by_class.get(cls) or {}).get("null_test")
        if not entry:
            continue
        row: list[Any] = [plots.display_name(cls), entry["n_images"]]
        for null in ("random", "sanity"):
            e = entry[null]
            row += [e["beats"], e["percentile"], e["effect_size"], e["p_value"]]
        rows.append([*row, "holds" if entry["holds"] else "does not hold"])
        verdicts.append(f"{plots.display_name(cls)}: the decision rule {null_verdict(entry)}.")
    if not rows:
        return ""
    return (
        html_paragraph(
            "Against a calibrated null: per image, the random orders' and the sanity orders' "
            "distributions (sanity: random but for the explanation's most supportive band, first "
            "for a match, last for a non-match). A match is judged by its deletion area, a "
            "non-match by how far deleting in the against order moves the score toward the "
            "threshold (per step, the share of the distance closed, 1 once the decision flipped). "
            "An image beats a null above its median; the rule holds where significantly more "
            "than half the units beat both (sign test, p < 0.05)."
        )
        + "".join(html_paragraph(v) for v in verdicts)
        + html_table(
            [
                "class",
                "images",
                "beat random",
                "median percentile",
                "median effect size",
                "sign test p",
                "beat sanity",
                "median percentile",
                "median effect size",
                "sign test p",
                "decision rule",
            ],
            rows,
        )
    )


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
    lead = _lead(summary, results) if results is not None else None
    sections = [
        Section("Overview", _overview(summary, headline=lead is not None)),
        Section("How to read this", html_paragraph(DATASET_HOW_TO_READ)),
    ]
    if results is not None:
        sections += _verification_sections(folder, summary, results, pages)
    classes = plots.usable_profiles(summary.get("classes"))
    outcomes = plots.usable_profiles(summary.get("outcomes"))
    # With no wrong decision the outcomes are the classes again: say so instead of repeating them.
    no_errors = bool(classes) and not any(k.startswith("false_") for k in outcomes)
    if classes:
        figure = plots.plot_profiles(summary, folder / "profiles.png")
        text = _profile_table(classes, bands)
        if no_errors and outcomes:
            text = (
                html_paragraph(
                    "Every pair was decided correctly, so the decision outcomes (true match, true "
                    "non-match) are these classes and are not shown again."
                )
                + text
            )
        sections.append(Section("Genuine vs impostor", text, [figure]))
    if outcomes and not no_errors:
        img = plots.plot_outcome_profiles(summary, folder / "outcomes.png")
        if img is not None:
            sections.append(Section("Decision outcomes", _profile_table(outcomes, bands), [img]))
    img = plots.plot_group_profiles(summary, folder / "groups.png")
    if img is not None:
        text = _group_rate_tables(summary, results) if results is not None else ""
        sections.append(Section("Groups", text + _group_tables(summary, bands), [img]))
    failures = summary.get("failures") or []
    if failures:
        sections.append(Section("Failed pairs", _failure_table(failures, pages)))
    if summary.get("faithfulness"):
        sections.append(faithfulness_section(folder, summary["faithfulness"]))
    if (summary.get("regions") or {}).get("by_class"):
        sections.append(dataset_region_section(folder, summary["regions"]))
    sections += [as_section(s) for s in extra_sections or ()]
    model = (summary.get("model") or {}).get("name", "?")
    return write_report(
        folder, f"freqxfr dataset report ({model})", sections, kind="dataset", lead=lead
    )


def _lead(summary: Mapping[str, Any], results: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The headline block: pairs, accuracy, AUC, EER and the rates, with bootstrap intervals."""
    scores, labels = headline.scores_and_labels(results)
    explained = [r for r in results if "error" not in r]
    threshold = float(summary.get("threshold", explained[0]["threshold"] if explained else 0.0))
    numbers = headline.verification_headline(scores, labels, threshold)
    return headline.headline_lead(
        numbers,
        n_pairs=len(explained),
        n_failed=len(results) - len(explained),
        n_unlabelled=len(explained) - int(scores.size),
        level=headline.HEADLINE_LEVEL,
    )


def _failure_table(failures: Sequence[Mapping[str, Any]], pages: Mapping[int, str]) -> str:
    """The pairs that could not be explained, with thumbnails and the reason (the first
    MAX_FAILURE_ROWS), each linking to its page where there is one."""
    shown = failures[:MAX_FAILURE_ROWS]
    more = len(failures) - len(shown)
    caption = (
        f"{plural(len(failures), 'pair')} failed; running the same command again retries them"
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
        first = f'<a href="{escape(page)}">{fmt(index)}</a>' if page else fmt(index)
        parts = [f"<td>{first}</td>"]
        for name, cell in zip(header[1:], cells, strict=True):
            if name.startswith("image") and cell:
                thumb = _thumbnail(cell)
                label = escape(os.path.basename(str(cell)))
                parts.append(
                    f'<td class="thumb">{thumb}<br>{label}</td>'
                    if thumb
                    else f'<td class="thumb">{label}</td>'
                )
            elif name == "reason":
                parts.append(f'<td class="reason">{fmt(cell)}</td>')
            else:
                parts.append(table_cell(cell))
        body.append("<tr>" + "".join(parts) + "</tr>")
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    return (
        f'<table class="pairs"><caption>{escape(caption)}</caption><thead><tr>{head}</tr>'
        f"</thead><tbody>{''.join(body)}</tbody></table>"
    )


def _thumbnail(path: Any) -> str | None:
    """An inline JPEG thumbnail of an image file, or ``None`` if it cannot be read."""
    try:
        # The one rule for files read on a pair list's behalf: inside --root, regular files only.
        checked_file(path)
        with Image.open(str(path)) as opened:
            image = opened.convert("RGB")
            image.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
            buffer = io.BytesIO()
            image.save(buffer, format="JPEG", quality=80)
    except Exception:  # a missing or broken image is what some failures are about
        return None
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img src="data:image/jpeg;base64,{data}" alt="{escape(os.path.basename(str(path)))}">'


def _verification_sections(
    folder: Path,
    summary: Mapping[str, Any],
    results: Sequence[Mapping[str, Any]],
    pages: Mapping[int, str],
) -> list[Section]:
    """Score histograms per class, ROC and DET, and the lists of wrong decisions."""
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
                plots.plot_det(
                    {"DET": (curve.fmr, curve.fnmr)},
                    folder / "verification_det.png",
                    axes=("FMR", "FNMR"),
                    operating_point=point,
                )
            )
            text += html_paragraph(
                "The dot on both curves is the model's threshold; its rates, with intervals, "
                "lead the report."
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
            f"{plural(len(wrong), what)} {verb}, farthest from the threshold first"
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
    summary: Mapping[str, Any],
    results: Sequence[Mapping[str, Any]],
    *,
    which: str | None = None,
) -> dict[int, str]:
    """Draw a page per pair of a dataset run into ``out_dir/pairs/<index>/report.html``.

    The pages are those the run chose (a folder ``pairs/<index>`` each,
    :func:`freqxfr.runs.pair.write_page_images`); ``which`` (``"errors"``, ``"all"`` or
    ``"none"``) narrows them further. An explained pair's page is its pair report, drawn from its
    record in ``results`` and the images the run stored in its folder; a failed pair's page gives
    its reason. Returns pair index → page path relative to ``out_dir``, for
    :func:`write_dataset_report`.
    """
    if which is not None and which not in PAGE_CHOICES:
        raise InputError(f"which must be 'errors', 'all' or 'none', got {which!r}")
    folder = Path(out_dir)
    pages: dict[int, str] = {}
    if which == "none":
        return pages
    static = {k: summary[k] for k in PAGE_SETTINGS if k in summary}
    for record in results:
        index = int(record["index"])
        target = page_folder(folder, index)
        if not target.is_dir():
            continue  # the run chose no page for this pair
        failed = "error" in record
        if which == "errors" and not (failed or wrongly_decided(record)):
            continue
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
                header=_BACK_LINK,
                kind="failure",
            )
        else:
            images = read_images(target)
            write_pair_report(
                target,
                {**static, **record},
                images["faces"],
                images["views"],
                region_weights=images["region_weights"],
                embed=False,  # the PNGs beside the page: a few kB instead of megabytes
                back_link=_BACK,
            )
        pages[index] = f"{PAIR_PAGES}/{index:06d}/{REPORT_NAME}"
    return pages


# A pair page lives at pairs/<index>/report.html: the run's report is two folders up.
_BACK = f"../../{REPORT_NAME}"
_BACK_LINK = f'<p><a href="{_BACK}">back to the run\'s report</a></p>\n'


def render_dataset(out_dir: str | os.PathLike[str], *, pair_pages: str | None = None) -> Path:
    """Draw a dataset run's ``report.html`` and its pair pages from the run folder alone
    (``summary.json``, ``results.jsonl`` and the images stored under ``pairs/``).

    Raises
    ------
    InputError
        If ``summary.json`` is missing or unreadable.
    """
    folder = Path(out_dir)
    summary = read_json(folder / "summary.json", "the run's summary")
    records = list(read_results(folder / "results.jsonl"))
    # Thumbnails are read under the run's own root rule, as its explanations were.
    with run_root_rule(folder):
        pages = write_pair_pages(folder, summary, records, which=pair_pages)
        return write_dataset_report(folder, summary, results=records, pair_pages=pages)


def _overview(summary: Mapping[str, Any], *, headline: bool = False) -> str:
    """The run's settings; the pair counts and accuracy too when no headline block states them."""
    model = summary.get("model") or {}
    schedule = summary.get("schedule") or {}
    counts_rows: list[tuple[str, Any]] = [
        ("pairs explained", summary.get("pairs")),
        ("pairs failed", summary.get("failed")),
        ("accuracy at the model's threshold", summary.get("accuracy")),
    ]
    rows = [
        *([] if headline else counts_rows),
        ("threshold", summary.get("threshold")),
        ("model", model.get("name")),
        ("metric", model.get("metric")),
        ("execution provider", model.get("provider")),
        ("band schedule", f"{schedule.get('kind', '?')}, {len(summary.get('bands') or [])} bands"),
    ]
    if isinstance(summary.get("intervals"), Mapping):
        rows.append(("bootstrap intervals", resampled_by(summary["intervals"].get("bootstrap"))))
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
        row: list[Any] = [band.get("index", k), fmt_range(band["radius"])]
        for prof in profiles.values():
            row.append(_pm(prof, "absolute", k))
            row.append(_pm(prof, "directed", k))
        rows.append(row)
    return html_table(header, rows)


def _group_rate_tables(summary: Mapping[str, Any], results: Sequence[Mapping[str, Any]]) -> str:
    """Per group column, FMR and FNMR at the model's threshold per value, with intervals."""
    explained = [r for r in results if "error" not in r]
    if not explained:
        return ""
    threshold = float(summary.get("threshold", explained[0]["threshold"]))
    parts = [
        html_paragraph(
            f"Error rates per group at the model's threshold {threshold:.4g}, with "
            f"{100 * headline.HEADLINE_LEVEL:g}% percentile bootstrap intervals "
            f"({headline.HEADLINE_RESAMPLES} resamples of the group's pairs within each class). "
            "A pair is in a group when both its images are; 'mixed' holds the pairs whose images "
            "differ. Few pairs give wide intervals: compare groups by their intervals, not their "
            "point values."
        )
    ]
    contrasts = headline.group_band_differences(results)
    for column, found in contrasts.items():
        named = "; ".join(
            f"{a} ({na} pairs) vs {b} ({nb} pairs): "
            + (", ".join(map(str, bands)) if bands else "none")
            for a, b, na, nb, bands in found
        )
        parts.append(
            html_paragraph(
                f"{column}: bands whose mean normalised directed influence differs between "
                f"groups ({100 * headline.HEADLINE_LEVEL:g}% bootstrap interval of the difference "
                f"excludes 0, pairs resampled within each group) — {named}."
            )
        )
    for column, rows in headline.group_rates(results, threshold).items():
        parts.append(
            f"<h3>{escape(column)}: error rates</h3>"
            + html_table(
                (
                    "group",
                    "genuine pairs",
                    "impostor pairs",
                    "FMR",
                    "FMR interval",
                    "FNMR",
                    "FNMR interval",
                ),
                [[*row[:4], fmt_range(row[4]), row[5], fmt_range(row[6])] for row in rows],
            )
        )
    return "\n".join(parts)


def _group_tables(summary: Mapping[str, Any], bands: Sequence[Mapping[str, Any]]) -> str:
    parts = []
    for column, values in (summary.get("groups") or {}).items():
        profiles = plots.usable_profiles(values)
        if profiles:
            parts.append(
                f"<h3>{escape(column)}: band profiles</h3>" + _profile_table(profiles, bands)
            )
    return "\n".join(parts)


def _pm(profile: Mapping[str, Any], kind: str, k: int) -> str:
    mean = profile[f"{kind}_mean"][k]
    std = (profile.get(f"{kind}_std") or [None] * (k + 1))[k]
    return fmt(mean) if std is None else f"{fmt(mean)} ± {fmt(std)}"
