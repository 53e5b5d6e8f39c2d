r"""The HTML kit of every report: sections, tables, escaping and number formatting.

A report is one HTML file with every picture embedded as a base64 data URI, so it can be mailed or
archived on its own; the per-pair pages of a dataset run instead link the PNGs beside them
(``embed=False``: relative links inside the run folder, a few kB a page instead of megabytes). :func:`write_report` assembles :class:`Section`\ s; the renderers of each
result kind (:mod:`.pair`, :mod:`.dataset`, :mod:`.comparison`, :mod:`.crossres`, :mod:`.morph`,
:mod:`.regions`) build their sections with :func:`html_table` and :func:`html_paragraph`.

Every string that comes from the input (file names, group values, model names) is HTML-escaped
here; a :class:`Section`'s ``html`` is trusted markup, so build it with :func:`html_table` and
:func:`html_paragraph`, which escape their text (or mark a cell as :class:`Markup`).

After load, a small inline script counts the images that failed to decode and writes the count to
``<body data-broken-images>`` (and appends it to the title), so a headless browser can check that
the report rendered.
"""

from __future__ import annotations

import base64
import html
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

from freqxfr.common.atomic import ensure_dir, write_output
from freqxfr.common.errors import InputError

REPORT_NAME = "report.html"
_MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".svg": "image/svg+xml"}


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
    embed: bool = True,
    header: str = "",
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
    body = header + "\n".join(_render_section(s, folder if not embed else None) for s in parts)
    page = _PAGE.format(
        title=escape(title), n_images=n_images, body=body, style=_STYLE, script=_SCRIPT
    )
    return write_output(folder / filename, page)


def html_table(
    header: Sequence[Any], rows: Iterable[Sequence[Any]], *, caption: str | None = None
) -> str:
    """An HTML table; every cell is formatted (numbers to 4 significant digits) and escaped.

    A cell may be a ``(value, background_colour)`` pair to shade it.
    """
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(table_cell(c) for c in row) + "</tr>" for row in rows)
    cap = f"<caption>{escape(caption)}</caption>" if caption else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def html_paragraph(text: str) -> str:
    """A paragraph of escaped text."""
    return f"<p>{escape(text)}</p>"


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


def _render_section(section: Section, linked_from: Path | None = None) -> str:
    figures = "\n".join(
        _figure(p) if linked_from is None else _linked_figure(p, linked_from)
        for p in section.images
    )
    return f"<section>\n<h2>{escape(section.title)}</h2>\n{section.html}\n{figures}\n</section>"


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
    name = escape(file.name)
    return (
        f'<figure><img src="data:{mime};base64,{encoded}" alt="{name}">'
        f"<figcaption>{name}</figcaption></figure>"
    )


def _linked_figure(path: str | os.PathLike[str], folder: Path) -> str:
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
    src, name = escape(quote(relative)), escape(file.name)
    return f'<figure><img src="{src}" alt="{name}"><figcaption>{name}</figcaption></figure>'


def table_cell(value: Any) -> str:
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], str):
        shade, text = value[1], fmt(value[0])
        ink = "#fff" if is_dark(shade) else "#000"
        return f'<td style="background:{escape(shade)};color:{ink}">{text}</td>'
    return f"<td>{fmt(value)}</td>"


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
        return f"{float(value):.4g}"
    return escape(value)


def fmt_range(values: Any) -> str | None:
    """``lo–hi`` in the tables' number format; word joiners keep it on one line."""
    if values is None:
        return None
    lo, hi = values
    return f"{float(lo):.4g}\u2060–\u2060{float(hi):.4g}"


def join(values: Any, sep: str) -> str | None:
    return None if values is None else sep.join(str(v) for v in values)


def is_dark(colour: str) -> bool:
    r, g, b = (int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b < 0.45


def escape(text: Any) -> str:
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
