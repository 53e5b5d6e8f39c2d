"""The batch layout of explanations, for bands and (band, region) cells alike.

For n aligned images (a pair's two, P pairs' 2P, a probe's one) a batch is
``[n references][n × C masked]``, C = :attr:`Explainer.cells` (K bands, or K·R cells, band-major:
cell (k, r) at k·R + r, as the core writes them). :func:`fill_batch` writes it,
:func:`explanation_from` and :func:`image_explanation` read the embeddings back. The engine batches
by this layout (``Explainer.fill_batch`` / ``Explainer.explanation_from``), and the explainer's
direct routes and the template explanations use it as they are.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np

from freqxfr.core.bands import Band, BandSchedule
from freqxfr.explanations.results import Explanation, ImageExplanation
from freqxfr.imaging.images import ImageLike
from freqxfr.imaging.regions import ResolvedRegions
from freqxfr.model.verifier import Verifier, to_model_input


class ExplainerParts(Protocol):
    """What the explainer's helper modules (this kernel, templates) use of an
    :class:`~freqxfr.explanations.explainer.Explainer`, so that they need not import the facade
    that imports them."""

    model: Verifier
    schedule: BandSchedule
    bands: tuple[Band, ...]
    regions: ResolvedRegions | None
    max_batch: int
    _settings: Mapping[str, Any]  # shared by the explanations, read-only

    @property
    def n_bands(self) -> int: ...
    @property
    def cells(self) -> int: ...
    def aligned_crop(self, image: ImageLike, aligned: bool | None = None) -> np.ndarray: ...
    def mask(  # the part of Explainer.mask that fill_batch uses
        self, faces: np.ndarray, out: np.ndarray, *, regions: np.ndarray | None, threads: int | None
    ) -> np.ndarray: ...
    def settings(self) -> dict[str, Any]: ...


def new_batch(explainer: ExplainerParts, images: int) -> np.ndarray:
    """An empty batch for ``images`` explained images (references and their masked cells)."""
    rows = images * (explainer.cells + 1)
    return np.empty((rows, *explainer.model.card.input_shape), np.float32)


def fill_batch(
    explainer: ExplainerParts, batch: np.ndarray, faces: np.ndarray, threads: int | None = None
) -> None:
    """Write the n references and n×C masked images of the aligned ``faces`` (n, H, W, 3) into
    ``batch`` (at least n·(C + 1) rows, in the model's input layout)."""
    card = explainer.model.card
    n, cells = len(faces), explainer.cells
    batch[:n] = to_model_input(faces, card)
    masked = batch[n : n + n * cells].reshape(n, cells, *card.input_shape)
    regions = None if explainer.regions is None else explainer.regions.weights
    explainer.mask(faces, masked, threads=threads, regions=regions)


def image_explanation(
    explainer: ExplainerParts, source: str, scores: np.ndarray, s_ref: float
) -> ImageExplanation:
    """One image's explanation from its C masked scores (band-major k·R + r) as (R, K) cells."""
    if explainer.regions is None:
        return ImageExplanation(source, scores, s_ref)
    k, r = explainer.n_bands, len(explainer.regions)
    cells = scores.reshape(k, r).T.copy()  # explanations show (region, band)
    return ImageExplanation(source, cells, s_ref, regions=explainer.regions.names)


def explanation_from(
    explainer: ExplainerParts,
    embeddings: np.ndarray,
    pairs: int,
    i: int,
    sources: tuple[str, str],
    timings: dict[str, float],
    same: bool | None,
    groups: dict[str, str] | None,
) -> Explanation:
    """Pair i's explanation from the embeddings of P = ``pairs`` pairs laid out by
    :func:`fill_batch` (2P references, then 2P × C masked)."""
    p = max(pairs, 1)
    ref_a, ref_b = embeddings[2 * i], embeddings[2 * i + 1]
    masked = embeddings[2 * p :].reshape(2 * p, explainer.cells, -1)
    score = explainer.model.score
    s_ref = float(score(ref_a, ref_b))
    card = explainer.model.card
    return Explanation(
        score_ref=s_ref,
        threshold=card.threshold,
        decision=bool(s_ref >= card.threshold),
        a=image_explanation(explainer, sources[0], score(masked[2 * i], ref_b[None]), s_ref),
        b=image_explanation(explainer, sources[1], score(ref_a[None], masked[2 * i + 1]), s_ref),
        bands=explainer.bands,
        schedule=explainer.schedule,
        settings=explainer._settings,  # shared by its explanations, read-only
        timings_ms={key: round(v, 3) for key, v in timings.items()},
        same=same,
        groups=dict(groups or {}),
        regions=explainer.regions,
    )


def explain_faces(
    explainer: ExplainerParts,
    faces: np.ndarray,
    sources: tuple[str, str],
    align_s: float,
    same: bool | None = None,
    groups: dict[str, str] | None = None,
    batch: np.ndarray | None = None,
) -> Explanation:
    """One aligned pair, explained on this thread (the direct route, without the engine)."""
    t1 = time.perf_counter()
    batch = new_batch(explainer, 2) if batch is None else batch
    fill_batch(explainer, batch, faces)
    t2 = time.perf_counter()
    embeddings = explainer.model.embed_model_input(batch, batch_size=explainer.max_batch)
    t3 = time.perf_counter()
    timings = {"align": align_s * 1e3, "mask": (t2 - t1) * 1e3, "model": (t3 - t2) * 1e3}
    return explanation_from(explainer, embeddings, 1, 0, sources, timings, same, groups)
