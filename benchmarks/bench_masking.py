"""Masking speed and memory: every backend on the same work, side by side in one process.

The work (issue 2): 64 real LFW faces at 112×112×3 and resized to 150×150×3, K = 16 rings,
delete mode, output normalised for a model. Reports µs per masked image (all channels), the floor
(one full FFTW 2-D c2r per masked plane, same threads, same run), ratios and peak extra memory.

    python benchmarks/bench_masking.py --json results/masking.json
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import PeakMemory, machine_info

import freqxfr
from freqxfr import BandSchedule, mask_bands
from freqxfr.backends import default_threads

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
MEAN, STD = (122.782, 117.001, 104.298), 256.0


def load_faces(data: Path, n: int, size: int) -> np.ndarray:
    paths = sorted((data / "lfw_aligned112" / "images").rglob("*.jpg"))[:n]
    faces = [Image.open(p).convert("RGB") for p in paths]
    if size != 112:
        faces = [f.resize((size, size), Image.BICUBIC) for f in faces]
    return np.stack([np.asarray(f) for f in faces])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write results here")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--bands", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=default_threads())
    parser.add_argument("--sizes", default="112,150")
    parser.add_argument("--backends", default="cpp,numpy,scipy,pyfftw")
    args = parser.parse_args()

    schedule = BandSchedule.rings(args.bands)
    core = freqxfr.fftw.compiled_core()
    backends = [b for b in args.backends.split(",") if b in freqxfr.available_backends()]
    entries, floors, ratios = [], [], {}
    for size in (int(s) for s in args.sizes.split(",")):
        x = load_faces(args.data, args.images, size)
        masked_images = args.images * args.bands
        per_backend = {}
        # Timing writes into one reused, already-touched buffer, as a pipeline feeding a model
        # does. Backends and the floor take turns within each round, so that load from other
        # processes on a shared machine hits them alike; each keeps its fastest round.
        reused = np.zeros((args.images, args.bands, 3, size, size), np.float32)
        planes = masked_images * 3
        flags = core.PLANNER_FLAGS["measure"]

        def runner(backend: str, out: np.ndarray | None = reused, x: np.ndarray = x):
            return lambda: mask_bands(x, schedule, "delete", backend, out, mean=MEAN, std=STD,
                                      threads=args.threads)

        def floor(size: int = size, planes: int = planes, flags: int = flags) -> float:
            return core.c2r_floor_seconds(size, size, planes, args.threads, flags)

        timings: dict[str, list[float]] = {b: [] for b in [*backends, "floor"]}
        for b in backends:
            runner(b)()  # plans, caches, page faults
        floor()
        for round_ in range(args.repeats):
            for b in backends:
                if b == "numpy" and round_ > 0:
                    continue  # the slow reference: one round is plenty
                t0 = time.perf_counter()
                runner(b)()
                timings[b].append(time.perf_counter() - t0)
            timings["floor"].append(floor())
        for backend in backends:
            seconds = min(timings[backend])
            with PeakMemory() as mem:
                result = runner(backend, None)()
            us = seconds / masked_images * 1e6
            per_backend[backend] = us
            entries.append({
                "backend": backend,
                "size": size,
                "images": args.images,
                "bands": args.bands,
                "threads": args.threads,
                "us_per_masked_image": round(us, 2),
                "us_per_masked_image_median": round(
                    statistics.median(timings[backend]) / masked_images * 1e6, 2),
                "masked_images_per_s": round(masked_images / seconds, 1),
                "peak_extra_mb": round(mem.peak_extra_mb, 1),
                "output_mb": round(result.nbytes / 2**20, 1),
            })
            print(f"{size}px {backend:7s} {us:8.1f} µs/masked image  peak +{mem.peak_extra_mb:.0f} MB "
                  f"(output {result.nbytes / 2**20:.0f} MB)")
            del result
        floor_us = min(timings["floor"]) / masked_images * 1e6
        floors.append({"size": size, "threads": args.threads, "us_per_masked_image": round(floor_us, 2)})
        print(f"{size}px floor   {floor_us:8.1f} µs/masked image (one full c2r per plane)")
        if "cpp" in per_backend:
            cpp = per_backend["cpp"]
            peers = {b: per_backend[b] for b in ("scipy", "pyfftw") if b in per_backend}
            r = {f"{b}_over_cpp": round(per_backend[b] / cpp, 2) for b in per_backend if b != "cpp"}
            if peers:
                best = min(peers, key=peers.get)
                r["best_peer"] = best
                r["best_peer_over_cpp"] = round(peers[best] / cpp, 2)
            r["cpp_over_floor"] = round(cpp / floor_us, 3)
            ratios[str(size)] = r
            print(f"{size}px ratios  {r}")
        freqxfr.fftw.save_wisdom()

    result = {
        "benchmark": "masking",
        "machine": machine_info("scipy", "pyFFTW"),
        "fftw_library": core.fftw_library_path(),
        "schedule": schedule.to_dict(),
        "mode": "delete",
        "output": "normalised NCHW float32, written into a reused buffer",
        "entries": entries,
        "floor": floors,
        "ratios": ratios,
    }
    if args.json:
        from freqxfr import atomic

        atomic.write_json(args.json, result)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
