"""Finding and loading FFTW (single precision) for the C++ core, and keeping its wisdom.

The core declares the few FFTW functions it calls and loads ``libfftw3f`` at run time: from the
wheel of ``pyfftw`` (``pyfftw.libs/libfftw3f-<hash>.so*``, the hash changes between releases), from
``$FREQXFR_FFTW_LIBRARY``, or from the system. freqxfr itself ships no FFTW code; FFTW is GPL-2.0+.

Wisdom (FFTW's record of the fastest plans) is saved in the user cache, so that a one-shot command
does not pay 0.1–0.8 s of FFTW_MEASURE planning again. It is only an optimisation: with no usable
cache (unwritable, or under a regular file) masking works all the same, after one warning.
"""

from __future__ import annotations

import ctypes.util
import hashlib
import importlib.util
import os
import platform
import threading
from pathlib import Path

from freqxfr.common import atomic
from freqxfr.common.cache import cache_dir, warn_once
from freqxfr.common.errors import FreqxfrError
from freqxfr.core import _core  # the extension only: FFTW is loaded into it by compiled_core()

_lock = threading.Lock()
_saved_wisdom: str | None = None


def find_library() -> Path:
    """Path of a usable libfftw3f, or raise ``FreqxfrError`` saying how to get one."""
    env = os.environ.get("FREQXFR_FFTW_LIBRARY")
    if env:
        if not Path(env).is_file():
            raise FreqxfrError(f"FREQXFR_FFTW_LIBRARY={env}: file not found")
        return Path(env)
    spec = importlib.util.find_spec("pyfftw")
    if spec is not None and spec.submodule_search_locations:
        site = Path(next(iter(spec.submodule_search_locations))).parent
        # auditwheel names the folder after the distribution: "pyFFTW.libs" up to 0.15.0 (the
        # newest wheel for Python 3.10), "pyfftw.libs" from 0.15.1 on.
        for libs in (site / "pyfftw.libs", site / "pyFFTW.libs"):
            # "libfftw3f-<hash>" is the plain single-precision library ("libfftw3f_omp-..." is not).
            found = sorted(libs.glob("libfftw3f-*.so*"))
            if found:
                return found[0]
    system = ctypes.util.find_library("fftw3f")
    if system:
        return Path(system)
    raise FreqxfrError(
        "no single-precision FFTW found for the 'cpp' backend: `pip install pyfftw` (its wheel "
        "carries libfftw3f), install libfftw3f, or set FREQXFR_FFTW_LIBRARY; the 'numpy' backend "
        "needs no FFTW"
    )


def compiled_core():
    """freqxfr's compiled extension (``freqxfr.core._core``, not FFTW itself), after loading FFTW
    into it and importing the saved wisdom (once per process)."""
    with _lock:
        if not _core.fftw_loaded():
            global _saved_wisdom
            _core.load_fftw(str(find_library()))
            try:
                path = _wisdom_path()
                text = path.read_text() if path.is_file() else None
            except (OSError, ValueError) as exc:  # ValueError: wisdom that is not text
                _warn_no_wisdom(exc)
                text = None
            # Stale or foreign wisdom is simply ignored by FFTW.
            if text and _core.import_wisdom(text):
                _saved_wisdom = text
    return _core


def save_wisdom() -> None:
    """Write FFTW's accumulated wisdom to the cache if it changed (atomic). An unusable cache
    only costs planning time later, so it gives one warning per process, not an error."""
    global _saved_wisdom
    text = compiled_core().export_wisdom()
    with _lock:
        if text and text != _saved_wisdom:
            try:
                atomic.write_text(_wisdom_path(), text)
            except OSError as exc:
                _warn_no_wisdom(exc)
            # Not retried after a failure: one attempt per change of wisdom.
            _saved_wisdom = text


def _warn_no_wisdom(exc: Exception) -> None:
    if isinstance(exc, FreqxfrError):  # the cache's own error names the folder already
        reason = str(exc)
    elif isinstance(exc, OSError):
        reason = f"{exc.filename}: {exc.strerror or exc}"
    else:
        reason = f"the wisdom file is not text ({exc})"
    warn_once(
        "fftw-wisdom",
        f"FFTW wisdom is not kept between runs (masking works; planning "
        f"is repeated in each process): {reason}",
    )


def _wisdom_path() -> Path:
    lib = _core.fftw_library_path() or "unloaded"
    key = hashlib.sha256(f"{lib}|{platform.machine()}".encode()).hexdigest()[:16]
    return cache_dir("fftw") / f"wisdom-{key}.txt"
