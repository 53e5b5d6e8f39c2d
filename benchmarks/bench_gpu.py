"""GPU check: the built-in models through onnxruntime's CUDA provider with IOBinding.

For dlib's ResNet and SFace: images per second at batch 34 (one explained pair with 16 bands:
2K + 2 inputs) and 256, with the input already on the GPU (IOBinding, so the timing is the
model's), and the largest embedding difference from the CPU provider on real LFW crops. Needs
``onnxruntime-gpu`` and a CUDA device; without them it says so and exits with status 2.

    python benchmarks/bench_gpu.py --json results/gpu.json
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import add_smoke_option, machine_info

from freqxfr.common import atomic
from freqxfr.imaging.images import load_image
from freqxfr.model.verifier import Verifier, load_model, to_model_input

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
BATCHES = (34, 256)


def gpu_name() -> str:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown (nvidia-smi not available)"


def crops(side: int, count: int) -> np.ndarray:
    paths = sorted((DATA / "lfw_aligned112" / "images").rglob("*.jpg"))[:count]
    imgs = [load_image(p) for p in paths]
    if side != 112:
        imgs = [
            np.asarray(Image.fromarray(i).resize((side, side), Image.Resampling.BICUBIC))
            for i in imgs
        ]
    return np.stack(imgs)


def gpu_rate(model: Verifier, x: np.ndarray, repeats: int, seconds: float) -> float:
    """Median img/s of IOBinding runs with input and output kept on the GPU."""
    session = model.runner.session
    x_gpu = ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(x), "cuda", 0)
    binding = session.io_binding()
    binding.bind_ortvalue_input(model.runner.input_name, x_gpu)
    binding.bind_output(model.runner.output_name, "cuda", 0)
    session.run_with_iobinding(binding)  # warm-up: cuDNN picks its algorithms here
    rates = []
    for _ in range(repeats):
        calls, start = 0, time.perf_counter()
        while calls == 0 or time.perf_counter() - start < seconds:
            session.run_with_iobinding(binding)
            binding.synchronize_outputs()
            calls += 1
        rates.append(calls * x.shape[0] / (time.perf_counter() - start))
    return statistics.median(rates)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=5)
    add_smoke_option(parser)
    args = parser.parse_args()
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        print(
            f"CUDA is not available to onnxruntime {ort.__version__} "
            f"(providers: {', '.join(ort.get_available_providers())}); nothing to measure",
            file=sys.stderr,
        )
        return 0 if args.smoke else 2  # a smoke run on a CPU machine checks the imports

    results: dict[str, Any] = {
        "machine": machine_info("onnxruntime-gpu", "onnxruntime"),
        "device": gpu_name(),
        "models": {},
    }
    for name in ("dlib_resnet", "sface"):
        gpu = load_model(name, providers=["CUDAExecutionProvider"])
        cpu = load_model(name)
        images = crops(gpu.card.input_size[0], max(BATCHES))
        x = to_model_input(images, gpu.card)
        reference = cpu.embed_model_input(x[:64])
        got = gpu.embed_model_input(x[:64])
        entry: dict[str, Any] = {
            "provider": gpu.provider,
            "max_abs_diff_vs_cpu": float(np.abs(got - reference).max()),
            "max_score_diff_vs_cpu": float(
                np.abs(
                    gpu.score(got[:-1], got[1:]) - cpu.score(reference[:-1], reference[1:])
                ).max()
            ),
        }
        for batch in BATCHES:
            entry[f"img_per_s_batch{batch}"] = round(
                gpu_rate(gpu, x[:batch], args.repeats, args.seconds), 1
            )
        results["models"][name] = entry
        print(name, entry, flush=True)
    if args.json:
        atomic.write_json(args.json, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
