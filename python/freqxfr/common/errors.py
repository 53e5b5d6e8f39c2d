"""Exceptions raised at freqxfr's public boundary.

Every error that a user's input can cause derives from ``FreqxfrError``. Input problems are also
``ValueError`` so that generic callers can catch them the usual way. The CLI turns any
``FreqxfrError`` into one line on stderr.
"""

from __future__ import annotations

from pathlib import Path


class FreqxfrError(Exception):
    """Base class for every error freqxfr raises on purpose."""


class InputError(FreqxfrError, ValueError):
    """An input (array, image file, pair list, option) is malformed. The message names it."""


class ImageError(InputError):
    """An image file is missing, unreadable, truncated, too large or of an unsupported kind."""


class NoFaceError(InputError):
    """No face was found in an image that needed alignment."""


class ModelError(FreqxfrError, ValueError):
    """A model file or model card is invalid, or they do not match each other."""


class OutputError(FreqxfrError, OSError):
    """An output folder or file cannot be created or written. The message names the path."""


def read_text(
    path: Path,
    label: str,
    *,
    encoding: str = "utf-8",
    missing: str | None = None,
) -> str:
    """The text of an input file (decoded as it is: line ends untranslated).

    Raises
    ------
    InputError
        One line that starts with ``label``: the file is missing (``missing``, if given, is then
        the whole message), a folder, unreadable, or not UTF-8 text.
    """
    try:
        return path.read_bytes().decode(encoding)
    except FileNotFoundError:
        raise InputError(missing or f"{label}: file not found") from None
    except IsADirectoryError:
        raise InputError(f"{label}: is a folder, not a file") from None
    except OSError as exc:
        raise InputError(f"{label}: cannot read it ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{label}: not UTF-8 text ({exc.reason})") from None
