"""Faithfulness curves per pair against the plain explanation, side by side in one process.

For each model, the same LFW pairs (aligned once) are explained (``Explainer.explain``) and then
given their deletion/insertion curves (``Explainer.faithfulness`` with the explanation passed in,
as ``freqxfr explain --faithfulness`` does), alternating pair by pair so that both see the same
machine load. Reports median wall times, their ratio and the images each embeds.

    python benchmarks/bench_faithfulness.py --json benchmarks/results/faithfulness.json
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import add_smoke_option, machine_info, write_result
from bench_explain import DATA, TimedModel, dlib_chips

from freqxfr.explanations.explainer import Explainer
from freqxfr.explanations.pairs import read_pairs, spread
from freqxfr.imaging.images import load_image
from freqxfr.model.verifier import load_model


def faces_for(model, data: Path, pairs) -> list[np.ndarray]:
    """Aligned face pairs as the model wants them (dlib chips cached, SFace crops as they are)."""
    if model.card.name == "dlib_resnet":
        folder = dlib_chips(model, data)

        def chip(p: Path) -> np.ndarray:
            return np.asarray(Image.open(folder / p.parent.name / p.name.replace(".jpg", ".png")))
    else:
        chip = load_image
    return [np.stack([chip(p.path_a), chip(p.path_b)]) for p in pairs]


def measure(name: str, data: Path, n_pairs: int, bands: int, seeds: int) -> dict:
    model = load_model(name)
    timer = TimedModel(model)
    pairs = spread(read_pairs(data / "lfw_aligned112" / "pairs_generated.csv", root=data), n_pairs)
    faces = faces_for(model, data, pairs)
    explainer = Explainer(model, bands)
    warm = explainer.explain(faces[0][0], faces[0][1], aligned=True)  # plans, buffers
    explainer.faithfulness(faces[0][0], faces[0][1], seeds=seeds, aligned=True, explanation=warm)
    explain_s, curves_s, explain_model, curves_model, embedded = [], [], [], [], []
    for pair in faces:
        timer.seconds, timer.images = 0.0, 0
        t0 = time.perf_counter()
        e = explainer.explain(pair[0], pair[1], aligned=True)
        explain_s.append(time.perf_counter() - t0)
        explain_model.append(timer.seconds)
        n_explain = timer.images
        timer.seconds, timer.images = 0.0, 0
        t0 = time.perf_counter()
        explainer.faithfulness(pair[0], pair[1], seeds=seeds, aligned=True, explanation=e)
        curves_s.append(time.perf_counter() - t0)
        curves_model.append(timer.seconds)
        embedded.append((n_explain, timer.images))
    if not all(n_explain and n_curves for n_explain, n_curves in embedded):
        raise RuntimeError("no images counted: the count no longer sees the model's calls")
    explain_ms = statistics.median(explain_s) * 1e3
    curves_ms = statistics.median(curves_s) * 1e3
    return {
        "model": name,
        "provider": model.provider,
        "bands": bands,
        "seeds": seeds,
        "pairs": len(faces),
        "explain_ms": round(explain_ms, 1),
        "faithfulness_ms": round(curves_ms, 1),
        "ratio": round(curves_ms / explain_ms, 2),
        "explain_model_ms": round(statistics.median(explain_model) * 1e3, 1),
        "faithfulness_model_ms": round(statistics.median(curves_model) * 1e3, 1),
        # images through the model per pair, references included
        "explain_images": int(statistics.median(e for e, _ in embedded)),
        "faithfulness_images": int(statistics.median(f for _, f in embedded)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument("--bands", type=int, default=16)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--models", default="dlib_resnet,sface")
    add_smoke_option(parser)
    args = parser.parse_args()
    if args.smoke:
        # dlib, the cheaper model: the smoke run only checks that the benchmark runs and counts
        args.pairs, args.bands, args.seeds, args.models = 2, 4, 1, "dlib_resnet"
    results = []
    for name in args.models.split(","):
        entry = measure(name, args.data, args.pairs, args.bands, args.seeds)
        results.append(entry)
        print(
            f"{name}, K={entry['bands']}, {entry['seeds']} seeds: explanation "
            f"{entry['explain_ms']:.0f} ms/pair, faithfulness {entry['faithfulness_ms']:.0f} "
            f"ms/pair, ratio {entry['ratio']:.1f}x ({entry['faithfulness_images']} vs "
            f"{entry['explain_images']} images through the model)"
        )
    # Both timings share the load, so the ratio holds on a busy machine; the times don't.
    result = {
        "benchmark": "faithfulness",
        "machine": machine_info("onnxruntime"),
        "load_average_1min_at_end": round(os.getloadavg()[0], 2),
        "results": results,
    }
    write_result(args.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
