"""The ``freqxfr`` command line.

One module per group of commands (:mod:`.commands`: demo, explain, dataset, faithfulness;
:mod:`.models`: verify, models; :mod:`.scenarios`: crossres, morph; :mod:`.compare`), sharing
:mod:`.options`. Every error a user can cause prints one line on stderr and exits with status 2;
``--verbose`` (before or after the command's name) shows the traceback instead.

Signals: Ctrl-C (SIGINT) and SIGTERM (how Slurm, Kubernetes and ``timeout`` stop a job) end a
command the same way: the run stops, its output folder's lock is released, one line says so
("interrupted" / "terminated", and that the same command resumes), and the exit status is 130
(SIGINT) or 143 (SIGTERM). A second signal during that cleanup ends the process at once. The
``freqxfr`` program (:func:`entry`) then leaves with ``os._exit``, so threads still inside the
model runtime can neither delay nor abort the exit.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import io
import os
import re
import signal
import sys
import threading
import warnings
from collections.abc import Iterator, Sequence
from typing import Any, NoReturn

from freqxfr.cli import commands, compare, models, options, scenarios
from freqxfr.cli.options import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_PAIRS_FAILED,
    EXIT_STATUS_HELP,
    EXIT_TERMINATED,
)
from freqxfr.common.atomic import defer_interrupt, forget_interrupts
from freqxfr.common.errors import FreqxfrError
from freqxfr.common.version import __version__

__all__ = [
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_PAIRS_FAILED",
    "EXIT_TERMINATED",
    "Terminated",
    "build_parser",
    "entry",
    "main",
]


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread as Ctrl-C raises ``KeyboardInterrupt``: every cleanup
    that handles an interrupt (locks, temporary files, Dask clusters) handles it too."""


# The library's keyword arguments, as the command line calls them.
_FLAG_WORDS = (
    (re.compile(r"\baligned=True\b"), "--aligned"),
    (re.compile(r"\baligned=False\b"), "--no-aligned"),
    (re.compile(r"\bno such file( or directory)?\b", re.I), "file not found"),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="freqxfr",
        description="Explain face-verification decisions in the frequency domain.",
        epilog=EXIT_STATUS_HELP,
        parents=[options.common_options(top=True)],
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = options.common_options(top=False)
    commands.add_parsers(sub, common)
    models.add_verify_parser(sub, common)
    models.add_models_parser(sub, common)
    scenarios.add_parsers(sub, common)
    compare.add_compare_parser(sub, common)
    return parser


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"freqxfr: warning: {message}", file=sys.stderr if file is None else file)


def _in_cli_words(message: str) -> str:
    for pattern, words in _FLAG_WORDS:
        message = pattern.sub(words, message)
    return message


@contextlib.contextmanager
def _signals(program: bool = False) -> Iterator[list[int]]:
    """SIGINT raises ``KeyboardInterrupt`` and SIGTERM :class:`Terminated` in the main thread; a
    second signal while the first one's cleanup runs ends the process at once (status 130/143).
    The previous handlers come back on exit (``main`` is also called from tests and scripts).

    With ``program`` (the ``freqxfr`` program, :func:`entry`) the handlers stay: once the
    command's status is in the yielded list, its work is done and only the exit handlers and the
    interpreter's teardown are left, so a signal then ends the process at once with that status
    (before, SIGTERM in that window killed the process silently, status -15)."""
    status: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield status
        return
    caught: list[int] = []

    def handler(signum: int, frame: object) -> None:
        if program and status:
            _exit_now(status[0])
        if caught:
            with contextlib.suppress(OSError, ValueError):
                sys.stderr.write("freqxfr: stopped\n")
                sys.stderr.flush()
            os._exit(EXIT_TERMINATED if caught[0] == signal.SIGTERM else EXIT_INTERRUPTED)
        caught.append(signum)
        exc = Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()
        if not defer_interrupt(exc):  # not inside a lock's take or release: now
            raise exc

    previous_hook = sys.unraisablehook

    def unraisable(info: Any) -> None:
        if isinstance(info.exc_value, KeyboardInterrupt) and caught:
            # The signal landed inside a callback Python cannot raise from (a gc callback, a
            # finaliser: "Exception ignored in ..."): deliver it again, from another thread so
            # that it reaches the command's code once this hook and the callback have returned.
            again = threading.Timer(0.001, os.kill, (os.getpid(), caught.pop()))
            again.daemon = True
            again.start()
            return
        previous_hook(info)

    forget_interrupts()
    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    sys.unraisablehook = unraisable
    try:
        yield status
    finally:
        sys.unraisablehook = previous_hook
        if not (program and status):
            for s, h in previous.items():
                signal.signal(s, h)
        forget_interrupts()


def _exit_now(status: int) -> NoReturn:
    """End the process with ``status`` without the interpreter's teardown (see :func:`entry`)."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(status)


def entry() -> NoReturn:
    """The ``freqxfr`` program: :func:`main`, then exit. After an interrupt the process leaves
    with ``os._exit`` once the command has cleaned up (lock released, line printed), so that
    engine threads still inside ONNX Runtime cannot abort the interpreter's teardown."""
    status = _command(None, program=True)
    if status in (EXIT_INTERRUPTED, EXIT_TERMINATED):
        # The exit handlers still run (multiprocessing's and Dask's cleanups: no "leaked
        # semaphore" warnings), then the process ends without the interpreter's teardown.
        with contextlib.suppress(Exception):
            atexit._run_exitfuncs()
        _exit_now(status)
    raise SystemExit(status)


def main(argv: Sequence[str] | None = None) -> int:
    return _command(argv, program=False)


def _command(argv: Sequence[str] | None, *, program: bool) -> int:
    command: list[str] = []  # the command's name, once parsed
    with _signals(program) as status:
        status.append(_status(argv, command))
        return status[0]


def _status(argv: Sequence[str] | None, command: list[str]) -> int:
    try:
        return _main(argv, command)
    except KeyboardInterrupt as exc:  # a signal outside the command's own handling
        return _interrupted(command[0] if command else "", exc)
    except Exception as exc:
        # A signal during a native module's import (onnxruntime's, opened with the first
        # model) comes back as "ImportError: initialization failed" caused by the
        # interrupt: still an interrupt, not a crash.
        interrupt = _interrupt_behind(exc)
        if interrupt is None:
            raise
        return _interrupted(command[0] if command else "", interrupt)


def _interrupt_behind(exc: BaseException) -> KeyboardInterrupt | None:
    """The ``KeyboardInterrupt`` (or :class:`Terminated`) that caused ``exc``, if any."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, KeyboardInterrupt):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _interrupted(command: str, exc: KeyboardInterrupt) -> int:
    terminated = isinstance(exc, Terminated)
    word = "terminated (SIGTERM)" if terminated else "interrupted"
    resume = "; resume with the same command" if command in _RESUMABLE else ""
    name = f"freqxfr {command}" if command else "freqxfr"
    with contextlib.suppress(OSError, ValueError):
        print(f"{name}: {word}{resume}", file=sys.stderr, flush=True)
    return EXIT_TERMINATED if terminated else EXIT_INTERRUPTED


#: Commands whose interrupted run the same command continues.
_RESUMABLE = frozenset({"dataset", "crossres", "morph"})


def _main(argv: Sequence[str] | None, command: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    command.append(args.command)
    if not args.verbose:
        # Provider fallbacks and "several faces, used the largest" reach users as one line each.
        warnings.showwarning = _one_line_warning
    # --quiet: nothing on stdout but what --json asks for; errors and warnings still on stderr.
    quiet = args.quiet and not getattr(args, "json", False)
    try:
        with contextlib.redirect_stdout(io.StringIO()) if quiet else contextlib.nullcontext():
            return int(args.func(args) or 0)
    except (FreqxfrError, OSError) as exc:
        interrupt = _interrupt_behind(exc)  # e.g. a model that failed to open *because* of ^C
        if interrupt is not None:
            return _interrupted(args.command, interrupt)
        if args.verbose:
            raise
        text = _in_cli_words(str(exc))
        name = type(exc).__name__
        print(
            f"freqxfr {args.command}: error: {text}"
            if isinstance(exc, FreqxfrError)
            else f"freqxfr {args.command}: error ({name}): {text}",
            file=sys.stderr,
        )
        return EXIT_ERROR
    except KeyboardInterrupt as exc:
        return _interrupted(args.command, exc)
