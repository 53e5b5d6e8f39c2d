"""Frequency explanations of face-verification decisions (Huber & Damer, WACV 2025).

For a pair (A, B): the reference score ``s_ref = score(f(A), f(B))``; for each band k of A, the
score of A with band k deleted against the unaltered B, ``s_k``; the same for B against A. Absolute
influence ``|s_ref - s_k|``, directed influence ``s_ref - s_k`` (positive: the band supported the
match), and both relative to the image's largest influence for the frequency heat plots (the
``*_relative`` attributes; ``*_normalised`` in JSON).

Cost: 2K + 2 embeddings per pair, in as few ONNX Runtime calls as the batch allows. The masking
core writes the masked images straight into the model's input buffer, and while ONNX Runtime
runs one batch (it releases the GIL) a worker thread loads, aligns and masks the next.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from freqxfr.common.errors import InputError
from freqxfr.common.keywords import check_keywords
from freqxfr.core.masking import mask_bands
from freqxfr.explanations import kernel, serving, stream
from freqxfr.explanations.config import (  # noqa: F401  (DEFAULT_BANDS, SETTINGS_KEYS: public here)
    DEFAULT_BANDS,
    SETTINGS_KEYS,
    ExplainerConfig,
    field_names,
)
from freqxfr.explanations.faithfulness import Faithfulness, pair_faithfulness
from freqxfr.explanations.pairs import Pair
from freqxfr.explanations.results import (  # noqa: F401  (ImageExplanation: public here too)
    Explanation,
    ImageExplanation,
    PairFailure,
)
from freqxfr.explanations.templates import explain_template
from freqxfr.imaging.images import AlignedFace, ImageLike, source_label
from freqxfr.imaging.regions import ResolvedRegions, as_regions
from freqxfr.model.engine import Engine, EngineSettings
from freqxfr.model.runner import MemoryPlan, plan_memory
from freqxfr.model.verifier import Verifier, load_model

if TYPE_CHECKING:  # typing.Unpack is Python 3.11+; the checker knows it for 3.10 too
    from typing_extensions import Unpack

_SETTING_NAMES = field_names()


# ---- the explainer ------------------------------------------------------------------------------


class Explainer:
    """Explain verification decisions of ``model`` band by band.

    Parameters
    ----------
    model : Verifier, str or None
        A loaded model, or a name/path for :func:`freqxfr.load_model` (default: dlib's ResNet).
    schedule : BandSchedule or int, optional
        The bands; an int k means ``BandSchedule.rings(k)``. Default: 16 rings.
    mode : {"delete", "keep"}
        ``delete`` removes band k (the paper); ``keep`` keeps only band k (then a small
        influence means the band alone reproduces the score).
    domain : {"pixel", "normalised"}
        Where the masking happens: on the pixels (default) or on the model's normalised input
        (after its mean and std are applied; see :func:`freqxfr.mask_bands`).
    backend : str
        Masking backend: ``cpp`` (default), ``numpy``, ``scipy`` or ``pyfftw``.
    clip : bool
        Clip masked pixels to [0, 255] before normalising. Off by default (bands stay linear).
    memory_budget : int or str
        About how much memory the process may hold while explaining: bytes, or a size such as
        ``"512MB"`` or ``"2GB"`` (default 1 GB). The largest model calls, batch buffers,
        prefetching and the engine's lanes that fit are chosen from it (:attr:`memory`;
        :func:`freqxfr.model.runner.plan_memory`). Results do not depend on it: a smaller
        budget runs smaller, slower batches. A budget too small for one pair is an
        :class:`~freqxfr.common.errors.InputError`.
    max_batch : int, optional
        Largest number of images per model call (default: the most the memory budget allows,
        at most 256).
    threads : int, optional
        Masking threads (default: all usable cores).
    regions : "face", "grid:RxC", Regions or array (R, H, W), optional
        Explain per (band, region) cell: deleting band k only inside region r
        (:mod:`freqxfr.explanations.region_explanations`); each side then holds (R, K) scores. Default: none,
        band by band as in the paper.
    padding : {"edge", "reflect", "black"}
        What fills the part of a crop that lies beyond its photo when a raw image is aligned
        (:data:`freqxfr.imaging.align.PADDINGS`; default :data:`~freqxfr.imaging.align.DEFAULT_PADDING`). It
        changes the explanations of re-cut crops (e.g. dlib's 150 chip cut from a tight 112
        crop), so it is one of the :meth:`settings`. Images already of the model's input size
        are not re-cut, and no padding touches them.
    planner : {"estimate", "measure", "patient", "exhaustive"}
        FFTW planning effort of the ``cpp`` and ``pyfftw`` backends (default ``measure``). Plans
        may round the last bit differently, so it is one of the :meth:`settings`.
    config : ExplainerConfig, optional
        All of the above as one value (:mod:`freqxfr.explanations.config`); the other
        arguments change it. The explainer keeps its config as ``config``, and reads its
        settings as attributes (``explainer.mode`` is ``explainer.config.mode``).
    """

    def __init__(self, *positional: Any, config: ExplainerConfig | None = None, **settings: Any):
        # Explainer(model, schedule, mode, domain, backend, **other settings), or config=.
        config = ExplainerConfig.of(*positional, base=config, **settings)  # checked before loading
        model = config.model
        self.model = model if isinstance(model, Verifier) else load_model(model)
        self.config = config = config.replace(model=self.model)
        self._local = threading.local()
        card = self.model.card
        h, w = card.input_size
        self.bands = config.schedule.resolve(h, w).bands  # validates the schedule at this size
        self._input_shape = card.input_shape
        self._mask_options = _core_normalisation(card)
        self.regions: ResolvedRegions | None = None
        if config.regions is not None:  # region cells, on the alignment's template
            self.regions = as_regions(config.regions).resolve(h, w, card.alignment)
        self._settings = config.provenance(self.model_info(), self.bands)  # shared, read-only
        #: What the memory budget allows: max_batch, prefetch depth and lanes.
        self.memory: MemoryPlan = plan_memory(
            card,
            getattr(self.model, "path", None),
            config.memory_budget,
            self.images_per_pair,
            max_batch=config.max_batch,
        )
        #: Most images per model call: ``max_batch`` if given, else what the budget allows.
        self.max_batch: int = self.memory.max_batch
        _bound_engine(self.model, self.memory)
        # What makes two explainers' masking the same (the engine masks their pairs together).
        self.mask_key = config.mask_key(
            None if self.regions is None else self.regions.weights.tobytes()
        )
        # Fail now, not inside a worker, if the backend can't run here.
        self.mask(np.zeros((1, h, w, 3), np.uint8), None)

    def __getattr__(self, name: str) -> Any:
        # The settings read as attributes: explainer.mode is explainer.config.mode.
        config = self.__dict__.get("config")
        if config is not None and name in _SETTING_NAMES:
            return getattr(config, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def with_(self, **changes: Any) -> Explainer:
        """This explainer with some settings changed (:class:`ExplainerConfig` fields), sharing
        its loaded model; itself when nothing changes."""
        unknown = set(changes) - _SETTING_NAMES
        if unknown:
            raise TypeError(f"not explainer settings: {', '.join(sorted(unknown))}")
        if all(_same(getattr(self.config, k), v) for k, v in changes.items()):
            return self
        return type(self)(config=self.config.replace(**changes))

    @property
    def n_bands(self) -> int:
        return len(self.bands)

    @property
    def cells(self) -> int:
        """Masked images per explained image: K bands, or K·R (band, region) cells."""
        return self.n_bands * (1 if self.regions is None else len(self.regions))

    @property
    def images_per_pair(self) -> int:
        """Embeddings one explained pair costs: 2K + 2, or 2·K·R + 2 with regions."""
        return 2 * self.cells + 2

    # -- one pair --

    def explain(
        self,
        a: ImageLike,
        b: ImageLike,
        *,
        aligned: bool | None = None,
        same: bool | None = None,
        groups: dict[str, str] | None = None,
        deadline: float | None = None,
    ) -> Explanation:
        """Explain one pair of images (paths, arrays or PIL images; raw photos are aligned).

        Faces aligned before with :meth:`align` are used as they are, and keep their names.

        Thread-safe. Concurrent calls on one model are served by its engine
        (:mod:`freqxfr.model.engine`), which batches them (with ``regions`` too: one request of
        2·K·R + 2 images); each gets the result of a lone call. ``deadline`` (seconds) fails this call alone with
        :class:`~freqxfr.model.engine.DeadlineExceeded` if its result is not ready in time (through
        the engine; a model loaded with ``engine=False`` ignores it). ``timings_ms`` then also
        holds ``queue``, and ``mask``/``model`` are those of the batch the call ran in.
        """
        if self.model.use_engine:  # bands or region cells alike
            return serving.explain_pair(
                self, a, b, aligned=aligned, same=same, groups=groups, deadline=deadline
            )
        t0 = time.perf_counter()
        faces = np.stack([self.aligned_crop(a, aligned), self.aligned_crop(b, aligned)])
        align_s = time.perf_counter() - t0
        # Bands reuse this thread's batch buffer; region cells (2·K·R + 2 images) take a fresh one.
        batch = self._single_pair_batch() if self.regions is None else None
        sources = (source_label(a), source_label(b))
        return kernel.explain_faces(self, faces, sources, align_s, same, groups, batch)

    async def explain_async(
        self, a: ImageLike, b: ImageLike, **options: Unpack[serving.PairOptions]
    ) -> Explanation:
        """:meth:`explain` for asyncio, with its options: alignment runs on a worker thread, and
        the result is awaited from the model's engine without holding a thread."""
        check_keywords("explain_async", options, serving.PairOptions)
        return await serving.explain_pair_async(self, a, b, **options)

    def warmup(self) -> dict[str, float]:
        """Pay the first call's start-up costs now (see :meth:`freqxfr.model.engine.Engine.warmup`)."""
        return serving.warmup(self)

    def align(
        self, image: ImageLike, aligned: bool | None = None, *, name: str | None = None
    ) -> AlignedFace:
        """Load and align one image once, keeping its name (default: its path).

        Pass the result to :meth:`explain` or :meth:`explain_pairs` as often as you like: it is
        not loaded or aligned again, and explanations call it ``name``. Its ``pixels`` may be
        replaced (e.g. by a degraded copy, ``dataclasses.replace(face, pixels=...)``) and the
        name still travels with it.
        """
        if isinstance(image, AlignedFace):
            return image
        return AlignedFace(self.aligned_crop(image, aligned), source_label(image, name))

    def aligned_crop(self, image: ImageLike, aligned: bool | None = None) -> np.ndarray:
        """The model's input crop of one image: loaded and aligned as the model's card says
        (an :class:`~freqxfr.imaging.images.AlignedFace` is used as it is)."""
        if isinstance(image, AlignedFace):
            return image.pixels
        return self.model.align(image, aligned=aligned, padding=self.padding)

    # -- many pairs, streamed --

    def explain_pairs(
        self,
        pairs: Iterable[Pair | tuple[ImageLike, ImageLike]],
        *,
        aligned: bool | None = None,
        skip_errors: bool = False,
        overlap: bool = True,
        indices: Iterable[int] | None = None,
    ) -> Iterator[Explanation | PairFailure]:
        """Explain many pairs, yielding results in order as they finish.

        Loading, alignment and masking of the next batch of pairs run on a worker thread while the
        model runs on the current one (``overlap=False`` does them one after the other). With
        ``skip_errors`` a pair whose image can't be used yields a :class:`PairFailure` instead
        of raising. Memory stays bounded: two batch buffers, whatever the number of pairs.
        ``indices`` numbers the pairs in failures (default 0, 1, ...). A pair may hold faces
        aligned before (:meth:`align`): they are used as they are and keep their names.
        """
        yield from stream.explain_pairs(
            self,
            pairs,
            aligned=aligned,
            skip_errors=skip_errors,
            overlap=overlap,
            indices=indices,
        )

    # -- the batch layout: [refs of all pairs (2P)] + [masked (2P, K)] --

    def _single_pair_batch(self) -> np.ndarray:
        # Reused per thread: a fresh 9 MB buffer per call would cost more in page faults than
        # the masking itself.
        batch = getattr(self._local, "batch", None)
        if batch is None:
            batch = self._local.batch = self._batch(1)
        return batch

    def _batch(self, pairs: int) -> np.ndarray:
        return kernel.new_batch(self, 2 * pairs)

    def fill_batch(
        self, batch: np.ndarray, faces: np.ndarray, pairs: int = 1, threads: int | None = None
    ) -> None:
        """Write the 2P references and their 2P×C masked images of P pairs of aligned ``faces``
        into ``batch`` (C = :attr:`cells`: K bands, or K·R cells with regions); the layout
        :meth:`explanation_from` reads, and the engine batches by."""
        assert len(faces) == 2 * pairs
        kernel.fill_batch(self, batch, faces, threads=threads)

    def mask(
        self,
        faces: np.ndarray,
        out: np.ndarray | None = None,
        mode: str | None = None,
        order: Sequence[int] | np.ndarray | None = None,
        *,
        regions: np.ndarray | None = None,
        threads: int | None = None,
    ) -> np.ndarray:
        """Mask aligned ``faces`` (N, H, W, 3) with this explainer's bands and options, in the
        model's input layout (into ``out`` if given): :func:`freqxfr.mask_bands` with the
        model's normalisation. ``mode`` and ``order`` override the explainer's (e.g.
        ``"cumulative_delete"`` for the faithfulness curves); ``regions`` (R, H, W) masks region
        cells instead of whole bands."""
        return mask_bands(
            faces,
            self.schedule,
            mode or self.mode,
            self.backend,
            out,
            order=order,
            domain=self.domain,
            clip=self.clip,
            threads=threads or self.threads,
            planner=self.planner,
            regions=regions,
            **self._mask_options,
        )

    def explain_template(self, probe: ImageLike, template: Any, *, aligned: bool | None = None):
        """Explain ``probe`` against a stored template (an embedding array or a ``.npy`` path):
        K + 1 embeddings (K·R + 1 with regions); see :mod:`freqxfr.explanations.templates`."""
        return explain_template(self, probe, template, aligned=aligned)

    def explanation_from(self, embeddings, pairs, i, sources, timings, same, groups) -> Explanation:
        """The explanation of pair i from the embeddings of a batch laid out by
        :meth:`fill_batch` (``pairs`` = P; 1 for explain): :func:`kernel.explanation_from`."""
        return kernel.explanation_from(self, embeddings, pairs, i, sources, timings, same, groups)

    def settings(self) -> dict[str, Any]:
        """The settings every result of this explainer records (its provenance), JSON-ready.

        Keys (:data:`SETTINGS_KEYS`): ``freqxfr_version``, ``model`` (:meth:`model_info`),
        ``backend``, ``mode``, ``domain``, ``clip``, ``padding`` (alignment), ``schedule`` and
        ``bands``. Explanations, dataset runs and the scenarios all write this dict; it is built
        here and nowhere else.
        """
        return copy.deepcopy(self._settings)

    def model_info(self) -> dict[str, Any]:
        """The model part of :meth:`settings`: what was run and how its input was made."""
        card = self.model.card
        return {
            "name": card.name,
            "metric": card.metric,
            "provider": self.model.provider,
            "input_size": list(card.input_size),
            "mean": list(card.mean),
            "std": list(card.std),
            "channel_order": card.channel_order,
        }

    # -- what the model saw --

    def masked_views(self, faces: np.ndarray) -> np.ndarray:
        """The masked images as uint8 RGB pictures, (N, K, H, W, 3), for the report's strip."""
        mean = np.asarray(self._mask_options["mean"], np.float32)
        if self.model.card.channel_order == "BGR":
            mean = mean[::-1]  # the card's mean is in its own channel order; views are RGB
        # With std 1 the output is p - mean; adding the mean back gives the pixels the model saw
        # (including the mean grey that normalised-domain masking leaves where DC was deleted).
        views = mask_bands(
            faces,
            self.schedule,
            self.mode,
            self.backend,
            domain=self.domain,
            clip=self.clip,
            layout="NHWC",
            threads=self.threads,
            planner=self.planner,
            mean=mean,
            std=1.0,
        )
        return np.clip(np.rint(views + mean), 0, 255).astype(np.uint8)

    # -- faithfulness --

    def faithfulness(
        self,
        a: ImageLike,
        b: ImageLike,
        *,
        seeds: int | Sequence[int] = 5,
        aligned: bool | None = None,
        explanation: Explanation | None = None,
    ) -> Faithfulness:
        """Deletion and insertion curves for one pair (see :mod:`freqxfr.explanations.faithfulness`)."""
        return pair_faithfulness(self, a, b, seeds=seeds, aligned=aligned, explanation=explanation)


# ---- one call ------------------------------------------------------------------------------------


def explain(a: ImageLike, b: ImageLike, **keywords: Any) -> Explanation:
    """Explain one pair in one call: ``freqxfr.explain("a.jpg", "b.jpg")``.

    ``keywords`` are :meth:`Explainer.explain`'s options (``aligned``, ``same``, ``groups``,
    ``deadline``) and the explainer's settings (:class:`~freqxfr.explanations.config.ExplainerConfig`:
    ``model``, ``schedule``, ``mode``, ``domain``, ``backend``, ``clip``, ``padding``,
    ``planner``, ...): the same as ``Explainer(**settings).explain(a, b, **options)``. The
    explainer is kept for the next call with the same settings (the last few are kept), so
    repeated calls don't reload the model; build an :class:`Explainer` yourself to control its
    lifetime, or to explain many pairs (:meth:`Explainer.explain_pairs`).
    """
    options = {k: keywords.pop(k) for k in serving.PAIR_OPTIONS if k in keywords}
    config = ExplainerConfig(**keywords)
    try:
        hash(config)
    except TypeError:  # unhashable settings (e.g. a custom model object): build a fresh one
        explainer = Explainer(config=config)
    else:
        explainer = _kept_explainer(config)
    return explainer.explain(a, b, **options)


@functools.lru_cache(maxsize=4)
def _kept_explainer(config: ExplainerConfig) -> Explainer:
    return Explainer(config=config)


# ---- helpers ------------------------------------------------------------------------------------


def _core_normalisation(card) -> dict[str, Any]:
    """The card's normalisation in the core's terms: pixels p in 0..255 map to the card's value
    range v = lo + p·s, so (v - mean)/std = (p - (mean - lo)/s) / (std/s)."""
    lo, hi = card.value_range
    s = (hi - lo) / 255.0
    mean = [(m - lo) / s for m in card.mean]
    std = [sd / s for sd in card.std]
    return {"mean": mean, "std": std, "channel_order": card.channel_order, "layout": card.layout}


def _bound_engine(model: Verifier, plan: MemoryPlan) -> None:
    """Fit the model's engine to the memory plan (smaller batches, one lane) while it has its
    default settings and has not run; settings given to it (``Engine.for_model(model, ...)``),
    and those of an engine that runs, are kept (they are fixed for its life)."""
    if not model.use_engine:
        return
    engine = model.engine
    current = engine.settings
    if current != EngineSettings():
        return
    wanted = dataclasses.replace(
        current,
        max_batch=min(current.max_batch, plan.max_batch),
        lanes=1 if current.lanes is None and plan.lanes == 1 else current.lanes,
    )
    if wanted != current:
        with contextlib.suppress(InputError):  # already running: settings are fixed
            Engine.for_model(model, **dataclasses.asdict(wanted))


def _same(a: Any, b: Any) -> bool:
    if a is b:
        return True
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return False
    return type(a) is type(b) and a == b
