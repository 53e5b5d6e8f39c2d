"""freqxfr: explain face-verification decisions in the frequency domain.

The data path, one module per station:
image (``images``) → alignment (``align``) → band masks (``bands``, ``masking``; C++ core) →
model (``verifier``, ONNX Runtime) → scores → explanation (``explanations``) → report (``report``).
``freqxfr.explain(a, b)`` explains one pair in one call; :class:`Explainer` explains many.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from . import fftw
from .bands import Band, BandSchedule
from .cards import ModelCard
from .engine import DeadlineExceeded, Engine
from .errors import FreqxfrError, ImageError, InputError, ModelError, NoFaceError, OutputError
from .explanations import Explainer, Explanation, explain
from .images import load_image
from .masking import available_backends, mask_bands
from .pairs import Pair, read_pairs
from .verifier import Verifier, load_model

try:
    __version__ = version("freqxfr")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0+unknown"

__all__ = [
    "Band",
    "BandSchedule",
    "DeadlineExceeded",
    "Engine",
    "Explainer",
    "Explanation",
    "FreqxfrError",
    "ImageError",
    "InputError",
    "ModelCard",
    "ModelError",
    "NoFaceError",
    "OutputError",
    "Pair",
    "Verifier",
    "__version__",
    "available_backends",
    "explain",
    "fftw",
    "load_image",
    "load_model",
    "mask_bands",
    "read_pairs",
]
