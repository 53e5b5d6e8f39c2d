"""A reader for dlib's binary serialization format (``dlib/serialize.h``, ``dnn/*.h``).

Only what dlib's DNN files need: variable-length integers, ``float_details`` floats, strings,
ASCII bools, tensors, and the ``details`` record of each layer type that the face-recognition
ResNet uses. Every read checks that the bytes are there before it takes them, so a truncated
or foreign file fails with a ``DlibFormatError`` that says what was expected and where, and
never with a huge allocation. The caller turns that into a ``ModelError`` naming the file.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# float_details marks these exponents as special values (dlib/float_details.h).
_FLOAT_INF, _FLOAT_NINF, _FLOAT_NAN = 32000, 32001, 32002

# dlib's layer_mode and fc_bias_mode enums (dnn/layers.h).
CONV_MODE = 0
FC_NO_BIAS = 1


class DlibFormatError(Exception):
    """The bytes do not follow dlib's format; ``offset`` is where reading failed."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset


class Reader:
    """Sequential reader over the bytes of one dlib file."""

    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)
        self.offset = 0

    @property
    def remaining(self) -> int:
        return len(self._data) - self.offset

    def fail(self, message: str, offset: int | None = None) -> DlibFormatError:
        return DlibFormatError(message, self.offset if offset is None else offset)

    def startswith(self, prefix: bytes) -> bool:
        return bytes(self._data[self.offset : self.offset + len(prefix)]) == prefix

    def take(self, count: int, what: str) -> memoryview:
        if count > self.remaining:
            raise self.fail(f"file ends inside {what}: needs {count} bytes, {self.remaining} left")
        chunk = self._data[self.offset : self.offset + count]
        self.offset += count
        return chunk

    def int_(self, what: str) -> int:
        """A signed integer: control byte (low nibble = length, 0x80 = negative), then LE magnitude."""
        start = self.offset
        control = self.take(1, what)[0]
        size = control & 0x0F
        if size == 0 or size > 8:
            raise self.fail(f"bad integer control byte 0x{control:02x} in {what}", start)
        value = int.from_bytes(self.take(size, what), "little")
        return -value if control & 0x80 else value

    def uint(self, what: str) -> int:
        start = self.offset
        value = self.int_(what)
        if value < 0:
            raise self.fail(f"negative value {value} for unsigned {what}", start)
        return value

    def float_(self, what: str) -> float:
        """A ``float_details``: integer mantissa and exponent, value = mantissa * 2**exponent."""
        # dlib's older text format starts with an ASCII character; the binary one never sets 0x70.
        if self.remaining and self._data[self.offset] & 0x70:
            raise self.fail(f"{what} is not a binary dlib float")
        mantissa = self.int_(f"{what} (mantissa)")
        exponent = self.int_(f"{what} (exponent)")
        if exponent == _FLOAT_INF:
            return math.inf
        if exponent == _FLOAT_NINF:
            return -math.inf
        if exponent == _FLOAT_NAN:
            return math.nan
        try:
            return math.ldexp(float(mantissa), exponent)
        except OverflowError:  # an exponent no float64 holds: not a value dlib writes
            raise self.fail(f"{what} is out of range ({mantissa} * 2**{exponent})") from None

    def bool_(self, what: str) -> bool:
        start = self.offset
        char = self.take(1, what)[0]
        if char not in (ord("0"), ord("1")):
            raise self.fail(f"bad bool byte 0x{char:02x} in {what}", start)
        return char == ord("1")

    def string(self, what: str) -> str:
        length = self.uint(f"length of {what}")
        return bytes(self.take(length, what)).decode("latin-1")

    def version(self, allowed: tuple[int, ...], what: str) -> int:
        start = self.offset
        value = self.int_(f"version of {what}")
        if value not in allowed:
            raise self.fail(f"{what} has version {value}, expected one of {allowed}", start)
        return value

    def dims(self, what: str) -> tuple[int, int, int, int]:
        shape = tuple(self.int_(f"{what} dimension") for _ in range(4))
        if min(shape) < 0:
            raise self.fail(f"negative dimension in {what}: {shape}")
        return shape  # type: ignore[return-value]

    def tensor(self, what: str) -> np.ndarray:
        """A ``resizable_tensor``: version 2, n, k, nr, nc, then raw float32 little-endian NCHW."""
        self.version((2,), f"tensor {what}")
        shape = self.dims(what)
        count = math.prod(shape)
        start = self.offset
        # take() checks the claimed size against the bytes left before anything is allocated.
        raw = self.take(4 * count, f"data of tensor {what} {shape}")
        values = np.frombuffer(raw, dtype="<f4").reshape(shape).astype(np.float32)
        finite = np.isfinite(values)
        if not finite.all():
            first = int(np.argmin(finite.ravel()))
            raise self.fail(
                f"tensor {what} {shape} holds NaN or infinite values (first at element {first})",
                start + 4 * first,
            )
        return values

    def alias_tensor(self, what: str) -> tuple[int, int, int, int]:
        """An ``alias_tensor``: version 1 and its shape; it views a slice of a layer's params."""
        self.version((1,), f"alias tensor {what}")
        return self.dims(what)


@dataclass
class Layer:
    """One layer's stored details: its dlib type tag (``con_4``, ``relu_2``, ...) and fields."""

    tag: str
    fields: dict[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        """The layer type without its version suffix: ``con``, ``affine``, ``relu``, ..."""
        return self.tag.rstrip("0123456789").rstrip("_")


def _learning_rates(r: Reader, fields: dict[str, Any], names: tuple[str, ...]) -> None:
    for name in names:
        fields[name] = r.float_(name)


def _con(r: Reader, tag: str) -> dict[str, Any]:
    f: dict[str, Any] = {"params": r.tensor("con params")}
    f["num_filters"] = r.int_("con num_filters")
    f["nr"], f["nc"] = r.int_("con nr"), r.int_("con nc")
    f["stride_y"], f["stride_x"] = r.int_("con stride_y"), r.int_("con stride_x")
    f["padding_y"], f["padding_x"] = r.int_("con padding_y"), r.int_("con padding_x")
    f["filters"], f["biases"] = r.alias_tensor("con filters"), r.alias_tensor("con biases")
    _learning_rates(r, f, ("lr_mult", "wd_mult", "bias_lr_mult", "bias_wd_mult"))
    f["use_bias"] = r.bool_("con use_bias") if tag in ("con_5", "con_6") else True
    f["use_relu"] = r.bool_("con use_relu") if tag == "con_6" else False
    return f


def _affine(r: Reader, tag: str) -> dict[str, Any]:
    f: dict[str, Any] = {"params": r.tensor("affine params")}
    f["gamma"], f["beta"] = r.alias_tensor("affine gamma"), r.alias_tensor("affine beta")
    f["mode"] = r.int_("affine mode")
    f["disabled"] = r.bool_("affine disabled") if tag == "affine_2" else False
    return f


def _relu(r: Reader, tag: str) -> dict[str, Any]:
    return {"disabled": r.bool_("relu disabled") if tag == "relu_2" else False}


def _pool(r: Reader, tag: str) -> dict[str, Any]:
    f: dict[str, Any] = {}
    for name in ("nr", "nc", "stride_y", "stride_x", "padding_y", "padding_x"):
        f[name] = r.int_(f"pool {name}")
    return f


def _add_prev(r: Reader, tag: str) -> dict[str, Any]:
    return {}


def _fc(r: Reader, tag: str) -> dict[str, Any]:
    f: dict[str, Any] = {"num_outputs": r.uint("fc num_outputs")}
    f["num_inputs"] = r.uint("fc num_inputs")
    f["params"] = r.tensor("fc params")
    f["weights"], f["biases"] = r.alias_tensor("fc weights"), r.alias_tensor("fc biases")
    f["bias_mode"] = r.int_("fc bias_mode")
    _learning_rates(r, f, ("lr_mult", "wd_mult", "bias_lr_mult", "bias_wd_mult"))
    f["use_bias"] = r.bool_("fc use_bias") if tag == "fc_3" else True
    return f


def _input_rgb_image_sized(r: Reader, tag: str) -> dict[str, Any]:
    f: dict[str, Any] = {"mean_rgb": tuple(r.float_(f"input mean {c}") for c in "RGB")}
    f["nr"], f["nc"] = r.uint("input nr"), r.uint("input nc")
    return f


def _loss_metric(r: Reader, tag: str) -> dict[str, Any]:
    if tag == "loss_metric_":  # the first version stored nothing (margin and threshold were fixed)
        return {}
    return {"margin": r.float_("loss margin"), "distance_threshold": r.float_("loss threshold")}


# Every details record starts with a string tag naming the type and its version.
_DETAILS: dict[str, Callable[[Reader, str], dict[str, Any]]] = {
    "con_4": _con,
    "con_5": _con,
    "con_6": _con,
    "affine_": _affine,
    "affine_2": _affine,
    "relu_": _relu,
    "relu_2": _relu,
    "max_pool_2": _pool,
    "avg_pool_2": _pool,
    "add_prev_": _add_prev,
    "fc_2": _fc,
    "fc_3": _fc,
    "input_rgb_image_sized": _input_rgb_image_sized,
    "loss_metric_": _loss_metric,
    "loss_metric_2": _loss_metric,
}

_LONGEST_TAG = max(len(tag) for tag in _DETAILS)


def read_details(r: Reader, expected_kind: str) -> Layer:
    """Read one details record and check that its type is ``expected_kind`` (e.g. ``con``)."""
    start = r.offset
    length = r.uint(f"type tag of a {expected_kind} layer")
    if length > _LONGEST_TAG:
        raise r.fail(f"expected a {expected_kind} layer, found no dlib layer tag", start)
    tag = bytes(r.take(length, f"type tag of a {expected_kind} layer")).decode("latin-1")
    layer = Layer(tag)
    if tag not in _DETAILS or layer.kind != expected_kind:
        raise r.fail(f"expected a {expected_kind} layer, found {tag!r}", start)
    layer.fields = _DETAILS[tag](r, tag)
    return layer


def read_layer_state(r: Reader, version: int, innermost: bool) -> None:
    """Skip the training state that ``add_layer`` stores after a layer's details.

    That is three bools and the cached gradient/output tensors (empty in a cleaned network). The
    layer next to the input stores ``grad_final`` instead of ``params_grad`` and, from version 3
    on, its sample expansion factor.
    """
    for name in ("setup_called", "gradient_input_is_stale", "output_disabled"):
        r.bool_(f"layer state {name}")
    r.tensor("x_grad")
    r.tensor("cached_output")
    if innermost:
        r.tensor("grad_final")
        if version >= 3:
            r.uint("sample_expansion_factor")
    elif version >= 2:
        r.tensor("params_grad")
