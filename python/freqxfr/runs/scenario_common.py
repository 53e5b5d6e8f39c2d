"""What the scenario runs share: checking stream items, CSV text, and the provenance rows of
their reports (aligning each image once is :func:`freqxfr.explanations.stream.align_images`)."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from typing import Any

from freqxfr.common.errors import InputError
from freqxfr.explanations.config import provenance_labels
from freqxfr.explanations.explainer import Explanation, PairFailure

#: The file a scenario run appends its explanations to, and resumes from.
EXPLANATIONS = "explanations.jsonl"


def checked(item: Explanation | PairFailure) -> Explanation:
    """The explanation of a stream item of aligned faces (which cannot fail; if one does, its
    message is kept)."""
    if isinstance(item, PairFailure):
        raise InputError(item.error)
    return item


def csv_text(rows: list[dict[str, Any]]) -> str:
    """Rows of equal keys as CSV text, with a header line."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def provenance_rows(summary: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """The model and masking rows of a scenario report's overview, from the summary's
    :meth:`~freqxfr.explanations.explainer.Explainer.settings` part."""
    masking = f"{summary['mode']} in the {summary['domain']} domain"
    if summary.get("clip"):
        masking += ", clipped to 0..255"
    return [
        ("model", summary["model"]["name"]),
        ("metric", summary["model"]["metric"]),
        ("threshold", summary["threshold"]),
        ("bands", f"{summary['schedule']['kind']}, {len(summary['bands'])}"),
        ("masking", masking),
        # The other settings of the provenance (backend, padding, planner, ...), as recorded
        # (a summary with "alignment", crossres's, shows its padding there with the padded share).
        *(
            (label, summary[key])
            for key, label in provenance_labels().items()
            if key in summary
            and key not in ("mode", "domain", "clip")
            and not (key == "padding" and "alignment" in summary)
        ),
        ("freqxfr version", summary.get("freqxfr_version")),
    ]
