"""The scenario commands of the ``freqxfr`` CLI: ``crossres`` and ``morph``.

The explainer options (model, bands, masking) are those of ``explain`` and ``dataset``
(:mod:`.options`).
"""

from __future__ import annotations

import argparse
import functools
from typing import Any

from freqxfr.cli import options
from freqxfr.cli.output import threshold_text
from freqxfr.common.errors import InputError
from freqxfr.imaging.resolution import DEFAULT_RESAMPLE, RESAMPLE_KERNELS, check_factors
from freqxfr.runs.crossres import run_crossres
from freqxfr.runs.morph import DETECTOR_NAMES, run_morph
from freqxfr.runs.morph_index import read_morph_index
from freqxfr.stats.morph_score import DEFAULT_DISTANCE, DISTANCES

# What each command's --help says: (help, description).
CROSSRES_TEXT = (
    "cross-resolution: degrade the probe by factors, verify and explain",
    "For each factor, degrade image B of every pair (the probe) and report "
    "accuracy, FMR, FNMR, band profiles and the centroid shift with bootstrap "
    "intervals. Resumable: the same command continues an interrupted run.",
)
MORPH_TEXT = (
    "morphing attacks: MMPMR, band profiles and a frequency morph detector",
    "Compare every morph of a morph index with both subjects' probes and every "
    "subject's bona fide photo with their probe; explain them all; report MMPMR "
    "and differential morphing-attack detection (D-EER, BPCER@APCER, AUC). Resumable: the "
    "same command continues an interrupted run.",
)
# What each run reads: (its positional name, that name's help, --root's help).
CROSSRES_LIST = (
    "pairs",
    "labelled pair list (CSV path1,path2,same or LFW txt)",
    "folder the image paths are relative to",
)
MORPH_LIST = (
    "index",
    "morph index CSV (format of frll_morphs/index.csv)",
    "folder the index's paths are relative to (default: the index's folder)",
)


def add_parsers(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """Add the ``crossres`` and ``morph`` subcommands to the CLI's subparsers."""
    p = options.add_run_command(subparsers, common, "crossres", CROSSRES_TEXT, CROSSRES_LIST)
    p.add_argument(
        "--factors",
        type=_factors,
        default=(1.0, 2.0, 4.0, 8.0),
        help="downscaling factors, comma-separated (default 1,2,4,8)",
    )
    p.add_argument(
        "--resample",
        choices=RESAMPLE_KERNELS,
        default=DEFAULT_RESAMPLE,
        help="bicubic or area (down and up with the same filter), or spectral "
        f"(ideal low-pass); default {DEFAULT_RESAMPLE}",
    )
    options.add_limit_option(p, "use N pairs spread evenly over the list (both classes stay in)")
    options.add_bootstrap_options(p)
    _add_run_options(p)
    p.set_defaults(func=cmd_crossres)

    p = options.add_run_command(subparsers, common, "morph", MORPH_TEXT, MORPH_LIST)
    p.add_argument(
        "--distance",
        choices=DISTANCES,
        default=DEFAULT_DISTANCE,
        help=f"distance of the frequency morph score (default {DEFAULT_DISTANCE})",
    )
    _add_run_options(p, bootstrap=True)
    p.set_defaults(func=cmd_morph)


def _add_run_options(parser: argparse.ArgumentParser, *, bootstrap: bool = False) -> None:
    """The options both scenario runs end with: progress, report, (bootstrap,) explainer and
    cluster options (morph lists the bootstrap's after the report's, crossres before)."""
    options.add_progress_option(parser)
    options.add_no_report_option(parser)
    if bootstrap:
        options.add_bootstrap_options(parser)
    options.add_explainer_options(parser)
    options.add_cluster_options(parser)


def cmd_crossres(args: argparse.Namespace) -> int:
    summary, _ = options.run_pair_list(
        args,
        "crossres",
        run_crossres,
        functools.partial(options.render, "render_crossres"),
        factors=args.factors,
        resample=args.resample,
        n_boot=args.boot,
        seed=args.seed,
    )
    print(
        f"{summary['pairs']} pairs ({summary['genuine']} genuine, {summary['impostor']} "
        f"impostor), {summary['model']['name']}, {summary['resample']} degradation; "
        f"{len(summary['failed'])} image(s) could not be prepared"
    )
    print(f"{'factor':>6} {'accuracy':>9} {'FMR':>7} {'FNMR':>7}  probe centroid [CI]   shift [CI]")
    for e in summary["factors"]:
        fmr = "n/a" if e["fmr"] is None else f"{e['fmr']:.4f}"
        fnmr = "n/a" if e["fnmr"] is None else f"{e['fnmr']:.4f}"
        print(
            f"{e['factor']:>5g}× {e['accuracy']:9.4f} {fmr:>7} {fnmr:>7}  "
            f"{e['centroid']:.3f} [{e['centroid_ci'][0]:.3f}, {e['centroid_ci'][1]:.3f}]  "
            f"{e['centroid_shift']:+.3f} [{e['centroid_shift_ci'][0]:+.3f}, "
            f"{e['centroid_shift_ci'][1]:+.3f}]"
        )
    print(options.wrote(args.out, "summary.json", "pairs.csv", report=not args.no_report))
    failed = summary["failed"]
    return options.report_failures("crossres", failed, f"{len(failed)} image(s) or pair(s)")


def cmd_morph(args: argparse.Namespace) -> int:
    root = options.root(args, args.index)
    entries = read_morph_index(args.index, root=root, allow_outside_root=args.allow_outside_root)
    with options.resumable_run(args, "morph") as (explainer, client):
        summary = run_morph(
            entries,
            args.out,
            explainer,
            index_file=str(args.index),
            root=root,
            allow_outside_root=args.allow_outside_root,
            distance=args.distance,
            aligned=options.aligned(args),
            n_boot=args.boot,
            seed=args.seed,
            progress=options.progress(args),
            client=client,
        )
        if not args.no_report:
            options.render(
                "render_morph", args.out
            )  # drawn from the run folder alone, inside its lock
    n = summary["comparisons"]
    print(
        f"{summary['n_morphs']} morphs, {n['morph']} morph and {n['bona_fide']} bona fide "
        f"comparisons, {summary['model']['name']}"
    )
    threshold = threshold_text(summary["threshold"], summary["model"]["metric"])
    print(f"MMPMR {summary['mmpmr']:.3f} at the model's threshold {threshold}")
    for name, d in summary["detectors"].items():
        print(
            f"  {DETECTOR_NAMES[name]:<28} AUC {d['auc']:.3f} [{d['auc_ci'][0]:.3f}, "
            f"{d['auc_ci'][1]:.3f}]  D-EER {d['d_eer']:.3f}  BPCER@APCER10% "
            f"{d['bpcer_at_apcer_10']:.3f}  @5% {d['bpcer_at_apcer_5']:.3f}"
        )
    print(options.wrote(args.out, "summary.json", "comparisons.csv", report=not args.no_report))
    return 0


def _factors(text: str) -> tuple[float, ...]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers such as 1,2,4,8, got {text!r}"
        ) from None
    try:
        return check_factors(values)
    except InputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
