r"""The HTML kit of every report: sections, tables, escaping and number formatting.

A report is one HTML file with every picture embedded as a base64 data URI, so it can be mailed or
archived on its own; the per-pair pages of a dataset run instead link the PNGs beside them
(``embed=False``: relative links inside the run folder, a few kB a page instead of megabytes).
:func:`write_report` renders :class:`Section`\ s through the Jinja2 templates shipped in
``freqxfr/reports/templates`` (``base.html.j2``, which every report kind's template extends, with
autoescaping on); the renderers of each result kind (:mod:`.pair`, :mod:`.dataset`,
:mod:`.comparison`, :mod:`.crossres`, :mod:`.morph`, :mod:`.regions`) build their sections with
:func:`html_table` and :func:`html_paragraph`, which render through the same templates.

Every string that comes from the input (file names, group values, model names) is escaped by the
templates; a :class:`Section`'s ``html`` is trusted markup, so build it with :func:`html_table` and
:func:`html_paragraph`, which escape their text (or mark a cell as :class:`Markup`).

After load, a small inline script counts the images that failed to decode and writes the count to
``<body data-broken-images>`` (and appends it to the title), so a headless browser can check that
the report rendered.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
import markupsafe
import numpy as np

from freqxfr.common.atomic import ensure_dir, write_output
from freqxfr.common.errors import InputError
from freqxfr.imaging.images import confined_reads
from freqxfr.runs.folder import SETTINGS_KEY

REPORT_NAME = "report.html"
_MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".svg": "image/svg+xml"}


@dataclass(frozen=True)
class Section:
    """One section of a report: a heading, trusted HTML, and images to embed (PNG/JPEG/SVG paths)."""

    title: str
    html: str = ""
    images: Sequence[str | os.PathLike[str]] = field(default_factory=tuple)
    #: A non-empty text folds the section's body into ``<details>`` behind that summary line.
    folded: str = ""


SectionLike = Section | tuple[str, str] | tuple[str, str, Sequence[str | os.PathLike[str]]]


# --- the generic report -----------------------------------------------------------------------


def write_report(
    out_dir: str | os.PathLike[str],
    title: str,
    sections: Iterable[SectionLike],
    *,
    filename: str = REPORT_NAME,
    embed: bool = True,
    header: str = "",
    kind: str = "base",
    lead: Mapping[str, Any] | None = None,
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
    embed : bool
        Embed the images as data URIs (a page that can be mailed on its own); ``False`` links
        them instead, by their path relative to ``out_dir``, which must hold them (the pages of a
        dataset run, which live inside its folder, are a few kB each that way).
    header : str
        Trusted markup placed under the title (e.g. a link back to a run's report).
    kind : str
        The report kind: its template ``templates/<kind>.html.j2`` renders the page (``base`` for
        none in particular).
    lead : mapping, optional
        What the kind's template puts first (the dataset report's headline numbers, the compare
        report's verdict); plain values, escaped by the template.

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
    parts = [as_section(s) for s in sections]
    # Figures plus inline pictures in the sections' markup (e.g. thumbnails), for the browser check.
    n_images = sum(len(s.images) + s.html.count("<img ") for s in parts)
    page = render_template(
        f"{kind}.html.j2",
        title=title,
        kind=kind,
        n_images=n_images,
        header=markupsafe.Markup(header),
        lead=lead,
        sections=[_section_context(s, folder if not embed else None) for s in parts],
    )
    return write_output(folder / filename, page)


def html_table(
    header: Sequence[Any],
    rows: Iterable[Sequence[Any]],
    *,
    caption: str | None = None,
    css_class: str | None = None,
) -> str:
    """An HTML table; every cell is formatted (numbers to 4 significant digits) and escaped.

    A cell may be a ``(value, background_colour)`` pair to shade it, or a :class:`Cell`.
    """
    return render_template(
        "table.html.j2",
        header=[str(h) for h in header],
        rows=[[as_cell(c) for c in row] for row in rows],
        caption=caption,
        css_class=css_class,
    )


def html_paragraph(text: str) -> str:
    """A paragraph of escaped text."""
    return f"<p>{escape(text)}</p>"


def html_details(summary: str, inner: str) -> str:
    """Trusted ``inner`` markup folded behind an escaped ``summary`` line."""
    return f"<details><summary>{escape(summary)}</summary>\n{inner}\n</details>"


@dataclass(frozen=True)
class Cell:
    """A formatted table cell: trusted ``text``, an optional class and background shade."""

    text: str
    css_class: str = ""
    shade: str = ""
    ink: str = ""


class Markup(str):
    """Trusted, already escaped HTML for a table cell."""


# --- rendering --------------------------------------------------------------------------------


def as_section(section: SectionLike) -> Section:
    if isinstance(section, Section):
        return section
    if isinstance(section, tuple) and len(section) in (2, 3):
        title, fragment = section[0], section[1]
        images = tuple(section[2]) if len(section) == 3 else ()
        return Section(str(title), str(fragment), images)
    raise InputError(
        f"a report section must be a Section or a (title, html[, images]) tuple, got {section!r:.80}"
    )


def _section_context(section: Section, linked_from: Path | None = None) -> dict[str, Any]:
    """What ``base.html.j2`` needs of a section: its title, trusted markup and figures."""
    figures = [
        _figure(p) if linked_from is None else _linked_figure(p, linked_from)
        for p in section.images
    ]
    return {
        "title": section.title,
        "html": markupsafe.Markup(section.html),
        "figures": figures,
        "folded": section.folded,
    }


def _figure(path: str | os.PathLike[str]) -> dict[str, str]:
    file = Path(path)
    mime = _MIME.get(file.suffix.lower())
    if mime is None:
        raise InputError(f"cannot embed {file}: only {', '.join(_MIME)} images are supported")
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot embed image {file}: {exc.strerror or exc}") from None
    encoded = base64.b64encode(data).decode("ascii")
    return {"src": f"data:{mime};base64,{encoded}", "name": file.name}


def _linked_figure(path: str | os.PathLike[str], folder: Path) -> dict[str, str]:
    """A figure that links its image by its path relative to ``folder`` (the page's own)."""
    file = Path(path)
    if file.suffix.lower() not in _MIME:
        raise InputError(f"cannot link {file}: only {', '.join(_MIME)} images are supported")
    if not file.is_file():
        raise InputError(f"cannot link image {file}: no such file")
    try:
        relative = file.resolve().relative_to(folder.resolve()).as_posix()
    except ValueError:
        raise InputError(f"cannot link image {file}: it is outside {folder}") from None
    return {"src": quote(relative), "name": file.name}


def as_cell(value: Any) -> Cell:
    """A table cell from a value, a ``(value, background)`` pair or a :class:`Cell`."""
    if isinstance(value, Cell):
        return value
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], str):
        shade = value[1]
        return Cell(fmt(value[0]), shade=shade, ink="#fff" if is_dark(shade) else "#000")
    return Cell(fmt(value))


def table_cell(value: Any) -> str:
    """One ``<td>`` of a value, formatted and escaped like :func:`html_table`'s cells."""
    cell = as_cell(value)
    attrs = f' class="{escape(cell.css_class)}"' if cell.css_class else ""
    if cell.shade:
        attrs += f' style="background:{escape(cell.shade)};color:{cell.ink}"'
    return f"<td{attrs}>{cell.text}</td>"


def fmt(value: Any) -> str:
    if isinstance(value, Markup):
        return str(value)
    if value is None:
        return "—"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return number(float(value))
    return escape(value)


def number(value: float) -> str:
    """The reports' one number format: 4 significant digits, positional (``0.2889``,
    ``0.00001042``, ``146.1``; no exponent between 1e-6 and 1e7), trailing zeros dropped."""
    if not np.isfinite(value):
        return "—" if np.isnan(value) else ("∞" if value > 0 else "−∞")
    if value == 0 or 1e-6 <= abs(value) < 1e7:
        return np.format_float_positional(
            value, precision=4, unique=False, fractional=False, trim="-"
        )
    return f"{value:.4g}"


def fmt_range(values: Any) -> str | None:
    """``lo–hi`` in the tables' number format; word joiners keep it on one line."""
    if values is None:
        return None
    lo, hi = values
    return f"{number(float(lo))}\u2060–\u2060{number(float(hi))}"


def join(values: Any, sep: str) -> str | None:
    return None if values is None else sep.join(str(v) for v in values)


def is_dark(colour: str) -> bool:
    r, g, b = (int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b < 0.45


def escape(text: Any) -> str:
    return str(markupsafe.escape(str(text)))


@functools.cache
def _environment() -> jinja2.Environment:
    """The templates shipped in ``freqxfr/reports/templates``, autoescaped."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("freqxfr.reports", "templates"),
        autoescape=True,  # every template, whatever its suffix (.j2): nothing unescaped by default
        keep_trailing_newline=True,
    )


def render_template(name: str, **context: Any) -> str:
    """Render one of the shipped templates with ``context`` (autoescaped)."""
    try:
        template = _environment().get_template(name)
    except jinja2.TemplateNotFound:
        raise InputError(f"no report template {name!r} in freqxfr/reports/templates") from None
    return template.render(**context)


def plural(n: int, noun: str) -> str:
    """``"1 pair"``, ``"2 pairs"``."""
    return f"{n} {noun}" + ("" if n == 1 else "s")


def read_json(path: str | os.PathLike[str], what: str) -> Any:
    """A JSON file a report is drawn from (``what`` names it in the error).

    Raises
    ------
    InputError
        If it is missing or not JSON, naming the file.
    """
    file = Path(path)
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{file}: cannot read {what} ({exc})") from None


def run_root_rule(folder: Path) -> contextlib.AbstractContextManager[None]:
    """:func:`~freqxfr.imaging.images.confined_reads` under a run's own root rule (``--root``
    and ``--allow-outside-root`` of its ``run.json``; none without one), so that a report reads
    the run's images as its explanations did."""
    run = (
        read_json(folder / "run.json", "the run's settings")
        if (folder / "run.json").is_file()
        else {}
    )
    settings = run.get(SETTINGS_KEY) if isinstance(run, dict) else None
    settings = settings if isinstance(settings, dict) else {}
    root, outside = settings.get("--root"), bool(settings.get("--allow-outside-root"))
    return confined_reads(root, allow_outside_root=outside)
