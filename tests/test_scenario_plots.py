"""The scenario plots that live beside their scenario (``scenarios/*_report.py``)."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib import colors
from PIL import Image

from freqxfr.reports import morph as morph_report

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
    x, y = morph_report.det_coordinates(*PERFECT)
    lo, hi = morph_report.det_limits()
    assert min(x.min(), y.min()) - lo >= 0.2
    assert hi - max(x.max(), y.max()) >= 0.2


def test_every_det_curve_is_visible_even_where_curves_coincide(tmp_path):
    """Two perfect detectors (as the frequency and combined detectors can be) have the same curve:
    drawn the same solid way, the second hid the first. Each must keep visible pixels of its own
    colour, and a curve of many points is drawn like one of few."""
    many = (np.linspace(1, 0, 500), np.linspace(0, 1, 500) ** 2)
    path = morph_report.plot_det(
        {"frequency": PERFECT, "combined": PERFECT, "score": many}, tmp_path / "det.png"
    )
    for colour in ("C0", "C1", "C2"):
        assert colour_pixels(path, colour) > 150, colour
