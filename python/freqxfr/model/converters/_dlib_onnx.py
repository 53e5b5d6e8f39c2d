"""The ONNX graph of a parsed dlib face-recognition ResNet (:func:`build_onnx`).

Imported only to convert (:func:`freqxfr.model.converters.dlib_resnet.converted_path` builds a
missing cache entry with it), because importing onnx takes about half a second.
"""

from __future__ import annotations

import json
from typing import Any, cast

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from freqxfr.model.converters._dlib_network import (
    CONVERTER_VERSION,
    DLIB_METRIC,
    DLIB_STD,
    DLIB_THRESHOLD,
    EMBEDDING_SIZE,
    INPUT_SIZE,
    MODEL_NAME,
    ONNX_IR_VERSION,
    ONNX_OPSET,
    SOURCE_FILE,
    DlibResNet,
    Spec,
)
from freqxfr.model.converters._dlib_serialization import Layer

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
        The result of :func:`freqxfr.model.converters.dlib_resnet.parse`.
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
