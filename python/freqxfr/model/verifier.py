"""Using a face-recognition model: the :class:`Verifier`, fed and compared as its card says.

``load_model()`` gives the default model (dlib's ResNet, converted on first use, on the CPU).
Every graph that runs here takes *model input*: float32 pixels mapped and standardised as the
card says; :func:`to_model_input` is the one place in Python where uint8 RGB images become it
(the C++ masking core does the same arithmetic, fused, for masked images).

The Verifier is a facade: its calls go through the model's engine (:mod:`freqxfr.model.engine`,
which queues and batches concurrent callers) or straight to its runner
(:mod:`freqxfr.model.runner`, which owns the ONNX Runtime session). Finding the card, the file
and the providers is :mod:`freqxfr.model.loading`'s job; checking and rewriting graphs is
:mod:`freqxfr.model.onnx_graphs`'s; aligning photos is :mod:`freqxfr.imaging.align`'s.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

import numpy as np
import numpy.typing as npt
from PIL import Image

from freqxfr.common.errors import InputError
from freqxfr.common.keywords import check_keywords
from freqxfr.core import fftw
from freqxfr.imaging import align as face_align  # its card_crop: one seam for every alignment
from freqxfr.imaging.align import DEFAULT_PADDING
from freqxfr.imaging.images import AlignedFace, ImageLike, source_label
from freqxfr.model.cards import ModelCard, threshold_problem, to_model_input
from freqxfr.model.engine import Engine, alignment_exceeded, deadline_at, within_deadline
from freqxfr.model.runner import Runner, open_runner

if TYPE_CHECKING:  # typing.Unpack is Python 3.11+; the checker knows it for 3.10 too
    from typing_extensions import Unpack

__all__ = ["Comparison", "Verifier", "load_model", "to_model_input"]

#: What :meth:`Verifier.embed`, :meth:`Verifier.compare` and :meth:`Verifier.align` take as an
#: image (the same kinds as :class:`freqxfr.Explainer`).
IMAGE_KINDS = "a file path, a PIL image, a numpy array or an AlignedFace (from Explainer.align)"


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


class CompareOptions(TypedDict, total=False):
    """The options of :meth:`Verifier.compare`, which ``compare_async`` takes too."""

    aligned: bool | None
    threshold: float | None
    deadline: float | None
    padding: str


# --- the verifier -----------------------------------------------------------------------------


class Verifier:
    """A loaded face-recognition model. Create it with :func:`load_model`.

    Attributes
    ----------
    runner : Runner
        Owns the ONNX Runtime session and runs model input on the calling thread
        (:mod:`freqxfr.model.runner`).
    use_engine : bool
        Serve calls through the model's engine (:attr:`engine`; the default), which queues and
        batches concurrent callers; ``False`` runs each call on its caller's thread.
    """

    def __init__(self, runner: Runner, *, engine: bool = True) -> None:
        self.runner = runner
        self.use_engine = bool(engine)

    @property
    def card(self) -> ModelCard:
        """How the model is fed and compared, including the default threshold."""
        return self.runner.card

    @property
    def path(self) -> Path:
        """The ONNX file that runs."""
        return self.runner.path

    @property
    def fixed_batch(self) -> int | None:
        """The graph's fixed batch size, if it has one (inputs are then fed in chunks of it)."""
        return self.runner.fixed_batch

    @property
    def provider(self) -> str:
        """The execution provider that actually runs the model (e.g. ``"CPUExecutionProvider"``)."""
        return self.runner.provider

    @property
    def engine(self) -> Engine:
        """This model's :class:`freqxfr.model.engine.Engine` (one per model and process)."""
        return Engine.for_model(self.runner)

    def warmup(self) -> dict[str, float]:
        """Pay the first call's start-up costs now (see :meth:`freqxfr.model.engine.Engine.warmup`;
        without the engine, one lone model call)."""
        if self.use_engine:
            return self.engine.warmup()
        h, w = self.card.input_size
        faces = np.random.default_rng(0).integers(0, 256, (2, h, w, 3), dtype=np.uint8)
        t0 = time.perf_counter()
        self.embed(faces)
        timings = {"embed_2_ms": round((time.perf_counter() - t0) * 1e3, 2)}
        fftw.save_wisdom()
        return timings

    def __repr__(self) -> str:
        return (
            f"Verifier(model={self.card.name!r}, metric={self.card.metric!r}, "
            f"threshold={self.card.threshold}, provider={self.provider!r}, path='{self.path}')"
        )

    # -- embeddings --

    def embed(
        self,
        images: ImageLike | list[ImageLike] | tuple[ImageLike, ...],
        *,
        aligned: bool | None = None,
        padding: str = DEFAULT_PADDING,
        batch_size: int = 64,
        deadline: float | None = None,
    ) -> np.ndarray:
        """Embeddings of face images.

        Parameters
        ----------
        images
            One image or several: a file path, a PIL image, an (H, W, 3) array or an
            :class:`~freqxfr.imaging.images.AlignedFace` (as :meth:`align` takes them; raw photos
            are aligned), a list of these, or a uint8 array (N, H, W, 3) of crops already
            aligned as the card says (``card.alignment``) and of the card's input size.
        aligned, padding
            See :meth:`align`.
        batch_size : int
            Images per model call.
        deadline : float, optional
            Seconds, counted from this call (alignment included); the call fails with
            :class:`freqxfr.model.engine.DeadlineExceeded` if its result is not ready by then.

        Returns
        -------
        numpy.ndarray, float32, shape (N, D)

        Raises
        ------
        InputError
            ``images`` is of another kind, or an array of the wrong dtype or shape; the message
            says what was expected.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
            raise InputError(f"batch_size must be a positive integer, got {batch_size!r}")
        if batch_size < 1:
            raise InputError(f"batch_size must be a positive integer, got {batch_size!r}")
        at = deadline_at(deadline)
        arr = within_deadline(
            lambda: self._faces(images, aligned, padding), deadline=deadline, at=at, what="embed"
        )
        queued = self.use_engine and not self.engine.on_engine_thread()
        out = np.empty((arr.shape[0], self.card.embedding_size), dtype=np.float32)
        for start in range(0, arr.shape[0], batch_size):
            chunk = to_model_input(arr[start : start + batch_size], self.card)
            if queued:
                out[start : start + chunk.shape[0]] = self.engine.embed(
                    chunk, deadline=deadline, at=at, what=f"embed ({self.card.name})"
                )
            else:
                out[start : start + chunk.shape[0]] = self.runner.run_model(chunk)
        return out

    async def embed_async(
        self,
        images: ImageLike | list[ImageLike] | tuple[ImageLike, ...],
        *,
        aligned: bool | None = None,
        padding: str = DEFAULT_PADDING,
        deadline: float | None = None,
    ) -> np.ndarray:
        """:meth:`embed` for asyncio: alignment on a worker thread, the model awaited from the
        engine in one request."""
        at = deadline_at(deadline)
        faces = await self._faces_async(images, aligned, padding, deadline, at, "embed")
        x = to_model_input(faces, self.card)
        if not self.use_engine:
            return self.runner.run_model(x)
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
        return self.runner.run_model(x, batch_size=batch_size)

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
        image: ImageLike,
        *,
        aligned: bool | None = None,
        name: str | None = None,
        padding: str = DEFAULT_PADDING,
    ) -> np.ndarray:
        """Load an image and align it as the card says, unless it is aligned already.

        Parameters
        ----------
        image : str, Path, PIL.Image.Image, numpy.ndarray or AlignedFace
            An image file, a PIL image, an (H, W, 3) uint8 RGB array (see
            :func:`freqxfr.imaging.images.load_image`), or a face aligned before
            (:meth:`freqxfr.Explainer.align`), used as it is.
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
            Ready for :meth:`embed`. (:func:`freqxfr.imaging.align.card_crop` does the work.)
        """
        if isinstance(image, AlignedFace):
            h, w = self.card.input_size
            pixels = image.pixels
            if not (
                isinstance(pixels, np.ndarray)
                and pixels.dtype == np.uint8
                and pixels.shape == (h, w, 3)
            ):
                got = pixels.shape if isinstance(pixels, np.ndarray) else type(pixels).__name__
                raise InputError(
                    f"{source_label(image, name)}: an AlignedFace of shape {got}, but model "
                    f"{self.card.name!r} takes uint8 crops of shape ({h}, {w}, 3) "
                    "(aligned for another model?)"
                )
            return pixels
        if not isinstance(image, (str, os.PathLike, Image.Image, np.ndarray)):
            raise InputError(
                f"{source_label(image, name)}: expected {IMAGE_KINDS}, got {type(image).__name__}"
            )
        crop = face_align.card_crop(image, self.card, aligned=aligned, name=name, padding=padding)
        return crop.pixels

    def compare(
        self,
        img_a: ImageLike,
        img_b: ImageLike,
        *,
        aligned: bool | None = None,
        threshold: float | None = None,
        deadline: float | None = None,
        padding: str = DEFAULT_PADDING,
    ) -> Comparison:
        """Compare two face images, aligning raw photos as needed.

        Parameters
        ----------
        img_a, img_b
            Each a file path, a PIL image, an array or an AlignedFace (see :meth:`align`):
            raw photos or aligned crops.
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
        at = deadline_at(deadline)
        faces = within_deadline(
            lambda: self._pair(img_a, img_b, aligned, padding),
            deadline=deadline,
            at=at,
            what=f"compare ({self.card.name})",
        )
        x = to_model_input(faces, self.card)
        if self.use_engine and not self.engine.on_engine_thread():
            emb = self.engine.embed(x, deadline=deadline, at=at, what=f"compare ({self.card.name})")
        else:
            emb = self.runner.run_model(x)
        return self._comparison(emb, threshold)

    async def compare_async(
        self, img_a: ImageLike, img_b: ImageLike, **options: Unpack[CompareOptions]
    ) -> Comparison:
        """:meth:`compare` for asyncio, with its options: alignment on a worker thread, the
        model via the engine."""
        check_keywords("compare_async", options, CompareOptions)
        threshold, deadline = options.get("threshold"), options.get("deadline")
        self._threshold(threshold)  # checked before any image is read, as in compare
        at = deadline_at(deadline)
        what = f"compare ({self.card.name})"
        aligned, padding = options.get("aligned"), options.get("padding", DEFAULT_PADDING)
        faces = await self._faces_async(
            [img_a, img_b], aligned, padding, deadline, at, what, pair=True
        )
        x = to_model_input(faces, self.card)
        if not self.use_engine:
            return self._comparison(self.runner.run_model(x), threshold)
        emb = await self.engine.embed_async(x, deadline=deadline, at=at, what=what)
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

    def _pair(self, a: ImageLike, b: ImageLike, aligned: bool | None, padding: str) -> np.ndarray:
        """The two aligned faces of a comparison, (2, H, W, 3)."""
        return np.stack([self.align(i, aligned=aligned, padding=padding) for i in (a, b)])

    async def _faces_async(
        self,
        images: Any,
        aligned: bool | None,
        padding: str,
        deadline: float | None,
        at: float | None,
        what: str,
        *,
        pair: bool = False,
    ) -> np.ndarray:
        """:meth:`_faces` (or :meth:`_pair`) on a worker thread, given up at the deadline."""
        if not pair and self._crops(images):
            return self._check_images(images)  # nothing to align: no thread needed
        work = (
            functools.partial(self._pair, images[0], images[1], aligned, padding)
            if pair
            else functools.partial(self._faces, images, aligned, padding)
        )
        task = asyncio.get_running_loop().run_in_executor(None, work)
        try:
            return await asyncio.wait_for(task, None if at is None else at - time.monotonic())
        except asyncio.TimeoutError:
            assert at is not None
            raise alignment_exceeded(what, deadline, at) from None

    def _faces(self, images: Any, aligned: bool | None, padding: str) -> np.ndarray:
        """Aligned uint8 faces (N, H, W, 3) of any kind :meth:`embed` takes."""
        h, w = self.card.input_size
        if self._crops(images):
            return self._check_images(images)  # aligned crops, used as they are
        if isinstance(images, (list, tuple)):
            if not images:
                raise InputError("images: got no images")
            return np.stack([self.align(i, aligned=aligned, padding=padding) for i in images])
        if isinstance(images, (str, os.PathLike, Image.Image, AlignedFace, np.ndarray)):
            return self.align(images, aligned=aligned, padding=padding)[None]
        raise InputError(
            f"images: expected {IMAGE_KINDS}, a list of them, or a uint8 array (N, {h}, {w}, 3) "
            f"of aligned crops; got {type(images).__name__}"
        )

    def _crops(self, images: Any) -> bool:
        """Whether ``images`` is an array of aligned crops ((N, H, W, 3), or one of the model's
        input size), used as it is, rather than images to align."""
        h, w = self.card.input_size
        return isinstance(images, np.ndarray) and (
            images.ndim == 4 or (images.ndim == 3 and images.shape == (h, w, 3))
        )

    def _check_images(self, images: np.ndarray) -> np.ndarray:
        """``images`` (N, H, W, 3) or (H, W, 3): uint8 crops of the model's input size."""
        arr = images
        h, w = self.card.input_size
        if arr.ndim == 3:
            arr = arr[None]
        want = (
            f"uint8 RGB images of shape (N, {h}, {w}, 3), aligned as "
            f"{self.card.alignment!r}, for model {self.card.name!r} (or {IMAGE_KINDS})"
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
        are dropped with a :class:`~freqxfr.model.loading.ProviderWarning` that says what runs
        instead.
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
    runner = open_runner(name_or_path, card, providers, threads=threads, spin=spin)
    return Verifier(runner, engine=engine)
