"""Explaining a pair through the model's engine: align here, mask and embed there.

:meth:`Explainer.explain <freqxfr.explanations.explainer.Explainer.explain>`,
``explain_async`` and ``warmup`` call these. The engine (:mod:`freqxfr.model.engine`) knows
nothing of explanations: it masks and embeds a pair through the explainer's
:class:`~freqxfr.model.engine.PairMasker` side (``fill_batch``, ``cells``, ...) and returns
the rows; the explanation is built from them here.

A ``deadline`` (seconds) is counted from the call and covers alignment: alignment runs on a
worker thread that the call waits for until the deadline (:func:`~freqxfr.model.engine.within_deadline`).
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any, TypedDict

import numpy as np

from freqxfr.common.keywords import option_names
from freqxfr.core import fftw
from freqxfr.imaging.images import ImageLike, source_label
from freqxfr.model.engine import alignment_exceeded, deadline_at, within_deadline

if TYPE_CHECKING:  # typing.Unpack is Python 3.11+; the checker knows it for 3.10 too
    from typing_extensions import Unpack


class PairOptions(TypedDict, total=False):
    """The options of :meth:`Explainer.explain <freqxfr.explanations.explainer.Explainer.explain>`,
    which ``explain_async`` takes too and both pass on here (a missing one is ``None``)."""

    aligned: bool | None
    same: bool | None
    groups: dict[str, str] | None
    deadline: float | None


#: The names of :class:`PairOptions`, which ``freqxfr.explain`` tells from the explainer's settings.
PAIR_OPTIONS = option_names(PairOptions)


def aligned_pair(explainer: Any, a: ImageLike, b: ImageLike, aligned: bool | None) -> np.ndarray:
    """The two aligned faces (2, H, W, 3) of a pair, as ``explainer`` aligns them."""
    return np.stack([explainer.aligned_crop(a, aligned), explainer.aligned_crop(b, aligned)])


def _pair_explanation(
    explainer: Any,
    rows: np.ndarray,
    timings: dict[str, float],
    align_s: float,
    a: ImageLike,
    b: ImageLike,
    call: PairOptions,
) -> Any:
    """The explanation of one pair from the rows the engine returned (sync and async alike)."""
    timings = {"align": align_s * 1e3, **timings}
    sources = (source_label(a), source_label(b))
    return explainer.explanation_from(
        rows, 1, 0, sources, timings, call.get("same"), call.get("groups")
    )


def explain_pair(explainer: Any, a: ImageLike, b: ImageLike, **call: Unpack[PairOptions]) -> Any:
    """``Explainer.explain`` through the model's engine: align here, mask and embed there."""
    deadline = call.get("deadline")
    at = deadline_at(deadline)  # counted from the call, alignment included
    t0 = time.perf_counter()
    faces = within_deadline(
        lambda: aligned_pair(explainer, a, b, call.get("aligned")),
        deadline=deadline,
        at=at,
        what="explain",
    )
    t1 = time.perf_counter()
    rows, timings = explainer.model.engine.explain(explainer, faces, deadline=deadline, at=at)
    return _pair_explanation(explainer, rows, timings, t1 - t0, a, b, call)


async def explain_pair_async(
    explainer: Any, a: ImageLike, b: ImageLike, **call: Unpack[PairOptions]
) -> Any:
    """``Explainer.explain_async``: alignment on a worker thread, the result awaited from the
    model's engine without holding a thread."""
    deadline = call.get("deadline")
    at = deadline_at(deadline)
    loop = asyncio.get_running_loop()
    if not explainer.model.use_engine:
        left = None if at is None else max(at - time.monotonic(), 1e-9)
        return await loop.run_in_executor(
            None, lambda: explainer.explain(a, b, **{**call, "deadline": left})
        )
    t0 = time.perf_counter()
    # Alignment (face detection for raw photos) is real work: keep it off the event loop.
    align = loop.run_in_executor(None, aligned_pair, explainer, a, b, call.get("aligned"))
    try:
        faces = await asyncio.wait_for(align, None if at is None else at - time.monotonic())
    except asyncio.TimeoutError:
        assert at is not None
        raise alignment_exceeded("explain", deadline, at) from None
    t1 = time.perf_counter()
    rows, timings = await explainer.model.engine.explain_async(
        explainer, faces, deadline=deadline, at=at
    )
    return _pair_explanation(explainer, rows, timings, t1 - t0, a, b, call)


def warmup(explainer: Any) -> dict[str, float]:
    """``Explainer.warmup``: the engine's warm-up with this explainer, or without the engine
    one lone call of each kind (the session's first run and the explainer's buffers)."""
    model = explainer.model
    if model.use_engine:
        return model.engine.warmup([explainer])
    timings = model.warmup()
    h, w = model.card.input_size
    faces = np.random.default_rng(0).integers(0, 256, (2, h, w, 3), dtype=np.uint8)
    t0 = time.perf_counter()
    explainer.explain(faces[0], faces[1], aligned=True)
    timings[f"explain_k{explainer.n_bands}_ms"] = round((time.perf_counter() - t0) * 1e3, 2)
    fftw.save_wisdom()
    return timings
