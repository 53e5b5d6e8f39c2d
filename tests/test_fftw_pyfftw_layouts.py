"""Finding libfftw3f in both layouts of pyfftw's wheel (found by the Python 3.10 wheel smoke test)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import freqxfr

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("libs_folder", ["pyfftw.libs", "pyFFTW.libs"])
def test_libfftw3f_is_found_in_either_libs_folder(tmp_path: Path, libs_folder: str) -> None:
    """Guards against looking only in "pyfftw.libs": pyFFTW 0.15.0, the newest wheel for Python
    3.10, keeps its libraries in "pyFFTW.libs", and the cpp backend was then unavailable there."""
    real = freqxfr.core.fftw.find_library()
    site = tmp_path / "site"
    (site / "pyfftw").mkdir(parents=True)
    (site / "pyfftw" / "__init__.py").write_text("")
    (site / libs_folder).mkdir()
    # The real library, plus the OpenMP variant that must not be picked.
    lib = shutil.copy(real, site / libs_folder / "libfftw3f-0123abcd.so.3.5.5")
    shutil.copy(real, site / libs_folder / "libfftw3f_omp-4567ef01.so.3.5.5")
    env = {k: v for k, v in os.environ.items() if k != "FREQXFR_FFTW_LIBRARY"}
    env["PYTHONPATH"] = os.pathsep.join([str(site), *sys.path])  # this pyfftw comes first
    # A fresh interpreter: the real pyfftw may already be imported here.
    found = subprocess.run(
        [
            sys.executable,
            "-c",
            "import freqxfr.core.fftw as f; print(f.find_library()); "
            "print(f.compiled_core().fftw_library_path())",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert found == [str(lib), str(lib)]
