"""Writing output files: atomically, and with one error type that names the path.

Every file freqxfr writes goes through :func:`atomic_open`: a reader sees the old file or the new
one, never half of one. A write that fails raises :class:`~freqxfr.common.errors.OutputError` (an
``OSError``) whose one-line message says which file or folder could not be written and why, so
that the CLI can print it as it is.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from freqxfr.common.errors import OutputError

# ---- critical sections ------------------------------------------------------------------------

_critical = threading.local()


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[None]:
    """A block that an interrupt must not split (taking or releasing a lock, a rename).

    A signal handler that calls :func:`defer_interrupt` while such a block runs in its thread
    (the main thread) has its exception raised when the block ends instead. The CLI's SIGINT and
    SIGTERM handlers do (:mod:`freqxfr.cli`); without them, nothing changes."""
    depth = getattr(_critical, "depth", 0)
    _critical.depth = depth + 1
    try:
        yield
    finally:
        _critical.depth = depth
        pending = getattr(_critical, "pending", None)
        if depth == 0 and pending is not None:
            _critical.pending = None
            raise pending


_signalled: list[BaseException] = []  # the interrupt of a signal, once one arrived


def defer_interrupt(exc: BaseException) -> bool:
    """From a signal handler: keep ``exc`` for the end of the running :func:`deferred_interrupts`
    block and return True, or return False when no such block runs (raise it now).

    ``exc`` is also remembered for :func:`raise_if_interrupted`: a handler's exception raised
    inside a garbage-collector or ``__del__`` callback is swallowed by Python ("Exception
    ignored"), and the run would go on as if no signal had come."""
    if not _signalled:
        _signalled.append(exc)
    if getattr(_critical, "depth", 0) == 0:
        return False
    if getattr(_critical, "pending", None) is None:
        _critical.pending = exc
    return True


def forget_interrupts() -> None:
    """Forget a remembered interrupt (the CLI's ``main`` does, on entry and exit)."""
    _signalled.clear()


def raise_if_interrupted() -> None:
    """Raise the interrupt of a signal that arrived (see :func:`defer_interrupt`), if any; long
    loops call it between items (e.g. :meth:`freqxfr.runs.folder.ResultsLog.append`)."""
    if _signalled and getattr(_critical, "depth", 0) == 0:
        raise _signalled[0]


# ---- files -------------------------------------------------------------------------------------


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
        raise _output_error(f"cannot create output folder {folder}", folder, exc) from None
    return folder


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; on success fsync and rename it over ``path``.

    On any exception the temporary file is removed and ``path`` is left untouched. The folder is
    created if needed. Failures of the file system (creating, flushing, renaming) raise
    :class:`OutputError`; exceptions of the caller's block pass through unchanged.
    """
    target = Path(path)
    ensure_dir(target.parent)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise _write_error(target, exc) from None
    try:
        # mkstemp makes the file private (0600); give it the usual mode for a new file instead.
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        handle = os.fdopen(fd, mode)
        try:
            try:
                yield handle
            except OSError as exc:
                # A full disk (or quota, or a read-only remount) while the caller writes: name
                # the file. Other OS errors of the caller's block are the caller's to word.
                if exc.errno in _WRITE_ERRNOS and not isinstance(exc, OutputError):
                    raise _write_error(target, exc) from None
                raise
            try:
                handle.flush()
                os.fsync(handle.fileno())
            except OSError as exc:
                raise _write_error(target, exc) from None
        except BaseException:
            # Closing flushes what is still buffered, which fails again on a full disk: the
            # first error is the one to report, not the close's.
            with contextlib.suppress(OSError):
                handle.close()
            raise
        try:
            handle.close()
        except OSError as exc:
            raise _write_error(target, exc) from None
        try:
            os.replace(tmp_name, target)
        except OSError as exc:
            raise _write_error(target, exc) from None
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


_WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EIO})


def write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically and return the path (:class:`OutputError` if not)."""
    target = Path(path)
    with atomic_open(target, "wb") as handle:
        try:
            handle.write(data)
        except OSError as exc:
            raise _write_error(target, exc) from None
    return target


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` as UTF-8 (whatever the locale says)."""
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write ``obj`` as indented JSON; NaN and infinity are refused (they are not JSON)."""
    return write_text(path, json.dumps(obj, indent=2, allow_nan=False) + "\n")


def write_output(path: str | os.PathLike[str], data: bytes | str) -> Path:
    """:func:`write_text` for ``str``, :func:`write_bytes` for ``bytes``."""
    return write_text(path, data) if isinstance(data, str) else write_bytes(path, data)


def _write_error(target: Path, exc: OSError) -> OutputError:
    if isinstance(exc, OutputError):
        return exc
    folder = target.parent
    return _output_error(f"cannot write {target.name} in output folder {folder}", folder, exc)


def _output_error(what: str, path: Path, exc: OSError) -> OutputError:
    # Not OutputError(errno, ...): an OSError with an errno prints "[Errno n] ..." instead of the
    # message. The original error stays reachable as __context__ for callers that want it.
    return OutputError(f"{what}: {_reason(path, exc)}")


def _reason(path: Path, exc: OSError) -> str:
    """A short human reason for ``exc``, naming a parent that is a file when that is the cause
    (and, for a full disk, what to do)."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return (
            f"{exc.strerror or exc}; free some space and run the same command again (a run "
            "resumes; the file was left as it was)"
        )
    for parent in (path, *path.parents):
        if parent.exists():
            if not parent.is_dir():
                return f"{parent} is a file, not a folder"
            break
    return exc.strerror or str(exc)
