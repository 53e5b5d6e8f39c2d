"""``freqxfr compare``: band profiles of dataset runs over the same pairs, with paired statistics."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from freqxfr.cli import options
from freqxfr.common.errors import InputError
from freqxfr.runs.comparison import compare_runs
from freqxfr.stats.bootstrap import MAX_RESAMPLES

# What each command's --help says: (help, description).
COMPARE_TEXT = (
    "compare dataset runs over the same pairs (models or settings)",
    "Compare the band profiles of dataset runs over the same pair list: per band "
    "and class each run's mean normalised influence, paired differences with bootstrap "
    "intervals over pairs, centroids and decision agreement.",
)


def add_compare_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register ``freqxfr compare RUN_A RUN_B [...] --out OUT``."""
    p = options.add_command(sub, common, "compare", COMPARE_TEXT)
    p.add_argument("runs", nargs="+", type=Path, help="dataset-run folders (freqxfr dataset --out)")
    p.add_argument(
        "--out", type=Path, required=True, help="folder for summary.json and report.html"
    )
    p.add_argument(
        "--names", default=None, help="comma-separated run names (default: folder names)"
    )
    p.add_argument(
        "--resamples",
        type=int,
        default=2000,
        help=f"bootstrap resamples, 1 to {MAX_RESAMPLES} (default 2000)",
    )
    p.add_argument("--level", type=float, default=0.95, help="interval level (default 0.95)")
    options.add_seed_option(p)
    options.add_no_report_option(p)
    p.set_defaults(func=cmd_compare)


def cmd_compare(args: argparse.Namespace) -> int:
    if len(args.runs) < 2:
        raise InputError("compare needs at least two run folders")
    names = None
    if args.names is not None:
        names = [n.strip() for n in args.names.split(",")]
        if not any(names):
            raise InputError("--names is empty; give one comma-separated name per run")
    summary = compare_runs(
        args.runs,
        args.out,
        names=names,
        n_boot=args.resamples,
        level=args.level,
        seed=args.seed,
    )
    if not args.no_report:
        options.render("render_comparison", args.out)  # drawn from summary.json alone
    runs = ", ".join(f"{r['name']} ({r['model']}, {r['domain']})" for r in summary["runs"])
    print(f"compared {runs} over {summary['n_pairs']} common pairs")
    for diff in summary["differences"]:
        key = diff["key"]
        d = summary["decisions"][key]
        print(f"{key}: decisions agree on {d['agreement']:.1%} ({d['n_disagree']} pairs differ)")
        for cls in ("genuine", "impostor"):
            c = summary["centroid"][cls]
            if c["diff"].get(key) is None:
                continue
            print(
                f"  {cls}: centroid {c['mean'][diff['a']]:.3f} vs {c['mean'][diff['b']]:.3f}, "
                f"difference {c['diff'][key]:+.3f} [{c['ci_lo'][key]:+.3f}, "
                f"{c['ci_hi'][key]:+.3f}]"
            )
    print(options.wrote(args.out, "summary.json", report=not args.no_report))
    return 0
