"""freqxfr: explain face-verification decisions in the frequency domain.

The data path, one module per station:
image (``images``) → alignment (``align``) → band masks (``bands``, ``masking``; C++ core) →
model (``verifier``, ONNX Runtime) → scores → explanation (``explain``) → report (``report``).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from .bands import Band, BandSchedule
from .errors import FreqxfrError, ImageError, InputError, ModelError, NoFaceError
from . import fftw
from .masking import available_backends, mask_bands

try:
    __version__ = version("freqxfr")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0+unknown"

__all__ = [
    "Band",
    "BandSchedule",
    "FreqxfrError",
    "ImageError",
    "InputError",
    "ModelError",
    "NoFaceError",
    "__version__",
    "available_backends",
    "mask_bands",
]
