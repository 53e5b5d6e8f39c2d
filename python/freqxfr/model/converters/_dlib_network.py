"""dlib's face-recognition ResNet without onnx: its constants, the network template and the
parser that checks a ``.dat`` file against it.

:mod:`freqxfr.model.converters.dlib_resnet` re-exports these; the ONNX graph is built from the
parsed network by :mod:`freqxfr.model.converters._dlib_onnx`, which only a conversion imports (onnx
takes about half a second to import, and a cached conversion does not need it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from freqxfr.common.errors import ModelError
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
SOURCE_FILE = "dlib_face_recognition_resnet_model_v1.dat"

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
