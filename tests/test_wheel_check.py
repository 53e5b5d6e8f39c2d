"""The checks `nox -s wheels` runs on every wheel and sdist before it may be published.

The wheels here are zip files assembled from the real package sources (``python/freqxfr``); the
``_core`` entry holds placeholder bytes, since these checks read names, metadata and hashes only.
Building real wheels takes minutes per Python and is left to ``nox -s wheels``.
"""

from __future__ import annotations

import base64
import hashlib
import io
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "python" / "freqxfr"
sys.path.insert(0, str(REPO / "tools"))
import wheel_check  # noqa: E402

pytestmark = pytest.mark.unit

DIST_INFO = "freqxfr-0.1.0.dist-info"
GOOD_NAME = "freqxfr-0.1.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
METADATA = (
    "Metadata-Version: 2.4\nName: freqxfr\nVersion: 0.1.0\n"
    "License-Expression: BSD-3-Clause AND CC-BY-4.0\nLicense-File: LICENSE\n"
    "License-File: python/freqxfr/demo_data/ATTRIBUTION.md\n"
)


def good_files() -> dict[str, bytes]:
    files = {
        name: (PACKAGE.parent / name).read_bytes()
        for name in wheel_check.expected_package_files(PACKAGE)
    }
    files["freqxfr/core/_core.cpython-311-x86_64-linux-gnu.so"] = b"\x7fELF placeholder"
    files[f"{DIST_INFO}/METADATA"] = METADATA.encode()
    files[f"{DIST_INFO}/WHEEL"] = b"Wheel-Version: 1.0\n"
    files[f"{DIST_INFO}/entry_points.txt"] = b"[console_scripts]\nfreqxfr = freqxfr.cli:main\n"
    files[f"{DIST_INFO}/licenses/LICENSE"] = (REPO / "LICENSE").read_bytes()
    files[f"{DIST_INFO}/licenses/python/freqxfr/demo_data/ATTRIBUTION.md"] = (
        PACKAGE / "demo_data" / "ATTRIBUTION.md"
    ).read_bytes()
    return files


def write_wheel(
    path: Path, files: dict[str, bytes], record: dict[str, bytes] | None = None
) -> Path:
    """A wheel with a RECORD of ``record`` (default: the files themselves)."""
    rows = []
    for name, data in (files if record is None else record).items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        rows.append(f"{name},sha256={digest},{len(data)}")
    rows.append(f"{DIST_INFO}/RECORD,,")
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
        zf.writestr(f"{DIST_INFO}/RECORD", "\n".join(rows) + "\n")
    return path


def test_a_complete_wheel_passes(tmp_path: Path) -> None:
    """Guards against a checker so strict that no real wheel passes (the build would always fail)."""
    wheel = write_wheel(tmp_path / GOOD_NAME, good_files())
    assert wheel_check.wheel_problems(wheel, PACKAGE, "3.11") == []


def _drop(prefix: str):
    return lambda files: {k: v for k, v in files.items() if not k.startswith(prefix)}


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (_drop("freqxfr/core/_core.cpython"), "expected one freqxfr/core/_core extension"),
        (
            _drop("freqxfr/demo_data/frll_001_smiling.jpg"),
            "missing freqxfr/demo_data/frll_001_smiling",
        ),
        (_drop("freqxfr/presets/"), "missing freqxfr/presets/dlib_resnet.toml"),
        (_drop(f"{DIST_INFO}/licenses/LICENSE"), f"missing {DIST_INFO}/licenses/LICENSE"),
        (_drop(f"{DIST_INFO}/licenses/python"), "licenses/python/freqxfr/demo_data/ATTRIBUTION.md"),
        (
            lambda f: {**f, "freqxfr/__pycache__/cli.cpython-311.pyc": b"x"},
            "unexpected file freqxfr/__pycache__",
        ),
        (lambda f: {**f, "tests/conftest.py": b"x"}, "unexpected file tests/conftest.py"),
        # What auditwheel grafts when _core links a non-system library (libstdc++ of the build host).
        (
            lambda f: {**f, "freqxfr.libs/libstdc++-1a2b3c4d.so.6.0.33": b"x"},
            "unexpected file freqxfr.libs/",
        ),
        (
            lambda f: {**f, "freqxfr/core/_core.cpython-312-x86_64-linux-gnu.so": b"x"},
            "unexpected file freqxfr/core/_core.cpython-312",
        ),
        (
            lambda f: {
                **f,
                f"{DIST_INFO}/METADATA": METADATA.replace(
                    "License-Expression: BSD-3-Clause AND CC-BY-4.0\n", ""
                ).encode(),
            },
            "METADATA lacks 'License-Expression",
        ),
    ],
)
def test_wheel_problems_are_found(tmp_path: Path, change, problem: str) -> None:
    """Guards against publishing a wheel that lacks its core, photos, presets or licences, or
    carries stray files (caches, tests, grafted libraries, a second core)."""
    wheel = write_wheel(tmp_path / GOOD_NAME, change(good_files()))
    problems = wheel_check.wheel_problems(wheel, PACKAGE, "3.11")
    assert any(problem in p for p in problems), problems


def test_record_must_match_the_contents(tmp_path: Path) -> None:
    """Guards against a wheel whose RECORD was not rewritten after a file changed (pip refuses it)."""
    files = good_files()
    stale = {**files, "freqxfr/cli/__init__.py": b"# an older cli\n"}
    wheel = write_wheel(tmp_path / GOOD_NAME, files, record=stale)
    assert wheel_check.wheel_problems(wheel, PACKAGE, "3.11") == [
        "freqxfr/cli/__init__.py: hash differs from RECORD"
    ]


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("freqxfr-0.1.0-cp311-cp311-linux_x86_64.whl", "linux_x86_64 is not manylinux"),
        ("freqxfr-0.1.0-cp311-cp311-manylinux_2_28_x86_64.whl", "needs glibc 2.28 > 2.17"),
        ("freqxfr-0.1.0-cp311-cp311-musllinux_1_2_x86_64.whl", "is not manylinux"),
        ("freqxfr-0.1.0-cp312-cp312-manylinux_2_17_x86_64.whl", "expected cp311-cp311"),
    ],
)
def test_tags_beyond_manylinux_2_17_are_refused(name: str, problem: str) -> None:
    """Guards against an unrepaired or too-new wheel (the host's glibc 2.34) reaching an index."""
    assert any(problem in p for p in wheel_check.tag_problems(name, "3.11"))


@pytest.mark.parametrize(
    "name",
    [
        "freqxfr-0.1.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        "freqxfr-0.1.0-cp311-cp311-manylinux_2_5_x86_64.manylinux1_x86_64.whl",
    ],
)
def test_tags_up_to_manylinux_2_17_are_accepted(name: str) -> None:
    assert wheel_check.tag_problems(name, "3.11") == []


def write_sdist(path: Path, names: list[str]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name in names:
            info = tarfile.TarInfo(f"freqxfr-0.1.0/{name}")
            info.size = 1
            tf.addfile(info, io.BytesIO(b"x"))
    return path


def test_sdist_checks(tmp_path: Path) -> None:
    """Guards against an sdist that cannot build (no LICENSE, no C++ sources) or that carries
    build leftovers (a compiled core, benchmark results)."""
    good = list(wheel_check.SDIST_REQUIRED)
    assert wheel_check.sdist_problems(write_sdist(tmp_path / "good.tar.gz", good)) == []
    bad = [n for n in good if n not in ("LICENSE", "cpp/band_masker.cpp")]
    bad += ["build/cp311/_core.so", "benchmarks/results/masking.json"]
    problems = wheel_check.sdist_problems(write_sdist(tmp_path / "bad.tar.gz", bad))
    assert sorted(problems) == sorted(
        [
            "missing LICENSE",
            "missing cpp/band_masker.cpp",
            "unexpected file build/cp311/_core.so",
            "unexpected file benchmarks/results/masking.json",
        ]
    )


def test_the_repository_declares_its_licence_files() -> None:
    """Guards against license-files in pyproject.toml naming files that don't exist (the wheel
    would then ship without them)."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["license"] == wheel_check.LICENSE_EXPRESSION
    assert tuple(project["license-files"]) == wheel_check.LICENSE_FILES
    assert all((REPO / f).is_file() for f in wheel_check.LICENSE_FILES)
