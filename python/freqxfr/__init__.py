"""freqxfr: explain face-verification decisions in the frequency domain.

The data path, one module per station:
image (``images``) → alignment (``align``) → band masks (``bands``, ``masking``; C++ core) →
model (``verifier``, ONNX Runtime) → scores → explanation (``explanations``) → report (``report``).
``freqxfr.explain(a, b)`` explains one pair in one call; :class:`Explainer` explains many.

The names below are what users call; everything else lives in its module.
"""

# No ``from __future__ import annotations`` here: it would put ``annotations`` into the public
# namespace, and this module annotates nothing.

from freqxfr.common.errors import (
    FreqxfrError,
    ImageError,
    InputError,
    ModelError,
    NoFaceError,
    OutputError,
)
from freqxfr.common.version import __version__
from freqxfr.core import fftw  # noqa: F401  (freqxfr.core.fftw: finding FFTW, its wisdom; not in __all__)
from freqxfr.core.bands import Band, BandSchedule
from freqxfr.core.masking import available_backends, mask_bands
from freqxfr.explanations.config import ExplainerConfig
from freqxfr.explanations.explainer import Explainer, explain
from freqxfr.explanations.faithfulness import Faithfulness, SideCurves, VariantCurves
from freqxfr.explanations.pairs import Pair, read_pairs
from freqxfr.explanations.results import (
    Explanation,
    ImageExplanation,
    PairFailure,
    TemplateExplanation,
)
from freqxfr.imaging.images import load_image
from freqxfr.model.cards import ModelCard
from freqxfr.model.engine import DeadlineExceeded, Engine
from freqxfr.model.verifier import Comparison, Verifier, load_model

# Reports need matplotlib; load it only when they are asked for, so ``import freqxfr`` stays quick.
_LAZY = {"PairOutputs": "reports.report", "write_pair_outputs": "reports.report"}


def __getattr__(name: str):
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'freqxfr' has no attribute {name!r}")


__all__ = [
    "Band",
    "BandSchedule",
    "Comparison",
    "DeadlineExceeded",
    "Engine",
    "Explainer",
    "ExplainerConfig",
    "Explanation",
    "Faithfulness",
    "FreqxfrError",
    "ImageError",
    "ImageExplanation",
    "InputError",
    "ModelCard",
    "ModelError",
    "NoFaceError",
    "OutputError",
    "Pair",
    "PairFailure",
    "PairOutputs",
    "SideCurves",
    "TemplateExplanation",
    "VariantCurves",
    "Verifier",
    "__version__",
    "available_backends",
    "explain",
    "load_image",
    "load_model",
    "mask_bands",
    "read_pairs",
    "write_pair_outputs",
]
