"""The user cache folder: converted models and FFTW wisdom live here, never in the package."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs


def cache_dir(*parts: str) -> Path:
    """Return (and create) ``$FREQXFR_CACHE_DIR/parts`` or the platform's user cache folder."""
    root = os.environ.get("FREQXFR_CACHE_DIR") or platformdirs.user_cache_dir("freqxfr")
    path = Path(root, *parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
