"""The SFace conversion itself (see :mod:`freqxfr.model.converters.sface`): parse the shipped int8
graph, fold its dequantisation and write the fp32, dynamic-batch, normalised one.

Imported only to convert or to load the original graph, because importing onnx takes about half
a second and a cached conversion does not need it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from freqxfr.common.errors import ModelError
from freqxfr.model.converters import _cache
from freqxfr.model.converters._sface_layout import INPUT_NAME, MEAN, OPSET, OUTPUT_NAME, STD


def build(data: bytes, origin: Path) -> bytes:
    """The converted model's bytes from the bytes of the shipped file (``origin`` names it)."""
    return convert(_prune_inputs(_parse(data, origin)), origin=str(origin)).SerializeToString()


def _parse(data: bytes, origin: Path) -> onnx.ModelProto:
    try:
        return onnx.load_model_from_string(data)
    except Exception as exc:  # protobuf raises DecodeError and friends for foreign bytes
        raise ModelError(f"{origin}: not an ONNX file ({type(exc).__name__})") from None


def _prune_inputs(model: onnx.ModelProto) -> onnx.ModelProto:
    """Drop graph inputs that no node (and no output) uses; onnxruntime refuses them."""
    graph = model.graph
    used = {name for node in graph.node for name in node.input}
    used.update(out.name for out in graph.output)
    keep = [inp for inp in graph.input if inp.name in used]
    del graph.input[:]
    graph.input.extend(keep)
    return model


def load_source(src: Path) -> onnx.ModelProto:
    """The original int8 SFace graph in ``src`` with only its unused inputs removed (see
    :func:`freqxfr.model.converters.sface.load_source`)."""
    return _prune_inputs(_parse(_cache.read_source(src, "SFace model"), src))


def convert(model: onnx.ModelProto, *, origin: str = "SFace model") -> onnx.ModelProto:
    """Turn the input-pruned int8 SFace graph into the fp32, dynamic-batch, normalised one."""
    graph = model.graph
    consts = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    _check_is_sface(graph, consts, origin)

    # 1. Fold every DequantizeLinear/Reshape whose inputs are all constants.
    folded: dict[str, np.ndarray] = {}
    nodes = []
    for node in graph.node:
        if node.op_type == "DequantizeLinear" and all(n in consts for n in node.input):
            folded[node.output[0]] = _dequantize(node, consts)
            consts[node.output[0]] = folded[node.output[0]]
        elif node.op_type == "Reshape" and all(n in consts for n in node.input):
            data, shape = consts[node.input[0]], consts[node.input[1]]
            folded[node.output[0]] = data.reshape(shape)
            consts[node.output[0]] = folded[node.output[0]]
        else:
            nodes.append(node)

    # 2. Move the input normalisation out: the first Conv reads the graph input directly.
    normalised = nodes[1].output[0]  # nodes[0:2] are the Sub and Mul checked above
    nodes = nodes[2:]
    for node in nodes:
        for k, name in enumerate(node.input):
            if name == normalised:
                node.input[k] = INPUT_NAME

    # 3. Rename the output; drop the inference-time no-op Dropout.
    old_output = graph.output[0].name
    for node in nodes:
        for k, name in enumerate(node.output):
            if name == old_output:
                node.output[k] = OUTPUT_NAME
    nodes = _drop_dropout(nodes)

    needed = {name for node in nodes for name in node.input}
    initializers = [
        numpy_helper.from_array(np.ascontiguousarray(value, dtype=np.float32), name)
        if name in folded
        else numpy_helper.from_array(value, name)
        for name, value in consts.items()
        if name in needed
    ]
    dims: list[str | int] = ["N", 3, 112, 112]
    new_graph = helper.make_graph(
        nodes,
        "sface_2021dec_fp32",
        inputs=[helper.make_tensor_value_info(INPUT_NAME, onnx.TensorProto.FLOAT, dims)],
        outputs=[helper.make_tensor_value_info(OUTPUT_NAME, onnx.TensorProto.FLOAT, ["N", 128])],
        initializer=initializers,
    )
    out = helper.make_model(
        new_graph,
        # Without DequantizeLinear every op left (Conv, BatchNormalization, PRelu, Flatten,
        # Gemm) means the same at opset 17, which older onnxruntime releases (>= 1.14) run.
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="freqxfr.model.converters.sface",
        doc_string=(
            "OpenCV Zoo SFace 2021dec (Apache-2.0), int8 weights dequantised to fp32 by freqxfr. "
            f"Input: RGB, (x - {MEAN}) / {STD}, NCHW float32. Output: 128-d embedding (cosine)."
        ),
    )
    out.ir_version = 8
    onnx.checker.check_model(out)
    return out


def _check_is_sface(graph: onnx.GraphProto, consts: dict[str, np.ndarray], origin: str) -> None:
    """Refuse graphs that are not the SFace layout this converter was written for."""
    ops = [
        node.op_type for node in graph.node if node.op_type not in ("DequantizeLinear", "Reshape")
    ]
    inputs = [inp.name for inp in graph.input if inp.name not in consts]
    ok = (
        len(inputs) == 1
        and len(graph.output) == 1
        and ops[:3] == ["Sub", "Mul", "Conv"]
        and graph.node[0].op_type == "DequantizeLinear"
    )
    if ok:
        sub, mul = (n for n in graph.node if n.op_type in ("Sub", "Mul"))
        ok = (
            sub.input[0] == inputs[0]
            and mul.input[0] == sub.output[0]
            and np.allclose(consts.get(sub.input[1], np.nan), MEAN)
            and np.allclose(consts.get(mul.input[1], np.nan), 1.0 / STD)
        )
    if not ok:
        raise ModelError(
            f"{origin}: not the SFace 2021dec int8 graph this converter knows "
            "(expected one image input, then Sub 127.5, Mul 1/128, Conv)"
        )


def _dequantize(node: onnx.NodeProto, consts: dict[str, np.ndarray]) -> np.ndarray:
    """Blocked ``DequantizeLinear`` on constants: ``(q - zero_point) * scale`` per block."""
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    q = consts[node.input[0]].astype(np.int32)
    scale = consts[node.input[1]]
    zero = consts[node.input[2]].astype(np.int32) if len(node.input) > 2 else np.zeros_like(scale)
    axis = attrs.get("axis", 1) % q.ndim
    block = attrs.get("block_size", 0)
    if block:
        # Each scale/zero point covers `block` consecutive elements along `axis`.
        scale = np.repeat(scale, block, axis=axis).take(range(q.shape[axis]), axis=axis)
        zero = np.repeat(zero, block, axis=axis).take(range(q.shape[axis]), axis=axis)
    elif scale.ndim == 1 and scale.size > 1:
        shape = [1] * q.ndim
        shape[axis] = -1
        scale, zero = scale.reshape(shape), zero.reshape(shape)
    # Same arithmetic as onnxruntime: float32(q - zero_point) * float32 scale.
    return (q - zero).astype(np.float32) * scale.astype(np.float32)


def _drop_dropout(nodes: list[onnx.NodeProto]) -> list[onnx.NodeProto]:
    renames: dict[str, str] = {}
    kept = []
    for node in nodes:
        if node.op_type == "Dropout":
            renames[node.output[0]] = node.input[0]
            continue
        kept.append(node)
    for node in kept:
        for k, name in enumerate(node.input):
            if name in renames:
                node.input[k] = renames[name]
    return kept
