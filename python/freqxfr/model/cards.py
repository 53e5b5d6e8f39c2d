"""Model cards: how to feed a face-recognition model and how to compare its embeddings.

A card is a small TOML or JSON file. Built-in cards (presets) live in ``freqxfr/presets``.
The model input a card describes is made by exactly one formula, in
:func:`to_model_input` (and, fused, in the C++ masking core)::

    v = pixel                                   if value_range == (0, 255)
    v = lo + pixel * ((hi - lo) / 255)          otherwise
    x = (v - mean[c]) / std[c]                  in float32, c in the model's channel order

``mean`` and ``std`` are listed in the model's channel order (for a BGR model, ``mean[0]``
belongs to blue). Scores are "higher means more similar": cosine similarity, or the negative
Euclidean distance. A pair matches when ``score >= threshold``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from freqxfr.common.atomic import write_text
from freqxfr.common.errors import ModelError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

LAYOUTS = ("NCHW", "NHWC")
CHANNEL_ORDERS = ("RGB", "BGR")
METRICS = ("cosine", "euclidean")
ALIGNMENTS = ("dlib_chip", "arcface112", "none")


@dataclasses.dataclass(frozen=True)
class ModelCard:
    """How to feed one face-recognition model and how to compare its embeddings.

    Attributes
    ----------
    name : str
        Short model name, shown in reports.
    input_size : tuple of int
        ``(height, width)`` of the model's input image.
    mean, std : tuple of float
        Per-channel normalisation in the model's channel order (see the module docstring).
    embedding_size : int
        Length of the embedding the model outputs.
    metric : {"cosine", "euclidean"}
        Comparison; for ``"euclidean"`` the score is the negative distance.
    threshold : float
        Default decision threshold in score units: a pair matches when ``score >= threshold``.
    alignment : {"dlib_chip", "arcface112", "none"}
        Which crop the model expects (see :mod:`freqxfr.imaging.align`).
    layout : {"NCHW", "NHWC"}
        Memory layout of the model input.
    channel_order : {"RGB", "BGR"}
        Channel order of the model input.
    value_range : tuple of float
        Range the uint8 pixels 0..255 are mapped to before ``mean``/``std`` apply.
    input_name, output_name : str or None
        Graph input/output to use; ``None`` means the graph's only (first) one.
    source : str
        Where the ONNX file comes from: ``"converter:<module>"`` for a file freqxfr converts
        (``freqxfr.model.converters.<module>.converted_path()``), ``"file:<path>"`` for a file beside the
        card (relative paths are relative to the card file), or ``""`` when the caller gives it.
    notes : str
        Free text: provenance, licence, where the threshold comes from.
    """

    name: str
    input_size: tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    embedding_size: int
    metric: str
    threshold: float
    alignment: str
    layout: str = "NCHW"
    channel_order: str = "RGB"
    value_range: tuple[float, float] = (0.0, 255.0)
    input_name: str | None = None
    output_name: str | None = None
    source: str = ""
    notes: str = ""

    def __post_init__(self) -> None:
        # Accept lists for the tuple fields, as a TOML/JSON reader would give them.
        for field in dataclasses.fields(self):
            value = _coerce(field.name, getattr(self, field.name), "ModelCard")
            object.__setattr__(self, field.name, value)
        _validate(self, origin="ModelCard")

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """Per-image input shape in the model's layout: ``(C, H, W)`` or ``(H, W, C)``."""
        h, w = self.input_size
        return (3, h, w) if self.layout == "NCHW" else (h, w, 3)

    def replace(self, **changes: Any) -> ModelCard:
        """Return a copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the card (lists instead of tuples, no ``None`` values)."""
        out: dict[str, Any] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value is None:
                continue
            out[field.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, origin: str = "model card") -> ModelCard:
        """Build a card from a mapping, as read from TOML or JSON.

        A ``base`` key names a preset whose fields the mapping then overrides, so that a user
        card can say ``base = "arcface"`` and change only the name and the embedding size.

        Raises
        ------
        ModelError
            A field is unknown, missing or invalid; the message names ``origin`` and the field.
        """
        data = dict(data)
        base_name = data.pop("base", None)
        if base_name is not None:
            if not isinstance(base_name, str):
                raise ModelError(f"{origin}: field 'base' must be a preset name (a string)")
            try:
                base = preset(base_name)
            except ModelError as exc:
                raise ModelError(f"{origin}: field 'base': {exc}") from None
            data = {**base.to_dict(), **data}
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ModelError(
                f"{origin}: unknown field(s) {', '.join(map(repr, unknown))}; "
                f"known fields are {', '.join(sorted(names))}"
            )
        required = [
            f.name
            for f in dataclasses.fields(cls)
            if f.default is dataclasses.MISSING and f.name not in data
        ]
        if required:
            raise ModelError(f"{origin}: missing field(s) {', '.join(map(repr, required))}")
        kwargs = {name: _coerce(name, value, origin) for name, value in data.items()}
        card = object.__new__(cls)
        for field in dataclasses.fields(cls):
            value = kwargs.get(field.name, field.default)
            object.__setattr__(card, field.name, value)
        _validate(card, origin=origin)
        return card


# --- reading and writing ---------------------------------------------------------------------


def load_card(path: str | Path) -> ModelCard:
    """Read a card from a ``.toml`` or ``.json`` file.

    Raises
    ------
    ModelError
        The file is missing, unreadable, not valid TOML/JSON, or describes an invalid card.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".json"):
        raise ModelError(f"model card {path}: expected a .toml or .json file")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ModelError(f"model card {path}: cannot read it ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise ModelError(f"model card {path}: not UTF-8 text") from None
    return parse_card(text, fmt=suffix[1:], origin=f"model card {path}")


def parse_card(text: str, *, fmt: str = "toml", origin: str = "model card") -> ModelCard:
    """Parse a card from TOML or JSON text (``fmt`` is ``"toml"`` or ``"json"``)."""
    try:
        if fmt == "toml":
            data = tomllib.loads(text)
        elif fmt == "json":
            data = json.loads(text)
        else:
            raise ModelError(f"{origin}: unknown card format {fmt!r}; use 'toml' or 'json'")
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{origin}: not valid {fmt.upper()}: {exc}") from None
    if not isinstance(data, dict):
        raise ModelError(f"{origin}: expected a table/object of fields at the top level")
    return ModelCard.from_dict(data, origin=origin)


def save_card(card: ModelCard, path: str | Path) -> Path:
    """Write ``card`` atomically as TOML or JSON, chosen by the file suffix."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".json":
        write_text(path, json.dumps(card.to_dict(), indent=2, allow_nan=False) + "\n")
    elif suffix == ".toml":
        write_text(path, card_to_toml(card))
    else:
        raise ModelError(f"model card {path}: expected a .toml or .json file name")
    return path


def card_to_toml(card: ModelCard) -> str:
    """The card as TOML text (flat keys; enough TOML for the card's value types)."""
    lines = [f"{key} = {_toml_value(value)}" for key, value in card.to_dict().items()]
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        # A JSON string literal is a valid TOML basic string (same escapes).
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


# --- presets ----------------------------------------------------------------------------------


def list_presets() -> list[str]:
    """Names of the built-in cards, sorted; ``"dlib_resnet"`` is the default model."""
    folder = resources.files("freqxfr") / "presets"
    return sorted(
        entry.name.removesuffix(".toml")
        for entry in folder.iterdir()
        if entry.name.endswith(".toml")
    )


def preset(name: str) -> ModelCard:
    """The built-in card called ``name`` (see :func:`list_presets`).

    Raises
    ------
    ModelError
        No preset has that name.
    """
    names = list_presets()
    if name not in names:
        raise ModelError(f"no model preset named {name!r}; presets are {', '.join(names)}")
    resource = resources.files("freqxfr") / "presets" / f"{name}.toml"
    return parse_card(resource.read_text(encoding="utf-8"), origin=f"preset card {name}.toml")


# --- validation -------------------------------------------------------------------------------


def _coerce(name: str, value: Any, origin: str) -> Any:
    """Turn a TOML/JSON value into the field's Python type, or raise naming the field."""

    def fail(expected: str) -> ModelError:
        return ModelError(f"{origin}: field {name!r} must be {expected}, got {value!r}")

    def number(v: Any) -> float:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise fail("a number or a list of numbers")
        return float(v)

    if name == "input_size":
        if (
            not isinstance(value, (list, tuple))
            or len(value) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        ):
            raise fail("[height, width] (two integers)")
        return (int(value[0]), int(value[1]))
    if name in ("mean", "std"):
        if not isinstance(value, (list, tuple)) or len(value) != 3:
            raise fail("a list of 3 numbers")
        return tuple(number(v) for v in value)
    if name == "value_range":
        if not isinstance(value, (list, tuple)) or len(value) != 2:
            raise fail("[low, high] (two numbers)")
        return tuple(number(v) for v in value)
    if name == "embedding_size":
        if isinstance(value, bool) or not isinstance(value, int):
            raise fail("an integer")
        return value
    if name == "threshold":
        return number(value)
    if name in ("input_name", "output_name"):
        if value is not None and not isinstance(value, str):
            raise fail("a string")
        return value or None
    if not isinstance(value, str):
        raise fail("a string")
    return value


def threshold_problem(threshold: Any, metric: str) -> str | None:
    """What is wrong with ``threshold`` as a decision threshold for ``metric``, or ``None``.

    The one rule for a card's threshold and for a threshold given at run time (e.g.
    ``Verifier.compare(threshold=...)``, ``freqxfr verify --threshold``): a finite number, in
    [-1, 1] for cosine, <= 0 for the negative Euclidean distance.
    """
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
        return f"must be a number, got {threshold!r}"
    if not math.isfinite(threshold):
        return f"must be a finite number, got {threshold}"
    if metric == "cosine" and not -1.0 <= threshold <= 1.0:
        return f"is a cosine similarity and must lie in [-1, 1], got {threshold}"
    if metric == "euclidean" and threshold > 0:
        return (
            f"is a negative Euclidean distance (score = -distance) and must be <= 0, "
            f"got {threshold}"
        )
    return None


def _validate(card: ModelCard, *, origin: str) -> None:
    """Check the values of a card whose fields already have the right types."""

    def fail(field: str, problem: str) -> ModelError:
        return ModelError(f"{origin}: field {field!r} {problem}")

    if not card.name or not card.name.strip():
        raise fail("name", "must not be empty")
    if (
        len(card.input_size) != 2
        or not all(isinstance(v, int) for v in card.input_size)
        or min(card.input_size) < 8
        or max(card.input_size) > 4096
    ):
        raise fail(
            "input_size", f"must be [height, width] between 8 and 4096, got {card.input_size}"
        )
    if card.layout not in LAYOUTS:
        raise fail("layout", f"must be one of {LAYOUTS}, got {card.layout!r}")
    if card.channel_order not in CHANNEL_ORDERS:
        raise fail("channel_order", f"must be one of {CHANNEL_ORDERS}, got {card.channel_order!r}")
    lo, hi = card.value_range
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise fail("value_range", f"must be [low, high] with low < high, got {card.value_range}")
    if len(card.mean) != 3 or not all(math.isfinite(v) for v in card.mean):
        raise fail("mean", f"must be 3 finite numbers, got {card.mean}")
    if len(card.std) != 3 or not all(math.isfinite(v) and v > 0 for v in card.std):
        raise fail("std", f"must be 3 positive numbers, got {card.std}")
    if not isinstance(card.embedding_size, int) or card.embedding_size < 1:
        raise fail("embedding_size", f"must be a positive integer, got {card.embedding_size!r}")
    if card.metric not in METRICS:
        raise fail("metric", f"must be one of {METRICS}, got {card.metric!r}")
    problem = threshold_problem(card.threshold, card.metric)
    if problem:
        raise fail("threshold", problem)
    if card.alignment not in ALIGNMENTS:
        raise fail("alignment", f"must be one of {ALIGNMENTS}, got {card.alignment!r}")
    if card.source and not card.source.startswith(("converter:", "file:")):
        raise fail(
            "source", f"must start with 'converter:' or 'file:' (or be empty), got {card.source!r}"
        )


def to_model_input(images: np.ndarray, card: ModelCard) -> np.ndarray:
    """Turn aligned uint8 RGB images into the model's float32 input.

    ``x = (v - mean[c]) / std[c]`` in float32, with ``v`` the pixel mapped to the card's value
    range, channels reordered to the card's channel order and laid out as the card's layout.
    Callers validate ``images``; :meth:`Verifier.embed` does.

    Parameters
    ----------
    images : numpy.ndarray, uint8, shape (N, H, W, 3)
        RGB images of the card's input size.
    card : ModelCard
        Says the value range, mean, std, channel order and layout.

    Returns
    -------
    numpy.ndarray, float32, shape (N, 3, H, W) or (N, H, W, 3)
        C-contiguous, ready for :meth:`Verifier.embed_model_input`.
    """
    n, h, w, _ = images.shape
    order = (0, 1, 2) if card.channel_order == "RGB" else (2, 1, 0)
    lo, hi = card.value_range
    scale = None if (lo, hi) == (0.0, 255.0) else np.float32((hi - lo) / 255.0)
    shape = (n, 3, h, w) if card.layout == "NCHW" else (n, h, w, 3)
    out = np.empty(shape, dtype=np.float32)
    for c, src in enumerate(order):
        plane = out[:, c] if card.layout == "NCHW" else out[..., c]
        v = images[..., src].astype(np.float32)
        if scale is not None:
            v = np.float32(lo) + v * scale
        np.subtract(v, np.float32(card.mean[c]), out=plane)
        np.divide(plane, np.float32(card.std[c]), out=plane)
    return out
