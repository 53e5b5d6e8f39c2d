"""The double buffer of the pair streams: the next chunk is made ready while this one is used.

:meth:`Explainer.explain_pairs` loads, aligns and masks the next batch of pairs on a worker
thread while the model runs on the current one; the region path
(:func:`~freqxfr.explanations.region_explanations.explain_pairs_and_cells`) aligns the next pair
while the model runs. Both are :func:`prefetched` over :func:`chunks`.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")


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
