"""``mask_bands``: the public entry point for deleting or keeping frequency bands of image batches.

Input is validated here, once, with errors that name the argument and what is wrong; the backends
trust what they receive.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from freqxfr.common.errors import InputError
from freqxfr.core import fftw
from freqxfr.core.backends import BACKENDS, MaskParams, default_threads, pyfftw_module, scipy_fft
from freqxfr.core.bands import BandSchedule

MODES = ("delete", "keep", "cumulative_delete", "cumulative_keep")
#: Largest magnitude accepted for float pixel values, ``mean``, ``std`` and clip bounds, and the
#: smallest for ``std``. Within these, every backend's float32 result stays finite (a spectrum
#: coefficient is at most H·W·1e18 < 1e27, and (p − mean)/std < 1e34), so the float32 ``cpp`` core
#: and the float64 ``numpy`` reference agree, instead of one overflowing or dividing by a ``std``
#: that underflowed to 0 in float32.
VALUE_LIMIT = 1e18
STD_MIN = 1e-6
DOMAINS = ("pixel", "normalised")
PLANNERS = ("estimate", "measure", "patient", "exhaustive")


def available_backends() -> list[str]:
    """Names of the backends that can run here (``cpp`` needs the compiled core and FFTW)."""
    names = []
    for name in BACKENDS:
        try:
            _check_backend_available(name)
        except InputError:
            continue
        names.append(name)
    return names


def mask_bands(
    images: np.ndarray,
    schedule: BandSchedule,
    mode: str = "delete",
    backend: str = "cpp",
    out: np.ndarray | None = None,
    *,
    order: Sequence[int] | np.ndarray | None = None,
    domain: str = "pixel",
    clip: bool | tuple[float, float] | None = None,
    mean: float | Sequence[float] | np.ndarray = 0.0,
    std: float | Sequence[float] | np.ndarray = 1.0,
    channel_order: str = "RGB",
    layout: str = "NCHW",
    threads: int | None = None,
    planner: str = "measure",
    regions: np.ndarray | None = None,
) -> np.ndarray:
    """Delete or keep each frequency band of every image, normalised for a model, in one pass.

    Parameters
    ----------
    images : ndarray, (N, H, W, C) uint8 or float32, C = 1 or 3
        RGB (or grayscale) images. Non-contiguous input is copied.
    schedule : BandSchedule
        The K bands, e.g. ``BandSchedule.rings(16)``.
    mode : {"delete", "keep", "cumulative_delete", "cumulative_keep"}
        ``delete``: image k lacks band k (the paper's perturbation). ``keep``: image k holds only
        band k. Cumulative modes: image j lacks (or holds only) bands ``order[0..j]``, built from
        running sums of the keep-images, for deletion/insertion curves.
    backend : {"cpp", "numpy", "scipy", "pyfftw"}
        ``cpp`` is the fast core; ``numpy`` the reference; the others are pure-Python peers.
    out : ndarray, optional
        float32 C-contiguous buffer of the result's shape, e.g. a slice of a model's input batch.
    order : sequence of int, optional
        Band order for the cumulative modes (default: 0..K-1).
    domain : {"pixel", "normalised"}
        Mask the raw pixel values (deleting DC leaves black) or the model-normalised values
        (deleting DC leaves the mean grey). The default is ``pixel``, as in the paper.
    clip : bool or (lo, hi), optional
        Clip masked pixel values before normalising: ``True`` clips to [0, 255]. Off by default,
        which keeps the bands exactly linear (``delete_k = x - keep_k``).
    mean, std : float or sequence of C floats
        The model's normalisation ``(p - mean) / std``, per output channel, fused into the output.
    channel_order : {"RGB", "BGR"}
        Channel order the model wants; input is always RGB.
    layout : {"NCHW", "NHWC"}
        Layout of each masked image: result (N, K, C, H, W) or (N, K, H, W, C).
    threads : int, optional
        Worker threads (default: the CPUs this process may use). Results do not depend on it.
    planner : {"estimate", "measure", "patient", "exhaustive"}
        FFTW planning effort for ``cpp`` and ``pyfftw``; plans are made once per shape and the
        wisdom is saved in the user cache.
    regions : ndarray (R, H, W) float32, optional
        Spatial weights in [0, 1], one plane per region (see :mod:`freqxfr.imaging.regions` for sets that
        sum to 1). Each band k then gives R *cells*: cell (k, r) deletes ``w_r ⊙ b_k(x)`` from
        the image (``keep``: holds only ``w_r ⊙ b_k(x)``), where ``b_k(x)`` is band k's image.
        The result has K·R masked images per input, band-major: cell (k, r) at index ``k·R + r``.
        The cumulative modes run over the K·R cells in ``order`` (a permutation of 0..K·R-1):
        step j deletes (keeps) the sum of the weighted band images of cells ``order[0..j]``.
        With one all-ones region the result is band-only masking, bit for bit. When the weights
        sum to 1 over the regions, a band's cells add up to its deletion exactly. In the
        normalised domain a cell removes DC only where its weight is, so it leaves
        ``mean × w_r`` there.

    Returns
    -------
    ndarray
        float32, (N, K, C, H, W) for NCHW (K·R instead of K with regions); ``out`` itself when
        given.
    """
    images = _check_images(images)
    if not isinstance(schedule, BandSchedule):
        raise InputError(f"schedule must be a BandSchedule, got {type(schedule).__name__}")
    n, h, w, c = images.shape
    resolved = schedule.resolve(h, w)
    weights = check_region_weights(regions, h, w)
    k = len(resolved.bands) * (1 if weights is None else len(weights))
    params = MaskParams(
        mode=_choice(mode, MODES, "mode"),
        order=_check_order(order, k, mode, cells=weights is not None),
        normalised_domain=_choice(domain, DOMAINS, "domain") == "normalised",
        clip=_check_clip(clip),
        mean=_per_channel(mean, c, "mean"),
        std=_per_channel(std, c, "std", smallest=STD_MIN),
        reverse_channels=_choice(channel_order, ("RGB", "BGR"), "channel_order") == "BGR"
        and c == 3,
        layout=_choice(layout, ("NCHW", "NHWC"), "layout"),
        threads=_check_threads(threads),
        planner=_choice(planner, PLANNERS, "planner"),
        regions=weights,
    )
    shape = (n, k, c, h, w) if params.layout == "NCHW" else (n, k, h, w, c)  # k: K or K·R
    out = _check_out(out, shape)
    _check_backend_available(backend)
    BACKENDS[backend](images, schedule, resolved, params, out)
    return out


# ---- validation ---------------------------------------------------------------------------------


def _check_images(images: object) -> np.ndarray:
    if not isinstance(images, np.ndarray):
        raise InputError(f"images must be a numpy array (N, H, W, C), got {type(images).__name__}")
    if images.ndim != 4:
        hint = " (add a batch axis: images[None])" if images.ndim == 3 else ""
        raise InputError(f"images must be 4-D (N, H, W, C), got shape {images.shape}{hint}")
    if images.dtype not in (np.uint8, np.float32):
        raise InputError(
            f"images must be uint8 or float32, got {images.dtype} (convert with .astype(np.float32))"
        )
    if images.size == 0:
        raise InputError(f"images is empty: shape {images.shape}")
    if images.shape[3] not in (1, 3):
        raise InputError(
            f"images must have 1 or 3 channels (last axis), got {images.shape[3]}; "
            "drop alpha or convert to RGB first"
        )
    if images.dtype == np.float32:
        # min/max propagate NaN, so this also finds NaN and Inf, without a temporary array.
        lo, hi = float(images.min()), float(images.max())
        if not (-VALUE_LIMIT <= lo and hi <= VALUE_LIMIT):
            bad = np.argwhere(~(np.abs(images) <= VALUE_LIMIT))[0]
            where = tuple(int(i) for i in bad)
            value = images[where]
            what = "NaN or Inf" if not np.isfinite(value) else f"a value beyond ±{VALUE_LIMIT:g}"
            raise InputError(f"images contain {what} (first at index {where}: {value})")
    # C order and the element's alignment: a float32 array at an odd byte offset (a view into a
    # byte buffer) is copied, since the core's float loads must be aligned.
    return np.require(images, requirements=["C_CONTIGUOUS", "ALIGNED"])


#: Most regions per call: far beyond any useful set, and the core's own bound.
MAX_REGIONS = 4096


def check_region_weights(
    regions: object, h: int, w: int, *, name: str = "regions"
) -> np.ndarray | None:
    """``regions`` as a C-contiguous float32 (R, H, W) array with values in [0, 1], or None.

    Float64 input is converted; any other dtype, shape, NaN/Inf, a negative value or one above 1
    is refused with an InputError naming the problem (and the first bad index)."""
    if regions is None:
        return None
    if not isinstance(regions, np.ndarray):
        raise InputError(
            f"{name} must be a numpy array (R, H, W) of weights, got {type(regions).__name__}"
        )
    if regions.dtype not in (np.float32, np.float64):
        raise InputError(
            f"{name} must be float32 (or float64) weights in [0, 1], got dtype {regions.dtype}"
        )
    if regions.ndim != 3:
        hint = " (one region: weights[None])" if regions.ndim == 2 else ""
        raise InputError(f"{name} must be 3-D (R, H, W), got shape {regions.shape}{hint}")
    if regions.shape[1:] != (h, w):
        raise InputError(
            f"{name} must be (R, {h}, {w}) to match the images, got shape {regions.shape}"
        )
    if not 1 <= regions.shape[0] <= MAX_REGIONS:
        raise InputError(f"{name} must hold 1..{MAX_REGIONS} regions, got {regions.shape[0]}")
    bad = ~((regions >= 0) & (regions <= 1))  # NaN fails both comparisons
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        value = float(regions[where])
        what = (
            "NaN or Inf"
            if not np.isfinite(value)
            else ("a negative weight" if value < 0 else "a weight above 1")
        )
        raise InputError(
            f"{name} contain {what} (first at index {where}: {value}); weights must lie in [0, 1]"
        )
    return np.require(regions, dtype=np.float32, requirements=["C_CONTIGUOUS", "ALIGNED"])


def _choice(value: str, allowed: tuple[str, ...], name: str) -> str:
    if value not in allowed:
        raise InputError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
    return value


def _check_order(
    order: Sequence[int] | np.ndarray | None, k: int, mode: str, cells: bool = False
) -> tuple[int, ...]:
    if order is None:
        return tuple(range(k))
    if not str(mode).startswith("cumulative"):
        raise InputError("order applies only to the cumulative modes")
    try:
        values = tuple(int(i) for i in order)
    except (TypeError, ValueError):
        raise InputError(f"order must be a sequence of band indices, got {order!r}") from None
    if sorted(values) != list(range(k)):
        what = " (the K·R cells, k·R + r)" if cells else ""
        raise InputError(f"order must be a permutation of 0..{k - 1}{what}, got {list(values)}")
    return values


def _check_clip(clip: bool | tuple[float, float] | None) -> tuple[float, float] | None:
    if clip is None or clip is False:
        return None
    if clip is True:
        return (0.0, 255.0)
    try:
        lo, hi = (float(v) for v in clip)
    except (TypeError, ValueError):
        raise InputError(f"clip must be True, False or (lo, hi), got {clip!r}") from None
    if not (abs(lo) <= VALUE_LIMIT and abs(hi) <= VALUE_LIMIT and lo < hi):
        raise InputError(
            f"clip range must be finite (within ±{VALUE_LIMIT:g}) with lo < hi, got ({lo}, {hi})"
        )
    return (lo, hi)


def _per_channel(
    value: float | Sequence[float] | np.ndarray, c: int, name: str, smallest: float = 0.0
) -> tuple[float, ...]:
    """``value`` as c floats; each finite, at most VALUE_LIMIT and (for std) at least ``smallest``
    in magnitude. Every backend refuses the same values here, before any of them runs."""
    try:
        arr = np.atleast_1d(np.asarray(value, dtype=np.float64))
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number or {c} numbers, got {value!r}") from None
    if arr.ndim != 1 or arr.size not in (1, c):
        raise InputError(f"{name} must be a scalar or {c} values (one per channel), got {value!r}")
    magnitude = np.abs(arr)
    if not ((magnitude <= VALUE_LIMIT) & (magnitude >= smallest)).all():
        if smallest > 0:
            raise InputError(
                f"{name} must be finite with {smallest:g} <= |{name}| <= {VALUE_LIMIT:g} per "
                f"channel, so that (p - mean) / {name} stays finite in float32; got {value!r}"
            )
        raise InputError(f"{name} must be finite, within ±{VALUE_LIMIT:g}, got {value!r}")
    return tuple(float(v) for v in np.broadcast_to(arr, (c,)))


def _check_threads(threads: int | None) -> int:
    if threads is None:
        return default_threads()
    if (
        isinstance(threads, bool)
        or not isinstance(threads, (int, np.integer))
        or not 1 <= threads <= 1024
    ):
        raise InputError(f"threads must be an integer in 1..1024, got {threads!r}")
    return int(threads)


def _check_out(out: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    if out is None:
        return np.empty(shape, dtype=np.float32)
    if not isinstance(out, np.ndarray):
        raise InputError(f"out must be a numpy array, got {type(out).__name__}")
    if out.dtype != np.float32:
        raise InputError(f"out must be float32, got {out.dtype}")
    if out.shape != shape:
        raise InputError(f"out must have shape {shape}, got {out.shape}")
    if not out.flags.c_contiguous or not out.flags.writeable:
        raise InputError("out must be a writeable C-contiguous array")
    if not out.flags.aligned:
        # Copying would break the contract that the result lands in the caller's buffer.
        raise InputError(
            f"out must be aligned to {out.dtype.itemsize} bytes (float32), but its address is "
            "not a multiple of 4 (a view at an odd offset into a byte buffer?)"
        )
    return out


def _check_backend_available(name: str) -> None:
    if name not in BACKENDS:
        raise InputError(f"backend must be one of {', '.join(BACKENDS)}; got {name!r}")
    try:
        if name == "cpp":
            fftw.compiled_core()
        elif name == "scipy":
            scipy_fft()
        elif name == "pyfftw":
            pyfftw_module()
    except ImportError as exc:
        raise InputError(f"backend {name!r} is not available here: {exc}") from None
