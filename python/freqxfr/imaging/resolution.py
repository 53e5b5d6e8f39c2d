"""Resolution loss for cross-resolution analyses: degrade an aligned crop by a factor and bring it
back to its size, in the spatial domain or in the frequency domain.

Kernels (``resample``):

``"bicubic"`` (default) and ``"area"``
    Pillow ``resize`` down to ``round(N / f)`` pixels a side, then back up to ``N`` with the same
    filter (``BICUBIC``, or ``BOX`` for area). Pillow widens the filter when it shrinks, so the
    downscale is anti-aliased. ``BOX`` upsampling by an integer factor repeats each pixel: a
    blocky image whose block edges put energy into high bands. Bicubic upsampling leaves
    interpolation artefacts above the cutoff too; these are "resampling artefacts".
``"spectral"``
    An ideal low-pass, computed with numpy's FFT per colour channel: the coefficients with
    ``|fu| < N / (2 f)`` *and* ``|fv| < N / (2 f)`` cycles per image are kept, everything else is
    zeroed. That is the square passband of an ideal downsampling by ``f`` (a picture of
    ``N / f`` pixels holds frequencies up to its Nyquist limit ``N / (2 f)`` cycles per image on
    each axis), followed by an ideal (sinc) upsampling, which adds nothing above the cutoff. The
    edge coefficient ``|fu| = N / (2 f)`` is dropped: a downsampled picture cannot tell its
    positive from its negative Nyquist frequency. The passband is a square, not a disc, so it is
    not one of the ring bands of :class:`~freqxfr.BandSchedule`; a disc of relative radius
    ``1 / (f·√2)`` would cut the square's corners. The result is rounded and clipped to uint8
    like any photo (clipping the ringing of the ideal filter at sharp edges).

Factor 1 returns the image unchanged for every kernel.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from freqxfr.common.errors import InputError
from freqxfr.core.bands import signed_frequencies

RESAMPLE_KERNELS = ("bicubic", "area", "spectral")
DEFAULT_RESAMPLE = "bicubic"

_PIL_FILTERS = {"bicubic": Image.Resampling.BICUBIC, "area": Image.Resampling.BOX}

#: How each kernel is described in summaries and reports.
KERNEL_DESCRIPTIONS = {
    "bicubic": "Pillow bicubic downscale to round(N/f), bicubic upscale back to N",
    "area": "Pillow box (area) downscale to round(N/f), box upscale back to N (pixel repetition)",
    "spectral": "ideal low-pass: keep |fu|, |fv| < N/(2f) cycles per image (numpy FFT)",
}


def check_factors(factors: object) -> tuple[float, ...]:
    """Validate downscaling factors: a non-empty sequence of distinct numbers >= 1, sorted."""
    try:
        # Any object may come in: a non-iterable or non-number is refused just below.
        values = [float(f) for f in factors]  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        raise InputError(f"factors must be numbers >= 1, got {factors!r}") from None
    if not values:
        raise InputError("give at least one downscaling factor")
    bad = [v for v in values if not np.isfinite(v) or v < 1.0]
    if bad:
        raise InputError(f"downscaling factors must be finite numbers >= 1, got {bad[0]:g}")
    if len(set(values)) != len(values):
        raise InputError(f"downscaling factors must be distinct, got {values}")
    return tuple(sorted(values))


def check_resample(resample: str) -> str:
    if resample not in RESAMPLE_KERNELS:
        raise InputError(f"resample must be one of {', '.join(RESAMPLE_KERNELS)}, got {resample!r}")
    return resample


def low_resolution_size(side: int, factor: float) -> int:
    """The side of the downscaled picture: ``round(side / factor)``, at least 1."""
    return max(1, round(side / factor))


def degrade(image: np.ndarray, factor: float, resample: str = DEFAULT_RESAMPLE) -> np.ndarray:
    """An (N, N, 3) uint8 crop at ``1/factor`` of its resolution, returned at its own size.

    Parameters
    ----------
    image : numpy.ndarray, uint8, shape (N, N, 3)
        An aligned crop.
    factor : float
        Downscaling factor, >= 1 (1 returns the image as it is).
    resample : {"bicubic", "area", "spectral"}
        The kernel (see the module docstring).

    Returns
    -------
    numpy.ndarray, uint8, shape (N, N, 3)
    """
    check_resample(resample)
    (factor,) = check_factors([factor])
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3 or arr.shape[0] != arr.shape[1]:
        raise InputError(
            f"degrade needs a square (N, N, 3) uint8 crop, got {arr.dtype} {arr.shape}"
        )
    if factor == 1.0:
        return arr
    side = arr.shape[0]
    if resample == "spectral":
        return _low_pass(arr, side / (2.0 * factor))
    small = low_resolution_size(side, factor)
    kernel = _PIL_FILTERS[resample]
    shrunk = Image.fromarray(arr).resize((small, small), kernel)
    return np.asarray(shrunk.resize((side, side), kernel)).copy()


def _low_pass(image: np.ndarray, cutoff: float) -> np.ndarray:
    """Keep the coefficients with |fu| < cutoff and |fv| < cutoff (cycles per image)."""
    h, w = image.shape[:2]
    keep_rows = np.abs(signed_frequencies(h)) < cutoff
    keep_cols = np.abs(np.fft.rfftfreq(w, 1.0 / w)) < cutoff
    spectrum = np.fft.rfft2(image.astype(np.float64), axes=(0, 1))
    spectrum *= (keep_rows[:, None] & keep_cols[None, :])[..., None]
    pixels = np.fft.irfft2(spectrum, s=(h, w), axes=(0, 1))
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)
