"""Output folders and files for plots and reports: atomic writes whose failures name the path.

``atomic`` does the writing; this module only turns an ``OSError`` into an :class:`OutputError`
that says which folder or file could not be written and why, so that the CLI can print one line.
"""

from __future__ import annotations

import os
from pathlib import Path

from . import atomic
from .errors import OutputError


def ensure_dir(path: str | os.PathLike[str]) -> Path:
    """Create the output folder ``path`` (and its parents) if needed and return it.

    Raises
    ------
    OutputError
        If the folder cannot be created, e.g. because ``path`` or one of its parents is a file.
    """
    folder = Path(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create output folder {folder}: {_reason(folder, exc)}") from None
    return folder


def write_output(path: str | os.PathLike[str], data: bytes | str) -> Path:
    """Write ``data`` to ``path`` atomically (text as UTF-8) and return the path.

    Raises
    ------
    OutputError
        If the file or its folder cannot be written.
    """
    target = Path(path)
    ensure_dir(target.parent)
    try:
        if isinstance(data, str):
            atomic.write_bytes(target, data.encode("utf-8"))
        else:
            atomic.write_bytes(target, data)
    except OSError as exc:
        raise OutputError(
            f"cannot write {target.name} in output folder {target.parent}: {_reason(target, exc)}"
        ) from None
    return target


def _reason(path: Path, exc: OSError) -> str:
    """A short human reason for ``exc``, naming a parent that is a file when that is the cause."""
    for parent in (path, *path.parents):
        if parent.exists():
            if not parent.is_dir():
                return f"{parent} is a file, not a folder"
            break
    return exc.strerror or str(exc)
