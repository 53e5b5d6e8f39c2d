"""Running a model's ONNX graph: the :class:`Runner` owns one ONNX Runtime session.

A runner runs model input (float32, as :func:`freqxfr.model.cards.to_model_input` or the
masking core writes it) on the calling thread, and nothing else: no queue, no alignment, no
scores. The :class:`~freqxfr.model.verifier.Verifier` is the user's facade over it, and the
:class:`~freqxfr.model.engine.Engine` schedules batches against it through
:class:`ModelRunner`, the little the engine needs of a runner.

Finding the card, the file and the providers is :mod:`freqxfr.model.loading`'s job; checking
and rewriting graphs is :mod:`freqxfr.model.onnx_graphs`'s.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from freqxfr.common.errors import InputError
from freqxfr.model.cards import ModelCard
from freqxfr.model.loading import (
    SessionSettings,
    choose_providers,
    find_model,
    open_session,
    report_fallback,
    session_options,
)
from freqxfr.model.onnx_graphs import check_graph, dynamic_batch_copy

if TYPE_CHECKING:  # typing.Unpack is Python 3.11+; the checker knows it for 3.10 too
    from typing_extensions import Unpack


class ModelRunner(Protocol):
    """What the engine needs of a model: its card, where it runs, and a call on this thread."""

    card: ModelCard

    @property
    def provider(self) -> str: ...

    @property
    def intra_op_threads(self) -> int | None: ...

    def run_model(self, x: np.ndarray, *, batch_size: int | None = None) -> np.ndarray: ...

    def with_threads(self, threads: int) -> ModelRunner: ...


class Runner:
    """One ONNX Runtime session of a model, run on the calling thread.

    Attributes
    ----------
    session : onnxruntime.InferenceSession
        The session (thread-safe: several threads may run it at once).
    card : ModelCard
        How the model is fed and compared.
    path : Path
        The ONNX file that runs.
    input_name, output_name : str
        The graph's input and output.
    fixed_batch : int or None
        The graph's fixed batch size, if it has one (inputs are then fed in chunks of it).
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
    ) -> None:
        self.session = session
        self.card = card
        self.path = path
        self.input_name = input_name
        self.output_name = output_name
        self.fixed_batch = fixed_batch

    @property
    def provider(self) -> str:
        """The execution provider that actually runs the model (e.g. ``"CPUExecutionProvider"``)."""
        return str(self.session.get_providers()[0])

    @property
    def providers(self) -> list[str]:
        """The session's providers, in order of preference."""
        return list(self.session.get_providers())

    @property
    def intra_op_threads(self) -> int | None:
        """ONNX Runtime's intra-op threads of the session (fixed when it was opened)."""
        try:
            return int(self.session.get_session_options().intra_op_num_threads) or None
        except AttributeError:
            return None

    def __repr__(self) -> str:
        return (
            f"Runner(model={self.card.name!r}, provider={self.provider!r}, "
            f"intra_op_threads={self.intra_op_threads}, path='{self.path}')"
        )

    def run_model(self, x: np.ndarray, *, batch_size: int | None = None) -> np.ndarray:
        """Embeddings of model input ``x`` (C-contiguous float32 of the card's input shape, as
        :meth:`freqxfr.model.verifier.Verifier.embed_model_input` checks it), on this thread.
        ``batch_size`` cuts ``x`` into calls of that many images (views, not copies)."""
        n = x.shape[0]
        step = self.fixed_batch or batch_size or max(n, 1)
        if step >= n:
            return self._run(x)
        out = np.empty((n, self.card.embedding_size), dtype=np.float32)
        for start in range(0, n, step):
            out[start : start + step] = self._run(x[start : start + step])
        return out

    def with_threads(self, threads: int) -> Runner:
        """Another runner of this model (same file, card and providers) whose session has
        ``threads`` intra-op threads: the engine's lanes run on these."""
        ort = _onnxruntime()
        # Fresh options: the object get_session_options() returns is the session's own, and
        # changing it would change what this session reports.
        spinning = self.session.get_session_options().get_session_config_entry(
            "session.intra_op.allow_spinning"
        )
        options = session_options(ort, threads=threads, spin=spinning != "0")
        session = open_session(self.path, options, self.session.get_providers(), ort)
        return Runner(
            session,
            self.card,
            self.path,
            input_name=self.input_name,
            output_name=self.output_name,
            fixed_batch=self.fixed_batch,
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


def _onnxruntime() -> ModuleType:
    """The ``onnxruntime`` module, imported when a session is first opened."""
    import onnxruntime  # lazy: a heavy import, needed only to open a session

    return onnxruntime


def open_runner(
    name_or_path: str | os.PathLike[str] | None = None,
    card: ModelCard | str | os.PathLike[str] | None = None,
    providers: str | Sequence[Any] | None = None,
    **session: Unpack[SessionSettings],
) -> Runner:
    """Find, open and check a model (the arguments of :func:`freqxfr.model.verifier.load_model`;
    ``threads`` and ``spin`` go to :func:`~freqxfr.model.loading.session_options`).

    A graph with a fixed batch size is rewritten to a dynamic batch where possible.

    Raises
    ------
    ModelError
        The model or card cannot be found or read, or the graph does not match the card.
    """
    model_card, path = find_model(name_or_path, card)
    ort = _onnxruntime()
    chosen = choose_providers(providers, ort)
    options = session_options(ort, **session)
    session = open_session(path, options, chosen, ort)
    input_name, output_name, batch = check_graph(session, model_card, path)
    if batch is not None:
        dynamic = dynamic_batch_copy(path, input_name, options, chosen, ort)
        if dynamic is not None:
            path, batch = dynamic, None
            session = open_session(path, options, chosen, ort)
    report_fallback(chosen, session)
    return Runner(
        session,
        model_card,
        path,
        input_name=input_name,
        output_name=output_name,
        fixed_batch=batch,
    )


# ---- memory: what a budget allows -----------------------------------------------------------------

#: The most images per model call a budget gives (larger calls get nothing more done on a CPU).
MAX_BATCH = 256
#: Resident memory besides the model and its calls: the interpreter, numpy, ONNX Runtime's
#: libraries and thread pools, the run's bookkeeping (measured: 42 MB after the imports, ~160 MB
#: with a model loaded, of which the weights are about twice the ONNX file).
BASE_BYTES = 128 * 2**20
#: ONNX Runtime's working memory of one call besides its images (thread-local scratch, plans).
CALL_BYTES = 64 * 2**20
#: ONNX Runtime's working memory per image of a call on the CPU without its arena, measured at
#: 34 and 128 images per call (``benchmarks/bench_memory.py``), rounded up: dlib's ResNet
#: 0.8-1.1 MB, SFace 6.5-8.2 MB. Another model: :data:`WORKING_PER_INPUT` times its input.
WORKING_BYTES_PER_IMAGE = {"dlib_resnet": int(1.5 * 2**20), "sface": 9 * 2**20}
#: A model without a measurement is assumed to need this many times its float32 input per image
#: (SFace, the heavier of the two measured, needs about 55).
WORKING_PER_INPUT = 64
#: Most images of a narrow lane's call (:data:`freqxfr.model.engine.LANE_CALL_IMAGES`).
LANE_IMAGES = 48


@dataclasses.dataclass(frozen=True)
class MemoryPlan:
    """What a memory budget allows an explainer (:func:`plan_memory`).

    Attributes
    ----------
    budget : int
        The budget, bytes.
    max_batch : int
        Most images per model call (and per batch buffer: the buffers hold whole pairs).
    prefetch : int
        Batch buffers in flight: 2 masks the next batch while the model runs this one, 1 does
        one after the other.
    lanes : int
        Batches the model's engine may run at once (each lane has a session of its own).
    estimate : int
        The resident memory the plan is expected to peak at, bytes.
    """

    budget: int
    max_batch: int
    prefetch: int
    lanes: int
    estimate: int


def working_bytes_per_image(card: ModelCard) -> int:
    """ONNX Runtime's working memory per image of a CPU call (arena off), estimated."""
    known = WORKING_BYTES_PER_IMAGE.get(card.name)
    return known if known is not None else WORKING_PER_INPUT * 4 * int(np.prod(card.input_shape))


def memory_needed(
    card: ModelCard,
    model_file: Path | None,
    images_per_pair: int,
    batch: int,
    prefetch: int,
    lanes: int = 1,
) -> int:
    """The resident memory, bytes, an explainer is estimated to peak at with model calls of
    ``batch`` images, ``prefetch`` batch buffers and ``lanes`` (see :func:`plan_memory`)."""
    image = 4 * int(np.prod(card.input_shape))
    working = working_bytes_per_image(card)
    try:
        session = 0 if model_file is None else 2 * Path(model_file).stat().st_size
    except OSError:
        session = 0
    pairs = max(1, batch // images_per_pair)
    buffers = prefetch * pairs * images_per_pair * image
    if lanes > 1:  # wide and narrow calls never mix; each lane has a session of its own
        calls = max(batch, lanes * min(LANE_IMAGES, batch))
        return BASE_BYTES + CALL_BYTES + (1 + lanes) * session + buffers + calls * working
    return BASE_BYTES + CALL_BYTES + session + buffers + batch * working


def plan_memory(
    card: ModelCard,
    model_file: Path | None,
    budget: int,
    images_per_pair: int,
    *,
    max_batch: int | None = None,
) -> MemoryPlan:
    """The largest batches, prefetch depth and lanes whose memory fits in ``budget`` bytes.

    The estimate: :data:`BASE_BYTES`, the model's session (twice ``model_file``), the batch
    buffers (``prefetch`` of them, each of whole pairs of ``images_per_pair`` float32 images,
    at least one pair), and one model call's working memory (:data:`CALL_BYTES` plus
    :func:`working_bytes_per_image` per image); lanes add a session each and run narrow calls.
    ``max_batch`` given: that many images per call, whatever the budget.

    Raises
    ------
    InputError
        Not even one image per call and one pair's buffer fit.
    """

    def need(batch: int, prefetch: int, lanes: int) -> int:
        return memory_needed(card, model_file, images_per_pair, batch, prefetch, lanes)

    working = working_bytes_per_image(card)
    for prefetch in (2, 1):
        if max_batch is not None:
            batch = max_batch
        else:
            batch = min(MAX_BATCH, (budget - need(0, prefetch, 1)) // working)
            while batch >= 1 and need(batch, prefetch, 1) > budget:
                batch -= 1  # the buffers grow by a pair at each multiple of images_per_pair
        if batch >= 1:
            lanes = 2 if need(batch, prefetch, 2) <= budget else 1
            return MemoryPlan(budget, int(batch), prefetch, lanes, need(batch, prefetch, lanes))
    least = need(1, 1, 1)
    raise InputError(
        f"memory budget of {budget / 2**20:.0f} MB is too small for model {card.name!r} with "
        f"{images_per_pair} images per pair: explaining needs at least "
        f"{math.ceil(least / 2**20)} MB"
    )
