"""The converted dlib ResNet: conversion time, file size, onnxruntime throughput, dlib's own speed.

Real chips (FRLL neutral photos, dlib's detector, 5-point predictor, ``get_face_chip``) tiled to
the batch size. Throughput is the median of ``--repeats`` timed runs of ``--seconds`` each, so
that a busy neighbour on a shared machine moves it less.

    FREQXFR_CACHE_DIR=/tmp/fx python benchmarks/bench_dlib_onnx.py --threads 2 --json out.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import dlib
import face_recognition_models
import numpy as np
import onnxruntime as ort
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import add_smoke_option, machine_info, rate

from freqxfr.common import atomic
from freqxfr.model.converters import dlib_resnet

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def load_chips(count: int = 8) -> np.ndarray:
    """dlib chips (N, 150, 150, 3) uint8 from FRLL neutral photos, downscaled to 500 px first."""
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(
        face_recognition_models.pose_predictor_five_point_model_location()
    )
    out = []
    for path in sorted((DATA / "frll" / "neutral").glob("*.jpg"))[:count]:
        photo = Image.open(path).convert("RGB").resize((500, 500), Image.Resampling.BILINEAR)
        img = np.asarray(photo)
        face = detector(img, 1)[0]
        out.append(dlib.get_face_chip(img, predictor(img, face), size=150, padding=0.25))
    return np.stack(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path, help="write the results here")
    add_smoke_option(parser)
    args = parser.parse_args()
    if args.smoke:
        args.seconds, args.repeats = 0.05, 1

    chips = load_chips()
    mean = np.asarray(dlib_resnet.DLIB_MEAN_RGB, dtype=np.float32)
    x = ((chips.astype(np.float32) - mean) / np.float32(dlib_resnet.DLIB_STD)).transpose(0, 3, 1, 2)
    x64 = np.ascontiguousarray(np.resize(x, (64, *x.shape[1:])))
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.inter_op_num_threads = 1
    results: dict[str, Any] = {"machine": machine_info("onnx", "onnxruntime", "dlib-bin")}
    results["threads"] = args.threads
    for fp16 in (False, True):
        weights = "fp16" if fp16 else "fp32"
        start = time.perf_counter()
        path = dlib_resnet.converted_path(fp16=fp16, force=True)
        results[f"convert_{weights}_s"] = round(time.perf_counter() - start, 3)
        results[f"size_{weights}_bytes"] = path.stat().st_size
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        for batch in (1, 64):
            feed = {"input": np.ascontiguousarray(x64[:batch])}
            run = lambda s=session, f=feed: s.run(None, f)  # noqa: E731
            results[f"ort_{weights}_batch{batch}_img_s"] = round(
                rate(run, batch, args.seconds, args.repeats), 1
            )
    model = dlib.face_recognition_model_v1(str(dlib_resnet.source_path()))
    batch = list(chips)
    results["dlib_batch8_img_s"] = round(
        rate(lambda: model.compute_face_descriptor(batch), len(batch), args.seconds, args.repeats),
        1,
    )
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        atomic.write_text(args.json, text + "\n")


if __name__ == "__main__":
    main()
