"""The verifier: a face-recognition model in ONNX Runtime, fed and compared as its card says.

``load_model()`` gives the default model (dlib's ResNet, converted on first use, on the CPU).
Every graph that runs here takes *normalised* float32 input; :func:`normalise` is the one place
in Python where uint8 RGB images become that input (the C++ masking core does the same
arithmetic, fused, for masked images).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .cards import ModelCard, load_card, preset, threshold_problem
from .errors import InputError, ModelError

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


# --- normalisation ----------------------------------------------------------------------------


def normalise(images: np.ndarray, card: ModelCard) -> np.ndarray:
    """Turn aligned uint8 RGB images into the model's float32 input.

    ``x = (v - mean[c]) / std[c]`` in float32, with ``v`` the pixel mapped to the card's value
    range, channels reordered to the card's channel order and laid out as the card's layout.
    Callers validate ``images``; :meth:`Verifier.embed` does.

    Parameters
    ----------
    images : numpy.ndarray, uint8, shape (N, H, W, 3)
        RGB images of the card's input size.
    card : ModelCard

    Returns
    -------
    numpy.ndarray, float32, shape (N, 3, H, W) or (N, H, W, 3)
        C-contiguous, ready for :meth:`Verifier.embed_normalised`.
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


# --- results ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Comparison:
    """The outcome of comparing two face images.

    Attributes
    ----------
    score : float
        Similarity; higher means more alike (cosine, or the negative Euclidean distance).
    threshold : float
        The threshold used; ``decision`` is ``score >= threshold``.
    decision : bool
        ``True`` when the model says the two images show the same person.
    model : str
        The card's name.
    metric : str
        ``"cosine"`` or ``"euclidean"``.
    """

    score: float
    threshold: float
    decision: bool
    model: str
    metric: str

    def to_dict(self) -> dict[str, Any]:
        """A flat dict for logs and JSON; Euclidean models also report ``distance``."""
        out = dataclasses.asdict(self)
        if self.metric == "euclidean":
            out["distance"] = -self.score
            out["distance_threshold"] = -self.threshold
        return out


# --- the verifier -----------------------------------------------------------------------------


class Verifier:
    """A loaded face-recognition model. Create it with :func:`load_model`.

    Attributes
    ----------
    card : ModelCard
        How the model is fed and compared, including the default threshold.
    path : Path
        The ONNX file that runs.
    provider : str
        The execution provider that actually runs the model (e.g. ``"CPUExecutionProvider"``).
    fixed_batch : int or None
        The graph's fixed batch size, if it has one (inputs are then fed in chunks of it).
    use_engine : bool
        Serve calls through the model's engine (:attr:`engine`; the default), which queues and
        batches concurrent callers; ``False`` runs each call on its caller's thread.
    """

    def __init__(
        self,
        session: Any,
        card: ModelCard,
        path: Path,
        *,
        input_name: str,
        output_name: str,
        fixed_batch: int | None = None,
        engine: bool = True,
    ) -> None:
        self.session = session
        self.card = card
        self.path = path
        self.input_name = input_name
        self.output_name = output_name
        self.fixed_batch = fixed_batch
        self.use_engine = bool(engine)

    @property
    def engine(self) -> Any:
        """This model's :class:`freqxfr.engine.Engine` (one per model and process)."""
        from .engine import Engine

        return Engine.for_model(self)

    def warmup(self) -> dict[str, float]:
        """Pay the first call's start-up costs now (see :meth:`freqxfr.engine.Engine.warmup`)."""
        from .engine import warmup

        return warmup(self, [])

    @property
    def provider(self) -> str:
        return str(self.session.get_providers()[0])

    def __repr__(self) -> str:
        return (
            f"Verifier(model={self.card.name!r}, metric={self.card.metric!r}, "
            f"threshold={self.card.threshold}, provider={self.provider!r}, path='{self.path}')"
        )

    # -- embeddings --

    def embed(
        self, images: npt.ArrayLike, *, batch_size: int = 64, deadline: float | None = None
    ) -> np.ndarray:
        """Embeddings of aligned face images.

        Parameters
        ----------
        images : array_like, uint8, shape (N, H, W, 3) or (H, W, 3)
            RGB images already aligned as the card says (``card.alignment``) and of the card's
            input size. Use :meth:`prepare` for raw photos.
        batch_size : int
            Images per model call.
        deadline : float, optional
            Seconds; the call fails with :class:`freqxfr.engine.DeadlineExceeded` if the engine
            has not delivered by then.

        Returns
        -------
        numpy.ndarray, float32, shape (N, D)

        Raises
        ------
        InputError
            ``images`` has the wrong type, dtype or shape; the message says what was expected.
        """
        arr = self._check_images(images)
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise InputError(f"batch_size must be a positive integer, got {batch_size!r}")
        from .engine import deadline_at

        at = deadline_at(deadline)
        queued = self.use_engine and not self.engine.on_engine_thread()
        out = np.empty((arr.shape[0], self.card.embedding_size), dtype=np.float32)
        for start in range(0, arr.shape[0], batch_size):
            chunk = normalise(arr[start : start + batch_size], self.card)
            if queued:
                out[start : start + chunk.shape[0]] = self.engine.embed(
                    chunk, deadline=deadline, at=at, what=f"embed ({self.card.name})")
            else:
                out[start : start + chunk.shape[0]] = self.embed_normalised(chunk)
        return out

    async def embed_async(
        self, images: npt.ArrayLike, *, deadline: float | None = None
    ) -> np.ndarray:
        """:meth:`embed` for asyncio, awaited from the model's engine in one request."""
        from .engine import deadline_at

        at = deadline_at(deadline)
        x = normalise(self._check_images(images), self.card)
        if not self.use_engine:
            return self.embed_normalised(x)
        return await self.engine.embed_async(x, deadline=deadline, at=at,
                                             what=f"embed ({self.card.name})")

    def embed_normalised(self, x: np.ndarray, *, batch_size: int | None = None) -> np.ndarray:
        """Embeddings of inputs that are already normalised (the masking core's output).

        The hot path: a C-contiguous float32 array goes to onnxruntime without a copy.

        Parameters
        ----------
        x : numpy.ndarray, float32, shape (N, *card.input_shape)
            As :func:`normalise` returns it (NCHW for an NCHW card).
        batch_size : int, optional
            Cut ``x`` into model calls of this many images (views, not copies). Default: one
            call, or the graph's fixed batch size.

        Returns
        -------
        numpy.ndarray, float32, shape (N, D)
        """
        expected = self.card.input_shape
        if not isinstance(x, np.ndarray) or x.dtype != np.float32 or x.shape[1:] != expected:
            got = (
                f"{x.dtype} array of shape {x.shape}"
                if isinstance(x, np.ndarray)
                else type(x).__name__
            )
            raise InputError(
                f"normalised input for model {self.card.name!r} must be a float32 array of shape "
                f"(N, {', '.join(map(str, expected))}) ({self.card.layout}), got {got}"
            )
        x = np.ascontiguousarray(x)  # a no-op for the core's output
        if self.use_engine and not self.engine.on_engine_thread():
            return self.engine.embed(x, batch_size=batch_size, what=f"embed ({self.card.name})")
        n = x.shape[0]
        step = self.fixed_batch or batch_size or max(n, 1)
        if step >= n:
            return self._run(x)
        out = np.empty((n, self.card.embedding_size), dtype=np.float32)
        for start in range(0, n, step):
            out[start : start + step] = self._run(x[start : start + step])
        return out

    def _run(self, x: np.ndarray) -> np.ndarray:
        n = x.shape[0]
        if self.fixed_batch and n < self.fixed_batch:
            # A graph with a fixed batch > 1 gets the last chunk padded with zeros.
            padded = np.zeros((self.fixed_batch, *x.shape[1:]), dtype=np.float32)
            padded[:n] = x
            x = padded
        # session.run wraps a C-contiguous numpy input without copying it on the CPU provider;
        # IOBinding would save nothing more here, since the output is only N x D floats.
        (y,) = self.session.run([self.output_name], {self.input_name: x})
        return y[:n].reshape(n, -1)

    # -- scores and decisions --

    def score(self, emb_a: npt.ArrayLike, emb_b: npt.ArrayLike) -> np.ndarray:
        """Row-wise similarity of two sets of embeddings; higher means more alike.

        Parameters
        ----------
        emb_a, emb_b : array_like, shape (..., D)
            Broadcast against each other row by row (e.g. (N, D) with (N, D) or (1, D)).

        Returns
        -------
        numpy.ndarray of float64, shape (...)
            Cosine similarity, or the negative Euclidean distance, per the card's metric.
        """
        a = np.asarray(emb_a, dtype=np.float64)
        b = np.asarray(emb_b, dtype=np.float64)
        d = self.card.embedding_size
        for name, arr in (("emb_a", a), ("emb_b", b)):
            if arr.ndim == 0 or arr.shape[-1] != d:
                raise InputError(
                    f"{name} must have {d} values in its last axis for model {self.card.name!r}, "
                    f"got shape {arr.shape}"
                )
        if self.card.metric == "cosine":
            norms = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
            return np.sum(a * b, axis=-1) / np.maximum(norms, 1e-30)
        return -np.linalg.norm(a - b, axis=-1)

    def decide(self, score: npt.ArrayLike, threshold: float | None = None) -> Any:
        """Match decision(s): ``score >= threshold`` (default: the card's threshold).

        Returns a ``bool`` for a scalar score and a boolean array otherwise.
        """
        t = self._threshold(threshold)
        result = np.asarray(score) >= t
        return bool(result) if result.ndim == 0 else result

    # -- raw photos --

    def prepare(
        self, image: Any, *, aligned: bool | None = None, name: str | None = None
    ) -> np.ndarray:
        """Load an image and align it as the card says, unless it is aligned already.

        Parameters
        ----------
        image : str, Path or numpy.ndarray
            An image file or an (H, W, 3) uint8 RGB array (see :func:`freqxfr.images.load_image`).
        aligned : bool, optional
            ``True``: the image is an aligned crop already (only resized if needed); ``False``:
            always detect and align; ``None`` (default): an image of the model's input size is
            taken as aligned (:func:`freqxfr.align.is_aligned`).
        name : str, optional
            How to call the image in error messages (default: its path).

        Returns
        -------
        numpy.ndarray, uint8, shape (H, W, 3)
            Ready for :meth:`embed`.
        """
        from .align import align

        h, w = self.card.input_size
        if h != w:  # align() cuts square crops; a non-square model must get its crops as they are
            from .images import load_image, source_label

            img = load_image(image, name=name)
            if img.shape[:2] != (h, w):
                raise InputError(
                    f"{source_label(image, name)}: model {self.card.name!r} takes {h}x{w} crops, "
                    f"but the image is {img.shape[0]}x{img.shape[1]}"
                )
            return img
        return align(image, self.card.alignment, h, name=name, aligned=aligned)

    def compare(
        self,
        img_a: Any,
        img_b: Any,
        *,
        aligned: bool | None = None,
        threshold: float | None = None,
        deadline: float | None = None,
    ) -> Comparison:
        """Compare two face images (files or arrays), aligning raw photos as needed.

        Parameters
        ----------
        img_a, img_b : str, Path or numpy.ndarray
            Raw photos or aligned crops.
        aligned : bool, optional
            See :meth:`prepare`.
        threshold : float, optional
            Override the card's threshold.
        deadline : float, optional
            Seconds, counted from this call (alignment included); see :meth:`embed`.

        Returns
        -------
        Comparison
        """
        self._threshold(threshold)  # checked before any image is read
        from .engine import deadline_at

        at = deadline_at(deadline)
        faces = np.stack([self.prepare(img, aligned=aligned) for img in (img_a, img_b)])
        if self.use_engine and not self.engine.on_engine_thread():
            emb = self.engine.embed(normalise(self._check_images(faces), self.card),
                                    deadline=deadline, at=at, what=f"compare ({self.card.name})")
        else:
            emb = self.embed(faces)
        return self._comparison(emb, threshold)

    async def compare_async(
        self,
        img_a: Any,
        img_b: Any,
        *,
        aligned: bool | None = None,
        threshold: float | None = None,
        deadline: float | None = None,
    ) -> Comparison:
        """:meth:`compare` for asyncio: alignment on a worker thread, the model via the engine."""
        import asyncio

        from .engine import deadline_at

        self._threshold(threshold)  # checked before any image is read, as in compare

        at = deadline_at(deadline)
        faces = await asyncio.get_running_loop().run_in_executor(
            None, lambda: np.stack([self.prepare(i, aligned=aligned) for i in (img_a, img_b)]))
        x = normalise(self._check_images(faces), self.card)
        if not self.use_engine:
            return self._comparison(self.embed_normalised(x), threshold)
        emb = await self.engine.embed_async(x, deadline=deadline, at=at,
                                            what=f"compare ({self.card.name})")
        return self._comparison(emb, threshold)

    def _comparison(self, emb: np.ndarray, threshold: float | None) -> Comparison:
        score = float(self.score(emb[0], emb[1]))
        t = self._threshold(threshold)
        return Comparison(score, t, score >= t, self.card.name, self.card.metric)

    # -- validation --

    def _threshold(self, threshold: Any) -> float:
        """The card's threshold, or ``threshold`` checked by the same rule as a card's."""
        if threshold is None:
            return self.card.threshold
        if isinstance(threshold, np.generic):
            threshold = threshold.item()
        problem = threshold_problem(threshold, self.card.metric)
        if problem:
            raise InputError(f"threshold for model {self.card.name!r} {problem}")
        return float(threshold)

    def _check_images(self, images: npt.ArrayLike) -> np.ndarray:
        arr = images if isinstance(images, np.ndarray) else np.asarray(images)
        h, w = self.card.input_size
        if arr.ndim == 3:
            arr = arr[None]
        want = (
            f"uint8 RGB images of shape (N, {h}, {w}, 3), aligned as "
            f"{self.card.alignment!r}, for model {self.card.name!r}"
        )
        if arr.dtype != np.uint8:
            raise InputError(f"images: expected {want}; got dtype {arr.dtype}")
        if arr.ndim != 4 or arr.shape[1:] != (h, w, 3):
            raise InputError(f"images: expected {want}; got shape {np.shape(images)}")
        if arr.shape[0] == 0:
            raise InputError("images: got no images")
        return arr


# --- loading ----------------------------------------------------------------------------------


def load_model(
    name_or_path: str | os.PathLike[str] | None = None,
    card: ModelCard | str | os.PathLike[str] | None = None,
    providers: str | Sequence[Any] | None = None,
    *,
    threads: int | None = None,
    engine: bool = True,
    spin: bool = True,
) -> Verifier:
    """Load a face-recognition model.

    Parameters
    ----------
    name_or_path : str or Path, optional
        ``None`` for the default model (dlib's ResNet); a preset name (``"dlib_resnet"``,
        ``"sface"``; see :func:`freqxfr.cards.list_presets`), converted on first use; a card
        file (``.toml``/``.json``) whose ``source`` names the model; or an ``.onnx`` file, which
        then needs ``card``.
    card : ModelCard, str or Path, optional
        The card for an ``.onnx`` file: a :class:`ModelCard`, a card file, or a preset name such
        as ``"arcface"``. With a preset name in ``name_or_path`` it replaces the preset's card.
    providers : str or sequence, optional
        ONNX Runtime execution providers in order of preference, by full name
        (``"CUDAExecutionProvider"``) or short name (``"cuda"``, ``"cpu"``), optionally as
        ``(name, options)`` tuples. Default: the CPU. Providers this onnxruntime build lacks
        are dropped with a :class:`ProviderWarning` that says what runs instead.
    threads : int, optional
        CPU threads per model call (ONNX Runtime's intra-op threads); default: the cores this
        process may use, a container's CPU quota included (:func:`freqxfr.cores.usable_cores`).
    engine : bool
        Serve calls through one queue that batches concurrent callers (:mod:`freqxfr.engine`);
        ``False``: each call runs on its caller's thread.
    spin : bool
        Let ONNX Runtime's worker threads spin while they wait for work inside a model call
        (its default). ``False`` suits cores shared with other work: on this project's busy
        2-core machine it cut a 34-image dlib call from 1314 to 1067 ms (CPU 372 to 287 ms).

    Returns
    -------
    Verifier

    Raises
    ------
    ModelError
        The model or card cannot be found or read, or the graph does not match the card (the
        message names the mismatch).
    """
    model_card, path = _resolve(name_or_path, card)
    import onnxruntime as ort

    chosen = _choose_providers(providers, ort)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or _usable_cores()
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only; the graph warnings are for model authors
    # Let the worker threads spin during a run but not after it: the masking core runs between
    # model calls and would otherwise compete with idle spinning threads for the cores.
    options.add_session_config_entry("session.force_spinning_stop", "1")
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")

    session = _session(path, options, chosen, ort)
    input_name, output_name, batch = _check_graph(session, model_card, path)
    if batch is not None:
        dynamic = _dynamic_batch_copy(path, input_name, options, chosen, ort)
        if dynamic is not None:
            path, batch = dynamic, None
            session = _session(path, options, chosen, ort)
    _report_fallback(chosen, session)
    return Verifier(
        session, model_card, path, input_name=input_name, output_name=output_name,
        fixed_batch=batch, engine=engine,
    )


def model_path(card: ModelCard, *, relative_to: Path | None = None) -> Path:
    """The ONNX file a card's ``source`` names, converting it first if a converter makes it.

    Raises
    ------
    ModelError
        The card has no source, or its file is missing.
    """
    source = card.source
    if source.startswith("converter:"):
        module_name = source.removeprefix("converter:")
        # Private modules (``_cache``, ``_packages``) are helpers, not converters.
        if not module_name.isidentifier() or module_name.startswith("_"):
            raise ModelError(f"card {card.name!r}: invalid converter name {module_name!r} in "
                             f"source {source!r}")
        try:
            module = importlib.import_module(f"freqxfr.models.{module_name}")
        except ModuleNotFoundError:
            raise ModelError(
                f"card {card.name!r}: no converter freqxfr.models.{module_name}"
            ) from None
        convert = getattr(module, "converted_path", None)
        if not callable(convert):
            raise ModelError(f"card {card.name!r}: freqxfr.models.{module_name} in source "
                             f"{source!r} is not a model converter")
        return Path(convert())
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


def _resolve(
    name_or_path: str | os.PathLike[str] | None, card: ModelCard | str | os.PathLike[str] | None
) -> tuple[ModelCard, Path]:
    """Find the card and the ONNX file for ``load_model``'s arguments."""
    from .cards import list_presets

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


def _as_card(card: ModelCard | str | os.PathLike[str]) -> ModelCard:
    if isinstance(card, ModelCard):
        return card
    text = os.fspath(card)
    if Path(text).suffix.lower() in (".toml", ".json"):
        return load_card(text)
    return preset(text)


def _usable_cores() -> int:
    from .cores import usable_cores

    return usable_cores()


def _choose_providers(providers: str | Sequence[Any] | None, ort: Any) -> list[Any]:
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
            stacklevel=3,
        )
    return chosen


def _report_fallback(chosen: list[Any], session: Any) -> None:
    """Say so when an available provider still failed to start (e.g. CUDA libraries missing)."""
    wanted = chosen[0] if isinstance(chosen[0], str) else chosen[0][0]
    running = session.get_providers()
    if wanted not in running:
        warnings.warn(
            f"execution provider {wanted} is installed but did not start (missing GPU driver or "
            f"CUDA/cuDNN libraries?); running on {running[0]}",
            ProviderWarning,
            stacklevel=3,
        )


def _session(path: Path, options: Any, providers: list[Any], ort: Any) -> Any:
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/... types
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"model file {path}: onnxruntime cannot load it: {message}") from None


_FLOAT_TYPES = {"tensor(float)"}


def _check_graph(session: Any, card: ModelCard, path: Path) -> tuple[str, str, int | None]:
    """Check the graph's input and output against the card.

    Returns the input name, the output name, and the fixed batch size (``None`` if dynamic).
    """
    where = f"model {path.name} with card {card.name!r}"
    inputs = session.get_inputs()
    if card.input_name is not None:
        matches = [i for i in inputs if i.name == card.input_name]
        if not matches:
            raise ModelError(
                f"{where}: the card names input {card.input_name!r}, but the graph's inputs are "
                f"{', '.join(repr(i.name) for i in inputs)}"
            )
        inp = matches[0]
    elif len(inputs) == 1:
        inp = inputs[0]
    else:
        raise ModelError(
            f"{where}: the graph has {len(inputs)} inputs "
            f"({', '.join(repr(i.name) for i in inputs)}); set input_name in the card"
        )
    if inp.type not in _FLOAT_TYPES:
        raise ModelError(f"{where}: input {inp.name!r} is {inp.type}; freqxfr feeds float32")
    shape = list(inp.shape)
    expected = card.input_shape
    if len(shape) != 4:
        raise ModelError(
            f"{where}: input {inp.name!r} has shape {shape}; expected 4 dimensions "
            f"(N, {', '.join(map(str, expected))}) for layout {card.layout}"
        )
    h, w = card.input_size
    labels = (
        ("channels", "height", "width")
        if card.layout == "NCHW"
        else ("height", "width", "channels")
    )
    for dim, want, label in zip(shape[1:], expected, labels, strict=True):
        if isinstance(dim, int) and dim != want:
            hint = ""
            if card.layout == "NCHW" and shape[1:] == [h, w, 3]:
                hint = "; the graph looks NHWC, so set layout = 'NHWC' in the card"
            elif card.layout == "NHWC" and shape[1:] == [3, h, w]:
                hint = "; the graph looks NCHW, so set layout = 'NCHW' in the card"
            raise ModelError(
                f"{where}: input {inp.name!r} has shape {shape}, so {label} = {dim}, but the card "
                f"says {label} = {want} (input_size {h}x{w}, layout {card.layout}){hint}"
            )
    outputs = session.get_outputs()
    if card.output_name is not None:
        matches = [o for o in outputs if o.name == card.output_name]
        if not matches:
            raise ModelError(
                f"{where}: the card names output {card.output_name!r}, but the graph's outputs "
                f"are {', '.join(repr(o.name) for o in outputs)}"
            )
        out = matches[0]
    else:
        out = outputs[0]
    if out.type not in _FLOAT_TYPES:
        raise ModelError(f"{where}: output {out.name!r} is {out.type}; expected float32")
    fixed = [d for d in out.shape[1:] if isinstance(d, int)]
    if len(fixed) == len(out.shape[1:]) and int(np.prod(fixed)) != card.embedding_size:
        raise ModelError(
            f"{where}: output {out.name!r} has shape {list(out.shape)}, so embeddings have "
            f"{int(np.prod(fixed))} values, but the card says embedding_size = {card.embedding_size}"
        )
    batch = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else None
    return inp.name, out.name, batch


def _dynamic_batch_copy(
    path: Path, input_name: str, options: Any, providers: list[Any], ort: Any
) -> Path | None:
    """A cached copy of a fixed-batch graph with a dynamic batch dimension, if it works.

    The copy is kept only if a batch of two gives the same embeddings as two single calls;
    otherwise (a Reshape with a hard-coded batch, say) ``None`` tells the caller to loop.
    """
    import onnx

    from .atomic import write_bytes
    from .cache import cache_dir, warn_once
    from .errors import OutputError

    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()[:16]
    try:
        folder = cache_dir("models")
    except OutputError as exc:  # the copy only saves time: without a cache, loop over the batch
        warn_once("dynbatch", f"{path}: no dynamic-batch copy, so batches run one image at a "
                              f"time: {exc}")
        return None
    target = folder / f"{path.stem}-{digest}-dynbatch.onnx"
    refused = folder / f"{path.stem}-{digest}-dynbatch.refused"
    if refused.is_file():
        return None
    if not target.is_file():
        model = onnx.load_model_from_string(data)
        graph = model.graph
        for value in list(graph.input) + list(graph.output):
            dims = value.type.tensor_type.shape.dim
            if dims and value.name in {input_name, *(o.name for o in graph.output)}:
                dims[0].dim_param = "N"  # setting dim_param clears dim_value
        del graph.value_info[:]  # stale intermediate shapes would pin the batch to 1
        try:
            write_bytes(target, model.SerializeToString())
        except OSError as exc:
            warn_once("dynbatch", f"{path}: no dynamic-batch copy, so batches run one image at "
                                  f"a time: cannot write {target} ({exc.strerror or exc})")
            return None
    try:
        session = ort.InferenceSession(str(target), sess_options=options, providers=providers)
        shape = [d if isinstance(d, int) else 1 for d in session.get_inputs()[0].shape]
        rng = np.random.default_rng(0)
        x = rng.standard_normal((2, *shape[1:])).astype(np.float32)
        both = session.run(None, {input_name: x})[0]
        single = np.concatenate([session.run(None, {input_name: x[i : i + 1]})[0] for i in (0, 1)])
        ok = both.shape == single.shape and np.allclose(both, single, rtol=1e-4, atol=1e-5)
    except Exception:  # any failure means the graph cannot batch; fall back to looping
        ok = False
    if not ok:
        with contextlib.suppress(OSError):  # the marker only saves the next process a test
            target.unlink(missing_ok=True)
            write_bytes(refused, b"")
        return None
    return target
