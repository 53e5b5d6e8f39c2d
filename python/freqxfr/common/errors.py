"""Exceptions raised at freqxfr's public boundary.

Every error that a user's input can cause derives from ``FreqxfrError``. Input problems are also
``ValueError`` so that generic callers can catch them the usual way. The CLI turns any
``FreqxfrError`` into one line on stderr.
"""

from __future__ import annotations


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
