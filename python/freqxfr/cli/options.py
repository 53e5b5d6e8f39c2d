"""Options and exit statuses shared by every ``freqxfr`` command.

Each option a user can give to several commands is declared here once, and turned into library
objects here once (:func:`load_model`, :func:`explainer`). Command modules add their own options
next to their command. Nothing here imports a command module, so there is no import cycle.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from freqxfr.common.errors import InputError
from freqxfr.core.bands import BandSchedule
from freqxfr.explanations.config import ExplainerConfig
from freqxfr.explanations.explainer import Explainer
from freqxfr.explanations.pairs import Pair, attach_groups, read_pairs, spread
from freqxfr.imaging.images import checked_file
from freqxfr.model.verifier import load_model as load
from freqxfr.runs.cluster import cluster_client
from freqxfr.runs.folder import locked_folder
from freqxfr.stats.bootstrap import MAX_RESAMPLES

# Exit statuses (also in --help and docs/guide/explain.md).
EXIT_OK = 0
EXIT_ERROR = 2  # bad input, unusable output folder, folder in use by another run, ...
EXIT_PAIRS_FAILED = 3  # the run finished, but some pairs (or images) failed; rerun to retry them
EXIT_INTERRUPTED = 130  # SIGINT (Ctrl-C)
EXIT_TERMINATED = 143  # SIGTERM (Slurm, Kubernetes, timeout)
EXIT_STATUS_HELP = (
    "exit status: 0 success; 2 an error (bad input, unwritable or busy output folder; one line "
    "on stderr, nothing half-written); 3 the run finished but some pairs failed (reasons on "
    "stderr, in summary.json and report.html; the same command retries them); 130 "
    "interrupted (Ctrl-C) or 143 terminated (SIGTERM): the lock is released and the same command "
    "continues a dataset, crossres or morph run; 1 a bug "
    "(please report it with --verbose's traceback)"
)
MAX_SHOWN_FAILURES = 5


# ---- options every command takes, before or after its name ---------------------------------------


def common_options(*, top: bool) -> argparse.ArgumentParser:
    """``--verbose`` and ``--quiet`` as a parent parser.

    The top-level parser sets the defaults; a subcommand's copy leaves a flag alone unless it is
    given (``SUPPRESS``), so ``freqxfr --verbose explain ...`` and ``freqxfr explain ... --verbose``
    mean the same.
    """
    parent = argparse.ArgumentParser(add_help=False)
    default: Any = False if top else argparse.SUPPRESS
    parent.add_argument(
        "--verbose",
        action="store_true",
        default=default,
        help="show the traceback of an error (exit status 1 instead of 2)",
    )
    parent.add_argument(
        "--quiet",
        action="store_true",
        default=default,
        help="print nothing but errors (and what --json asks for); no progress bars",
    )
    return parent


# ---- commands and the options several of them take ----------------------------------------------


def add_command(
    sub: Any,
    common: argparse.ArgumentParser,
    name: str,
    text: tuple[str, str],
    *,
    resumable: bool = False,
) -> argparse.ArgumentParser:
    """A subcommand's parser, taking the ``common`` options (:func:`common_options`).

    ``text`` is its ``(help, description)``; a ``resumable`` run's help ends with the exit
    statuses (:data:`EXIT_STATUS_HELP`)."""
    help, description = text
    epilog = EXIT_STATUS_HELP if resumable else None
    return sub.add_parser(name, parents=[common], help=help, description=description, epilog=epilog)


def add_run_command(
    sub: Any,
    common: argparse.ArgumentParser,
    name: str,
    text: tuple[str, str],
    listing: tuple[str, str, str],
) -> argparse.ArgumentParser:
    """A resumable run's parser (``dataset``, ``crossres``, ``morph``): its input list and the
    ``--out`` folder it writes. ``listing`` is the list's positional name, its help and
    ``--root``'s help (:func:`add_pair_list_options`)."""
    parser = add_command(sub, common, name, text, resumable=True)
    list_name, list_help, root_help = listing
    add_pair_list_options(parser, list_name, list_help, root_help)
    add_out_option(parser)
    return parser


def add_out_option(parser: argparse.ArgumentParser, default: str | None = None) -> None:
    """``--out``: the output folder; a run's (required) without ``default``."""
    if default is None:
        parser.add_argument(
            "--out", type=Path, required=True, help="output folder (e.g. runs/NAME)"
        )
    else:
        parser.add_argument(
            "--out", type=Path, default=Path(default), help=f"output folder (default ./{default})"
        )


def add_pair_list_options(
    parser: argparse.ArgumentParser,
    name: str,
    help: str,
    root_help: str,
) -> None:
    """The positional pair list ``name`` (or ``--name``), ``--root`` and
    ``--allow-outside-root``."""
    if name.startswith("--"):
        add_path_option(parser, name, help)
    else:
        parser.add_argument(name, type=Path, help=help)
    add_path_option(parser, "--root", root_help)
    add_allow_outside_root(parser)


def add_path_option(parser: argparse.ArgumentParser, option: str, help: str) -> None:
    """An optional file or folder option (``--schedule``, ``--template``, ``--groups``)."""
    parser.add_argument(option, type=Path, default=None, help=help)


def add_limit_option(
    parser: argparse.ArgumentParser, help: str, default: int | None = None
) -> None:
    """``--limit N``: pairs spread evenly over the list."""
    parser.add_argument("--limit", type=positive, default=default, help=help)


def add_seeds_option(parser: argparse.ArgumentParser, help: str) -> None:
    """``--seeds N``: random orders for the faithfulness baseline (default 5)."""
    parser.add_argument("--seeds", type=positive, default=5, help=help)


def add_seed_option(parser: argparse.ArgumentParser) -> None:
    """``--seed``: the bootstrap's random seed."""
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")


def add_json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def add_bootstrap_options(parser: argparse.ArgumentParser) -> None:
    """``--boot`` and ``--seed``: the bootstrap intervals of ``crossres`` and ``morph``."""
    parser.add_argument(
        "--boot",
        type=resamples,
        default=2000,
        help=f"bootstrap resamples for the intervals, 1 to {MAX_RESAMPLES} (default 2000)",
    )
    add_seed_option(parser)


# ---- models -------------------------------------------------------------------------------------


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """``--model``, ``--card`` and ``--providers``: which model runs, and where."""
    parser.add_argument(
        "--model",
        default=None,
        help="preset name (dlib_resnet, sface), card file or .onnx (default: dlib_resnet)",
    )
    parser.add_argument(
        "--card", default=None, help="model card for an .onnx model (file or preset)"
    )
    parser.add_argument(
        "--providers", default=None, help="ONNX Runtime providers, comma-separated (e.g. cuda,cpu)"
    )


def providers(args: argparse.Namespace) -> list[str] | None:
    """``--providers`` as a list, or ``None`` for ONNX Runtime's default order."""
    value = getattr(args, "providers", None)
    return [p.strip() for p in value.split(",") if p.strip()] if value else None


def load_model(args: argparse.Namespace):
    """The model that ``--model``, ``--card`` and ``--providers`` name."""
    return load(args.model, card=getattr(args, "card", None), providers=providers(args))


# ---- explaining ---------------------------------------------------------------------------------


def add_explainer_options(parser: argparse.ArgumentParser) -> None:
    """The model options plus how bands are cut and masked (``explain``, ``dataset``, ...)."""
    add_model_options(parser)
    add_bands_option(parser)
    add_path_option(parser, "--schedule", "band schedule JSON file (overrides --bands)")
    parser.add_argument(
        "--aligned", action="store_true", help="inputs are aligned crops of the model's input size"
    )
    # Every other setting with an option of its own, as ExplainerConfig declares it.
    for option, arguments in ExplainerConfig.cli_options():
        parser.add_argument(option, **arguments)


def add_bands_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--bands", type=positive, default=16, help="number of equal-width rings (default 16)"
    )


def add_padding_option(parser: argparse.ArgumentParser) -> None:
    """``--padding``: what fills a re-cut crop beyond its photo (every command that aligns)."""
    arguments = dict(ExplainerConfig.cli_options())
    parser.add_argument("--padding", **arguments["--padding"])


def add_memory_budget_option(parser: argparse.ArgumentParser) -> None:
    """``--memory-budget``, for a command that explains without the other explainer options."""
    arguments = dict(ExplainerConfig.cli_options())
    parser.add_argument("--memory-budget", **arguments["--memory-budget"])


def aligned(args: argparse.Namespace) -> bool | None:
    """``--aligned`` as the library's ``aligned=`` argument (``None``: decide from the image)."""
    return True if args.aligned else None


def explainer(args: argparse.Namespace):
    """The :class:`~freqxfr.Explainer` the explainer options describe."""
    schedule: Any = args.bands
    if args.schedule is not None:
        checked_file(args.schedule, label=f"--schedule {args.schedule}")
        try:
            schedule = BandSchedule.from_json(args.schedule.read_text())
        except FileNotFoundError:
            raise InputError(f"--schedule {args.schedule}: file not found") from None
        except OSError as exc:
            raise InputError(f"--schedule {args.schedule}: {exc.strerror or exc}") from None
    config = ExplainerConfig.from_cli(
        args, schedule=schedule, regions=getattr(args, "regions", None)
    )  # checked before the model loads
    return Explainer(load_model(args), config=config)


# ---- pair lists ---------------------------------------------------------------------------------


def add_allow_outside_root(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--allow-outside-root",
        action="store_true",
        help="read image paths that lie outside --root (after resolving symlinks); by default "
        "such a pair fails without being read",
    )


def pair_list(args: argparse.Namespace) -> list[Pair]:
    """The pairs of the positional pair list: read relative to ``--root``, with ``--groups``
    attached where the command has it, ``--limit`` of them spread over the list."""
    pairs = read_pairs(args.pairs, root=args.root)
    groups, by = getattr(args, "groups", None), getattr(args, "by", None)
    if by is not None and groups is None:
        raise InputError("--by names columns of the --groups table; pass --groups FILE too")
    if groups is not None:
        columns = None if by is None else [c.strip() for c in by.split(",") if c.strip()]
        pairs = attach_groups(pairs, groups, root=args.root, columns=columns)
    if args.limit is not None:
        pairs = spread(pairs, args.limit)
    return pairs


def run_pair_list(
    args: argparse.Namespace,
    command: str,
    run: Callable[..., dict[str, Any]],
    render: Callable[[Path], Any],
    **arguments: Any,
) -> tuple[dict[str, Any], list[Pair]]:
    """``run(pairs, out, explainer, ...)`` over the positional pair list in the locked ``--out``
    (``run_dataset``, ``run_crossres``), then, unless ``--no-report``, ``render(out)``: drawn
    from the run folder alone, inside its lock. ``arguments`` are the command's own; the rest
    come from the common options. Returns the run's summary and the pairs."""
    pairs = pair_list(args)
    with resumable_run(args, command) as (explainer, client):
        summary = run(
            pairs,
            args.out,
            explainer,
            pairs_file=str(args.pairs),
            root=root(args, args.pairs),
            allow_outside_root=args.allow_outside_root,
            aligned=aligned(args),
            extra_settings={"--limit": args.limit},
            progress=progress(args),
            report=not args.no_report,
            client=client,
            **arguments,
        )
        if not args.no_report:
            render(args.out)
    return summary, pairs


def render(renderer: str, out: Path, **arguments: Any) -> Any:
    """Draw a report from the run folder ``out`` alone with ``freqxfr.reports.<renderer>``
    (``render_dataset``, ``render_morph``, ...) and return what it returns (the report's path).

    The reports package, and matplotlib with it, is imported here, when a command draws a report,
    not when the CLI starts: ``verify``, ``models`` and ``--no-report`` runs never load it."""
    from freqxfr import reports  # lazy: reports load matplotlib (~0.25 s), most commands draw none

    return getattr(reports, renderer)(out, **arguments)


def root(args: argparse.Namespace, listing: Path) -> Path:
    """The folder a pair list's paths are relative to: ``--root``, or the list's own folder."""
    return args.root if args.root is not None else listing.parent


def add_progress_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress bar (--quiet implies it)"
    )


def add_no_report_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-report",
        action="store_true",
        help="write the data files only: no plots, no report.html",
    )


def wrote(out: Path, *names: str, report: bool = True) -> str:
    """``wrote OUT/a, OUT/b, OUT/report.html`` (the report only if one was written)."""
    files = [out / n for n in names] + ([out / "report.html"] if report else [])
    return "wrote " + ", ".join(map(str, files))


def progress(args: argparse.Namespace) -> bool:
    """Whether to draw a progress bar: not with ``--no-progress`` or ``--quiet``."""
    return not (getattr(args, "no_progress", False) or getattr(args, "quiet", False))


def check_files(*paths: str | Path) -> None:
    """Refuse a missing input file, or one that is not a regular file (a folder, a FIFO, a
    device), before any model loads, in the words every command uses."""
    for path in paths:
        checked_file(path)


def add_regions_option(parser: argparse.ArgumentParser) -> None:
    """``--regions``: explain per band and face region too (``explain``, ``dataset``)."""
    parser.add_argument(
        "--regions",
        default=None,
        help="also explain per band and face region: face or grid:RxC (e.g. grid:3x3); "
        "custom weight maps via the library (freqxfr.imaging.regions)",
    )


@contextlib.contextmanager
def resumable_run(args: argparse.Namespace, command: str) -> Iterator[tuple[Any, Any]]:
    """``(explainer, client)`` for a resumable run into ``--out``: the folder is locked before
    the model loads (so a second run into it stops at once), ``client`` is the Dask client of
    ``--scheduler``/``--workers`` (``None``: one process), and the explainer is the options'."""
    with (
        locked_folder(args.out, command=command, resumable=True),
        cluster_client(args.scheduler, args.workers) as client,
    ):
        yield explainer(args), client


# ---- where the work runs --------------------------------------------------------------------


def add_cluster_options(parser: argparse.ArgumentParser) -> None:
    """``--scheduler ADDRESS`` / ``--workers N`` for ``dataset``, ``crossres`` and ``morph``."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        default=None,
        help="run on an existing Dask cluster (e.g. tcp://host:8786); needs "
        "freqxfr[dask] and the same freqxfr on every worker",
    )
    group.add_argument(
        "--workers",
        metavar="N",
        type=positive,
        default=None,
        help="run on a local Dask cluster of N worker processes (freqxfr[dask])",
    )


# ---- argument types -----------------------------------------------------------------------------


def positive(text: str) -> int:
    """An ``int`` >= 1, for argparse."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def resamples(text: str) -> int:
    """A bootstrap resample count, an ``int`` in 1..``MAX_RESAMPLES``, for argparse."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_RESAMPLES:
        raise argparse.ArgumentTypeError(
            f"expected a positive integer, at most {MAX_RESAMPLES}, got {text!r}"
        )
    return value


# ---- the end of a run ---------------------------------------------------------------------------


def report_failures(command: str, failures: Sequence[dict[str, Any]], what: str) -> int:
    """Print the first reasons of failed pairs on stderr; the exit status of the run.

    ``what`` says what failed, e.g. ``"3 of 40 pairs"``."""
    if not failures:
        return EXIT_OK
    print(
        f"freqxfr {command}: {what} failed; they are listed in summary.json and report.html, "
        "and the same command tries them again. First reasons:",
        file=sys.stderr,
    )
    for failure in failures[:MAX_SHOWN_FAILURES]:
        print(f"  {failure['error']}", file=sys.stderr)
    if len(failures) > MAX_SHOWN_FAILURES:
        print(f"  ... and {len(failures) - MAX_SHOWN_FAILURES} more", file=sys.stderr)
    return EXIT_PAIRS_FAILED
