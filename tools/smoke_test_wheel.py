"""Smoke test of an installed freqxfr (a wheel, or the sdist built here) in its own venv.

Needs only the installed package, its bundled demo photos and ``onnxruntime`` (``freqxfr[cpu]``);
no test data, no source tree. Run it from outside the source tree:

    python tools/smoke_test_wheel.py [--require-no-compiler]

Checks, each with one line of output, exit status 1 on the first failure:
1. freqxfr is imported from the installed package, not from a source tree;
2. (``--require-no-compiler``) no C/C++ compiler is on PATH, so nothing could have been built here;
3. ``freqxfr --version`` prints the installed distribution's version;
4. the ``cpp`` core matches the ``numpy`` reference in every mode on the demo photos at 112×112 and
   150×150, with FFTW loaded from outside the wheel (pyfftw's wheel);
5. ``freqxfr demo`` runs, matches the genuine pair, rejects the impostor pair, writes the reports.

Also cibuildwheel's ``test-command`` (pyproject.toml), so Docker builds run the same test.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path

COMPILERS = ("cc", "c++", "gcc", "g++", "clang", "clang++", "zig")
MODES = ("delete", "keep", "cumulative_delete", "cumulative_keep")


class SmokeFailure(Exception):
    pass


def check(ok: bool, message: str) -> None:
    if not ok:
        raise SmokeFailure(message)


def check_installed() -> Path:
    import freqxfr

    where = Path(freqxfr.__file__).resolve().parent
    check(
        "site-packages" in where.parts,
        f"freqxfr was imported from {where}, not from an installed wheel",
    )
    print(f"ok  freqxfr {version('freqxfr')} imported from {where}")
    return where


def check_no_compiler() -> None:
    found = {c: shutil.which(c) for c in COMPILERS if shutil.which(c)}
    check(not found, f"compilers on PATH, so the install could have built code: {found}")
    print(f"ok  no compiler on PATH ({os.environ.get('PATH', '')})")


def console_script() -> str:
    # The venv's own script, next to its python: PATH may not name the venv.
    script = Path(sys.executable).parent / "freqxfr"
    return str(script) if script.exists() else "freqxfr"


def check_version() -> None:
    run = subprocess.run(
        [console_script(), "--version"], capture_output=True, text=True, check=False
    )
    want = f"freqxfr {version('freqxfr')}"
    check(
        run.returncode == 0 and run.stdout.strip() == want,
        f"`freqxfr --version` gave status {run.returncode}, {run.stdout.strip()!r} "
        f"{run.stderr.strip()!r}; expected {want!r}",
    )
    print(f"ok  freqxfr --version: {want}")


def check_parity(package: Path) -> None:
    import numpy as np
    from PIL import Image

    from freqxfr import BandSchedule, mask_bands
    from freqxfr.core import fftw

    photos = sorted((package / "demo_data").glob("*.jpg"))
    check(len(photos) == 3, f"expected 3 bundled demo photos, found {photos}")
    library = Path(fftw.compiled_core().fftw_library_path()).resolve()
    check(package not in library.parents, f"FFTW was loaded from inside the wheel: {library}")
    schedule = BandSchedule.rings(8)
    worst = 0.0
    for size in (112, 150):
        faces = np.stack(
            [
                np.asarray(Image.open(p).convert("RGB").resize((size, size), Image.BICUBIC))
                for p in photos
            ]
        )
        for mode in MODES:
            got = mask_bands(faces, schedule, mode, "cpp", planner="estimate")
            want = mask_bands(faces, schedule, mode, "numpy")
            # Relative to the result's scale, as the test suite's cpp-vs-numpy checks.
            error = float(np.abs(got - want).max() / np.abs(want).max())
            check(
                error <= 1e-4,
                f"cpp differs from numpy by {error:.2e} (relative) in {mode} at {size}×{size}",
            )
            worst = max(worst, error)
    print(
        f"ok  cpp matches numpy in {len(MODES)} modes at 112 and 150 px "
        f"(worst {worst:.1e} relative); FFTW from {library}"
    )


def check_demo(out: Path) -> None:
    run = subprocess.run(
        [console_script(), "demo", "--out", str(out)], capture_output=True, text=True, check=False
    )
    check(
        run.returncode == 0,
        f"`freqxfr demo` failed with status {run.returncode}:\n"
        f"{run.stdout[-2000:]}{run.stderr[-2000:]}",
    )
    decisions = {}
    for pair in ("genuine", "impostor"):
        record = json.loads((out / pair / "explanation.json").read_text())
        check((out / pair / "report.html").is_file(), f"freqxfr demo wrote no {pair}/report.html")
        decisions[pair] = record["decision"]
    check(
        decisions == {"genuine": True, "impostor": False},
        f"freqxfr demo decided {decisions}; expected a match and a non-match",
    )
    print(f"ok  freqxfr demo: genuine pair matched, impostor rejected, reports in {out}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--require-no-compiler", action="store_true", help="fail if a C/C++ compiler is on PATH"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="freqxfr-smoke-") as tmp:
        # A fresh cache: the model conversion and FFTW wisdom are done as on first use.
        os.environ.setdefault("FREQXFR_CACHE_DIR", str(Path(tmp) / "cache"))
        try:
            package = check_installed()
            if args.require_no_compiler:
                check_no_compiler()
            check_version()
            check_parity(package)
            check_demo(Path(tmp) / "demo")
        except SmokeFailure as exc:
            print(f"FAIL {exc}", file=sys.stderr)
            return 1
    print("smoke test passed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
