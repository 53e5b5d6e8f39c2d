"""Masking backends: the C++ core, the numpy reference, and two pure-Python peers.

All four honour one contract (see :func:`freqxfr.mask_bands`): from images (N, H, W, C) they write
(N, K, C, H, W) float32 (or NHWC per masked image) into a caller's buffer. Inputs arrive validated.

- ``cpp``: FFTW in single precision, one r2c per plane and one pruned c2r per band, threads.
- ``numpy``: the reference. Full complex FFTs in float64, one inverse per band, no shortcuts.
- ``scipy`` and ``pyfftw``: the best pure-Python pipelines we know (single precision, one rfft2
  per image, batched irfft2 per band, several workers), kept as benchmark peers.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from .bands import BandSchedule, ResolvedBands
from .cores import usable_cores as default_threads  # noqa: F401  (one home for core counts: cores.py)


@dataclass(frozen=True)
class MaskParams:
    """Validated options of one masking call (see :func:`freqxfr.mask_bands`)."""

    mode: str  # delete | keep | cumulative_delete | cumulative_keep
    order: tuple[int, ...]
    normalised_domain: bool
    clip: tuple[float, float] | None
    mean: tuple[float, ...]  # per output channel
    std: tuple[float, ...]
    reverse_channels: bool
    layout: str  # NCHW | NHWC
    threads: int
    planner: str

    @property
    def cumulative(self) -> bool:
        return self.mode.startswith("cumulative")

    @property
    def subtracts(self) -> bool:
        """Whether the result is the input minus the selected bands (delete modes)."""
        return self.mode in ("delete", "cumulative_delete")


class Backend(Protocol):
    name: str

    def __call__(
        self, images: np.ndarray, schedule: BandSchedule, resolved: ResolvedBands,
        params: MaskParams, out: np.ndarray,
    ) -> None: ...


# ---- shared by the Python backends ------------------------------------------------------------


def _planes(images: np.ndarray, params: MaskParams, dtype: type) -> np.ndarray:
    """(N, H, W, C) -> (N, C, H, W) in output channel order."""
    x = np.moveaxis(images, -1, 1).astype(dtype)
    return x[:, ::-1] if params.reverse_channels else x


def _band_steps(params: MaskParams, n_bands: int) -> list[list[int]]:
    """The bands each output step keeps or deletes."""
    if params.cumulative:
        return [list(params.order[: j + 1]) for j in range(n_bands)]
    return [[k] for k in range(n_bands)]


def _finish(
    x: np.ndarray, selected: np.ndarray, removes_dc: bool, params: MaskParams, out_step: np.ndarray
) -> None:
    """out_step := normalise(clip(p)) with p = x - selected (delete) or selected (keep), shifted
    by the mean when masking in the normalised domain has removed DC (there the mean survives)."""
    p = x - selected if params.subtracts else selected
    mean = np.asarray(params.mean, dtype=np.float64)[:, None, None]
    std = np.asarray(params.std, dtype=np.float64)[:, None, None]
    if params.normalised_domain and removes_dc:
        p = p + mean
    if params.clip is not None:
        p = np.clip(p, params.clip[0], params.clip[1])
    result = (p - mean) / std
    if params.layout == "NHWC":
        result = np.moveaxis(result, 1, -1)
    out_step[...] = result


def _removes_dc(bands: list[int], dc_band: int, subtracts: bool) -> bool:
    """Whether the step's output lacks DC: deleted with the band, or never kept."""
    return (dc_band in bands) if subtracts else (dc_band not in bands)


# ---- numpy: the reference ---------------------------------------------------------------------


class NumpyBackend:
    name = "numpy"

    def __call__(self, images, schedule, resolved, params, out) -> None:
        x = _planes(images, params, np.float64)
        spectrum = np.fft.fft2(x, axes=(-2, -1))
        labels = resolved.labels_full
        running = np.zeros_like(x)
        for step, bands in enumerate(_band_steps(params, len(resolved.bands))):
            selected = np.fft.ifft2(spectrum * (labels == bands[-1]), axes=(-2, -1)).real
            if params.cumulative:
                running = running + selected
                selected = running
            _finish(x, selected, _removes_dc(bands, resolved.dc_band, params.subtracts), params,
                    out[:, step])


# ---- scipy and pyfftw: pure-Python peers ------------------------------------------------------


class _HalfSpectrumBackend:
    """One rfft2 per plane, then per band a masked, batched irfft2 in single precision."""

    name = "half-spectrum"

    def forward(self, x: np.ndarray, threads: int, planner: str) -> np.ndarray:
        raise NotImplementedError

    def inverse(self, spec: np.ndarray, shape: tuple[int, int], threads: int, planner: str) -> np.ndarray:
        raise NotImplementedError

    def __call__(self, images, schedule, resolved, params, out) -> None:
        x = _planes(images, params, np.float32)
        h, w = x.shape[-2:]
        spectrum = self.forward(x, params.threads, params.planner)
        labels = resolved.labels_half
        masked = np.empty_like(spectrum)
        running = np.zeros_like(x)
        for step, bands in enumerate(_band_steps(params, len(resolved.bands))):
            k = bands[-1]
            np.multiply(spectrum, labels == k, out=masked)
            band_image = self.inverse(masked, (h, w), params.threads, params.planner)
            if params.cumulative:
                running += band_image
                band_image = running
            _finish(x, band_image, _removes_dc(bands, resolved.dc_band, params.subtracts), params,
                    out[:, step])


class ScipyBackend(_HalfSpectrumBackend):
    name = "scipy"

    def forward(self, x, threads, planner):
        import scipy.fft

        return scipy.fft.rfft2(x, workers=threads)

    def inverse(self, spec, shape, threads, planner):
        import scipy.fft

        return scipy.fft.irfft2(spec, s=shape, workers=threads, overwrite_x=True)


class PyfftwBackend(_HalfSpectrumBackend):
    """pyfftw's builders, with plans cached per shape (planning is not thread-safe: a lock)."""

    name = "pyfftw"

    def __init__(self) -> None:
        self._plans: dict[tuple, object] = {}
        self._lock = threading.Lock()

    def _plan(self, key: tuple, build):
        with self._lock:
            if key not in self._plans:
                self._plans[key] = build()
            return self._plans[key]

    def forward(self, x, threads, planner):
        import pyfftw

        plan = self._plan(
            ("r2c", x.shape, threads, planner),
            lambda: pyfftw.builders.rfft2(
                pyfftw.empty_aligned(x.shape, dtype="float32"), threads=threads,
                planner_effort=_PYFFTW_EFFORT[planner],
            ),
        )
        return plan(x).copy()

    def inverse(self, spec, shape, threads, planner):
        import pyfftw

        plan = self._plan(
            ("c2r", spec.shape, shape, threads, planner),
            lambda: pyfftw.builders.irfft2(
                pyfftw.empty_aligned(spec.shape, dtype="complex64"), s=shape, threads=threads,
                planner_effort=_PYFFTW_EFFORT[planner],
            ),
        )
        return plan(spec)


_PYFFTW_EFFORT = {
    "estimate": "FFTW_ESTIMATE",
    "measure": "FFTW_MEASURE",
    "patient": "FFTW_PATIENT",
    "exhaustive": "FFTW_EXHAUSTIVE",
}


# ---- cpp: the compiled core -------------------------------------------------------------------


class CppBackend:
    name = "cpp"

    def __init__(self) -> None:
        self._planned: set[tuple] = set()
        self._lock = threading.Lock()

    def __call__(self, images, schedule, resolved, params, out) -> None:
        from . import fftw

        core = fftw.core()
        core.mask_bands(
            images,
            resolved.labels_half,
            len(resolved.bands),
            params.mode,
            list(params.order),
            params.normalised_domain,
            params.clip is not None,
            float(params.clip[0]) if params.clip else 0.0,
            float(params.clip[1]) if params.clip else 0.0,
            list(params.mean),
            list(params.std),
            params.reverse_channels,
            params.layout,
            out,
            params.threads,
            core.PLANNER_FLAGS[params.planner],
        )
        key = (resolved.height, resolved.width, params.planner, schedule)
        if params.planner != "estimate" and key not in self._planned:
            with self._lock:
                self._planned.add(key)
            fftw.save_wisdom()


BACKENDS: dict[str, Backend] = {
    "cpp": CppBackend(),
    "numpy": NumpyBackend(),
    "scipy": ScipyBackend(),
    "pyfftw": PyfftwBackend(),
}
