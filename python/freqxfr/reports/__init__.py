"""Reports: drawn from a run folder's JSON records (and the images a run stored), never by
running a model.

- :mod:`.html`: the HTML kit (sections, tables, escaping, number formatting);
- :mod:`.plots`, :mod:`.region_plots`: the figures;
- one renderer per result kind: :mod:`.pair`, :mod:`.dataset`, :mod:`.regions`,
  :mod:`.comparison`, :mod:`.crossres`, :mod:`.morph`.

:func:`render_run` draws the report of any finished run folder; the CLI calls it after the run.
"""

from __future__ import annotations

import os
from pathlib import Path

from freqxfr.common.errors import InputError
from freqxfr.reports.comparison import render_comparison
from freqxfr.reports.crossres import render_crossres
from freqxfr.reports.dataset import render_dataset
from freqxfr.reports.html import read_json
from freqxfr.reports.morph import render_morph
from freqxfr.reports.pair import render_pair
from freqxfr.reports.regions import write_template_report
from freqxfr.runs.pair import EXPLANATION_NAME


def render_run(folder: str | os.PathLike[str], *, pair_pages: str | None = None) -> Path:
    """Draw ``report.html`` (and its plots; a dataset run's pair pages) of a run folder from the
    files the run wrote, with no model loaded. Returns the report's path.

    The kind of run is read from the folder: ``explanation.json`` (``explain``, ``demo``, or an
    explanation against a template), or ``summary.json`` of ``dataset``, ``crossres``, ``morph``
    or ``compare``. ``pair_pages`` (``"errors"``, ``"all"``, ``"none"``) narrows a dataset run's
    pages to fewer than the run stored.

    Raises
    ------
    InputError
        If the folder holds no finished run, naming it.
    """
    out = Path(folder)
    if (out / EXPLANATION_NAME).is_file():
        record = read_json(out / EXPLANATION_NAME, "the explanation")
        if record.get("kind") == "template":
            return write_template_report(out)
        return render_pair(out)
    if not (out / "summary.json").is_file():
        raise InputError(f"{out}: no explanation.json or summary.json; is it a finished run?")
    summary = read_json(out / "summary.json", "the run's summary")
    if "differences" in summary and "runs" in summary:
        return render_comparison(out)
    if "mmpmr" in summary:
        return render_morph(out)
    if "factors" in summary and "resample" in summary:
        return render_crossres(out)
    return render_dataset(out, pair_pages=pair_pages)


__all__ = ["render_run"]
