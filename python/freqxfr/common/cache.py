"""The user cache folder: converted models and FFTW wisdom live here, never in the package.

The cache is optional for masking (FFTW wisdom only saves planning time) and required only for
converting models. A folder that cannot be created or written raises ``OutputError`` (an
``OSError``) with one line naming the folder, the reason and ``FREQXFR_CACHE_DIR``; callers that
can do without the cache catch it and warn once (:func:`warn_once`).
"""

from __future__ import annotations

import os
import threading
import warnings
from pathlib import Path

import platformdirs

from freqxfr.common.errors import OutputError

ENV_VAR = "FREQXFR_CACHE_DIR"


class CacheWarning(UserWarning):
    """The cache folder cannot be used; freqxfr goes on without it (e.g. no FFTW wisdom)."""


_warned: set[str] = set()
_warned_lock = threading.Lock()


def cache_root() -> Path:
    """``$FREQXFR_CACHE_DIR`` or the platform's user cache folder (not created)."""
    return Path(os.environ.get(ENV_VAR) or platformdirs.user_cache_dir("freqxfr"))


def cache_dir(*parts: str) -> Path:
    """Return (and create) ``$FREQXFR_CACHE_DIR/parts`` or the platform's user cache folder.

    Raises
    ------
    OutputError
        The folder cannot be created (a parent is a regular file, no permission, read-only
        file system, ...). The message names the folder and ``FREQXFR_CACHE_DIR``.
    """
    path = Path(cache_root(), *parts)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(
            f"cache folder {path} cannot be created: {exc.strerror or exc}; set {ENV_VAR} to a "
            "writable folder"
        ) from None
    if not path.is_dir():  # mkdir(exist_ok=True) accepts an existing file on some systems
        raise OutputError(
            f"cache folder {path} is not a folder; set {ENV_VAR} to a writable folder"
        )
    return path


def warn_once(key: str, message: str) -> None:
    """Emit ``CacheWarning(message)`` the first time ``key`` is seen in this process."""
    with _warned_lock:
        if key in _warned:
            return
        _warned.add(key)
    warnings.warn(message, CacheWarning, stacklevel=3)
