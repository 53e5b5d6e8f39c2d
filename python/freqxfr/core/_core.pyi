"""Stub of freqxfr's compiled core (private: use freqxfr.mask_bands)."""

import numpy as np
import numpy.typing as npt

PLANNER_FLAGS: dict[str, int]

def load_fftw(path: str) -> str:
    """Load libfftw3f from ``path`` once per process; returns FFTW's version string."""

def fftw_loaded() -> bool: ...
def fftw_library_path() -> str: ...

class MaskOptions:
    """The settings of one :func:`mask_bands` call (everything but the buffers)."""

    bands: int
    mode: str  # delete | keep | cumulative_delete | cumulative_keep (ValueError otherwise)
    order: list[int]  # cumulative modes: a permutation of the K bands, or of the K*R cells
    normalised_domain: bool
    clip: bool
    clip_lo: float
    clip_hi: float
    mean: list[float]  # one per channel
    std: list[float]
    reverse_channels: bool
    layout: str  # NCHW | NHWC
    threads: int
    planner_flags: int
    def __init__(self) -> None: ...

def mask_bands(
    images: npt.NDArray[np.uint8] | npt.NDArray[np.float32],
    labels: npt.NDArray[np.int32],
    out: npt.NDArray[np.float32],
    options: MaskOptions,
    regions: npt.NDArray[np.float32] | None = None,
) -> None:
    """Mask every band (or, with ``regions`` (R, H, W), every cell k*R + r) of every image into
    ``out``; releases the GIL while it works.

    Thread-safe. Raises ``ValueError`` (before writing anything) for an inconsistent request:
    C not 1 or 3, ``mean``/``std`` not one value per channel, a non-finite mean or std (or
    1/std), buffers not aligned to their element size, labels out of range, weights not
    (R, H, W) float32, an order that is not a permutation of the bands (or cells).
    """

def c2r_floor_seconds(h: int, w: int, planes: int, threads: int, planner_flags: int) -> float:
    """Seconds for one full 2-D FFTW c2r per plane: the benchmark's floor."""

def export_wisdom() -> str: ...
def import_wisdom(wisdom: str) -> bool: ...
