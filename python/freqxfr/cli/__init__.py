"""The ``freqxfr`` command line.

One module per group of commands (:mod:`.commands`: demo, explain, dataset, faithfulness;
:mod:`.models`: verify, models; :mod:`.scenarios`: crossres, morph; :mod:`.compare`), sharing
:mod:`.options`. Every error a user can cause prints one line on stderr and exits with status 2;
``--verbose`` (before or after the command's name) shows the traceback instead.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import sys
import warnings
from collections.abc import Sequence

from freqxfr.cli import commands, compare, models, options, scenarios
from freqxfr.cli.options import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_PAIRS_FAILED,
    EXIT_STATUS_HELP,
)
from freqxfr.common.errors import FreqxfrError
from freqxfr.common.version import __version__

__all__ = ["EXIT_ERROR", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_PAIRS_FAILED", "build_parser", "main"]

# The library's keyword arguments, as the command line calls them.
_FLAG_WORDS = (
    (re.compile(r"\baligned=True\b"), "--aligned"),
    (re.compile(r"\baligned=False\b"), "--no-aligned"),
    (re.compile(r"\bno such file\b", re.I), "file not found"),
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.verbose:
        # Provider fallbacks and "several faces, used the largest" reach users as one line each.
        warnings.showwarning = _one_line_warning
    # --quiet: nothing on stdout but what --json asks for; errors and warnings still on stderr.
    quiet = args.quiet and not getattr(args, "json", False)
    try:
        with contextlib.redirect_stdout(io.StringIO()) if quiet else contextlib.nullcontext():
            return int(args.func(args) or 0)
    except (FreqxfrError, OSError) as exc:
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
    except KeyboardInterrupt:
        print(f"freqxfr {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
