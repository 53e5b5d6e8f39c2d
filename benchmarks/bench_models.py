"""Throughput of the built-in models through ``freqxfr.load_model``: images per second at batch
1, 16 and 64, and the execution provider that ran them.

Inputs are real aligned LFW crops (resized to 150×150 for dlib's ResNet), normalised once; the
timed call is ``Verifier.embed_model_input`` (the model alone, as the explanation pipeline calls
it). ``embed`` (normalisation included) is timed at batch 64 as well, and the original int8 SFace
graph at batch 1 for comparison with its conversion. Each rate is the median of
``--repeats`` runs of ``--seconds`` each, so a busy neighbour on a shared machine moves it less.

    FREQXFR_CACHE_DIR=/tmp/fx python benchmarks/bench_models.py --json results/models.json
"""

from __future__ import annotations

import argparse
import sys
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import add_smoke_option, machine_info, rate

from freqxfr.common import atomic
from freqxfr.imaging.images import load_image
from freqxfr.model.converters import sface
from freqxfr.model.verifier import load_model, to_model_input

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
BATCHES = (1, 16, 64)
CROPS = 64  # images per model


def crops(side: int, count: int = 64) -> np.ndarray:
    paths = sorted((DATA / "lfw_aligned112" / "images").rglob("*.jpg"))[:count]
    images = [load_image(p) for p in paths]
    if side != 112:
        images = [
            np.asarray(Image.fromarray(img).resize((side, side), Image.Resampling.BICUBIC))
            for img in images
        ]
    return np.stack(images)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--providers", default=None, help="e.g. cuda (default: the CPU)")
    parser.add_argument("--threads", type=int, default=None, help="default: all usable cores")
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--repeats", type=int, default=5)
    add_smoke_option(parser)
    args = parser.parse_args()
    global BATCHES, CROPS
    if args.smoke:
        args.seconds, args.repeats = 0.05, 1
        BATCHES, CROPS = (1, 2), 2

    results: dict[str, Any] = {"machine": machine_info("onnx", "onnxruntime", "onnxruntime-gpu")}
    results["models"] = {}
    for name in ("dlib_resnet", "sface"):
        verifier = load_model(name, providers=args.providers, threads=args.threads)
        images = crops(verifier.card.input_size[0], CROPS)
        x = to_model_input(images, verifier.card)
        entry: dict[str, Any] = {
            "provider": verifier.provider,
            "threads": args.threads or "all usable cores",
            "input": list(verifier.card.input_shape),
            "file": verifier.path.name,
            "file_mb": round(verifier.path.stat().st_size / 2**20, 1),
        }
        for batch in BATCHES:
            chunk = np.ascontiguousarray(x[:batch])
            entry[f"img_per_s_batch{batch}"] = round(
                rate(partial(verifier.embed_model_input, chunk), batch, args.seconds, args.repeats),
                1,
            )
        entry["img_per_s_batch64_with_normalise"] = round(
            rate(partial(verifier.embed, images), len(images), args.seconds, args.repeats), 1
        )
        results["models"][name] = entry
        print(
            f"{name:12s} {entry['provider']}: "
            + ", ".join(f"b{b} {entry[f'img_per_s_batch{b}']:.1f}" for b in BATCHES)
            + " img/s",
            flush=True,
        )
    # The original int8 SFace graph (batch 1, weights expanded on every call), for comparison.
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if args.threads:
        options.intra_op_num_threads = args.threads
    original = ort.InferenceSession(
        sface.load_source().SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    raw = np.ascontiguousarray(crops(112, 1).astype(np.float32).transpose(0, 3, 1, 2))
    int8_rate = rate(partial(original.run, None, {"data": raw}), 1, args.seconds, args.repeats)
    results["models"]["sface_int8_original"] = {"img_per_s_batch1": round(int8_rate, 1)}
    print(f"sface int8 original graph: b1 {int8_rate:.1f} img/s", flush=True)
    if args.json:
        atomic.write_json(args.json, results)


if __name__ == "__main__":
    main()
