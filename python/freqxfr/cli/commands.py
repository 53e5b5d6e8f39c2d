"""The explaining commands: ``demo``, ``explain``, ``dataset`` and ``faithfulness``.

Each command parses its options (shared ones from :mod:`.options`), calls the library, and prints
what the library wrote. Heavy modules are imported inside the commands, so ``--help`` is instant.
Commands that write an output folder lock it for the whole run (:mod:`freqxfr.runs.folder`).
"""

from __future__ import annotations

import argparse
import functools
import json
from pathlib import Path
from typing import Any

import numpy as np

from freqxfr import write_pair_outputs
from freqxfr.cli import options
from freqxfr.cli.output import decision_line
from freqxfr.common.atomic import write_output
from freqxfr.common.errors import InputError
from freqxfr.explanations.explainer import Explainer
from freqxfr.explanations.faithfulness import dataset_faithfulness, summary_lines
from freqxfr.explanations.pairs import Pair, outside_root, read_pairs, spread
from freqxfr.explanations.region_explanations import band_explainer, cells_record
from freqxfr.imaging.regions import Regions
from freqxfr.runs.dataset import run_dataset
from freqxfr.runs.folder import locked_folder
from freqxfr.runs.pair import check_pair_folder, explanation_record, write_template_outputs

DEMO_OUT = "freqxfr-demo"
EXPLAIN_OUT = "freqxfr-explanation"
FAITHFULNESS_OUT = "freqxfr-faithfulness"
# Counted from the orders faithfulness scores (explanations/faithfulness.py); times measured
# with `/usr/bin/time freqxfr demo` (dlib, 16 bands, 2 cores), December 2026.
FAITHFULNESS_COST = (
    "Faithfulness curves and their calibrated null cost far more than the explanation: per "
    "image 2K masked images for each ranked order and each of the --seeds random ones, and K "
    "more for each order of the null (20 random, 20 sanity), about 46x the explanation's 2K+2 "
    "model inputs with the default 5 seeds and 16 bands."
)
# What each command's --help says: (help, description).
DEMO_TEXT = (
    "explain two bundled pairs (one genuine, one impostor)",
    "Explain two pairs of bundled FRLL photos, a genuine and an impostor one, "
    f"with the default model; writes {DEMO_OUT}/genuine/ and {DEMO_OUT}/impostor/, each with "
    "explanation.json, PNG plots and report.html. " + FAITHFULNESS_COST + " The demo computes "
    "them for both pairs: most of its time (about 13 CPU-seconds in all with dlib, 7.7 s warm on "
    "2 idle cores; drawing a pair's pictures takes about 0.4 s).",
)
EXPLAIN_TEXT = (
    "explain one pair of face images",
    "Explain which frequency bands of each image made the model match or reject "
    f"the pair. Writes explanation.json, PNG plots and report.html into --out (default "
    f"./{EXPLAIN_OUT}); refuses a folder that holds another pair's explanation unless "
    "--overwrite.",
)
DATASET_TEXT = (
    "explain every pair of a pair list (resumable)",
    "Explain every pair of a pair list, streaming results to OUT/results.jsonl; "
    "then summary.json and report.html. The same command continues an interrupted run.",
)
FAITHFULNESS_TEXT = (
    "deletion/insertion curves against random orders",
    "Judge explanations by deletion and insertion curves against random band "
    f"orders, for one pair (A B) or a pair list (--pairs). Writes faithfulness.json into "
    f"--out (default ./{FAITHFULNESS_OUT}).",
)
# What the dataset run reads: (its positional name, that name's help, --root's help).
DATASET_LIST = (
    "pairs",
    "LFW pairs.txt or CSV (path1,path2[,same][,group...])",
    "folder the image paths are relative to (default: the list's folder)",
)


# ---- printing one explanation -------------------------------------------------------------------


def _band_table(explanation) -> str:
    lines = [f"{'band':>4} {'radius':>13} {'|Δ| a':>8} {'Δ a':>8} {'|Δ| b':>8} {'Δ b':>8}"]
    for band, aa, ad, ba, bd in zip(
        explanation.bands,
        explanation.a.absolute_relative,
        explanation.a.directed_relative,
        explanation.b.absolute_relative,
        explanation.b.directed_relative,
        strict=True,
    ):
        lines.append(
            f"{band.index:>4} {band.radius_lo:6.3f}–{band.radius_hi:5.3f} "
            f"{aa:8.2f} {ad:+8.2f} {ba:8.2f} {bd:+8.2f}"
        )
    return "\n".join(lines)


def _headline(explanation) -> str:
    model = explanation.model
    return decision_line(
        explanation.decision,
        explanation.score_ref,
        explanation.threshold,
        model["metric"],
        model["name"],
    )


# ---- demo and explain ---------------------------------------------------------------------------


def cmd_explain(args: argparse.Namespace) -> int:
    if (args.b is None) == (args.template is None):
        raise InputError("explain needs two images A B, or one image A and --template T.npy")
    options.check_files(*(p for p in (args.a, args.b, args.template) if p is not None))
    if args.json and args.out is None and not args.report:
        return _explain_json_only(args)  # a shell loop over pairs: print, write nothing
    if args.out is None:
        args.out = Path(EXPLAIN_OUT)
    if args.template is not None:
        return _explain_template(args)
    # --json prints the JSON and draws nothing unless --report asks for it.
    report = (not args.json) if args.report is None else args.report
    # A failed explain leaves no --out folder behind that it created (locked_folder removes it).
    with locked_folder(args.out, command="explain"):
        explainer = options.explainer(args)
        # Refused in the command line's words before the model loads; then the writer may replace.
        check_pair_folder(
            args.out,
            args.a,
            args.b,
            hint="--out elsewhere, or --overwrite",
            overwrite=args.overwrite,
        )
        written = write_pair_outputs(
            explainer,
            args.a,
            args.b,
            args.out,
            aligned=options.aligned(args),
            faithfulness=args.faithfulness,
            seeds=args.seeds,
            report=report,
            overwrite=True,
        )
    explanation = written.explanation
    if args.json:
        print(json.dumps(written.record, indent=2))
        return 0
    print(_headline(explanation))
    print(_band_table(explanation))
    if written.cells is not None:
        print(_region_line(written.cells))
    wrote = " and ".join(str(p) for p in (written.json_path, written.report_path) if p)
    print(f"wrote {wrote}")
    return 0


def _explain_json_only(args: argparse.Namespace) -> int:
    """``explain --json`` without ``--out``: the record ``explanation.json`` would hold, on
    stdout; no folder, no file."""
    explainer = options.explainer(args)
    aligned = options.aligned(args)
    if args.template is not None:
        result = explainer.explain_template(explainer.align(args.a, aligned), args.template)
        print(json.dumps(result.to_dict(), indent=2, allow_nan=False))
        return 0
    face_a, face_b = explainer.align(args.a, aligned), explainer.align(args.b, aligned)
    cells = None
    if explainer.regions is not None:
        cells = explainer.explain(face_a, face_b)
        explainer = band_explainer(explainer)
    explanation = explainer.explain(face_a, face_b)
    plain = explanation.to_dict()
    if cells is not None:
        plain.update(regions=cells.regions.to_dict(), cells=cells_record(cells))
    record = explanation_record(plain)
    if args.faithfulness:
        record["faithfulness"] = explainer.faithfulness(
            face_a, face_b, seeds=args.seeds, explanation=explanation
        ).to_dict()
    print(json.dumps(record, indent=2, allow_nan=False))
    return 0


def _region_line(cells) -> str:
    """Each region's share of the absolute cell influence, per image, ranked by share per unit
    area (a large region takes a large share by its size alone), with the area beside it."""
    parts = []
    for side in ("a", "b"):
        image = getattr(cells, side)
        share = image.absolute.sum(axis=1) / max(float(image.absolute.sum()), 1e-30)
        if cells.regions is None:  # no weights to measure the areas by: equal areas
            area = np.full(share.shape, 1.0 / share.size)
        else:
            area = np.asarray(cells.regions.to_dict()["area"], dtype=np.float64)
            area = area / max(float(area.sum()), 1e-30)
        ratio = share / np.maximum(area, 1e-30)
        top = sorted(zip(ratio, share, area, image.regions, strict=True), reverse=True)[:3]
        parts.append(
            f"{side}: " + ", ".join(f"{name} {s:.0%} (area {a:.0%})" for _, s, a, name in top)
        )
    return "regions with the most influence per unit area: " + "; ".join(parts)


def _explain_template(args: argparse.Namespace) -> int:
    """``explain A --template T.npy [--regions ...]``: one-sided, against a stored embedding."""
    with locked_folder(args.out, command="explain"):
        explanation = write_template_outputs(
            options.explainer(args),
            args.a,
            args.template,
            args.out,
            aligned=options.aligned(args),
        )
        report = options.render(
            "write_template_report", args.out
        )  # drawn from the folder the run wrote
    if args.json:
        print(json.dumps(explanation.to_dict(), indent=2))
    else:
        print(_headline(explanation))
        print(f"wrote {args.out / 'explanation.json'} and {report}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    with locked_folder(args.out, command="demo"):
        return _demo(args)


def _demo(args: argparse.Namespace) -> int:
    from importlib.resources import files

    demo = files("freqxfr") / "demo_data"
    a, b = Path(str(demo / "frll_001_neutral.jpg")), Path(str(demo / "frll_001_smiling.jpg"))
    c = Path(str(demo / "frll_002_neutral.jpg"))
    explainer = Explainer(options.load_model(args), args.bands, memory_budget=args.memory_budget)
    print(
        f"freqxfr demo: explaining two pairs of bundled FRLL photos with "
        f"{explainer.model.card.name} ({explainer.model.provider}), {explainer.n_bands} bands"
    )
    for name, (x, y), same in (("genuine", (a, b), True), ("impostor", (a, c), False)):
        written = write_pair_outputs(
            explainer,
            x,
            y,
            args.out / name,
            same=same,
            faithfulness=True,
            report=not args.no_report,
            overwrite=True,
        )
        print(f"\n{name} pair ({x.name} vs {y.name}): {_headline(written.explanation)}")
        print(_band_table(written.explanation))
        print(f"report: {written.report_path or written.json_path}")
    print(
        f"\nPhotos: Face Research Lab London Set (DeBruine & Jones 2017, CC BY 4.0), downscaled. "
        f"Outputs are in {args.out.resolve()}"
    )
    return 0


# ---- datasets -----------------------------------------------------------------------------------


def cmd_dataset(args: argparse.Namespace) -> int:
    if args.regions is not None:
        Regions.parse(args.regions)  # a bad value is refused before the folder is touched
    summary, pairs = options.run_pair_list(
        args,
        "dataset",
        run_dataset,
        functools.partial(options.render, "render_dataset", pair_pages=args.pair_pages),
        overlap=not args.no_overlap,
        parquet=args.parquet,
        faithfulness_seeds=args.seeds if args.faithfulness else None,
        pair_pages=args.pair_pages,
        restart=args.restart,
    )
    acc = summary.get("accuracy")
    print(
        f"{summary['pairs']} pairs explained, {summary['failed']} failed"
        + (f", accuracy {acc:.4f} at the model threshold" if acc is not None else "")
    )
    if "faithfulness" in summary:
        print("\n".join(summary_lines(summary["faithfulness"]["by_class"])))
    print(options.wrote(args.out, "results.jsonl", "summary.json", report=not args.no_report))
    return options.report_failures(
        "dataset", summary["failures"], f"{summary['failed']} of {len(pairs)} pairs"
    )


def cmd_faithfulness(args: argparse.Namespace) -> int:
    indices = None
    if args.pairs is not None:
        listed = read_pairs(args.pairs, root=args.root)
        indices = spread(list(range(len(listed))), args.limit)  # places in the list, for the JSON
        pairs = [listed[i] for i in indices]
        refused = (
            {}
            if args.allow_outside_root
            else outside_root(pairs, options.root(args, args.pairs), pairs_file=args.pairs)
        )
        if refused:
            raise InputError(next(iter(refused.values())))
    elif args.a and args.b:
        options.check_files(args.a, args.b)
        pairs = [Pair(Path(args.a), Path(args.b))]
    else:
        raise InputError("give two images A B, or --pairs FILE")
    with locked_folder(args.out, command="faithfulness"):
        explainer = options.explainer(args)
        result = dataset_faithfulness(
            explainer,
            pairs,
            seeds=args.seeds,
            aligned=options.aligned(args),
            indices=indices,
            progress=options.progress(args),
        )
        write_output(
            args.out / "faithfulness.json", json.dumps(result, indent=2, allow_nan=False) + "\n"
        )
    print(
        f"{result['n_images']} explained images of {result['pairs']} pairs, "
        f"{len(result['seeds'])} random orders each"
    )
    print("\n".join(summary_lines(result["by_class"])))
    print(f"wrote {args.out / 'faithfulness.json'}")
    return 0


# ---- their parsers ------------------------------------------------------------------------------


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``demo``, ``explain``, ``dataset`` and ``faithfulness`` to the CLI's subparsers."""
    p = options.add_command(sub, common, "demo", DEMO_TEXT)
    options.add_out_option(p, DEMO_OUT)
    p.add_argument(
        "--model", default=None, help="preset name, card file or .onnx (default: dlib_resnet)"
    )
    options.add_bands_option(p)
    options.add_memory_budget_option(p)
    options.add_no_report_option(p)
    p.set_defaults(func=cmd_demo)

    p = options.add_command(sub, common, "explain", EXPLAIN_TEXT)
    p.add_argument("a", help="first image (photo or aligned crop)")
    p.add_argument("b", nargs="?", default=None, help="second image (leave out with --template)")
    options.add_explainer_options(p)
    options.add_regions_option(p)
    options.add_path_option(
        p, "--template", "explain A against a stored template (.npy embedding) instead of image B"
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help=f"output folder (default ./{EXPLAIN_OUT}; with --json none: nothing is written)",
    )
    p.add_argument(
        "--overwrite", action="store_true", help="replace another pair's explanation in --out"
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print explanation.json to stdout and write nothing, unless --out (or --report) is "
        "given",
    )
    p.add_argument(
        "--report",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="draw the plots and report.html (default: yes, but not with --json)",
    )
    p.add_argument(
        "--faithfulness",
        action="store_true",
        help="add deletion/insertion curves. " + FAITHFULNESS_COST,
    )
    options.add_seeds_option(p, "random orders for the faithfulness baseline (default 5)")
    p.set_defaults(func=cmd_explain)

    p = options.add_run_command(sub, common, "dataset", DATASET_TEXT, DATASET_LIST)
    p.add_argument(
        "--restart",
        "--overwrite",
        action="store_true",
        help="start the run in --out over: remove its results (with its lock held) instead of "
        "continuing it",
    )
    options.add_explainer_options(p)
    options.add_path_option(
        p,
        "--groups",
        "CSV of per-image attributes (path,gender,...), e.g. FRLL's index.csv: the report "
        "gives band profiles and FMR/FNMR per group; identity-like columns (groups of fewer "
        "than 3 images) are left out",
    )
    p.add_argument(
        "--by",
        default=None,
        metavar="COL1,COL2",
        help="the --groups columns to group by (default: every column that is not "
        "identity-like); an identity-like column is refused",
    )
    options.add_limit_option(p, "N pairs spread evenly over the list (both classes stay in)")
    p.add_argument("--parquet", action="store_true", help="also write results.parquet")
    p.add_argument(
        "--faithfulness",
        action="store_true",
        help="also deletion/insertion curves of every pair (faithfulness.jsonl)",
    )
    options.add_seeds_option(p, "random orders for --faithfulness (default 5)")
    p.add_argument(
        "--pair-pages",
        choices=("errors", "all", "none"),
        default="errors",
        help="which pairs get their own explanation page in OUT/pairs/, linked from "
        "report.html: wrongly decided and failed ones (errors, the default), all, none",
    )
    options.add_no_report_option(p)
    options.add_progress_option(p)
    p.add_argument(
        "--no-overlap",
        action="store_true",
        help="don't prepare the next batch while the model runs",
    )
    options.add_cluster_options(p)
    options.add_regions_option(p)
    p.set_defaults(func=cmd_dataset)

    p = options.add_command(sub, common, "faithfulness", FAITHFULNESS_TEXT)
    p.add_argument("a", nargs="?", help="first image of one pair")
    p.add_argument("b", nargs="?", help="second image of one pair")
    options.add_pair_list_options(
        p,
        "--pairs",
        "pair list instead of A B",
        "folder the list's paths are relative to (default: the list's folder)",
    )
    options.add_limit_option(p, "pairs, spread evenly over the list (default 50)", default=50)
    options.add_seeds_option(p, "random orders for the baseline (default 5)")
    options.add_out_option(p, FAITHFULNESS_OUT)
    options.add_explainer_options(p)
    options.add_progress_option(p)
    p.set_defaults(func=cmd_faithfulness)
