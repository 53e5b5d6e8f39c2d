"""Checks for a built wheel and sdist: platform tag, contents, licences, RECORD.

Used by ``tools/build_wheels.py`` (``nox -s wheels``) after ``auditwheel repair``, and by
``tests/test_wheel_check.py``. Needs only the standard library, so it runs in any venv.

A wheel passes when its tag is manylinux_2_17 (manylinux2014) or older, it holds exactly the files of
``python/freqxfr`` plus one ``_core`` extension for its own CPython, its ``dist-info`` holds the
metadata files and the licence files (nothing grafted by auditwheel: FFTW is dlopened from pyfftw's
wheel and libc++ is linked statically), and its RECORD matches its contents byte for byte.
"""

from __future__ import annotations

import base64
import hashlib
import re
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

# Newest glibc a portable wheel may need (CentOS 7 / manylinux2014).
MAX_GLIBC = (2, 17)
# The legacy aliases and the glibc they stand for (PEP 600).
_LEGACY = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}
LICENSE_EXPRESSION = "BSD-3-Clause AND CC-BY-4.0"
# dist-info entries besides the licence files; anything else there is unexpected.
DIST_INFO_FILES = {"METADATA", "WHEEL", "RECORD", "entry_points.txt"}
# Licence files the metadata must declare and the wheel must carry (PEP 639: dist-info/licenses/).
LICENSE_FILES = ("LICENSE", "python/freqxfr/demo_data/ATTRIBUTION.md")
# Files a wheel of freqxfr cannot work without, checked even if the source tree lost them.
REQUIRED_PACKAGE_FILES = (
    "freqxfr/__init__.py",
    "freqxfr/cli/__init__.py",
    "freqxfr/py.typed",
    "freqxfr/core/_core.pyi",
    "freqxfr/demo_data/ATTRIBUTION.md",
    "freqxfr/demo_data/frll_001_neutral.jpg",
    "freqxfr/demo_data/frll_001_smiling.jpg",
    "freqxfr/demo_data/frll_002_neutral.jpg",
    "freqxfr/presets/dlib_resnet.toml",
    "freqxfr/presets/sface.toml",
    "freqxfr/presets/arcface.toml",
    "freqxfr/schemas/explanation.schema.json",
    "freqxfr/schemas/run.schema.json",
    "freqxfr/schemas/summary.schema.json",
    "freqxfr/schemas/result.schema.json",
    # The reports' Jinja2 templates (package data): every report renders through them.
    "freqxfr/reports/templates/base.html.j2",
    "freqxfr/reports/templates/table.html.j2",
    "freqxfr/reports/templates/style.css",
    "freqxfr/reports/templates/images.js",
    "freqxfr/reports/templates/pair.html.j2",
    "freqxfr/reports/templates/dataset.html.j2",
    "freqxfr/reports/templates/compare.html.j2",
    "freqxfr/reports/templates/crossres.html.j2",
    "freqxfr/reports/templates/morph.html.j2",
    "freqxfr/reports/templates/regions.html.j2",
    "freqxfr/reports/templates/failure.html.j2",
)
# What the sdist must hold to build, and what must never be in it.
SDIST_REQUIRED = (
    "PKG-INFO",
    "pyproject.toml",
    "CMakeLists.txt",
    "LICENSE",
    "README.md",
    "cpp/bindings.cpp",
    "cpp/band_masker.cpp",
    "cpp/fftw_loader.cpp",
    "tools/smoke_test_wheel.py",
    *LICENSE_FILES[1:],
    *(f"python/{f}" for f in REQUIRED_PACKAGE_FILES),
)
_SDIST_FORBIDDEN = re.compile(
    r"(^|/)(build|dist|\.nox|\.git|__pycache__|\.pytest_cache)(/|$)"
    r"|^benchmarks/results/|\.(so|pyc|whl)$"
)


class WheelProblem(Exception):
    """A wheel or sdist that must not be published; the message lists every problem found."""


def parse_wheel_name(name: str) -> tuple[str, str, str, str, list[str]]:
    """(distribution, version, python tag, abi tag, platform tags) of a wheel file name."""
    parts = name.removesuffix(".whl").split("-")
    if not name.endswith(".whl") or len(parts) not in (5, 6):
        raise WheelProblem(f"{name}: not a wheel file name")
    dist, version, py, abi, plat = parts[0], parts[1], parts[-3], parts[-2], parts[-1]
    return dist, version, py, abi, plat.split(".")


def glibc_of_tag(tag: str) -> tuple[int, int] | None:
    """The glibc a manylinux platform tag stands for, or None for any other tag."""
    m = re.fullmatch(r"manylinux_(\d+)_(\d+)_x86_64", tag)
    if m:
        return int(m[1]), int(m[2])
    m = re.fullmatch(r"(manylinux1|manylinux2010|manylinux2014)_x86_64", tag)
    return _LEGACY[m[1]] if m else None


def tag_problems(name: str, python: str | None = None) -> list[str]:
    """Why this wheel name is not a portable x86_64 manylinux wheel for ``python`` (e.g. "3.12")."""
    _, _, py, abi, plats = parse_wheel_name(name)
    problems = []
    for tag in plats:
        glibc = glibc_of_tag(tag)
        if glibc is None:
            problems.append(f"platform tag {tag} is not manylinux x86_64")
        elif glibc > MAX_GLIBC:
            problems.append(
                f"platform tag {tag} needs glibc {glibc[0]}.{glibc[1]} > "
                f"{MAX_GLIBC[0]}.{MAX_GLIBC[1]}"
            )
    if python is not None:
        want = "cp" + python.replace(".", "")
        if (py, abi) != (want, want):
            problems.append(f"tags {py}-{abi}, expected {want}-{want}")
    return problems


def expected_package_files(package_dir: Path) -> set[str]:
    """Wheel paths of every source file of the package (``python/freqxfr``), caches excluded."""
    root = package_dir.parent
    return {
        p.relative_to(root).as_posix()
        for p in package_dir.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".pyc", ".so")
    }


def _record_problems(zf: zipfile.ZipFile, record_name: str) -> list[str]:
    rows = {}
    for line in zf.read(record_name).decode().splitlines():
        if line:
            path, digest, _size = line.rsplit(",", 2)
            rows[path] = digest
    problems = []
    for name in zf.namelist():
        if name.endswith("/"):
            continue
        if name not in rows:
            problems.append(f"{name} is not in RECORD")
        elif name != record_name:
            algo, _, want = rows[name].partition("=")
            got = base64.urlsafe_b64encode(hashlib.new(algo, zf.read(name)).digest()).rstrip(b"=")
            if got.decode() != want:
                problems.append(f"{name}: hash differs from RECORD")
    problems += [f"RECORD lists missing {p}" for p in rows if p not in zf.namelist()]
    return problems


def wheel_problems(wheel: Path, package_dir: Path, python: str | None = None) -> list[str]:
    """Every reason ``wheel`` must not be published (empty list: it is fine)."""
    problems = tag_problems(wheel.name, python)
    dist, version, py, _, _ = parse_wheel_name(wheel.name)
    dist_info = f"{dist}-{version}.dist-info"
    core = re.compile(
        rf"freqxfr/core/_core\.cpython-{py[2:]}-x86_64-linux-gnu\.so"
        if python
        else r"freqxfr/core/_core\.cpython-\d+-x86_64-linux-gnu\.so"
    )
    expected = expected_package_files(package_dir)
    with zipfile.ZipFile(wheel) as zf:
        names = {n for n in zf.namelist() if not n.endswith("/")}
        cores = {n for n in names if core.fullmatch(n)}
        if len(cores) != 1:
            problems.append(
                f"expected one freqxfr/core/_core extension for {py}, found {sorted(cores)}"
            )
        licences = {f"{dist_info}/licenses/{f}" for f in LICENSE_FILES}
        allowed = expected | cores | licences | {f"{dist_info}/{f}" for f in DIST_INFO_FILES}
        problems += [f"unexpected file {n}" for n in sorted(names - allowed)]
        for need in sorted(
            (
                expected
                | set(REQUIRED_PACKAGE_FILES)
                | licences
                | {f"{dist_info}/{f}" for f in DIST_INFO_FILES}
            )
            - names
        ):
            problems.append(f"missing {need}")
        if f"{dist_info}/METADATA" in names:
            meta = zf.read(f"{dist_info}/METADATA").decode()
            if f"License-Expression: {LICENSE_EXPRESSION}" not in meta:
                problems.append(f"METADATA lacks 'License-Expression: {LICENSE_EXPRESSION}'")
            problems += [
                f"METADATA lacks 'License-File: {f}'"
                for f in LICENSE_FILES
                if f"License-File: {f}" not in meta
            ]
        if f"{dist_info}/RECORD" in names:
            problems += _record_problems(zf, f"{dist_info}/RECORD")
    return problems


def sdist_problems(sdist: Path) -> list[str]:
    """Every reason ``sdist`` cannot build a clean wheel (empty list: it is fine)."""
    with tarfile.open(sdist) as tf:
        members = [m.name for m in tf.getmembers() if m.isfile()]
    top = {PurePosixPath(m).parts[0] for m in members}
    if len(top) != 1:
        return [f"sdist must unpack into one folder, found {sorted(top)}"]
    rel = {m.split("/", 1)[1] for m in members}
    problems = [f"missing {f}" for f in SDIST_REQUIRED if f not in rel]
    problems += [f"unexpected file {f}" for f in sorted(rel) if _SDIST_FORBIDDEN.search(f)]
    return problems


def check_wheel(wheel: Path, package_dir: Path, python: str | None = None) -> None:
    problems = wheel_problems(wheel, package_dir, python)
    if problems:
        raise WheelProblem(f"{wheel.name}:\n  " + "\n  ".join(problems))


def check_sdist(sdist: Path) -> None:
    problems = sdist_problems(sdist)
    if problems:
        raise WheelProblem(f"{sdist.name}:\n  " + "\n  ".join(problems))
