"""Tidy rows of an explanation: the one builder behind every ``to_rows()``.

A pair explanation (:class:`~freqxfr.explanations.results.Explanation`, of bands or of
region cells) and a one-sided explanation against a template
(:class:`~freqxfr.explanations.templates.TemplateExplanation`) all give one row per image × band,
or per image × band × region when the side has regions.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def influence_rows(result: Any, sides: Iterable[tuple[str, Any]]) -> list[dict[str, Any]]:
    """One row per image × band (× region, for a side with ``regions``), in that order.

    ``result`` gives the bands, the reference score and the decision (and ``same`` and
    ``groups`` where it has them, i.e. for pairs); ``sides`` are ``(name, image explanation)``.
    """
    pair = hasattr(result, "same")
    tail: dict[str, Any] = {"decision": result.decision}
    if pair:
        tail["same"] = result.same
        tail.update({f"group_{g}": v for g, v in (result.groups or {}).items()})
    rows = []
    for side, image in sides:
        views = (
            image.scores,
            image.absolute,
            image.directed,
            image.absolute_relative,
            image.directed_relative,
        )
        regions = getattr(image, "regions", ())
        # Band-only sides are one row of cells without a region name.
        cells = [(r, name) for r, name in enumerate(regions)] if regions else [(None, None)]
        for r, region in cells:
            for k, band in enumerate(result.bands):
                s, ab, di, abn, din = (float(v[k] if r is None else v[r, k]) for v in views)
                row: dict[str, Any] = {
                    "image": side,
                    "source": image.source,
                    "band": band.index,
                    "radius_lo": band.radius_lo,
                    "radius_hi": band.radius_hi,
                }
                if region is not None:
                    row["region"] = region
                row.update(
                    {
                        "score_ref": result.score_ref,
                        "score": s,
                        "absolute": ab,
                        "directed": di,
                        "absolute_normalised": abn,
                        "directed_normalised": din,
                        **tail,
                    }
                )
                rows.append(row)
    return rows
