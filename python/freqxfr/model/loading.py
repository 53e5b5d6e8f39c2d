"""Finding and loading a model: which card and ONNX file a name means, converters, execution
providers and the ONNX Runtime session with the project's thread settings.

:func:`freqxfr.model.verifier.load_model` puts these together; the graph checks and rewrites it uses
live in :mod:`freqxfr.model.onnx_graphs`, and running the model in :mod:`freqxfr.model.verifier`.
"""

from __future__ import annotations

import importlib
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, TypedDict

from freqxfr.common.cores import usable_cores
from freqxfr.common.errors import ModelError
from freqxfr.model.cards import ModelCard, list_presets, load_card, preset

#: Short names accepted in ``providers``.
PROVIDER_ALIASES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "rocm": "ROCMExecutionProvider",
    "migraphx": "MIGraphXExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "dml": "DmlExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
}
DEFAULT_MODEL = "dlib_resnet"


class ProviderWarning(RuntimeWarning):
    """A requested execution provider is not available, and another one runs instead."""


# --- cards and files ---------------------------------------------------------------------------


def find_model(
    name_or_path: str | os.PathLike[str] | None, card: ModelCard | str | os.PathLike[str] | None
) -> tuple[ModelCard, Path]:
    """The card and the ONNX file that ``load_model``'s first two arguments mean."""
    given = _as_card(card) if card is not None else None
    if name_or_path is None:
        name_or_path = DEFAULT_MODEL
    text = os.fspath(name_or_path)
    path = Path(text).expanduser()
    if text in list_presets() and not path.is_file():
        model_card = given or preset(text)
        return model_card, model_path(preset(text))
    suffix = path.suffix.lower()
    if suffix in (".toml", ".json"):
        file_card = load_card(path)
        return given or file_card, model_path(file_card, relative_to=path.parent)
    if suffix == ".onnx":
        if not path.is_file():
            raise ModelError(f"model file {path}: file not found")
        if given is None:
            raise ModelError(
                f"model file {path}: an ONNX file needs a card saying how to feed it; pass "
                f"card='arcface' (a preset), a .toml/.json card file, or a ModelCard"
            )
        return given, path
    raise ModelError(
        f"{text!r} is neither a model preset ({', '.join(list_presets())}) nor an .onnx, .toml "
        "or .json file"
    )


def model_path(card: ModelCard, *, relative_to: Path | None = None) -> Path:
    """The ONNX file a card's ``source`` names, converting it first if a converter makes it.

    Raises
    ------
    ModelError
        The card has no source, or its file is missing.
    """
    source = card.source
    module = converter_module(card)
    if module is not None:
        return Path(module.converted_path())
    if source.startswith("file:"):
        path = Path(source.removeprefix("file:")).expanduser()
        if not path.is_absolute() and relative_to is not None:
            path = relative_to / path
        if not path.is_file():
            raise ModelError(f"card {card.name!r}: model file {path}: file not found")
        return path
    raise ModelError(
        f"card {card.name!r} describes a model you bring: "
        f"load_model('path/to/model.onnx', card={card.name!r})"
    )


def converter_module(card: ModelCard) -> ModuleType | None:
    """The ``freqxfr.model.converters`` module that makes a card's ONNX file (``source =
    "converter:NAME"``), or ``None`` when the card names a file or a model you bring.

    Its ``converted_path(force=False, ...)`` converts on first use and returns the cached file;
    ``cached_models()`` lists the conversions in the cache.

    Raises
    ------
    ModelError
        The source names a converter that does not exist or is not one.
    """
    source = card.source
    if not source.startswith("converter:"):
        return None
    module_name = source.removeprefix("converter:")
    # Private modules (``_cache``, ``_packages``) are helpers, not converters.
    if not module_name.isidentifier() or module_name.startswith("_"):
        raise ModelError(
            f"card {card.name!r}: invalid converter name {module_name!r} in source {source!r}"
        )
    try:
        module = importlib.import_module(f"freqxfr.model.converters.{module_name}")
    except ModuleNotFoundError:
        raise ModelError(
            f"card {card.name!r}: no converter freqxfr.model.converters.{module_name}"
        ) from None
    if not callable(getattr(module, "converted_path", None)):
        raise ModelError(
            f"card {card.name!r}: freqxfr.model.converters.{module_name} in source "
            f"{source!r} is not a model converter"
        )
    return module


def _as_card(card: ModelCard | str | os.PathLike[str]) -> ModelCard:
    if isinstance(card, ModelCard):
        return card
    text = os.fspath(card)
    if Path(text).suffix.lower() in (".toml", ".json"):
        return load_card(text)
    return preset(text)


# --- providers and sessions --------------------------------------------------------------------


def choose_providers(providers: str | Sequence[Any] | None, ort: Any) -> list[Any]:
    """Expand short names and drop (loudly) the providers this onnxruntime build lacks."""
    if providers is None:
        requested: list[Any] = ["CPUExecutionProvider"]
    elif isinstance(providers, str):
        requested = [providers]
    else:
        requested = list(providers)
    available = ort.get_available_providers()
    chosen, missing = [], []
    for entry in requested:
        name, options = (entry, None) if isinstance(entry, str) else (entry[0], entry[1])
        if not isinstance(name, str):
            raise ModelError(f"providers: expected provider names, got {entry!r}")
        name = PROVIDER_ALIASES.get(name.lower(), name)
        if name in available:
            chosen.append(name if options is None else (name, options))
        else:
            missing.append(name)
    if "CPUExecutionProvider" not in [c if isinstance(c, str) else c[0] for c in chosen]:
        chosen.append("CPUExecutionProvider")
    if missing:
        hint = ""
        if any(m in ("CUDAExecutionProvider", "TensorrtExecutionProvider") for m in missing):
            hint = (
                " CUDA is not available to this onnxruntime build; for GPUs install "
                "onnxruntime-gpu (pip install 'freqxfr[gpu]') instead of onnxruntime."
            )
        runs = chosen[0] if isinstance(chosen[0], str) else chosen[0][0]
        warnings.warn(
            f"requested execution provider(s) {', '.join(missing)} not available in "
            f"onnxruntime {ort.__version__} (available: {', '.join(available)}); "
            f"running on {runs}.{hint}",
            ProviderWarning,
            stacklevel=3,  # the caller of load_model
        )
    return chosen


class SessionSettings(TypedDict, total=False):
    """The keywords of :func:`session_options` that ``load_model`` passes on."""

    threads: int | None
    spin: bool


def session_options(ort: Any, *, threads: int | None = None, spin: bool = True) -> Any:
    """ONNX Runtime session options: ``threads`` intra-op threads (default: the usable cores,
    :func:`freqxfr.common.cores.usable_cores`), one inter-op thread, all graph optimisations."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or usable_cores()
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only; the graph warnings are for model authors
    # No CPU memory arena: it keeps the largest call's activations for the session's life (SFace:
    # 4.1 GB over a 100-pair run with 256-image calls, 464 MB without it and with one pair's
    # calls, at the same speed; benchmarks/bench_memory.py). Results are the same either way.
    options.enable_cpu_mem_arena = False
    # Let the worker threads spin during a run but not after it: the masking core runs between
    # model calls and would otherwise compete with idle spinning threads for the cores.
    options.add_session_config_entry("session.force_spinning_stop", "1")
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    return options


def open_session(path: Path, options: Any, providers: list[Any], ort: Any) -> Any:
    """An ``InferenceSession`` for ``path``; a file onnxruntime cannot load is a ModelError."""
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/... types
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"model file {path}: onnxruntime cannot load it: {message}") from None


def report_fallback(chosen: list[Any], session: Any) -> None:
    """Say so when an available provider still failed to start (e.g. CUDA libraries missing)."""
    wanted = chosen[0] if isinstance(chosen[0], str) else chosen[0][0]
    running = session.get_providers()
    if wanted not in running:
        warnings.warn(
            f"execution provider {wanted} is installed but did not start (missing GPU driver or "
            f"CUDA/cuDNN libraries?); running on {running[0]}",
            ProviderWarning,
            stacklevel=3,  # the caller of load_model
        )
