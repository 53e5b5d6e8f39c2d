"""Run folders: the output folder of a command, locked for the whole run, checked on restart.

Every command that writes an output folder (``dataset``, ``crossres``, ``morph``,
``faithfulness``, ``explain``, ``demo``) runs inside :func:`locked_folder`:

- **One run per folder.** The folder is locked with ``flock(2)`` on ``OUT/.freqxfr.lock`` for the
  whole run. A second run into the same folder fails at once with :class:`FolderBusyError`, whose
  one-line message names the folder and the process holding it (pid, host, command, start time,
  which the holder writes into the lock file). The kernel drops an ``flock`` lock when its
  process dies, however it dies, so a run killed with ``kill -9`` never blocks the next one. The
  lock file is removed when a run ends normally.
- **Writable or refused.** The folder is created and probed before any work starts; a file where
  the folder should be, or a read-only folder, is an :class:`~freqxfr.common.errors.OutputError` that
  names the folder.
- **No debris.** If the run fails and it created the folder, the folder is removed again, unless
  it holds results that a restart can continue from (``resumable=True``).

Resumable runs record their settings with :func:`check_settings` and stream finished work to a
:class:`ResultsLog`; a restart with other settings is refused with a message that names each
setting and both values.

Why ``fcntl.flock`` and not the ``filelock`` package: ``filelock`` opens its lock file with
``O_TRUNC`` on every attempt, so a losing process would erase the pid that the holder wrote
there before it could read it, and holder details are what makes the error useful. ``flock``
needs no dependency, and the core already requires a POSIX system (it loads FFTW's ``.so``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import fcntl
import json
import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Hashable, Iterator, Mapping
from pathlib import Path
from typing import Any

from freqxfr.common import atomic
from freqxfr.common.atomic import deferred_interrupts, ensure_dir
from freqxfr.common.errors import OutputError
from freqxfr.explanations.config import unrecorded_settings

LOCK_NAME = ".freqxfr.lock"
SETTINGS_KEY = "settings"
#: The version of ``run.json``, its ``format`` field (schema: ``freqxfr/schemas/run.schema.json``).
RUN_FORMAT = "freqxfr.run/1"


class FolderBusyError(OutputError):
    """Another process holds the output folder's lock. The message names the folder and it."""


# ---- the lock --------------------------------------------------------------------------------


@dataclasses.dataclass
class _Held:
    fd: int
    thread: int
    depth: int


_held: dict[str, _Held] = {}
_held_guard = threading.Lock()


@contextlib.contextmanager
def locked_folder(
    path: str | os.PathLike[str], *, command: str, resumable: bool = False
) -> Iterator[Path]:
    """Create ``path`` if needed, lock it for this run, and yield it.

    Parameters
    ----------
    path : path-like
        The output folder.
    command : str
        Written into the lock file, so that a refused second run can say what holds the folder.
    resumable : bool
        On failure, keep a folder this call created if it holds anything but the lock and
        ``run.json`` (a restart continues from it). Otherwise a folder this call created is
        removed on failure.

    The lock is re-entrant within one thread (a CLI command can lock the folder before loading
    the model, and the library function it calls locks it again); another thread or process is
    refused.

    Raises
    ------
    FolderBusyError
        Another run holds the folder.
    OutputError
        The folder cannot be created or written (the message names it).
    """
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"output folder {folder}: {folder} is a file, not a folder")
    created = _first_missing(folder)
    ensure_dir(folder)
    key = os.path.realpath(folder)
    with _held_guard:
        held = _held.get(key)
        if held is not None and held.thread == threading.get_ident():
            held.depth += 1
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield folder
        finally:
            with _held_guard:
                _held[key].depth -= 1
        return

    try:
        # An interrupt waits until the lock is taken and recorded, so that the finally below
        # always releases it (no lock file left behind).
        with deferred_interrupts():
            fd = _acquire(folder, command)
            with _held_guard:
                _held[key] = _Held(fd, threading.get_ident(), 1)
    except BaseException:
        if key in _held and _held[key].thread == threading.get_ident():
            # Taken, then an interrupt arrived as the block ended: release it again.
            with _held_guard:
                fd = _held.pop(key).fd
            _release(folder, fd)
        # Not ours to empty: another run may have created the same folder at the same moment.
        _remove_empty(created, folder)
        raise
    ok = False
    try:
        _probe_writable(folder)
        yield folder
        ok = True
    finally:
        with deferred_interrupts():  # a second signal must not leave the lock file behind
            with _held_guard:
                del _held[key]
            if not ok and created is not None and (not resumable or not _holds_results(folder)):
                # Remove before unlocking: nobody can have started work in a folder we hold.
                with contextlib.suppress(OSError):
                    shutil.rmtree(folder)
                _remove_empty(created, folder)
                os.close(fd)
            else:
                _release(folder, fd)


def holder(folder: str | os.PathLike[str]) -> dict[str, Any] | None:
    """What the lock file of ``folder`` says about its (last) holder, or ``None``."""
    try:
        text = (Path(folder) / LOCK_NAME).read_text(encoding="utf-8")
        return json.loads(text) if text.strip() else None
    except (OSError, ValueError):
        return None


def _acquire(folder: Path, command: str) -> int:
    lock = folder / LOCK_NAME
    for _ in range(100):  # only repeats when a finishing run removed the file we opened
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except OSError as exc:
            raise OutputError(f"output folder {folder} can't be written: {_why(exc)}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise FolderBusyError(
                f"output folder {folder} is in use by another run ({_describe(_wait_for_holder(folder))}); "
                "wait for it to finish or choose another --out"
            ) from None
        except OSError as exc:
            os.close(fd)
            raise OutputError(
                f"output folder {folder}: cannot lock {LOCK_NAME}: {_why(exc)}"
            ) from None
        # The holder we waited behind may have removed the file after we opened it; then our
        # lock is on an orphan inode and means nothing. Open the path again.
        try:
            same = os.stat(lock).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            info = {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "command": command,
                "started": datetime.datetime.now(datetime.timezone.utc).strftime(
                    "%Y-%m-%d %H:%M:%S UTC"
                ),
            }
            try:
                os.ftruncate(fd, 0)
                os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
            except OSError as exc:
                _release(folder, fd)  # ours: no empty lock file left behind
                raise OutputError(
                    f"output folder {folder} can't be written ({lock}: {_why(exc)}); "
                    "free some space or choose another --out"
                ) from None
            return fd
        os.close(fd)
    raise OutputError(f"output folder {folder}: could not take its lock {LOCK_NAME}")


def _release(folder: Path, fd: int) -> None:
    # Unlink before closing: a run that opened the file meanwhile sees the inode change and
    # opens the path again (see _acquire).
    with contextlib.suppress(OSError):
        os.unlink(folder / LOCK_NAME)
    os.close(fd)


def _wait_for_holder(folder: Path) -> dict[str, Any] | None:
    # The holder writes its details right after it takes the lock; give it a moment.
    for _ in range(20):
        info = holder(folder)
        if info is not None:
            return info
        time.sleep(0.05)
    return None


def _describe(info: dict[str, Any] | None) -> str:
    if not info:
        return "holder unknown"
    return (
        f"pid {info.get('pid', '?')} on {info.get('host', '?')}: "
        f"freqxfr {info.get('command', '?')}, since {info.get('started', '?')}"
    )


def _probe_writable(folder: Path) -> None:
    """Fail now, naming the folder, rather than later naming a temporary file."""
    try:
        fd, name = tempfile.mkstemp(prefix=".freqxfr-write-test.", dir=folder)
        os.close(fd)
        os.unlink(name)
    except OSError as exc:
        raise OutputError(f"output folder {folder} can't be written: {_why(exc)}") from None


def _first_missing(folder: Path) -> Path | None:
    """The outermost folder on the way to ``folder`` that does not exist yet (we create it)."""
    missing = None
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            break
        missing = candidate
    return missing


def _remove_empty(created: Path | None, folder: Path) -> None:
    """Remove the empty folders this run created, from ``folder`` up to ``created``."""
    if created is None:
        return
    for candidate in (folder, *folder.parents):
        try:
            candidate.rmdir()
        except FileNotFoundError:
            pass  # already removed with its content
        except OSError:
            return
        if candidate == created:
            return


def _holds_results(folder: Path) -> bool:
    """Whether ``folder`` holds anything a restart could continue from (a non-empty file)."""
    try:
        entries = [p for p in folder.iterdir() if p.name not in (LOCK_NAME, "run.json")]
        return any(p.is_dir() or p.stat().st_size > 0 for p in entries)
    except OSError:
        return True


def clear_run_folder(folder: str | os.PathLike[str]) -> None:
    """Empty a run folder that this process holds locked (``--restart``): everything but the
    lock file goes, so that the run starts over; the lock stays held throughout. Only a folder
    with a ``run.json`` (a freqxfr run) is emptied; any other folder is left as it is."""
    target = Path(folder)
    key = os.path.realpath(target)
    with _held_guard:
        held = _held.get(key)
    if held is None or held.thread != threading.get_ident():
        raise OutputError(f"output folder {target}: not locked by this run; cannot start it over")
    if not (target / "run.json").is_file():
        return
    for entry in target.iterdir():
        if entry.name == LOCK_NAME:
            continue
        try:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        except OSError as exc:
            raise OutputError(
                f"cannot start {target} over: cannot remove {entry}: {_why(exc)}"
            ) from None


# What each kind of command leaves in its output folder, and the file that shows it.
_OUTPUT_KINDS = {
    "run": ("run.json", "a dataset, crossres or morph run"),
    "explanation": ("explanation.json", "a pair's explanation"),
    "comparison": ("summary.json", "a comparison of runs"),
}


def held_output(folder: str | os.PathLike[str]) -> str | None:
    """Which kind of freqxfr output ``folder`` holds: ``"run"`` (a ``run.json``),
    ``"explanation"`` (an ``explanation.json``), ``"comparison"`` (a ``summary.json`` written by
    ``compare``), or ``None``."""
    target = Path(folder)
    if (target / "run.json").exists():
        return "run"
    if (target / "explanation.json").exists():
        return "explanation"
    try:
        summary = json.loads((target / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    fmt = summary.get("format") if isinstance(summary, dict) else None
    if isinstance(fmt, str) and fmt.startswith("freqxfr.comparison"):
        return "comparison"
    return None


def check_output_kind(
    folder: str | os.PathLike[str], kind: str, *, command: str, hint: str
) -> None:
    """Refuse an output folder that holds another kind of output than ``kind``
    (:func:`held_output`), which ``command`` would overwrite in part: ``compare --out`` into a
    dataset run would replace its summary.json and report.html, ``explain --out`` its
    report.html, ``dataset --out`` a comparison's summary.json.

    Raises
    ------
    OutputError
        Naming the folder, what it holds (and the file that shows it) and ``hint``.
    """
    found = held_output(folder)
    if found is not None and found != kind:
        name, what = _OUTPUT_KINDS[found]
        raise OutputError(
            f"{folder} holds {what} ({name}), which {command} would overwrite; {hint}"
        )


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc)


# ---- settings --------------------------------------------------------------------------------


def check_settings(path: str | os.PathLike[str], record: Mapping[str, Any]) -> None:
    """Record ``record`` in ``path`` (``run.json``), or check that a restart uses its settings.

    ``record[SETTINGS_KEY]`` is a flat dict from a setting's name as the user knows it
    (``"--root"``, ``"--bands/--schedule"``) to a JSON value; everything else in ``record`` is
    stored for information only.

    Raises
    ------
    OutputError
        The folder holds a run with other settings; the message lists each differing setting
        with its old and new value (``--root: was X, now Y``). A run of an older freqxfr that
        did not record a setting of :data:`UNRECORDED_SETTINGS` continues only with the value
        that freqxfr used, given explicitly.
    """
    target = Path(path)
    record = json.loads(json.dumps(record, allow_nan=False))  # tuples -> lists, as on disk
    record = {"format": RUN_FORMAT, **record}
    if not target.exists():
        try:
            atomic.write_json(target, record)
        except OSError as exc:
            raise OutputError(
                f"output folder {target.parent} can't be written: {_why(exc)}"
            ) from None
        return
    try:
        previous = json.loads(target.read_text(encoding="utf-8"))
    except OSError as exc:
        raise OutputError(
            f"{target} is unreadable ({_why(exc)}); use a new output folder"
        ) from None
    except ValueError as exc:
        raise OutputError(f"{target} is unreadable ({exc}); use a new output folder") from None
    old = previous.get(SETTINGS_KEY) if isinstance(previous, dict) else None
    if not isinstance(old, dict):
        raise OutputError(
            f"{target.parent} holds a run of an older freqxfr without recorded settings; "
            "use a new output folder"
        )
    new = record[SETTINGS_KEY]
    for name, (what, value) in UNRECORDED_SETTINGS.items():
        if name in new and name not in old:
            # An older freqxfr did not record this setting: it continues only with the value
            # that freqxfr used, given explicitly, never silently with today's default.
            if new[name] != value:
                raise OutputError(
                    f"{target.parent} holds a run started without a recorded {what} (an older "
                    f"freqxfr, which used {name} {value} before the setting was recorded); "
                    f"choose another --out, or continue it with {name} {value} if that is "
                    "what it used"
                )
            old = {**old, name: value}
    changes = setting_changes(old, new)
    if changes:
        raise OutputError(
            f"{target.parent} holds a run with other settings: {'; '.join(changes)}; "
            "rerun with the same settings to continue it, or choose another --out"
        )


#: Settings that runs of an older freqxfr did not record: what they are, and the value that
#: freqxfr used (the config's ``unrecorded`` metadata: black padding, dlib's and OpenCV's own
#: border; FFTW_MEASURE plans). Such a run continues only with that value.
UNRECORDED_SETTINGS = unrecorded_settings()


def setting_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """``"name: was X, now Y"`` for every setting whose value differs (nested dicts by key)."""
    changes = []
    for name in dict.fromkeys([*old, *new]):
        a, b = old.get(name, _MISSING), new.get(name, _MISSING)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            changes += [f"{name} {c}" for c in setting_changes(a, b)]
        else:
            changes.append(f"{name}: was {_show(a)}, now {_show(b)}")
    return changes


_MISSING = object()


def _show(value: Any) -> str:
    if value is _MISSING:
        return "(not set)"
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= 120 else text[:117] + "..."


# ---- the results log -------------------------------------------------------------------------


class ResultsLog:
    """An append-only JSON-lines file of finished work, one line per item, resumable.

    Each line is written with one ``write`` and flushed, so a crash leaves at most one partial
    last line. :meth:`open` drops that line, failed items (they are retried) and any repeated
    key, rewriting the file atomically if it changed, and returns the keys already done.

    Parameters
    ----------
    path : path-like
        The ``.jsonl`` file.
    key : callable
        The item a record stands for (e.g. its pair index).
    done : callable
        Whether a record counts as finished; records that don't are dropped and redone.

    ``key`` returning ``None`` or raising ``KeyError``/``TypeError``/``ValueError`` marks a
    record as invalid (a wrong index type, a missing field): it is dropped like a partial line,
    so its item is redone rather than a rerun failing on it.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        key: Callable[[dict[str, Any]], Hashable],
        done: Callable[[dict[str, Any]], bool] = lambda record: "error" not in record,
    ) -> None:
        self.path = Path(path)
        self._key = key
        self._done = done
        self._sink: Any = None
        self._written = 0  # complete records in the file

    def open(self) -> set[Hashable]:
        """Compact the file (see the class docstring) and return the finished keys."""
        try:
            return self._open()
        except OutputError:
            raise
        except OSError as exc:
            raise OutputError(
                f"cannot read or write {self.path}: {_why(exc)}; fix that, then run the same "
                "command again to resume"
            ) from None

    def _open(self) -> set[Hashable]:
        keys: set[Hashable] = set()
        kept: list[bytes] = []
        changed = False
        if self.path.exists():
            with self.path.open("rb") as handle:
                for line in handle:
                    try:
                        # A JSON value; with a key, a dict (the key is read from dicts only).
                        record: Any = json.loads(line) if line.endswith(b"\n") else None
                        key = self._key(record) if isinstance(record, dict) else None
                    except (ValueError, KeyError, TypeError, IndexError, AttributeError):
                        key = None  # invalid JSON (or UTF-8), or not a record of this log
                    if key is None or key in keys or not self._done(record):
                        changed = True
                        continue
                    keys.add(key)
                    kept.append(line)
        if changed:
            atomic.write_bytes(self.path, b"".join(kept))
        self._sink = self.path.open("a", encoding="utf-8")
        self._written = len(kept)
        return keys

    def append(self, record: Mapping[str, Any]) -> None:
        atomic.raise_if_interrupted()  # a signal whose exception was swallowed stops us here
        line = json.dumps(record, allow_nan=False) + "\n"
        try:
            self._sink.write(line)
            self._sink.flush()
        except OSError as exc:
            raise OutputError(
                f"cannot write {self.path}: {_why(exc)}; its {self._written} finished "
                "records are kept, and once that is fixed (e.g. space freed) the same command "
                "resumes the run"
            ) from None
        self._written += 1

    def close(self) -> None:
        if self._sink is not None:
            sink, self._sink = self._sink, None
            with contextlib.suppress(OSError):
                os.fsync(sink.fileno())
            with contextlib.suppress(OSError):  # a failed flush was reported by append
                sink.close()

    def __enter__(self) -> ResultsLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def records(self) -> list[dict[str, Any]]:
        """Every complete record in the file, in file order."""
        return list(read_results(self.path)) if self.path.exists() else []


def read_results(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """The complete records of a JSON-lines results file (a partial last line is ignored)."""
    with Path(path).open(encoding="utf-8") as handle:
        for line in handle:
            if not line.endswith("\n"):
                return
            yield json.loads(line)


# ---- the settings of an explanation run ------------------------------------------------------


def explainer_settings(explainer: Any, aligned: bool | None = None) -> dict[str, Any]:
    """The settings of an :class:`~freqxfr.explanations.explainer.Explainer` that change its numbers,
    named as the user sets them: the part of :meth:`Explainer.settings` a restart must match.

    The masking backend and the execution provider are left out: they may differ between
    machines without changing what the numbers mean. The model is named by its file's digest
    and its full card (the provenance names it only by card name).
    """
    model = explainer.model
    card = model.card.to_dict()
    for informative in ("name", "threshold", "notes", "source"):
        card.pop(informative, None)
    return {
        "--model": f"{model.card.name} ({Path(model.path).name}, sha256 {_digest(model.path)})",
        "model card": card,
        "threshold": model.card.threshold,
        **explainer.config.restart_settings(explainer.settings()),
        "--aligned": aligned,
    }


def pair_list_settings(
    pairs: Any, root: str | os.PathLike[str] | None, allow_outside_root: bool
) -> dict[str, Any]:
    """The settings that say which pairs a run explains: the root and the list's content.

    The pair list's own path is not a setting: another file with the same pairs gives the same
    results."""
    import hashlib

    base = os.path.abspath(root) if root is not None else None
    listing = "\n".join(
        "\t".join(
            [
                *(
                    os.path.relpath(p, base) if base else os.path.abspath(p)
                    for p in (pair.path_a, pair.path_b)
                ),
                str(pair.same),
                json.dumps(pair.groups, sort_keys=True),
            ]
        )
        for pair in pairs
    )
    digest = hashlib.sha256(listing.encode()).hexdigest()[:16]
    return {
        "--root": base,
        "pairs": f"{len(pairs)} pairs, sha256 {digest}",
        "--allow-outside-root": bool(allow_outside_root),
    }


_digests: dict[tuple[str, int, int], str] = {}


def _digest(path: str | os.PathLike[str]) -> str:
    """A short sha256 of a (model) file, cached per process by path, size and mtime."""
    import hashlib

    stat = os.stat(path)
    key = (os.path.abspath(path), stat.st_size, stat.st_mtime_ns)
    if key not in _digests:
        h = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                h.update(block)
        _digests[key] = h.hexdigest()[:16]
    return _digests[key]
