"""Masking speed of the portable wheel's core (zig/clang, libc++, glibc 2.17) next to the local build.

Both ``_core`` builds are loaded into one process (the portable one from a wheel of ``nox -s
wheels``, under another module name) and take turns within each round on the same faces, the same
FFTW library and the same plans, so load from other processes hits them alike. Reports µs per
masked image per build and size (fastest round), both wall-clock and CPU time of the process (all
its threads; on a busy shared machine CPU time is what preemption does not inflate), the ratios
portable/local, and the largest difference between their outputs.

    python benchmarks/bench_portable.py [--wheel dist/freqxfr-...manylinux...whl] --json results/portable.json
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import statistics
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from types import ModuleType

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import add_smoke_option, machine_info
from bench_masking import DATA, MEAN, STD, load_faces

import freqxfr
from freqxfr import BandSchedule, mask_bands
from freqxfr.core import fftw
from freqxfr.core.backends import default_threads

ROOT = Path(__file__).resolve().parents[1]


def default_wheel() -> Path | None:
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    found = sorted((ROOT / "dist").glob(f"freqxfr-*-{tag}-{tag}-*manylinux*.whl"))
    return found[-1] if found else None


def load_portable_core(wheel: Path, folder: Path) -> ModuleType:
    """The wheel's ``_core``, imported from ``folder`` as a module of its own."""
    with zipfile.ZipFile(wheel) as zf:
        (member,) = [n for n in zf.namelist() if re.fullmatch(r"freqxfr/core/_core\..*\.so", n)]
        path = Path(zf.extract(member, folder))
    # The last name part picks the init function (PyInit__core); the prefix keeps it apart.
    spec = importlib.util.spec_from_file_location("freqxfr_portable._core", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def compiler_of(path: Path) -> dict[str, str]:
    """The compiler named in the .comment section (gcc writes one; zig's clang does not) and the
    C++ library, told apart by libc++'s inline namespace ``std::__1`` in mangled names."""
    data = path.read_bytes()
    found = re.findall(rb"(GCC: \([^)]*\) [\d.]+|clang version [\d.]+[^\x00]*)", data)
    return {
        "compiler": " / ".join(sorted({f.decode(errors="replace").strip() for f in found}))
        or "not recorded (no .comment section)",
        "cxx_library": "libc++ (static)" if b"NSt3__1" in data else "libstdc++ (shared)",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--wheel",
        type=Path,
        default=default_wheel(),
        help="portable wheel for this Python (default: dist/…manylinux…whl)",
    )
    parser.add_argument("--json", type=Path, help="write results here")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--bands", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--threads", type=int, default=default_threads())
    parser.add_argument("--sizes", default="112,150")
    add_smoke_option(parser)
    args = parser.parse_args()
    if args.smoke:
        args.images, args.repeats, args.sizes = 2, 1, "112"
    if args.wheel is None or not args.wheel.is_file():
        # Not an error: `nox -s bench` runs every benchmark, and wheels are built separately.
        print(
            "skipped: no portable wheel for this Python in dist/ (run `nox -s wheels` or pass "
            "--wheel)"
        )
        return 0

    local = fftw.compiled_core()
    tmp = tempfile.TemporaryDirectory(prefix="freqxfr-portable-")
    portable = load_portable_core(args.wheel, Path(tmp.name))
    portable.load_fftw(local.fftw_library_path())  # the same FFTW, so the same plans and wisdom
    builds = {"local": local, "portable": portable}
    paths = {"local": Path(local.__file__), "portable": Path(portable.__file__)}
    schedule = BandSchedule.rings(args.bands)

    def use(build: str) -> None:
        # freqxfr.core.fftw.compiled_core() reads the package attribute on every call.
        freqxfr.core._core = builds[build]

    entries, ratios = [], {}
    for size in (int(s) for s in args.sizes.split(",")):
        x = load_faces(args.data, args.images, size)
        masked_images = args.images * args.bands
        outs = {b: np.zeros((args.images, args.bands, 3, size, size), np.float32) for b in builds}

        def run(build: str, x: np.ndarray = x, outs: dict = outs) -> None:
            use(build)
            mask_bands(
                x, schedule, "delete", "cpp", outs[build], mean=MEAN, std=STD, threads=args.threads
            )

        for b in builds:
            run(b)  # plans, page faults
        diff = float(np.abs(outs["local"] - outs["portable"]).max())
        timings: dict[str, list[float]] = {b: [] for b in builds}
        cpu: dict[str, list[float]] = {b: [] for b in builds}
        for round_ in range(args.repeats):
            # Interleaved, in alternating order: both builds see the same machine load, and
            # neither always runs right after the other.
            for b in list(builds) if round_ % 2 == 0 else list(builds)[::-1]:
                t0, c0 = time.perf_counter(), time.process_time()
                run(b)
                timings[b].append(time.perf_counter() - t0)
                cpu[b].append(time.process_time() - c0)
        us = {b: min(t) / masked_images * 1e6 for b, t in timings.items()}
        cpu_us = {b: min(t) / masked_images * 1e6 for b, t in cpu.items()}
        for b in builds:
            entries.append(
                {
                    "build": b,
                    "size": size,
                    "images": args.images,
                    "bands": args.bands,
                    "threads": args.threads,
                    "us_per_masked_image": round(us[b], 2),
                    "us_per_masked_image_median": round(
                        statistics.median(timings[b]) / masked_images * 1e6, 2
                    ),
                    "cpu_us_per_masked_image": round(cpu_us[b], 2),
                }
            )
            print(f"{size}px {b:8s} {us[b]:8.1f} µs/masked image wall, {cpu_us[b]:8.1f} µs CPU")
        ratios[str(size)] = {
            "portable_over_local": round(us["portable"] / us["local"], 3),
            "portable_over_local_cpu": round(cpu_us["portable"] / cpu_us["local"], 3),
            "max_abs_output_difference": diff,
        }
        print(
            f"{size}px portable/local {us['portable'] / us['local']:.3f} wall, "
            f"{cpu_us['portable'] / cpu_us['local']:.3f} CPU; outputs differ by at most {diff:.2e}"
        )
    use("local")
    result = {
        "benchmark": "portable",
        "machine": machine_info("pyFFTW"),
        "fftw_library": local.fftw_library_path(),
        "builds": {b: {"file": str(p), **compiler_of(p)} for b, p in paths.items()},
        "wheel": args.wheel.name,
        "schedule": schedule.to_dict(),
        "mode": "delete",
        "output": "normalised NCHW float32, written into a reused buffer",
        "entries": entries,
        "ratios": ratios,
    }
    for b, info in result["builds"].items():
        print(f"{b}: {info['compiler']}, {info['cxx_library']}")
    if args.json:
        from freqxfr.common import atomic

        atomic.write_json(args.json, result)
        print(f"wrote {args.json}")
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
