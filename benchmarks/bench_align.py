"""Face detection and alignment on real faces: miss rates, fallback use and time per image.

- LFW: the aligned 112×112 crops (``lfw_aligned112``, 383 images; with ``--full``, the 7,701 images
  of the full tar, unpacked once into the cache). Each crop is re-aligned with ``aligned=False``:
  ``dlib_chip`` counts at which upsampling level dlib's detector first finds the face, how many
  crops need the aligned-crop box fallback and how many fail; ``arcface112`` counts YuNet misses.
- FRLL: the 80 raw 1350×1350 studio photos, both methods; decoding is timed separately.

Times are medians per image on one thread, with the detectors already loaded.

    FREQXFR_CACHE_DIR=/tmp/fx python benchmarks/bench_align.py --full --json results/align.json
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import sys
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import add_smoke_option, machine_info

from freqxfr.common import atomic
from freqxfr.common.errors import NoFaceError
from freqxfr.imaging import align as align_module
from freqxfr.imaging.align import MultipleFacesWarning, align
from freqxfr.imaging.images import load_image

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
LIMIT: int | None = None  # images per folder (--smoke)


class _FallbackCounter(logging.Handler):
    """Counts the aligned-crop box fallbacks that freqxfr.imaging.align logs."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "fallback" in record.getMessage():
            self.count += 1


@functools.cache
def _dlib_detector() -> Any:
    import dlib

    return dlib.get_frontal_face_detector()


def dlib_level(pixels: np.ndarray) -> int | None:
    """The first upsampling level at which dlib's detector finds a face (dlib's own threshold)."""
    detector = _dlib_detector()
    for level in (0, 1, 2):
        if len(detector(pixels, level)):
            return level
    return None


def run_method(images: list[np.ndarray], names: list[str], method: str) -> dict[str, Any]:
    counter = _FallbackCounter()
    logger = logging.getLogger(align_module.__name__)
    logger.addHandler(counter)
    logger.setLevel(logging.DEBUG)
    align(images[0], method, aligned=False)  # load the detector outside the timing
    times, misses, multiple = [], [], 0
    try:
        for pixels, name in zip(images, names, strict=True):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", MultipleFacesWarning)
                start = time.perf_counter()
                try:
                    align(pixels, method, aligned=False, name=name)
                except NoFaceError:
                    misses.append(name)
                times.append(time.perf_counter() - start)
            multiple += any(issubclass(w.category, MultipleFacesWarning) for w in caught)
    finally:
        logger.removeHandler(counter)
    n = len(images)
    return {
        "images": n,
        "no_face": len(misses),
        "no_face_rate": len(misses) / n,
        "no_face_examples": misses[:10],
        "aligned_crop_box_fallback": counter.count,
        "fallback_rate": counter.count / n,
        "multiple_faces": multiple,
        "median_ms": 1e3 * float(np.median(times)),
        "mean_ms": 1e3 * float(np.mean(times)),
    }


def lfw(folder: Path) -> dict[str, Any]:
    paths = sorted(folder.rglob("*.jpg"))[:LIMIT]
    images = [load_image(p) for p in paths]
    names = [str(p.relative_to(folder)) for p in paths]
    levels = Counter(dlib_level(pixels) for pixels in images)
    return {
        "folder": str(folder),
        "dlib_first_found_at_upsampling": {str(k): levels[k] for k in (0, 1, 2, None)},
        "dlib_chip": run_method(images, names, "dlib_chip"),
        "arcface112": run_method(images, names, "arcface112"),
    }


def frll(folder: Path) -> dict[str, Any]:
    paths = sorted(folder.glob("*/*.jpg"))[:LIMIT]
    start = time.perf_counter()
    images = [load_image(p) for p in paths]
    decode_ms = 1e3 * (time.perf_counter() - start) / len(paths)
    names = [str(p.relative_to(folder)) for p in paths]
    return {
        "folder": str(folder),
        "decode_ms_per_image": decode_ms,
        "dlib_chip": run_method(images, names, "dlib_chip"),
        "arcface112": run_method(images, names, "arcface112"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--full", action="store_true", help="also the 7,701-image LFW tar")
    parser.add_argument("--json", type=Path, help="write the results here")
    add_smoke_option(parser)
    args = parser.parse_args()
    global LIMIT
    LIMIT = 6 if args.smoke else None

    results: dict[str, Any] = {"machine": machine_info("dlib-bin", "opencv-python-headless")}
    results["lfw_aligned112"] = lfw(args.data / "lfw_aligned112" / "images")
    if args.full:
        from bench_accuracy import unpack_lfw  # one place unpacks the tar into the cache

        results["lfw_full"] = lfw(unpack_lfw(args.data / "lfw_aligned112_full.tar"))
    results["frll"] = frll(args.data / "frll")
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        atomic.write_text(args.json, text + "\n")


if __name__ == "__main__":
    main()
