"""Image loading: any supported source in, one (H, W, 3) uint8 RGB array out.

Every image enters freqxfr through :func:`load_image`. It is the one place that decides how
odd inputs become plain RGB, so the rules are listed here once:

* **Sources**: a file path (``str`` or ``os.PathLike``), a ``PIL.Image.Image`` or a numpy array.
* **EXIF orientation** (files and PIL images) is applied, so the array is upright as a viewer
  shows it.
* **Greyscale** (``L``, ``1``, ``(H, W)`` or ``(H, W, 1)`` arrays) is repeated into three channels.
* **Alpha** (``RGBA``, ``LA``, ``PA``, ``P`` with transparency, ``(H, W, 4)`` arrays) is removed by
  compositing on **white**, the usual background of portrait and ID photos. Transparent pixels
  thus become white, not whatever colour happens to be stored under them.
* **16-bit** data (``I;16`` files, ``uint16`` arrays, ``I`` files whose values fit 16 bits) is scaled
  to 8 bits with ``round(v / 257)``, which maps 0 → 0 and 65535 → 255 exactly.
* **Floating-point arrays** must hold values in ``[0, 1]`` (the matplotlib / scikit-image
  convention); they are scaled by 255 and rounded. Values up to 0.001 outside that range are
  clipped as rounding noise. Anything further out is refused rather than guessed at: a float
  array in ``[0, 255]`` should be divided by 255 or cast to ``uint8`` by the caller. NaN and
  infinity are refused.
* **CMYK**, YCbCr, LAB and HSV are converted with Pillow's ``convert("RGB")``. Embedded ICC
  profiles are not applied.
* **Multi-frame** files (GIF, TIFF): the first frame is used.

Refused with :class:`~freqxfr.common.errors.ImageError`, the message naming the input: a missing file,
a directory, a file that is not an image, a truncated or corrupt file (the image is decoded in
full, so damage anywhere is found now and not later), an image of more than
:data:`MAX_PIXELS` pixels (a decompression bomb), an empty image, and arrays of the wrong
shape, dtype or range.

Pillow's ``ImageFile.LOAD_TRUNCATED_IMAGES`` is left as it is (False by default). If a program
sets it to True, Pillow fills truncated files with grey and they can no longer be told apart.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import os
import stat
import struct
import threading
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
from PIL import Image, ImageOps

from freqxfr.common.errors import ImageError

#: Largest image, in pixels, that :func:`load_image` decodes (100 Mpx; a 100 Mpx RGB image takes
#: 300 MB). Larger files are refused before their pixels are decoded.
MAX_PIXELS = 100_000_000

#: Tolerance for float arrays slightly outside [0, 1] (rounding noise); they are clipped.
_FLOAT_TOLERANCE = 1e-3

#: What :func:`load_image` accepts.
ImageSource: TypeAlias = "str | os.PathLike[str] | Image.Image | np.ndarray"

# Pillow reports damaged files with any of these, depending on the format and the damage.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error)

# warnings.catch_warnings() edits process-wide state; the lock keeps our own concurrent
# load_image() calls from interleaving their edits.
_OPEN_LOCK = threading.Lock()


def load_image(source: ImageSource, *, name: str | None = None) -> np.ndarray:
    """Load an image as an upright (H, W, 3) uint8 RGB array.

    Parameters
    ----------
    source : str, os.PathLike, PIL.Image.Image or numpy.ndarray
        A file path, a PIL image or an array. Arrays may be (H, W) or (H, W, 1) greyscale,
        (H, W, 3) RGB or (H, W, 4) RGBA, of dtype uint8, uint16 or floating point in [0, 1].
        The module docstring lists every conversion.
    name : str, optional
        What error messages call the input. Default: the file path, the PIL image's file name,
        or ``"<array>"``.

    Returns
    -------
    numpy.ndarray
        A new C-contiguous (H, W, 3) uint8 RGB array, never a view of ``source``.

    Raises
    ------
    ImageError
        The file is missing, not an image, truncated or corrupt, larger than
        :data:`MAX_PIXELS`, empty, or the array has an unsupported shape, dtype or range.
    """
    label = source_label(source, name)
    if isinstance(source, np.ndarray):
        return _from_array(source, label)
    if isinstance(source, Image.Image):
        return _from_pil(source, label)
    if isinstance(source, (str, os.PathLike)):
        return _from_path(Path(source), label)
    raise ImageError(
        f"{label}: expected a file path, a PIL image or a numpy array, got {type(source).__name__}"
    )


@dataclasses.dataclass(frozen=True, eq=False)
class AlignedFace:
    """A face already aligned for a model, and the name it goes by.

    Made by :meth:`freqxfr.Explainer.align`. Explaining one skips loading and alignment, and the
    explanation (like any message) calls it ``name``, so an image aligned once can be explained
    in many pairs, or changed first (e.g. degraded), and still be named as the user gave it.
    """

    pixels: np.ndarray  # (H, W, 3) uint8 RGB, the model's input size
    name: str


#: Any one image the public API takes (``Explainer.explain``, ``Verifier.embed``, ...): what
#: :func:`load_image` reads (:data:`ImageSource`), or a face already aligned for the model (used
#: as it is). A real union at run time, so ``typing.get_type_hints`` resolves it.
ImageLike: TypeAlias = str | os.PathLike[str] | Image.Image | np.ndarray | AlignedFace


def source_label(source: object, name: str | None = None) -> str:
    """What messages call an image: ``name`` if given, else its path, or a description of its kind.

    Parameters
    ----------
    source : object
        Anything passed as an image.
    name : str, optional
        The caller's name for it.

    Returns
    -------
    str
        ``name``, the path, an :class:`AlignedFace`'s name, the PIL image's file name,
        ``"<array>"``, ``"<PIL image>"`` or ``"image"``.
    """
    if name:
        return name
    if isinstance(source, AlignedFace):
        return source.name
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    if isinstance(source, np.ndarray):
        return "<array>"
    if isinstance(source, Image.Image):
        return getattr(source, "filename", "") or "<PIL image>"
    return "image"


# ---- which files may be opened ----------------------------------------------------------------

#: The root that files opened on behalf of a pair list must lie in (see :func:`confined_reads`).
_ROOT: contextvars.ContextVar[Path | None] = contextvars.ContextVar("freqxfr_root", default=None)

_KINDS = (
    (stat.S_ISDIR, "is a folder (a directory), not a file"),
    (stat.S_ISFIFO, "is a FIFO (named pipe), not a regular file; freqxfr reads only regular files"),
    (stat.S_ISCHR, "is a character device, not a regular file; freqxfr reads only regular files"),
    (stat.S_ISBLK, "is a block device, not a regular file; freqxfr reads only regular files"),
    (stat.S_ISSOCK, "is a socket, not a regular file; freqxfr reads only regular files"),
)


@contextlib.contextmanager
def confined_reads(
    root: str | os.PathLike[str] | None, *, allow_outside_root: bool = False
) -> Iterator[None]:
    """Within the block (in this thread), :func:`checked_file` refuses files outside ``root``.

    A run over a pair list wraps everything it reads on the list's behalf in this block
    (explaining, report thumbnails, pair pages, crossres and morph inputs), so that one rule
    holds for every read: after resolving symlinks and ``..``, the file lies inside ``root``.
    ``root=None`` or ``allow_outside_root`` lifts the rule (the regular-file rule stays)."""
    base = None if root is None or allow_outside_root else Path(root).resolve()
    token = _ROOT.set(base)
    try:
        yield
    finally:
        _ROOT.reset(token)


def checked_file(
    path: str | os.PathLike[str],
    *,
    label: str | None = None,
    root: str | os.PathLike[str] | None = None,
) -> Path:
    """The one rule for every file freqxfr opens on behalf of a user or a pair list.

    The file must exist and be a regular file (after following symlinks): folders, FIFOs,
    devices and sockets are refused by name before anything is read, so that no read hangs on
    a pipe or runs forever on ``/dev/zero``. Inside :func:`confined_reads` (or with ``root``) it
    must also lie inside the root folder, after resolving symlinks and ``..``.

    Returns the path; raises :class:`~freqxfr.common.errors.ImageError` (an ``InputError``)
    whose one-line message names the file (``label``, default the path) and what to do."""
    text = os.fspath(path)
    label = label or str(text)
    if "\0" in str(text):
        raise ImageError(f"{label!r}: the path contains a NUL byte; fix the path")
    base = Path(root).resolve() if root is not None else _ROOT.get()
    if base is not None and not Path(text).resolve().is_relative_to(base):
        raise ImageError(
            f"{label}: is outside the root folder {base} (after resolving symlinks); "
            "pass --allow-outside-root to read it"
        )
    try:
        mode = os.stat(text).st_mode
    except FileNotFoundError:
        raise ImageError(f"{label}: file not found") from None
    except NotADirectoryError:
        raise ImageError(f"{label}: file not found (a part of the path is a file)") from None
    except OSError as exc:
        raise ImageError(f"{label}: cannot open it ({exc.strerror or exc})") from None
    for test, why in _KINDS:
        if test(mode):
            raise ImageError(f"{label}: {why}")
    return Path(text)


def _from_path(path: Path, label: str) -> np.ndarray:
    checked_file(path, label=label)
    try:
        with _OPEN_LOCK, warnings.catch_warnings():
            # Pillow warns above its own limit (about 89 Mpx) and raises above twice that; our
            # limit is MAX_PIXELS, checked below, and must not depend on a warning filter.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            handle = Image.open(path)
    except Image.DecompressionBombError as exc:
        raise ImageError(f"{label}: image is too large to load ({exc})") from None
    except Image.UnidentifiedImageError:
        raise ImageError(f"{label}: not an image, or in a format Pillow cannot read") from None
    except _DECODE_ERRORS as exc:
        raise ImageError(f"{label}: cannot read image ({exc})") from None
    with handle:
        return _from_pil(handle, label)


def _from_pil(img: Image.Image, label: str) -> np.ndarray:
    width, height = img.size
    if width * height > MAX_PIXELS:
        raise ImageError(
            f"{label}: image is too large ({width}x{height} = {width * height:,} pixels; "
            f"the limit is {MAX_PIXELS:,}, a guard against decompression bombs)"
        )
    if width == 0 or height == 0:
        raise ImageError(f"{label}: image is empty ({width}x{height})")
    try:
        img.load()  # a full decode now: truncation or corruption anywhere in the file shows up here
        upright = ImageOps.exif_transpose(img)
    except _DECODE_ERRORS as exc:
        raise ImageError(f"{label}: image is truncated or corrupt ({exc})") from None
    return _from_array(_pil_to_array(upright, label), label)


def _pil_to_array(img: Image.Image, label: str) -> np.ndarray:
    """Pixels of ``img`` as uint8, uint16 or float32 with 1, 3 or 4 channels (no conversions lost)."""
    mode = img.mode
    if mode in ("RGB", "L", "RGBA"):
        return np.asarray(img)
    if mode.startswith("I;16"):
        return np.asarray(img).astype(np.uint16)
    if mode == "I":
        values = np.asarray(img)
        if values.size and (values.min() < 0 or values.max() > 65535):
            raise ImageError(
                f"{label}: 32-bit integer image with values outside 0..65535 ({values.min()}..{values.max()})"
            )
        return values.astype(np.uint16)
    if mode == "F":
        return np.asarray(img, dtype=np.float32)
    if mode in ("LA", "La", "PA", "RGBa") or (mode == "P" and "transparency" in img.info):
        return np.asarray(img.convert("RGBA"))
    if mode == "1":
        return np.asarray(img.convert("L"))
    return np.asarray(img.convert("RGB"))  # P, CMYK, YCbCr, LAB, HSV, RGBX, ...


def _from_array(array: Any, label: str) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ImageError(
            f"{label}: expected an (H, W), (H, W, 3) or (H, W, 4) image array, got shape {array.shape}"
        )
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ImageError(f"{label}: image is empty (shape {array.shape})")
    pixels = _to_uint8(array, label)
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[:, :, None], 3, axis=2)
    elif pixels.shape[2] == 4:
        pixels = _composite_on_white(pixels)
    return np.array(pixels, dtype=np.uint8, order="C", copy=True)


def _to_uint8(array: np.ndarray, label: str) -> np.ndarray:
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.uint16:
        return np.rint(array / 257.0).astype(np.uint8)
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise ImageError(f"{label}: image array contains NaN or infinite values")
        low, high = float(array.min()), float(array.max())
        if low < -_FLOAT_TOLERANCE or high > 1.0 + _FLOAT_TOLERANCE:
            raise ImageError(
                f"{label}: float image values must lie in [0, 1], found {low:g}..{high:g}; "
                "divide by 255 (or cast to uint8) if they are 0..255 pixel values"
            )
        return np.rint(np.clip(array, 0.0, 1.0) * 255.0).astype(np.uint8)
    raise ImageError(
        f"{label}: unsupported image dtype {array.dtype}; use uint8 (0..255), uint16 (0..65535) "
        "or float in [0, 1]"
    )


def _composite_on_white(rgba: np.ndarray) -> np.ndarray:
    """Blend an (H, W, 4) uint8 image over a white background."""
    alpha = rgba[:, :, 3:4].astype(np.float32) / 255.0
    rgb = rgba[:, :, :3].astype(np.float32)
    return np.rint(rgb * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)
