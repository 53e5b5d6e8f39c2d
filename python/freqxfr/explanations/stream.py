"""The one pair stream: every way to explain many pairs reads and aligns each pair once here,
batches it through the explainer and yields results (or failures) in order.

:func:`stream_pairs` is the stream; :meth:`Explainer.explain_pairs
<freqxfr.explanations.explainer.Explainer.explain_pairs>` (:func:`explain_pairs`), dataset runs
(bands, or bands and region cells), their faithfulness curves (which reuse the stream's aligned
faces, :attr:`Streamed.faces`), the scenarios (cross-resolution, morph) and the Dask chunks of
all of them go through it. :func:`align_image` is the one alignment of the stream (and of the
scenarios, which align each image once and explain it in several pairs).

The double buffer: with ``overlap`` the next chunk of pairs is loaded, aligned and masked on a
worker thread while the model runs on the current one (:func:`prefetched` over
:func:`chunks`); region cells go one pair at a time, the next pair aligned meanwhile. Memory
stays bounded: two batch buffers, whatever the number of pairs.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import itertools
import os
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NamedTuple, Protocol, TypeVar

import numpy as np
from PIL import Image

from freqxfr.common.errors import FreqxfrError, InputError
from freqxfr.explanations import kernel
from freqxfr.explanations.config import ExplainerConfig
from freqxfr.explanations.kernel import ExplainerParts
from freqxfr.explanations.pairs import Pair
from freqxfr.explanations.results import Explanation, PairFailure
from freqxfr.imaging import align
from freqxfr.imaging.images import AlignedFace, ImageLike, source_label
from freqxfr.model.runner import MemoryPlan

T = TypeVar("T")


class StreamExplainer(ExplainerParts, Protocol):
    """What the stream uses of an :class:`~freqxfr.explanations.explainer.Explainer`."""

    config: ExplainerConfig
    memory: MemoryPlan  # what the memory budget allows: batch buffers in flight

    def align(
        self, image: ImageLike, aligned: bool | None = None, *, name: str | None = None
    ) -> AlignedFace: ...

    def with_(self, **changes: Any) -> Any: ...


# ---- the double buffer ---------------------------------------------------------------------------


def chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """``items`` in lists of ``size`` (the last one shorter)."""
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def prefetched(
    work: Callable[[Any], T], items: Iterable[Any], overlap: bool, thread_name: str
) -> Iterator[T]:
    """``map(work, items)``; with ``overlap`` the next item's work runs on one worker thread
    (named ``thread_name``) while the caller uses the current result. Item i + 2's work starts
    only once the caller asks for item i + 1, so two buffers that alternate are enough."""
    if not overlap:
        yield from map(work, items)
        return
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=thread_name) as pool:
        pending = None
        for item in items:
            future = pool.submit(work, item)
            if pending is not None:
                yield pending.result()
            pending = future
        if pending is not None:
            yield pending.result()


# ---- alignment -----------------------------------------------------------------------------------


class Aligned(NamedTuple):
    """An aligned face and the share of its crop that padding filled (0 for a face aligned
    before, or a crop of the model's input size)."""

    face: AlignedFace
    padded: float


def align_image(
    explainer: StreamExplainer, image: ImageLike, aligned: bool | None, *, padded: bool = False
) -> Aligned:
    """Load and align one image as the explainer's model card says, with the explainer's
    padding: the one alignment of the streams (``Explainer.align``, which runs
    :func:`freqxfr.imaging.align.card_crop` through the model). A face aligned before is
    used as it is. With ``padded`` the share of the crop that padding filled is measured too
    (:func:`freqxfr.imaging.align.card_crop`, the same crop)."""
    if padded and isinstance(image, (str, os.PathLike, Image.Image, np.ndarray)):
        padding = explainer.config.padding
        crop = align.card_crop(image, explainer.model.card, aligned=aligned, padding=padding)
        return Aligned(AlignedFace(crop.pixels, source_label(image)), crop.padded_fraction)
    return Aligned(explainer.align(image, aligned), 0.0)


def align_images(
    explainer: StreamExplainer,
    images: Iterable[Any],
    aligned: bool | None,
    *,
    describe: Callable[[Any], str] | None = None,
    padded: bool = False,
) -> tuple[dict[Any, Aligned], list[dict[str, Any]]]:
    """Align each distinct image once (:func:`align_image`); return them by image and the
    failures, in the order the images come.

    Without ``describe`` an image that fails is listed (``{"path", "error"}``) and the caller goes
    on without it. With ``describe`` its error is raised again, of the same type
    (``NoFaceError``, ``ImageError``, ...), the message starting with ``describe(image)`` (e.g. the
    image's role and index row). ``padded``: as :func:`align_image`."""
    faces: dict[Any, Aligned] = {}
    failures: list[dict[str, Any]] = []
    for image in dict.fromkeys(images):
        try:
            faces[image] = align_image(explainer, image, aligned, padded=padded)
        except FreqxfrError as exc:
            if describe is not None:
                raise type(exc)(f"{describe(image)}: {exc}") from None
            failures.append({"path": str(image), "error": str(exc)})
    return faces, failures


def align_pair(
    explainer: StreamExplainer, pair: Pair, aligned: bool | None
) -> tuple[AlignedFace, AlignedFace]:
    """Both faces of a pair (:func:`align_image`)."""
    return (
        align_image(explainer, pair.path_a, aligned).face,
        align_image(explainer, pair.path_b, aligned).face,
    )


# ---- the stream ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Streamed:
    """One pair of the stream, in order.

    ``result`` is the pair's explanation (bands, or the region cells of a region explainer
    streamed without ``cells``) or why the pair failed; ``faces`` its two aligned faces (``None``
    for a failed pair), which callers reuse instead of aligning again; ``cells`` the region
    explanation when streamed with ``cells=True`` (``result`` is then the band explanation)."""

    index: int
    pair: Pair
    result: Explanation | PairFailure
    faces: tuple[AlignedFace, AlignedFace] | None = None
    cells: Explanation | None = None


def stream_pairs(
    explainer: StreamExplainer,
    pairs: Iterable[Pair | tuple[ImageLike, ImageLike]],
    *,
    indices: Iterable[int] | None = None,
    aligned: bool | None = None,
    skip_errors: bool = True,
    overlap: bool = True,
    cells: bool = False,
) -> Iterator[Streamed]:
    """Explain ``pairs`` in order, each aligned once (see the module docstring).

    ``indices`` numbers the pairs (default 0, 1, ...). With ``skip_errors`` a pair whose image
    can't be used gives a :class:`PairFailure` in its place; otherwise the error is raised. With
    ``cells`` (a region explainer) each pair gets its band explanation (``result``, batched as
    without regions, by the band-only twin) and its region cells (``cells``) from the same
    aligned faces."""
    numbered = zip(itertools.count() if indices is None else indices, pairs, strict=False)
    items = ((i, as_pair(p)) for i, p in numbered)
    if explainer.regions is None:
        yield from _band_stream(explainer, items, aligned, skip_errors, overlap)
    elif cells:
        yield from _bands_and_cells(explainer, items, aligned, skip_errors, overlap)
    else:  # region cells alone: one pair at a time, the next one aligned meanwhile
        for index, pair, faces in prefetched(
            lambda item: _aligned(explainer, item, aligned, skip_errors),
            items,
            overlap,
            "freqxfr-align",
        ):
            yield _cells_of(explainer, index, pair, faces, skip_errors)


def explain_pairs(
    explainer: StreamExplainer,
    pairs: Iterable[Pair | tuple[ImageLike, ImageLike]],
    *,
    skip_errors: bool = False,
    **options: Any,
) -> Iterator[Explanation | PairFailure]:
    """:meth:`Explainer.explain_pairs <freqxfr.explanations.explainer.Explainer.explain_pairs>`:
    the results of :func:`stream_pairs` (``options``: its ``indices``, ``aligned`` and
    ``overlap``), in order; errors are raised unless ``skip_errors``."""
    for item in stream_pairs(explainer, pairs, skip_errors=skip_errors, **options):
        yield item.result


def as_pair(item: Pair | tuple[Any, Any]) -> Pair:
    """A :class:`Pair` of a pair or an (a, b) tuple."""
    if isinstance(item, Pair):
        return item
    try:
        a, b = item
    except (TypeError, ValueError):
        raise InputError(
            f"a pair must be a freqxfr.explanations.pairs.Pair or (a, b), got {item!r}"
        ) from None
    return Pair(a, b)


# ---- bands: chunks of whole model batches --------------------------------------------------------


def _band_stream(explainer, items, aligned, skip_errors, overlap) -> Iterator[Streamed]:
    per_call = max(1, explainer.max_batch // (2 * explainer.n_bands + 2))
    # Chunk i is masked into buffers[i % 2]; the next one is masked while this one is scored
    # (one buffer, one chunk after the other, where the memory budget has room for only one).
    buffers = [kernel.new_batch(explainer, 2 * per_call) for _ in range(explainer.memory.prefetch)]
    ready = prefetched(
        lambda item: _align_and_mask_chunk(
            explainer, item[1], buffers[item[0] % len(buffers)], aligned, skip_errors
        ),
        enumerate(chunks(items, per_call)),
        overlap and len(buffers) == 2,
        "freqxfr-prefetch",
    )
    for ready_chunk in ready:
        yield from _score_chunk(explainer, ready_chunk)


def _align_and_mask_chunk(explainer, chunk, buffer, aligned, skip_errors):
    """Load, align and mask a chunk of pairs into ``buffer``; failures keep their place."""
    t0 = time.perf_counter()
    entries: list[tuple[int, Pair, Any]] = []  # (index, pair, faces or PairFailure)
    faces: list[np.ndarray] = []
    for index, pair in chunk:
        try:
            face_pair = align_pair(explainer, pair, aligned)
        except FreqxfrError as exc:
            if not skip_errors:
                raise
            entries.append((index, pair, PairFailure(index, pair, str(exc))))
            continue
        entries.append((index, pair, face_pair))
        faces.extend(face.pixels for face in face_pair)
    t1 = time.perf_counter()
    if faces:
        kernel.fill_batch(explainer, buffer, np.stack(faces))
    t2 = time.perf_counter()
    return entries, buffer, len(faces) // 2, (t1 - t0, t2 - t1)


def _score_chunk(explainer, chunk) -> Iterator[Streamed]:
    entries, buffer, n, (t_align, t_mask) = chunk
    embeddings: Any = None
    timings: dict[str, float] = {}
    if n:
        t0 = time.perf_counter()
        used = buffer[: n * (2 * explainer.n_bands + 2)]
        embeddings = explainer.model.embed_model_input(used, batch_size=explainer.max_batch)
        t_model = time.perf_counter() - t0
        timings = {
            "align": t_align / n * 1e3,
            "mask": t_mask / n * 1e3,
            "model": t_model / n * 1e3,
        }
    i = 0
    for index, pair, faces in entries:
        if isinstance(faces, PairFailure):
            yield Streamed(index, pair, faces)
            continue
        sources = (faces[0].name, faces[1].name)
        result = kernel.explanation_from(
            explainer, embeddings, n, i, sources, timings, pair.same, pair.groups
        )
        yield Streamed(index, pair, result, faces)
        i += 1


# ---- region cells --------------------------------------------------------------------------------


def _aligned(explainer, item, aligned, skip_errors):
    """(index, pair, its faces or the error's message)."""
    index, pair = item
    try:
        return index, pair, align_pair(explainer, pair, aligned)
    except FreqxfrError as exc:
        if not skip_errors:
            raise
        return index, pair, str(exc)


def _cells_of(explainer, index, pair, faces, skip_errors) -> Streamed:
    """A pair's region explanation from its aligned ``faces`` (or its alignment's error)."""
    if isinstance(faces, str):
        return Streamed(index, pair, PairFailure(index, pair, faces))
    try:
        cells = explainer.explain(*faces, same=pair.same, groups=pair.groups)
    except FreqxfrError as exc:
        if not skip_errors:
            raise
        return Streamed(index, pair, PairFailure(index, pair, str(exc)))
    return Streamed(index, pair, cells, faces)


def _bands_and_cells(explainer, items, aligned, skip_errors, overlap) -> Iterator[Streamed]:
    """Each pair's band explanation and its region cells from the same aligned faces: the band
    explanations batched by the band-only twin as without regions (a model call of whole
    pairs), the cells one pair at a time, the next pair aligned meanwhile."""
    bands = explainer.with_(regions=None)  # the band-only twin (same model, not reloaded)
    per_call = max(1, bands.max_batch // bands.images_per_pair)
    ready = prefetched(
        lambda item: _aligned(explainer, item, aligned, skip_errors),
        items,
        overlap,
        "freqxfr-align",
    )
    while group := list(itertools.islice(ready, per_call)):
        usable = [(i, p, f) for i, p, f in group if not isinstance(f, str)]
        band_stream = stream_pairs(
            bands,
            # The aligned faces stand in for the paths: they are used as they are.
            (dataclasses.replace(p, path_a=f[0], path_b=f[1]) for _, p, f in usable),
            indices=[i for i, _, _ in usable],
            overlap=False,  # one model call: nothing to overlap
        )
        for index, pair, faces in group:
            band = faces if isinstance(faces, str) else next(band_stream).result
            if isinstance(band, (str, PairFailure)):
                error = band if isinstance(band, str) else band.error
                yield Streamed(index, pair, PairFailure(index, pair, error))
                continue
            cells = _cells_of(explainer, index, pair, faces, skip_errors)
            if isinstance(cells.result, PairFailure):
                yield cells
                continue
            yield Streamed(index, pair, band, faces, cells.result)
