"""freqxfr: explain face-verification decisions in the frequency domain.

The data path, one module per station:
image (``images``) → alignment (``align``) → band masks (``bands``, ``masking``; C++ core) →
model (``verifier``, ONNX Runtime) → scores → explanation (``explanations``) → run folder
(``runs``) → report (``reports``, drawn from the run folder alone).
``freqxfr.explain(a, b)`` explains one pair in one call; :class:`Explainer` explains many.

The names below are what users call; everything else lives in its module.
"""

# No ``from __future__ import annotations`` here: it would put ``annotations`` into the public
# namespace, and this module annotates nothing.

from dataclasses import replace

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
from freqxfr.imaging.images import ImageLike, load_image
from freqxfr.model.cards import ModelCard
from freqxfr.model.engine import DeadlineExceeded, Engine
from freqxfr.model.verifier import Comparison, Verifier, load_model
from freqxfr.runs import pair
from freqxfr.runs.pair import PairOutputs


def write_pair_outputs(explainer, a, b, out_dir, *, report=True, **options):
    """Explain one pair and write ``explanation.json``, and with ``report`` the plots and
    ``report.html``: what ``freqxfr explain`` and ``freqxfr demo`` write.

    The run (:func:`freqxfr.runs.pair.write_pair_outputs`, whose options ``aligned``, ``same``,
    ``faithfulness``, ``seeds`` and ``overwrite`` this takes: explain, faithfulness curves with
    ``seeds`` random orders when ``faithfulness``, JSON and the images the report shows) and then
    the drawing (:func:`freqxfr.reports.pair.render_pair`, from the folder alone). Returns a
    :class:`~freqxfr.runs.pair.PairOutputs`; ``report_path`` is ``None`` without ``report``.
    ``overwrite`` replaces the outputs of *another* pair found in ``out_dir`` (refused by default).
    """
    from freqxfr.reports.pair import render_pair  # lazy: reports load matplotlib

    written = pair.write_pair_outputs(explainer, a, b, out_dir, images=report, **options)
    return replace(written, report_path=render_pair(out_dir)) if report else written


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
    "ImageLike",
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
