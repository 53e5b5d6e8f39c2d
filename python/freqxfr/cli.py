"""The ``freqxfr`` command line.

Every error a user can cause prints one line on stderr and exits non-zero; ``--verbose`` shows
the traceback. Heavy modules are imported inside the commands, so ``freqxfr --help`` is instant.
Commands that write an output folder lock it for the whole run (:mod:`freqxfr.runfolder`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import FreqxfrError

DEMO_OUT = "freqxfr-demo"

# Exit statuses (also in --help and the README).
EXIT_OK = 0
EXIT_ERROR = 2  # bad input, unusable output folder, folder in use by another run, ...
EXIT_PAIRS_FAILED = 3  # the run finished, but some pairs (or images) failed; rerun to retry them
EXIT_INTERRUPTED = 130
EXIT_STATUS_HELP = (
    "exit status: 0 success; 2 an error (bad input, unwritable or busy output folder; one line "
    "on stderr, nothing half-written); 3 the run finished but some pairs failed (reasons on "
    "stderr, in summary.json and report.html; the same command retries them); 130 "
    "interrupted (the same command continues a dataset, crossres or morph run); 1 a bug "
    "(please report it with --verbose's traceback)"
)
MAX_SHOWN_FAILURES = 5


# ---- shared options -----------------------------------------------------------------------------


def _add_explainer_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None,
                        help="preset name (dlib_resnet, sface), card file or .onnx (default: dlib_resnet)")
    parser.add_argument("--card", default=None, help="model card for an .onnx model (file or preset)")
    parser.add_argument("--bands", type=int, default=16, help="number of equal-width rings (default 16)")
    parser.add_argument("--schedule", type=Path, default=None,
                        help="band schedule JSON file (overrides --bands)")
    parser.add_argument("--mode", choices=("delete", "keep"), default="delete")
    parser.add_argument("--domain", choices=("pixel", "normalised"), default="pixel",
                        help="mask raw pixels (default) or model-normalised values")
    parser.add_argument("--clip", action="store_true", help="clip masked pixels to 0..255")
    parser.add_argument("--backend", default="cpp", choices=("cpp", "numpy", "scipy", "pyfftw"))
    parser.add_argument("--providers", default=None,
                        help="ONNX Runtime providers, comma-separated (e.g. cuda,cpu)")
    parser.add_argument("--aligned", action="store_true",
                        help="inputs are aligned crops of the model's input size")
    parser.add_argument("--regions", default=None,
                        help="explain per band and region: face or grid:RxC (freqxfr.regions)")


def _explainer(args: argparse.Namespace):
    from .bands import BandSchedule

    if getattr(args, "regions", None) is not None and args.func is not cmd_explain:
        raise FreqxfrError("--regions works with `freqxfr explain` so far; dataset runs summarise "
                           "bands only (freqxfr.region_explanations.region_summary gives mean maps)")
    from .explain import Explainer
    from .verifier import load_model

    providers = args.providers.split(",") if args.providers else None
    model = load_model(args.model, card=args.card, providers=providers)
    schedule: Any = args.bands
    if args.schedule is not None:
        try:
            schedule = BandSchedule.from_json(args.schedule.read_text())
        except OSError as exc:
            raise FreqxfrError(f"schedule file {args.schedule}: {exc.strerror or exc}") from None
    return Explainer(model, schedule, mode=args.mode, domain=args.domain, backend=args.backend,
                     clip=args.clip, regions=getattr(args, "regions", None))


# ---- explain one pair ---------------------------------------------------------------------------


def _band_table(explanation) -> str:
    lines = [f"{'band':>4} {'radius':>13} {'|Δ| a':>8} {'Δ a':>8} {'|Δ| b':>8} {'Δ b':>8}"]
    for band, aa, ad, ba, bd in zip(explanation.bands, explanation.a.absolute_normalised,
                                    explanation.a.directed_normalised,
                                    explanation.b.absolute_normalised,
                                    explanation.b.directed_normalised, strict=True):
        lines.append(f"{band.index:>4} {band.radius_lo:6.3f}–{band.radius_hi:5.3f} "
                     f"{aa:8.2f} {ad:+8.2f} {ba:8.2f} {bd:+8.2f}")
    return "\n".join(lines)


def _headline(explanation) -> str:
    verdict = "MATCH" if explanation.decision else "NO MATCH"
    return (f"{verdict}: score {explanation.score_ref:.4f}, threshold {explanation.threshold:.4f} "
            f"({explanation.model['name']}, {explanation.model['metric']})")


def explain_pair(explainer, a: Any, b: Any, out: Path, *, aligned: bool | None,
                 faithfulness: bool, seeds: int = 5):
    """Explain one pair and write explanation.json, the PNGs and report.html into ``out``."""
    import numpy as np

    from ._output import ensure_dir, write_output
    from .report import write_pair_report

    ensure_dir(out)
    faces = np.stack([explainer.prepare(a, aligned), explainer.prepare(b, aligned)])
    explanation = explainer.explain(faces[0], faces[1], aligned=True)
    # Name the inputs as the user gave them, not as arrays.
    explanation = _with_sources(explanation, a, b)
    curves = None
    if faithfulness:
        curves = explainer.faithfulness(faces[0], faces[1], seeds=seeds, aligned=True,
                                        explanation=explanation).to_dict()
    record = explanation.to_dict()
    if curves is not None:
        record["faithfulness"] = curves
    write_output(out / "explanation.json", json.dumps(record, indent=2, allow_nan=False) + "\n")
    report = write_pair_report(out, explanation.to_dict(), faces, explainer.masked_views(faces),
                               curves)
    return explanation, report


def _with_sources(explanation, a: Any, b: Any):
    import dataclasses

    from .images import source_label

    return dataclasses.replace(
        explanation,
        a=dataclasses.replace(explanation.a, source=source_label(a)),
        b=dataclasses.replace(explanation.b, source=source_label(b)),
    )


def cmd_explain(args: argparse.Namespace) -> int:
    from .runfolder import locked_folder

    if (args.b is None) == (args.template is None):
        raise FreqxfrError("explain needs two images A B, or one image and --template T.npy")
    for path in (args.a, args.b, args.template):
        if path is not None and not Path(path).exists():
            raise FreqxfrError(f"{path}: no such file")
    if args.regions is not None or args.template is not None:  # hook: freqxfr.region_report
        from .region_report import write_region_outputs

        with locked_folder(args.out, command="explain"):
            explanation, report = write_region_outputs(
                _explainer(args), args.a, args.b, args.out,
                aligned=True if args.aligned else None, template=args.template)
        print(json.dumps(explanation.to_dict(), indent=2) if args.json else
              f"{'MATCH' if explanation.decision else 'NO MATCH'}: score {explanation.score_ref:.4f}, "
              f"threshold {explanation.threshold:.4f}\nwrote {args.out / 'explanation.json'} and {report}")
        return 0
    # A failed explain leaves no --out folder behind that it created (locked_folder removes it).
    with locked_folder(args.out, command="explain"):
        explainer = _explainer(args)
        explanation, report = explain_pair(explainer, args.a, args.b, args.out,
                                           aligned=True if args.aligned else None,
                                           faithfulness=args.faithfulness, seeds=args.seeds)
    if args.json:
        print(json.dumps(explanation.to_dict(), indent=2))
    else:
        print(_headline(explanation))
        print(_band_table(explanation))
        print(f"wrote {args.out / 'explanation.json'} and {report}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .runfolder import locked_folder

    with locked_folder(args.out, command="demo"):
        return _demo(args)


def _demo(args: argparse.Namespace) -> int:
    from importlib.resources import files

    from .explain import Explainer
    from .verifier import load_model

    demo = files("freqxfr") / "demo_data"
    a, b = Path(str(demo / "frll_001_neutral.jpg")), Path(str(demo / "frll_001_smiling.jpg"))
    c = Path(str(demo / "frll_002_neutral.jpg"))
    explainer = Explainer(load_model(args.model), args.bands)
    print(f"freqxfr demo: explaining bundled FRLL photos with {explainer.model.card.name} "
          f"({explainer.model.provider}), {explainer.n_bands} bands")
    for name, (x, y) in (("genuine", (a, b)), ("impostor", (a, c))):
        out = args.out / name
        explanation, report = explain_pair(explainer, x, y, out, aligned=None, faithfulness=True)
        print(f"\n{name} pair: {_headline(explanation)}")
        print(_band_table(explanation))
        print(f"report: {report}")
    print(f"\nPhotos: Face Research Lab London Set (DeBruine & Jones 2017, CC BY 4.0), downscaled. "
          f"Reports are in {args.out.resolve()}")
    return 0


# ---- datasets -----------------------------------------------------------------------------------


def cmd_dataset(args: argparse.Namespace) -> int:
    from .dataset import run_dataset
    from .pairs import attach_groups, read_pairs, spread
    from .runfolder import locked_folder

    pairs = read_pairs(args.pairs, root=args.root)
    if args.groups is not None:
        pairs = attach_groups(pairs, args.groups, root=args.root)
    if args.limit is not None:
        pairs = spread(pairs, args.limit)
    # Lock before loading the model, so that a second run into this folder stops at once.
    with locked_folder(args.out, command="dataset", resumable=True):
        explainer = _explainer(args)
        summary = run_dataset(
            pairs, args.out, explainer, pairs_file=str(args.pairs), root=_root(args),
            allow_outside_root=args.allow_outside_root, aligned=True if args.aligned else None,
            extra_settings={"--limit": args.limit}, progress=not args.no_progress,
            overlap=not args.no_overlap, parquet=args.parquet,
            faithfulness_seeds=args.seeds if args.faithfulness else None,
        )
    acc = summary.get("accuracy")
    print(f"{summary['pairs']} pairs explained, {summary['failed']} failed"
          + (f", accuracy {acc:.4f} at the model threshold" if acc is not None else ""))
    if "faithfulness" in summary:
        from .faithfulness import summary_lines

        print("\n".join(summary_lines(summary["faithfulness"]["by_class"])))
    print(f"wrote {args.out / 'results.jsonl'}, {args.out / 'summary.json'}, {args.out / 'report.html'}")
    return report_failures("dataset", summary["failures"],
                           f"{summary['failed']} of {len(pairs)} pairs")


def _root(args: argparse.Namespace) -> Path:
    """The folder a pair list's paths are relative to: --root, or the list's own folder."""
    return args.root if args.root is not None else args.pairs.parent


def report_failures(command: str, failures: Sequence[dict[str, Any]], what: str) -> int:
    """Print the first reasons of failed pairs on stderr; the exit status of the run.

    ``what`` says what failed, e.g. ``"3 of 40 pairs"``."""
    if not failures:
        return EXIT_OK
    print(f"freqxfr {command}: {what} failed; they are listed in summary.json and report.html, "
          "and the same command tries them again. First reasons:", file=sys.stderr)
    for failure in failures[:MAX_SHOWN_FAILURES]:
        print(f"  {failure['error']}", file=sys.stderr)
    if len(failures) > MAX_SHOWN_FAILURES:
        print(f"  ... and {len(failures) - MAX_SHOWN_FAILURES} more", file=sys.stderr)
    return EXIT_PAIRS_FAILED


def cmd_faithfulness(args: argparse.Namespace) -> int:
    from ._output import write_output
    from .errors import InputError
    from .faithfulness import dataset_faithfulness, summary_lines
    from .pairs import Pair, outside_root, read_pairs, spread
    from .runfolder import locked_folder

    indices = None
    if args.pairs is not None:
        listed = read_pairs(args.pairs, root=args.root)
        indices = spread(list(range(len(listed))), args.limit)  # places in the list, for the JSON
        pairs = [listed[i] for i in indices]
        refused = {} if args.allow_outside_root else outside_root(pairs, _root(args),
                                                                   pairs_file=args.pairs)
        if refused:
            raise InputError(next(iter(refused.values())))
    elif args.a and args.b:
        pairs = [Pair(Path(args.a), Path(args.b))]
    else:
        raise FreqxfrError("give two images A B, or --pairs FILE")
    with locked_folder(args.out, command="faithfulness"):
        explainer = _explainer(args)
        result = dataset_faithfulness(explainer, pairs, seeds=args.seeds,
                                      aligned=True if args.aligned else None, indices=indices)
        write_output(args.out / "faithfulness.json",
                     json.dumps(result, indent=2, allow_nan=False) + "\n")
    print(f"{result['n_images']} explained images of {result['pairs']} pairs, "
          f"{len(result['seeds'])} random orders each")
    print("\n".join(summary_lines(result["by_class"])))
    print(f"wrote {args.out / 'faithfulness.json'}")
    return 0


# ---- the parser ---------------------------------------------------------------------------------


def _version() -> str:
    """The installed distribution's version (what pip installed, not a string kept by hand)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("freqxfr")
    except PackageNotFoundError:
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="freqxfr",
        description="Explain face-verification decisions in the frequency domain.",
        epilog=EXIT_STATUS_HELP,
    )
    parser.add_argument("--verbose", action="store_true", help="show tracebacks on errors")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("demo", help="explain a bundled pair with the default model")
    p.add_argument("--out", type=Path, default=Path(DEMO_OUT), help=f"folder (default ./{DEMO_OUT})")
    p.add_argument("--model", default=None)
    p.add_argument("--bands", type=int, default=16)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("explain", help="explain one pair of face images")
    p.add_argument("a")
    p.add_argument("b", nargs="?", default=None)
    _add_explainer_options(p)
    p.add_argument("--template", type=Path, default=None,
                   help="explain A against a stored template (.npy embedding) instead of image B")
    p.add_argument("--out", type=Path, default=Path("freqxfr-explanation"))
    p.add_argument("--json", action="store_true", help="print explanation.json to stdout")
    p.add_argument("--faithfulness", action="store_true", help="add deletion/insertion curves")
    p.add_argument("--seeds", type=int, default=5, help="random orders for the baseline")
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("dataset", help="explain every pair of a pair list (resumable)",
                       epilog=EXIT_STATUS_HELP)
    p.add_argument("pairs", type=Path, help="LFW pairs.txt or CSV (path1,path2[,same][,group...])")
    p.add_argument("--root", type=Path, default=None, help="folder the image paths are relative to")
    add_allow_outside_root(p)
    p.add_argument("--out", type=Path, required=True)
    _add_explainer_options(p)
    p.add_argument("--groups", type=Path, default=None,
                   help="CSV of per-image attributes (path,gender,...), e.g. FRLL's index.csv")
    p.add_argument("--limit", type=int, default=None,
                   help="N pairs spread evenly over the list (both classes stay in)")
    p.add_argument("--parquet", action="store_true", help="also write results.parquet")
    p.add_argument("--faithfulness", action="store_true",
                   help="also deletion/insertion curves of every pair (faithfulness.jsonl)")
    p.add_argument("--seeds", type=int, default=5, help="random orders for --faithfulness")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--no-overlap", action="store_true",
                   help="don't prepare the next batch while the model runs")
    p.set_defaults(func=cmd_dataset)

    p = sub.add_parser("faithfulness", help="deletion/insertion curves against random orders")
    p.add_argument("a", nargs="?")
    p.add_argument("b", nargs="?")
    p.add_argument("--pairs", type=Path, default=None)
    p.add_argument("--root", type=Path, default=None)
    add_allow_outside_root(p)
    p.add_argument("--limit", type=int, default=50, help="pairs, spread evenly over the list")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--out", type=Path, default=Path("freqxfr-faithfulness"))
    _add_explainer_options(p)
    p.set_defaults(func=cmd_faithfulness)

    _add_optional_commands(sub)
    return parser


def add_allow_outside_root(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--allow-outside-root", action="store_true",
        help="read image paths that lie outside --root (after resolving symlinks); by default "
        "such a pair fails without being read",
    )


def _add_optional_commands(sub: Any) -> None:
    """Commands that live in their own modules (verifier, models, scenarios)."""
    from . import cli_compare, cli_models, cli_scenarios

    cli_models.add_verify_parser(sub)
    cli_models.add_models_parser(sub)
    cli_scenarios.add_parsers(sub)
    cli_compare.add_compare_parser(sub)


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"freqxfr: warning: {message}", file=sys.stderr if file is None else file)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.verbose:
        # Provider fallbacks and "several faces, used the largest" reach users as one line each.
        warnings.showwarning = _one_line_warning
    try:
        return int(args.func(args) or 0)
    except (FreqxfrError, OSError) as exc:
        if args.verbose:
            raise
        name = type(exc).__name__
        print(f"freqxfr {args.command}: error: {exc}" if isinstance(exc, FreqxfrError)
              else f"freqxfr {args.command}: error ({name}): {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"freqxfr {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
