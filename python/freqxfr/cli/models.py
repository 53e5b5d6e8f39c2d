"""The ``freqxfr verify`` and ``freqxfr models`` commands.

Each command returns an exit code and lets :class:`~freqxfr.common.errors.FreqxfrError` propagate, which
:func:`freqxfr.cli.main` prints as one line.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from freqxfr.cli import options
from freqxfr.cli.output import decision_line, threshold_text
from freqxfr.common.errors import InputError
from freqxfr.model.cards import card_to_toml, list_presets, preset, threshold_problem
from freqxfr.model.loading import converter_module

# What each command's --help says: (help, description).
VERIFY_TEXT = (
    "compare two face images: score, threshold and decision",
    "Compare two face images with a face-recognition model. Raw photos are "
    "aligned as the model's card says; crops of the model's input size are taken as aligned.",
)
MODELS_TEXT = (
    "list, convert or show the built-in models",
    "The built-in model presets: list them with their cards and converted files, "
    "convert their model files into the cache, or print a card as TOML.",
)
LIST_TEXT = (
    "presets, their cards and their converted files",
    "List the presets: input size, embedding size, metric, "
    "threshold (a score; the distance beside it for Euclidean models), "
    "alignment and converted files.",
)
CONVERT_TEXT = (
    "convert (again, with --force) the presets' model files",
    "Convert the presets' model files to ONNX in the cache "
    "(FREQXFR_CACHE_DIR); a valid cached copy is kept unless --force.",
)
CARD_TEXT = (
    "print a preset's card as TOML (a start for your own card)",
    "Print a preset's model card as TOML, e.g. as a start for the card of your own .onnx model.",
)


def add_verify_parser(subparsers: Any, common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Register ``freqxfr verify A B [--model ...] [--json]``."""
    p = options.add_command(subparsers, common, "verify", VERIFY_TEXT)
    p.add_argument("a", help="first image (photo or aligned crop)")
    p.add_argument("b", help="second image")
    options.add_model_options(p)
    p.add_argument(
        "--aligned",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="the inputs are aligned crops (--aligned) or always need alignment (--no-aligned); "
        "default: decide from the image size",
    )
    options.add_padding_option(p)
    p.add_argument("--threshold", type=float, default=None, help="override the card's threshold")
    options.add_json_option(p)
    p.set_defaults(func=cmd_verify)
    return p


def cmd_verify(args: argparse.Namespace) -> int:
    options.check_files(args.a, args.b)
    model = options.load_model(args)
    if args.threshold is not None:
        # The rule of a card's threshold, for this model's metric, in the command line's words.
        problem = threshold_problem(args.threshold, model.card.metric)
        if problem:
            raise InputError(f"--threshold {args.threshold}: {problem}")
    result = model.compare(
        args.a, args.b, aligned=args.aligned, threshold=args.threshold, padding=args.padding
    )
    if args.json:
        record = {
            "a": args.a,
            "b": args.b,
            **result.to_dict(),
            "provider": model.provider,
            "padding": args.padding,
        }
        print(json.dumps(record))
        return 0
    print(
        decision_line(
            result.decision,
            result.score,
            result.threshold,
            result.metric,
            result.model,
            model.provider,
        )
    )
    return 0


def add_models_parser(subparsers: Any, common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Register ``freqxfr models list|convert|card``."""
    p = options.add_command(subparsers, common, "models", MODELS_TEXT)
    sub = p.add_subparsers(dest="models_command", required=True, metavar="ACTION")

    q = options.add_command(sub, common, "list", LIST_TEXT)
    options.add_json_option(q)
    q.set_defaults(func=cmd_models_list)

    q = options.add_command(sub, common, "convert", CONVERT_TEXT)
    q.add_argument("names", nargs="*", help="presets to convert (default: all with a converter)")
    q.add_argument("--force", action="store_true", help="convert even if a cached copy is valid")
    q.add_argument("--fp16", action="store_true", help="dlib_resnet: also store fp16 weights")
    q.set_defaults(func=cmd_models_convert)

    q = options.add_command(sub, common, "card", CARD_TEXT)
    q.add_argument("name", help="preset name")
    q.set_defaults(func=cmd_models_card)
    return p


def cmd_models_list(args: argparse.Namespace) -> int:
    rows: list[dict[str, Any]] = []
    for name in list_presets():
        card = preset(name)
        module = converter_module(card)
        files = [
            {**entry, "path": str(entry["path"])}
            for entry in (module.cached_models() if module else [])
            if entry["valid"]
        ]
        rows.append(
            {
                "name": name,
                "input_size": list(card.input_size),
                "embedding_size": card.embedding_size,
                "metric": card.metric,
                "threshold": card.threshold,
                **({"distance_threshold": -card.threshold} if card.metric == "euclidean" else {}),
                "alignment": card.alignment,
                "source": card.source or "bring your own .onnx (load_model(path, card=...))",
                "converted": files,
            }
        )
    if args.json:
        print(json.dumps({"presets": rows}))
        return 0
    print(
        f"{'preset':12} {'input':>7} {'dim':>4} {'metric':9} {'threshold':<25} {'alignment':10} file"
    )
    for row in rows:
        h, w = row["input_size"]
        if row["converted"]:
            where = ", ".join(
                f"{f['path']} ({f['variant']}, {f['size'] / 2**20:.1f} MB)"
                for f in row["converted"]
            )
        elif row["source"].startswith("converter:"):
            where = "not converted yet (freqxfr models convert)"
        else:
            where = "card only: bring your own .onnx"
        print(
            f"{row['name']:12} {h:>3}x{w:<3} {row['embedding_size']:>4} {row['metric']:9} "
            f"{threshold_text(row['threshold'], row['metric']):<25} {row['alignment']:10} {where}"
        )
    return 0


def cmd_models_convert(args: argparse.Namespace) -> int:
    names = args.names or [n for n in list_presets() if converter_module(preset(n))]
    for name in names:
        module = converter_module(preset(name))
        if module is None:
            raise InputError(
                f"preset {name!r} has no converter: it is a card for a model you bring"
            )
        variants = [False, True] if args.fp16 and name == "dlib_resnet" else [False]
        for fp16 in variants:
            start = time.perf_counter()
            kwargs = {"fp16": True} if fp16 else {}
            path = module.converted_path(force=args.force, **kwargs)
            label = f"{name} (fp16)" if fp16 else name
            print(f"{label}: {path} ({time.perf_counter() - start:.1f} s)")
    return 0


def cmd_models_card(args: argparse.Namespace) -> int:
    print(card_to_toml(preset(args.name)), end="")
    return 0
