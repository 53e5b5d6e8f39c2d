"""The DET plot (one plotter for morphing-attack detectors and verification, ``reports/plots``)."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib import colors
from PIL import Image

from freqxfr.reports import plots

pytestmark = pytest.mark.unit

# A perfect detector: every attack scored above every bona fide comparison.
PERFECT = ([1.0, 0.5, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.5, 1.0])


def colour_pixels(path, name: str) -> int:
    """How many pixels of the PNG at ``path`` have the colour ``name`` (within 12 levels)."""
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB")).astype(int)
    rgb = np.array([round(255 * c) for c in colors.to_rgb(name)])
    return int((np.abs(pixels - rgb).max(axis=-1) <= 12).sum())


def test_a_perfect_detector_is_drawn_inside_the_axes():
    """Rates of 0 have no probit; they were drawn on the axis edges, where the spines hid a perfect
    detector's curve. They must sit inside the limits, clear of the axes."""
    x, y = plots.det_coordinates(*PERFECT)
    lo, hi = plots.det_limits()
    assert min(x.min(), y.min()) - lo >= 0.2
    assert hi - max(x.max(), y.max()) >= 0.2


def test_every_det_curve_is_visible_even_where_curves_coincide(tmp_path):
    """Two perfect detectors (as the frequency and combined detectors can be) have the same curve:
    drawn the same solid way, the second hid the first. Each must keep visible pixels of its own
    colour, and a curve of many points is drawn like one of few."""
    many = (np.linspace(1, 0, 500), np.linspace(0, 1, 500) ** 2)
    path = plots.plot_det(
        {"frequency": PERFECT, "combined": PERFECT, "score": many}, tmp_path / "det.png"
    )
    for colour in ("C0", "C1", "C2"):
        assert colour_pixels(path, colour) > 150, colour


def test_verification_det_is_the_same_plotter_with_fmr_axes(tmp_path):
    """One DET plotter: the verification DET draws through plot_det with FMR/FNMR axes and the
    operating point, and its rates of 0 stay inside the axes like a detector's."""
    fmr, fnmr = PERFECT
    path = plots.plot_det(
        {"DET": (fmr, fnmr)}, tmp_path / "v.png", axes=("FMR", "FNMR"), operating_point=(0.0, 0.0)
    )
    assert colour_pixels(path, "C0") > 150
    assert colour_pixels(path, "0.15") > 20  # the operating point's mark
