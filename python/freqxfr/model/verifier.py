"""Running a face-recognition model: the :class:`Verifier`, fed and compared as its card says.

``load_model()`` gives the default model (dlib's ResNet, converted on first use, on the CPU).
Every graph that runs here takes *model input*: float32 pixels mapped and standardised as the
card says; :func:`to_model_input` is the one place in Python where uint8 RGB images become it
(the C++ masking core does the same arithmetic, fused, for masked images).

Finding the card, the file and the providers is :mod:`freqxfr.model.loading`'s job; checking
and rewriting graphs is :mod:`freqxfr.model.onnx_graphs`'s; aligning photos is :mod:`freqxfr.imaging.align`'s.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from freqxfr.common.errors import InputError
from freqxfr.imaging.align import DEFAULT_PADDING, align_for_card
from freqxfr.model.cards import ModelCard, threshold_problem, to_model_input

# DEFAULT_MODEL, PROVIDER_ALIASES, ProviderWarning and model_path lived here; still importable.
from freqxfr.model.loading import (
    DEFAULT_MODEL,
    PROVIDER_ALIASES,
    ProviderWarning,
    choose_providers,
    find_model,
    model_path,
    open_session,
    report_fallback,
    session_options,
)
from freqxfr.model.onnx_graphs import check_graph, dynamic_batch_copy

__all__ = [
    "DEFAULT_MODEL",
    "PROVIDER_ALIASES",
    "Comparison",
    "ProviderWarning",
    "Verifier",
    "load_model",
    "model_path",
    "normalise",
    "to_model_input",
]


# --- model input ------------------------------------------------------------------------------


#: The former name of :func:`to_model_input`, kept for callers ("normalised" also names the
#: peak-scaled influence and a masking domain).
normalise = to_model_input


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
        """This model's :class:`freqxfr.model.engine.Engine` (one per model and process)."""
        from freqxfr.model.engine import Engine

        return Engine.for_model(self)

    def warmup(self) -> dict[str, float]:
        """Pay the first call's start-up costs now (see :meth:`freqxfr.model.engine.Engine.warmup`)."""
        from freqxfr.model.engine import warmup

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
            input size. Use :meth:`align` for raw photos.
        batch_size : int
            Images per model call.
        deadline : float, optional
            Seconds; the call fails with :class:`freqxfr.model.engine.DeadlineExceeded` if the engine
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
        from freqxfr.model.engine import deadline_at

        at = deadline_at(deadline)
        queued = self.use_engine and not self.engine.on_engine_thread()
        out = np.empty((arr.shape[0], self.card.embedding_size), dtype=np.float32)
        for start in range(0, arr.shape[0], batch_size):
            chunk = to_model_input(arr[start : start + batch_size], self.card)
            if queued:
                out[start : start + chunk.shape[0]] = self.engine.embed(
                    chunk, deadline=deadline, at=at, what=f"embed ({self.card.name})"
                )
            else:
                out[start : start + chunk.shape[0]] = self.embed_model_input(chunk)
        return out

    async def embed_async(
        self, images: npt.ArrayLike, *, deadline: float | None = None
    ) -> np.ndarray:
        """:meth:`embed` for asyncio, awaited from the model's engine in one request."""
        from freqxfr.model.engine import deadline_at

        at = deadline_at(deadline)
        x = to_model_input(self._check_images(images), self.card)
        if not self.use_engine:
            return self.embed_model_input(x)
        return await self.engine.embed_async(
            x, deadline=deadline, at=at, what=f"embed ({self.card.name})"
        )

    def embed_model_input(self, x: np.ndarray, *, batch_size: int | None = None) -> np.ndarray:
        """Embeddings of model input (:func:`to_model_input`'s or the masking core's output).

        The hot path: a C-contiguous float32 array goes to onnxruntime without a copy.

        Parameters
        ----------
        x : numpy.ndarray, float32, shape (N, *card.input_shape)
            As :func:`to_model_input` returns it (NCHW for an NCHW card).
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
                f"model input for model {self.card.name!r} must be a float32 array of shape "
                f"(N, {', '.join(map(str, expected))}) ({self.card.layout}), got {got}"
            )
        x = np.ascontiguousarray(x)  # a no-op for the core's output
        if self.use_engine and not self.engine.on_engine_thread():
            return self.engine.embed(x, batch_size=batch_size, what=f"embed ({self.card.name})")
        return self.run_model(x, batch_size=batch_size)

    def run_model(self, x: np.ndarray, *, batch_size: int | None = None) -> np.ndarray:
        """:meth:`embed_model_input` on this thread, never through the engine (the engine's
        lanes call this). ``x``: C-contiguous float32 model input, as checked there."""
        n = x.shape[0]
        step = self.fixed_batch or batch_size or max(n, 1)
        if step >= n:
            return self._run(x)
        out = np.empty((n, self.card.embedding_size), dtype=np.float32)
        for start in range(0, n, step):
            out[start : start + step] = self._run(x[start : start + step])
        return out

    def embed_normalised(self, x: np.ndarray, *, batch_size: int | None = None) -> np.ndarray:
        """The former name of :meth:`embed_model_input`, kept for callers (a method, so that a
        subclass that overrides ``embed_model_input`` is reached through either name)."""
        return self.embed_model_input(x, batch_size=batch_size)

    def with_threads(self, threads: int) -> Verifier:
        """Another Verifier of this model (same file, card and providers) whose session has
        ``threads`` intra-op threads, and no engine: the engine's lanes run on these."""
        import onnxruntime as ort

        # Fresh options: the object get_session_options() returns is the session's own, and
        # changing it would change what this session reports.
        spinning = self.session.get_session_options().get_session_config_entry(
            "session.intra_op.allow_spinning"
        )
        options = session_options(ort, threads=threads, spin=spinning != "0")
        session = open_session(self.path, options, self.session.get_providers(), ort)
        return Verifier(
            session,
            self.card,
            self.path,
            input_name=self.input_name,
            output_name=self.output_name,
            fixed_batch=self.fixed_batch,
            engine=False,
        )

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

    def align(
        self,
        image: Any,
        *,
        aligned: bool | None = None,
        name: str | None = None,
        padding: str = DEFAULT_PADDING,
    ) -> np.ndarray:
        """Load an image and align it as the card says, unless it is aligned already.

        Parameters
        ----------
        image : str, Path or numpy.ndarray
            An image file or an (H, W, 3) uint8 RGB array (see :func:`freqxfr.imaging.images.load_image`).
        aligned : bool, optional
            ``True``: the image is an aligned crop already (only resized if needed); ``False``:
            always detect and align; ``None`` (default): an image of the model's input size is
            taken as aligned (:func:`freqxfr.imaging.align.is_aligned`).
        name : str, optional
            How to call the image in error messages (default: its path).
        padding : {"edge", "reflect", "black"}
            What fills the part of a re-cut crop beyond the photo (:data:`freqxfr.imaging.align.PADDINGS`;
            default :data:`~freqxfr.imaging.align.DEFAULT_PADDING`).

        Returns
        -------
        numpy.ndarray, uint8, shape (H, W, 3)
            Ready for :meth:`embed`. (:func:`freqxfr.imaging.align.align_for_card` does the work.)
        """
        return align_for_card(image, self.card, aligned=aligned, name=name, padding=padding)

    prepare = align  # the former name, kept for callers ("prepare" also meant other things)

    def compare(
        self,
        img_a: Any,
        img_b: Any,
        *,
        aligned: bool | None = None,
        threshold: float | None = None,
        deadline: float | None = None,
        padding: str = DEFAULT_PADDING,
    ) -> Comparison:
        """Compare two face images (files or arrays), aligning raw photos as needed.

        Parameters
        ----------
        img_a, img_b : str, Path or numpy.ndarray
            Raw photos or aligned crops.
        aligned, padding
            See :meth:`align`.
        threshold : float, optional
            Override the card's threshold.
        deadline : float, optional
            Seconds, counted from this call (alignment included); see :meth:`embed`.

        Returns
        -------
        Comparison
        """
        self._threshold(threshold)  # checked before any image is read
        from freqxfr.model.engine import deadline_at

        at = deadline_at(deadline)
        faces = np.stack(
            [self.align(img, aligned=aligned, padding=padding) for img in (img_a, img_b)]
        )
        if self.use_engine and not self.engine.on_engine_thread():
            emb = self.engine.embed(
                to_model_input(self._check_images(faces), self.card),
                deadline=deadline,
                at=at,
                what=f"compare ({self.card.name})",
            )
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
        padding: str = DEFAULT_PADDING,
    ) -> Comparison:
        """:meth:`compare` for asyncio: alignment on a worker thread, the model via the engine."""
        import asyncio

        from freqxfr.model.engine import deadline_at

        self._threshold(threshold)  # checked before any image is read, as in compare

        at = deadline_at(deadline)
        faces = await asyncio.get_running_loop().run_in_executor(
            None,
            lambda: np.stack(
                [self.align(i, aligned=aligned, padding=padding) for i in (img_a, img_b)]
            ),
        )
        x = to_model_input(self._check_images(faces), self.card)
        if not self.use_engine:
            return self._comparison(self.embed_model_input(x), threshold)
        emb = await self.engine.embed_async(
            x, deadline=deadline, at=at, what=f"compare ({self.card.name})"
        )
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
        ``"sface"``; see :func:`freqxfr.model.cards.list_presets`), converted on first use; a card
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
        process may use, a container's CPU quota included (:func:`freqxfr.common.cores.usable_cores`).
    engine : bool
        Serve calls through one queue that batches concurrent callers (:mod:`freqxfr.model.engine`);
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
    model_card, path = find_model(name_or_path, card)
    import onnxruntime as ort

    chosen = choose_providers(providers, ort)
    options = session_options(ort, threads=threads, spin=spin)
    session = open_session(path, options, chosen, ort)
    input_name, output_name, batch = check_graph(session, model_card, path)
    if batch is not None:
        dynamic = dynamic_batch_copy(path, input_name, options, chosen, ort)
        if dynamic is not None:
            path, batch = dynamic, None
            session = open_session(path, options, chosen, ort)
    report_fallback(chosen, session)
    return Verifier(
        session,
        model_card,
        path,
        input_name=input_name,
        output_name=output_name,
        fixed_batch=batch,
        engine=engine,
    )
