"""Explanation latency and dataset throughput with the default model (dlib's ResNet) on this CPU.

- Per pair, K = 8 and 16: wall time of ``Explainer.explain`` on aligned chips, split into model
  time (ONNX Runtime) and everything else (masking, normalisation, scoring, Python).
- A dataset run of ``--pairs`` pairs (default 1,000) through ``run_dataset``, with and without the
  overlap of masking and inference, sampling resident memory as it goes.

The LFW crops are aligned into dlib chips once (cached under the benchmark's work folder), so the
numbers measure explanation, not face detection.

    python benchmarks/bench_explain.py --json results/explain.json
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import add_smoke_option, machine_info, write_result

from freqxfr.common.cache import cache_dir
from freqxfr.explanations.explainer import Explainer
from freqxfr.explanations.pairs import Pair, read_pairs
from freqxfr.model.verifier import load_model
from freqxfr.runs.dataset import run_dataset

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def dlib_chips(model, data: Path) -> Path:
    """The 383 LFW crops as dlib chips, aligned once into the cache."""
    folder = cache_dir("bench", "lfw_dlib_chips")
    for src in sorted((data / "lfw_aligned112" / "images").rglob("*.jpg")):
        target = folder / src.parent.name / src.name.replace(".jpg", ".png")
        if not target.exists():
            target.parent.mkdir(exist_ok=True)
            Image.fromarray(model.align(src)).save(target)
    return folder


class TimedModel:
    """Wraps the session call of a Verifier's runner (every model call, through the engine or
    not, ends there) to add up the time spent in ONNX Runtime and the images run."""

    def __init__(self, model) -> None:
        self.model = model
        self.seconds = 0.0
        self.images = 0
        self._run = model.runner._run
        model.runner._run = self._timed

    def _timed(self, x):
        t0 = time.perf_counter()
        self.images += len(x)
        try:
            return self._run(x)
        finally:
            self.seconds += time.perf_counter() - t0


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def latency(model, timer: TimedModel, chips: list[np.ndarray], k: int, repeats: int) -> dict:
    explainer = Explainer(model, k)
    explainer.explain(chips[0], chips[1], aligned=True)  # warm-up: plans, buffers
    walls, models = [], []
    for i in range(repeats):
        a, b = chips[(2 * i) % len(chips)], chips[(2 * i + 1) % len(chips)]
        timer.seconds = 0.0
        t0 = time.perf_counter()
        explainer.explain(a, b, aligned=True)
        walls.append(time.perf_counter() - t0)
        models.append(timer.seconds)
    wall, mdl = statistics.median(walls), statistics.median(models)
    other = statistics.median([w - m for w, m in zip(walls, models, strict=True)])
    return {
        "bands": k,
        "embeddings_per_pair": 2 * k + 2,
        "latency_ms": round(wall * 1e3, 2),
        "model_ms": round(mdl * 1e3, 2),
        "other_ms": round(other * 1e3, 3),
        "other_fraction": round(other / wall, 4),
        "pairs_per_s": round(1 / wall, 2),
    }


def dataset_run(model, timer: TimedModel, pairs: list[Pair], k: int, overlap: bool) -> dict:
    explainer = Explainer(model, k)
    samples: list[tuple[float, float]] = []
    stop = threading.Event()

    def sample() -> None:
        t0 = time.perf_counter()
        while not stop.wait(0.5):
            samples.append((time.perf_counter() - t0, rss_mb()))

    sampler = threading.Thread(target=sample, daemon=True)
    with tempfile.TemporaryDirectory() as out:
        timer.seconds = 0.0
        sampler.start()
        t0 = time.perf_counter()
        run_dataset(pairs, out, explainer, progress=False, overlap=overlap, report=False)
        wall = time.perf_counter() - t0
        stop.set()
        sampler.join()
    rss = [m for _, m in samples]
    tenth = max(1, len(rss) // 10)
    return {
        "overlap": overlap,
        "pairs": len(pairs),
        "bands": k,
        "wall_s": round(wall, 2),
        "pairs_per_s": round(len(pairs) / wall, 2),
        "model_s": round(timer.seconds, 2),
        "other_fraction": round(1 - timer.seconds / wall, 4),
        "rss_mb_first_tenth": round(float(np.median(rss[:tenth])), 1) if rss else None,
        "rss_mb_last_tenth": round(float(np.median(rss[-tenth:])), 1) if rss else None,
        "rss_mb_max": round(max(rss), 1) if rss else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--pairs", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--bands", default="8,16")
    add_smoke_option(parser)
    args = parser.parse_args()
    if args.smoke:
        args.pairs, args.repeats, args.bands = 4, 1, "4"

    model = load_model()
    timer = TimedModel(model)
    folder = dlib_chips(model, args.data)
    chip_paths = sorted(folder.rglob("*.png"))
    chips = [np.asarray(Image.open(p)) for p in chip_paths[:64]]

    results = {"latency": [], "dataset": []}
    for k in (int(v) for v in args.bands.split(",")):
        entry = latency(model, timer, chips, k, args.repeats)
        results["latency"].append(entry)
        print(
            f"K={k:2d}: {entry['latency_ms']:.1f} ms/pair ({entry['pairs_per_s']:.1f} pairs/s), "
            f"model {entry['model_ms']:.1f} ms, other {entry['other_ms']:.2f} ms "
            f"({entry['other_fraction']:.1%})"
        )

    listed = read_pairs(args.data / "lfw_aligned112" / "pairs_generated.csv", root=args.data)
    as_chips = [
        Pair(
            folder / p.path_a.parent.name / p.path_a.name.replace(".jpg", ".png"),
            folder / p.path_b.parent.name / p.path_b.name.replace(".jpg", ".png"),
            p.same,
        )
        for p in listed
    ]
    pairs = (as_chips * (args.pairs // len(as_chips) + 1))[: args.pairs]
    for overlap in (True, False):
        entry = dataset_run(model, timer, pairs, 16, overlap)
        results["dataset"].append(entry)
        print(
            f"dataset {len(pairs)} pairs, K=16, overlap={overlap}: {entry['pairs_per_s']:.2f} pairs/s, "
            f"other {entry['other_fraction']:.1%}, RSS {entry['rss_mb_first_tenth']} -> "
            f"{entry['rss_mb_last_tenth']} MB (max {entry['rss_mb_max']})"
        )

    result = {
        "benchmark": "explain",
        "machine": machine_info("onnxruntime"),
        "model": model.card.name,
        "provider": model.provider,
        **results,
    }
    write_result(args.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
