"""The README's faithfulness finding, on LFW crops or FRLL studio photos, with intervals.

Genuine and impostor pairs are spread evenly over each class of a pair list (LFW
``lfw_aligned112/pairs_generated.csv`` or FRLL ``frll/pairs.csv``; FRLL's list holds 40 genuine
among 1,600 pairs, so a spread over the whole list, as ``freqxfr faithfulness --limit`` takes,
would hold almost no genuine pair) and given their faithfulness curves and calibrated null
(:func:`freqxfr.explanations.faithfulness.dataset_faithfulness`, the function behind ``freqxfr
faithfulness``: 5 baseline seeds, 20 random and 20 sanity orders per image, the CLI's defaults).
Raw FRLL photos are aligned as the model's card says, as every freqxfr command does.

Per class (genuine, impostor; the decision classes match, non-match too): the decision rule's
verdict and per-identity sign tests (as ``faithfulness.json`` states them), and the share of
images beating each null's median with a 95% identity-cluster bootstrap interval (each image
belongs to its own identity, from its path; 2,000 resamples, seed 0:
:func:`freqxfr.stats.bootstrap.cluster_weights`), the median percentile and effect size.

    python benchmarks/faithfulness_finding.py --data lfw --models dlib_resnet \\
        --json benchmarks/results/findings_faithfulness_lfw_dlib_resnet.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import add_smoke_option, machine_info, write_result

from freqxfr.explanations.explainer import Explainer
from freqxfr.explanations.faithfulness import (
    dataset_faithfulness,
    image_classes,
    record_identity,
    summarise_faithfulness,
)
from freqxfr.explanations.pairs import read_pairs, spread
from freqxfr.model.verifier import load_model
from freqxfr.stats.bootstrap import cluster_weights, percentile_ci, weighted_means
from freqxfr.stats.identities import resampling

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
PAIR_LISTS = {
    "lfw": ("lfw_aligned112/pairs_generated.csv", "LFW aligned 112×112 crops"),
    "frll": ("frll/pairs.csv", "FRLL studio photos (1350×1350, aligned by freqxfr)"),
}
RESAMPLES, SEED = 2000, 0


def balanced_pairs(data: Path, which: str, n_genuine: int, n_impostor: int):
    """``n_genuine`` and ``n_impostor`` pairs spread evenly over each class, with their places
    in the list."""
    listed = read_pairs(data / PAIR_LISTS[which][0], root=data)
    chosen: list[int] = []
    for same, count in ((True, n_genuine), (False, n_impostor)):
        chosen += spread([i for i, p in enumerate(listed) if p.same is same], count)
    return chosen, [listed[i] for i in chosen]


def share_interval(beats: list[bool], identities: list[str | None]) -> dict:
    """The share of images that beat a null, with its identity-cluster bootstrap interval."""
    x = np.asarray(beats, np.float64)
    known = all(identities)
    clusters = [str(i) for i in identities] if known else None
    w = cluster_weights(len(x), RESAMPLES, clusters=clusters, seed=SEED)
    lo, hi = percentile_ci(weighted_means(w, x))
    return {
        "images": len(x),
        "beat": int(x.sum()),
        "share": round(float(x.mean()), 4),
        "ci": [round(lo, 4), round(hi, 4)],
        **resampling(clusters, len(x)),
    }


def class_findings(per_image: list[dict], by_class: dict) -> dict:
    out = {}
    for cls in ("genuine", "impostor", "match", "non_match"):
        records = [r for r in per_image if cls in image_classes(r) and r.get("null_test")]
        if not records:
            continue
        ids = [record_identity(r) for r in records]
        tests = [r["null_test"] for r in records]
        summary = by_class.get(cls, {}).get("null_test", {})
        entry: dict = {"images": len(records), "identities": len({i for i in ids if i})}
        for null in ("random", "sanity"):
            chosen = [t[t["test"]][null] for t in tests]
            entry[null] = {
                **share_interval([t[f"beats_{null}"] for t in tests], ids),
                "median_percentile": round(float(np.median([c["percentile"] for c in chosen])), 3),
                "median_effect_size": round(
                    float(
                        np.nanmedian(
                            [
                                np.nan if c["effect_size"] is None else c["effect_size"]
                                for c in chosen
                            ]
                        )
                    ),
                    3,
                ),
                "sign_test": {
                    k: summary.get(null, {}).get(k)
                    for k in ("unit", "n_units", "unit_wins", "unit_ties", "p_value", "holds")
                },
            }
        entry["test"] = sorted({t["test"] for t in tests})
        entry["holds"] = summary.get("holds")
        entry["flipped"] = sum(
            1 for t in tests if t["test"] == "threshold" and t["threshold"]["flip_step"] is not None
        )
        out[cls] = entry
    return out


def measure(name: str, args: argparse.Namespace) -> dict:
    indices, pairs = balanced_pairs(args.data, args.set, args.genuine, args.impostor)
    explainer = Explainer(load_model(name), args.bands)
    t0 = time.perf_counter()
    result = dataset_faithfulness(
        explainer,
        pairs,
        seeds=args.seeds,
        indices=indices,
        null_orders=args.null_orders,
        progress=not args.smoke,
    )
    seconds = time.perf_counter() - t0
    decided = [r for r in result["per_image"] if r["side"] == "a"]
    return {
        "model": name,
        "pairs": len(pairs),
        "genuine": args.genuine,
        "impostor": args.impostor,
        "pair_indices": indices,
        "decided_right": sum(r["decision"] is r["same"] for r in decided),
        "bands": args.bands,
        "seeds": result["seeds"],
        "null_orders": result["null_orders"],
        "classes": class_findings(result["per_image"], result["by_class"]),
        "by_class": result["by_class"],
        "per_image": kept(result["per_image"]),
        "seconds": round(seconds, 1),
    }


def kept(per_image: list[dict]) -> list[dict]:
    """The per-image records without their variants' areas: who, the decision and the null
    test, enough to recompute every number of the finding."""
    return [
        {**{k: v for k, v in r.items() if k != "areas"}, "identity": record_identity(r)}
        for r in per_image
    ]


def summarised(path: Path, name: str) -> dict:
    """The finding of a ``freqxfr faithfulness`` run's ``faithfulness.json`` (its pairs spread
    over the whole list, as ``--limit`` takes them), summarised again with identities (from the
    image paths where the file predates them) and given the intervals."""
    result = json.loads(path.read_text())
    per_image = result["per_image"]
    by_class = summarise_faithfulness(per_image)
    decided = [r for r in per_image if r["side"] == "a"]
    return {
        "model": name,
        "from": str(path),
        "pairs": result["pairs"],
        "genuine": sum(r["same"] is True for r in decided),
        "impostor": sum(r["same"] is False for r in decided),
        "pair_indices": [r["pair"] for r in decided],
        "decided_right": sum(r["decision"] is r["same"] for r in decided),
        "seeds": result["seeds"],
        "null_orders": result["null_orders"],
        "classes": class_findings(per_image, by_class),
        "by_class": by_class,
        "per_image": kept(per_image),
    }


def describe(entry: dict) -> None:
    for cls, e in entry["classes"].items():
        if cls not in ("genuine", "impostor"):
            continue
        parts = []
        for null in ("random", "sanity"):
            n = e[null]
            s = n["sign_test"]
            parts.append(
                f"beat {null} {n['beat']}/{n['images']} = {n['share']:.2f} "
                f"[{n['ci'][0]:.2f}, {n['ci'][1]:.2f}] ({s['unit_wins']} of {s['n_units']} "
                f"{'identities' if s['unit'] == 'identity' else s['unit'] + 's'} win, {s['unit_ties']} tied, p = {s['p_value']:.2g})"
            )
        verdict = "holds" if e["holds"] else "does not hold"
        print(
            f"{entry['model']} {cls} ({e['images']} images, {e['identities']} identities): "
            + "; ".join(parts)
            + f"; {verdict}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path)
    parser.add_argument("--data", type=Path, default=DATA, help="the shared data folder")
    parser.add_argument("--set", choices=sorted(PAIR_LISTS), default="lfw", help="LFW or FRLL")
    parser.add_argument("--genuine", type=int, default=10, help="genuine pairs")
    parser.add_argument("--impostor", type=int, default=10, help="impostor pairs")
    parser.add_argument("--bands", type=int, default=16)
    parser.add_argument("--seeds", type=int, default=5, help="baseline random orders")
    parser.add_argument("--null-orders", type=int, default=20, help="orders per null")
    parser.add_argument("--models", default="dlib_resnet,sface")
    parser.add_argument(
        "--from",
        dest="runs",
        type=Path,
        nargs="+",
        help="summarise these `freqxfr faithfulness` outputs (faithfulness.json, one per model "
        "of --models, in order) instead of measuring",
    )
    add_smoke_option(parser)
    args = parser.parse_args()
    if args.smoke:
        args.genuine, args.impostor, args.bands, args.models = 1, 1, 4, "dlib_resnet"
        args.seeds, args.null_orders = 2, 4
    entries = []
    names = args.models.split(",")
    if args.runs and len(args.runs) != len(names):
        parser.error(f"--from: {len(args.runs)} files for {len(names)} models ({args.models})")
    for i, name in enumerate(names):
        entry = summarised(args.runs[i], name) if args.runs else measure(name, args)
        entries.append(entry)
        describe(entry)
    result = {
        "benchmark": "faithfulness_finding",
        "machine": machine_info("onnxruntime"),
        "data_set": args.set,
        "data": f"{PAIR_LISTS[args.set][1]} (../shared/data/{PAIR_LISTS[args.set][0]})",
        "bootstrap": {
            "resamples": RESAMPLES,
            "level": 0.95,
            "seed": SEED,
            "cluster": "image identity",
        },
        "command": "python benchmarks/faithfulness_finding.py " + " ".join(sys.argv[1:]),
        "findings": entries,
        "load_average_1min_at_end": round(os.getloadavg()[0], 2),
    }
    write_result(args.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
