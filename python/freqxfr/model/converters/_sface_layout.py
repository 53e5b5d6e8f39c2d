"""The interface of the converted SFace graph (no onnx import): what
:mod:`freqxfr.model.converters.sface` re-exports and :mod:`~freqxfr.model.converters._sface_onnx`
writes."""

from __future__ import annotations

INPUT_NAME = "input"
OUTPUT_NAME = "embedding"
OPSET = 17
#: The normalisation the original graph applies to RGB 0..255 input (its Sub and Mul nodes).
MEAN = 127.5
STD = 128.0
