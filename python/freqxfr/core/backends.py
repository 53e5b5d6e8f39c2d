"""Masking backends: the C++ core, the numpy reference, and two pure-Python peers.

All four honour one contract (see :func:`freqxfr.mask_bands`): from images (N, H, W, C) they write
(N, K, C, H, W) float32 (or NHWC per masked image) into a caller's buffer. Inputs arrive validated.

- ``cpp``: FFTW in single precision, one r2c per plane and one pruned c2r per band, threads.
- ``numpy``: the reference. Full complex FFTs in float64, one inverse per band, no shortcuts.
- ``scipy`` and ``pyfftw``: the best pure-Python pipelines we know (single precision, one rfft2
  per image, batched irfft2 per band, several workers), kept as benchmark peers.
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from freqxfr.common.cores import usable_cores as default_threads  # noqa: F401  (one home for core counts: cores.py)
from freqxfr.core import fftw
from freqxfr.core.bands import BandSchedule, ResolvedBands


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
    # Spatial weights (R, H, W) float32, C-contiguous: with them each band k gives R cells
    # (k, r) that delete (or keep) w_r * band_k, written at step k*R + r; None: band-only.
    regions: np.ndarray | None = dataclasses.field(default=None, compare=False)

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
        self,
        images: np.ndarray,
        schedule: BandSchedule,
        resolved: ResolvedBands,
        params: MaskParams,
        out: np.ndarray,
    ) -> None: ...


# ---- shared by the Python backends ------------------------------------------------------------


def _planes(images: np.ndarray, params: MaskParams, dtype: type) -> np.ndarray:
    """(N, H, W, C) -> (N, C, H, W) in output channel order."""
    x: np.ndarray = np.moveaxis(images, -1, 1).astype(dtype)
    return x[:, ::-1] if params.reverse_channels else x


def _n_regions(params: MaskParams) -> int:
    return 0 if params.regions is None else len(params.regions)


def _step_cells(params: MaskParams, n_bands: int) -> list[tuple[int, int | None]]:
    """The cell (band k, region r) that each output step adds: all K (or K·R, band-major)
    cells in turn, or in ``order`` for the cumulative modes. r is None without regions."""
    r_count = _n_regions(params)
    if r_count:
        cells: list[tuple[int, int | None]] = [
            (i // r_count, i % r_count) for i in range(n_bands * r_count)
        ]
    else:
        cells = [(k, None) for k in range(n_bands)]
    return [cells[i] for i in params.order] if params.cumulative else cells


def _write_steps(
    x: np.ndarray, band_image, dc_band: int, params: MaskParams, out: np.ndarray
) -> None:
    """Shared by the Python backends: the masked image of every step from the band images.

    ``band_image(k)`` gives band k's image of ``x`` (N, C, H, W). A cell (k, r) selects
    ``w_r * band_k``; a cumulative step selects the running sum of its cells. Each band image is
    computed once (kept while its cells are written, or for the whole call when a cumulative
    order revisits bands)."""
    cells = _step_cells(params, out.shape[1] // max(1, _n_regions(params)))
    keep_all = params.cumulative and params.regions is not None
    cache: dict[int, np.ndarray] = {}
    running = np.zeros_like(x)
    dc_running: float | np.ndarray = 0.0
    for step, (k, r) in enumerate(cells):
        if k not in cache:
            if not keep_all:
                cache.clear()
            # A backend may hand back its own reused buffer: copy what outlives the next call.
            cache[k] = band_image(k).copy() if keep_all else band_image(k)
        weight: float | np.ndarray = 1.0 if r is None else params.regions[r].astype(x.dtype)  # type: ignore[index]
        term = cache[k] if r is None else weight * cache[k]
        dc_term = weight if k == dc_band else 0.0
        if params.cumulative:
            running = running + term
            dc_running = dc_running + dc_term
            term, dc_term = running, dc_running
        _finish(x, term, dc_term, params, out[:, step])


def _finish(
    x: np.ndarray,
    selected: np.ndarray,
    dc_selected: float | np.ndarray,
    params: MaskParams,
    out_step: np.ndarray,
) -> None:
    """out_step := normalise(clip(p)) with p = x - selected (delete) or selected (keep).

    Masking in the normalised domain differs from the pixel domain only by the mean, which lives
    in DC: p gains mean × (the share of DC removed), where ``dc_selected`` is the share of DC the
    step selects (0 or 1 for bands, a weight plane for region cells)."""
    p = x - selected if params.subtracts else selected
    mean = np.asarray(params.mean, dtype=np.float64)[:, None, None]
    std = np.asarray(params.std, dtype=np.float64)[:, None, None]
    if params.normalised_domain:
        removed = dc_selected if params.subtracts else 1.0 - dc_selected
        p = p + mean * removed
    if params.clip is not None:
        p = np.clip(p, params.clip[0], params.clip[1])
    result = (p - mean) / std
    if params.layout == "NHWC":
        result = np.moveaxis(result, 1, -1)
    out_step[...] = result


# ---- numpy: the reference ---------------------------------------------------------------------


class NumpyBackend:
    name = "numpy"

    def __call__(self, images, schedule, resolved, params, out) -> None:
        x = _planes(images, params, np.float64)
        spectrum = np.fft.fft2(x, axes=(-2, -1))
        labels = resolved.labels_full

        def band_image(k: int) -> np.ndarray:
            return np.fft.ifft2(spectrum * (labels == k), axes=(-2, -1)).real

        _write_steps(x, band_image, resolved.dc_band, params, out)


# ---- scipy and pyfftw: pure-Python peers ------------------------------------------------------


class _HalfSpectrumBackend:
    """One rfft2 per plane, then per band a masked, batched irfft2 in single precision."""

    name = "half-spectrum"

    def forward(self, x: np.ndarray, threads: int, planner: str) -> np.ndarray:
        raise NotImplementedError

    def inverse(
        self, spec: np.ndarray, shape: tuple[int, int], threads: int, planner: str
    ) -> np.ndarray:
        raise NotImplementedError

    def __call__(self, images, schedule, resolved, params, out) -> None:
        x = _planes(images, params, np.float32)
        h, w = x.shape[-2:]
        spectrum = self.forward(x, params.threads, params.planner)
        labels = resolved.labels_half
        masked = np.empty_like(spectrum)

        def band_image(k: int) -> np.ndarray:
            np.multiply(spectrum, labels == k, out=masked)
            return self.inverse(masked, (h, w), params.threads, params.planner)

        _write_steps(x, band_image, resolved.dc_band, params, out)


def scipy_fft():
    """scipy.fft, imported on first use: scipy is an optional extra."""
    import scipy.fft  # lazy: scipy is optional ([scipy] extra)

    return scipy.fft


def pyfftw_module():
    """pyfftw, imported on first use: its import takes about half a second."""
    import pyfftw  # lazy: pyfftw's import costs ~0.5 s, and only its backend needs it

    return pyfftw


class ScipyBackend(_HalfSpectrumBackend):
    name = "scipy"

    def forward(self, x, threads, planner):
        return scipy_fft().rfft2(x, workers=threads)

    def inverse(self, spec, shape, threads, planner):
        return scipy_fft().irfft2(spec, s=shape, workers=threads, overwrite_x=True)


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
        pyfftw = pyfftw_module()
        plan = self._plan(
            ("r2c", x.shape, threads, planner),
            lambda: pyfftw.builders.rfft2(
                pyfftw.empty_aligned(x.shape, dtype="float32"),
                threads=threads,
                planner_effort=_PYFFTW_EFFORT[planner],
            ),
        )
        return plan(x).copy()

    def inverse(self, spec, shape, threads, planner):
        pyfftw = pyfftw_module()
        plan = self._plan(
            ("c2r", spec.shape, shape, threads, planner),
            lambda: pyfftw.builders.irfft2(
                pyfftw.empty_aligned(spec.shape, dtype="complex64"),
                s=shape,
                threads=threads,
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
        core = fftw.compiled_core()
        options = core.MaskOptions()
        options.bands = len(resolved.bands)
        options.mode = params.mode
        options.order = list(params.order)
        options.normalised_domain = params.normalised_domain
        options.clip = params.clip is not None
        options.clip_lo, options.clip_hi = params.clip or (0.0, 0.0)
        options.mean = list(params.mean)
        options.std = list(params.std)
        options.reverse_channels = params.reverse_channels
        options.layout = params.layout
        options.threads = params.threads
        options.planner_flags = core.PLANNER_FLAGS[params.planner]
        core.mask_bands(images, resolved.labels_half, out, options, params.regions)
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
