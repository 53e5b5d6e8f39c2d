"""One engine per loaded model: every caller's explain, compare and embed goes through one queue.

Why: without it, each concurrent call runs its own masking threads and shares ONNX Runtime's
intra-op pool with every other call, so N callers oversubscribe the cores and each waits longer
than if they had queued. The engine runs jobs against the model's runner (which owns the
session; :mod:`freqxfr.model.runner`) and owns the masking threads and the lanes' sessions.
Requests that arrive while it is busy (or within ``max_wait_ms`` of the first) are batched: one
masking pass per explainer configuration and one model call for the batch, up to ``max_batch``
images.

Lanes, and when a request gets all cores. The engine measures its load: the share of the last
load window (``load_window_ms``; by default 4 lone calls long) in which two or more requests
were in it, queued or running. At low load a lone request runs *wide*: the model's own session
and all masking threads, the fastest a single call can be. At high load (from 1/2; back below
1/4, so that it does not flap) up to ``lanes`` batches run at once, each *narrow*: masked and run
by its own lane with a share of the cores (a session of its own with ``cores // lanes`` intra-op
threads). On 2 cores two 1-thread model calls get more done than one 2-thread call after
another (a call's threads no longer wait for each other, and one lane masks while the other
runs the model), but each takes twice as long: lanes trade a lone call's latency for
throughput, which is the right trade only while requests overlap most of the time. Wide and
narrow never mix: while a wide batch runs no lane starts another (it would oversubscribe the
cores, and with ONNX Runtime's spinning workers three threads on two cores slow both batches
down), and a batch starts wide only when no other runs and nothing else waits.

Order. The oldest waiting request runs first. A lane takes its share of the work (the waiting
images plus what the busy lanes have left, over the lanes, so that the lanes finish together
and no request waits for two batches), up to ``max_batch`` images (about
:data:`LANE_CALL_IMAGES` on a narrow lane, where bigger batches get nothing more done and only
make their requests wait for each other), one request per caller before a second of any caller
(round-robin across callers, not whole bursts in arrival order). A request larger than
``max_batch`` runs alone, in calls of its own batch size.

Each request's result is the one a lone call gives, to the bit: masking is per image, and the
rows of an ONNX Runtime CPU batch do not depend on the other rows or on the session's thread
count (``bench_latency.py`` checks this for the model before it measures; a lane's session is
checked against the model's own when it is made, and lanes are not used if they differ;
``tests/test_engine.py`` compares concurrent with serial calls bit by bit).

Settings that use cores are chosen once per engine: the masking threads and lanes here and ONNX
Runtime's intra-op threads when the model is loaded (``load_model(threads=...)``). Both default
to the cores the process may use (:func:`freqxfr.common.cores.usable_cores`, which honours a
container's CPU quota); a lane uses its share of both, so lanes never oversubscribe the cores.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import dataclasses
import math
import os
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Hashable, Iterable
from typing import TYPE_CHECKING, Any, Protocol, TypedDict, TypeVar

import numpy as np

from freqxfr.common.cores import usable_cores
from freqxfr.common.errors import FreqxfrError, InputError
from freqxfr.core import fftw
from freqxfr.model.cards import to_model_input
from freqxfr.model.runner import ModelRunner

if TYPE_CHECKING:  # typing.Unpack is Python 3.11+; the checker knows it for 3.10 too
    from typing_extensions import Unpack

T = TypeVar("T")

#: About the most images a narrow lane batches, and the most per model call on it. With one
#: intra-op thread a call's images/s stays flat or falls as the batch grows past what the caches
#: hold (measured: docs/benchmarks/index.md, "Serving many callers"), unlike with all threads,
#: where larger batches help; rows do not depend on the batch, so chunking changes no result.
LANE_CALL_IMAGES = 48

#: The dispatcher thread exits after this long without requests (a new request restarts it), so
#: that an unused engine holds no thread and its model can be garbage-collected.
IDLE_EXIT_S = 30.0


#: At interpreter exit, how long the engine waits for a model call that is running to finish
#: before the interpreter is torn down (see :func:`shutdown`).
EXIT_WAIT_S = 30.0

#: The longest ``deadline`` a call takes, in seconds (a year); leave it out for no deadline.
MAX_DEADLINE_S = 365 * 24 * 3600.0


class DeadlineExceeded(FreqxfrError):
    """A call's ``deadline`` passed before its result was ready; only that call fails."""


class EngineError(FreqxfrError):
    """The engine could not run a call: it is shut down (the process is exiting), or something
    outside any one request failed (the message names the cause)."""


class PairMasker(Protocol):
    """What the engine calls back on an explainer to run one explained pair.

    :class:`freqxfr.explanations.explainer.Explainer` is one; the engine never imports it.
    """

    #: Explainers with equal keys mask alike; the engine masks their pairs together.
    mask_key: Hashable
    #: A pair that runs alone is chunked in model calls of this many images.
    max_batch: int

    @property
    def n_bands(self) -> int:
        """K, the bands (names the warm-up's timings)."""
        ...

    @property
    def cells(self) -> int:
        """Masked images per explained image (K bands, or K·R cells)."""
        ...

    @property
    def images_per_pair(self) -> int:
        """Images one pair puts through the model: 2 references + 2 × :attr:`cells`."""
        ...

    def fill_batch(
        self, batch: np.ndarray, faces: np.ndarray, pairs: int = 1, threads: int | None = None
    ) -> None:
        """Write P pairs of aligned ``faces`` (2P, H, W, 3) into ``batch`` as model input:
        [2P references][2P × cells masked]."""
        ...


@dataclasses.dataclass(frozen=True)
class EngineSettings:
    """How an engine batches and how many cores it uses. Chosen once per engine.

    Attributes
    ----------
    max_wait_ms : float
        After the first request of a batch, wait this long for more before starting. 0 (the
        default) starts at once; requests that arrive while the engine is busy are batched anyway.
        A few ms help on a GPU, where one big call costs little more than a small one.
    max_batch : int
        Most images per batch (an explained pair with K bands is 2K + 2 images, 2·K·R + 2 with
        R regions); a narrow lane stops at about :data:`LANE_CALL_IMAGES`. A request larger
        than this runs alone, in calls of its own batch size (on a narrow lane in calls of at
        most :data:`LANE_CALL_IMAGES`).
    max_queue : int
        Most requests waiting; a caller that finds the queue full blocks (back-pressure) until
        there is room or its deadline passes.
    mask_threads : int or None
        Masking threads; ``None``: the usable cores.
    lanes : int or None
        Most batches running at once, each with ``1/lanes`` of the cores (see the module's
        docstring). ``None``: 2 on the CPU provider with 2 or more cores, else 1 (on a GPU the
        throughput comes from batching). 1 runs one batch at a time with all cores.
    load_window_ms : float or None
        The window over which the engine measures its load (the share of time with two or
        more requests in it), which decides between one batch with all cores and lanes that
        split them. ``None``: 4 × the recent time of a lone batch (at least 100 ms), so that
        the engine reacts within a few calls whatever the model's speed.
    combine : bool
        Put several callers' requests into one model call (the default). On the CPU this never
        changes a result (rows of an ONNX Runtime CPU batch are independent of each other, checked
        by the tests and by ``bench_latency.py``). GPU libraries may pick other kernels for other
        batch sizes, which can move results in the last bits; ``False`` keeps every request in
        model calls of its own (still queued, one at a time).
    """

    max_wait_ms: float = 0.0
    max_batch: int = 128
    max_queue: int = 64
    mask_threads: int | None = None
    combine: bool = True
    lanes: int | None = None
    load_window_ms: float | None = None

    def __post_init__(self) -> None:
        if not (isinstance(self.max_wait_ms, (int, float)) and 0 <= self.max_wait_ms < 10_000):
            raise InputError(
                f"max_wait_ms must be a number in [0, 10000), got {self.max_wait_ms!r}"
            )
        window = self.load_window_ms
        if window is not None and not (
            isinstance(window, (int, float)) and not isinstance(window, bool) and 0 < window < 1e7
        ):
            raise InputError(f"load_window_ms must be a positive number, got {window!r}")
        for name in ("max_batch", "max_queue"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"{name} must be a positive integer, got {value!r}")
        for name in ("mask_threads", "lanes"):
            t = getattr(self, name)
            if t is not None and (
                isinstance(t, bool) or not isinstance(t, int) or not 1 <= t <= 1024
            ):
                raise InputError(f"{name} must be an integer in 1..1024, got {t!r}")


@dataclasses.dataclass
class EngineStats:
    """Counters since the engine was made (read them; the engine updates them)."""

    requests: int = 0  # results delivered
    batches: int = 0  # masking + model passes
    images: int = 0  # images through the model
    largest_batch: int = 0  # most requests in one batch
    expired: int = 0  # requests dropped because their deadline passed in the queue
    cancelled: int = 0  # requests whose caller gave up before they ran
    failed: int = 0  # requests that raised
    peak_queued: int = 0  # most requests ever waiting at once (never above max_queue)
    most_in_flight: int = 0  # most batches running at once (never above the lanes)
    lane_batches: int = 0  # batches run by a lane with a share of the cores (the rest had all)


def deadline_at(deadline: float | None) -> float | None:
    """``time.monotonic()`` at which a call's ``deadline`` (seconds from now) passes."""
    if deadline is None:
        return None
    if (
        isinstance(deadline, bool)
        or not isinstance(deadline, (int, float))
        or not (0 < deadline <= MAX_DEADLINE_S)  # False for NaN too
    ):
        raise InputError(
            f"deadline must be a positive number of seconds, at most {MAX_DEADLINE_S:.0f} "
            f"(a year; leave it out for none), got {deadline!r}"
        )
    return time.monotonic() + float(deadline)


def within_deadline(
    work: Callable[[], T], *, deadline: float | None, at: float | None, what: str
) -> T:
    """``work()`` (a call's alignment), given up with :class:`DeadlineExceeded` if the call's
    deadline (``at``, from :func:`deadline_at`) passes first. Without a deadline it runs on
    this thread; with one, on a worker thread that this thread waits for until the deadline
    (work given up finishes there, and its result is dropped)."""
    if at is None or threading.current_thread().name.startswith("freqxfr-align"):
        return work()  # no deadline, or already on an aligner (a pool never waits on itself)
    future = _aligners().submit(work)
    try:
        return future.result(timeout=max(0.0, at - time.monotonic()))
    except concurrent.futures.TimeoutError:
        future.cancel()
        raise alignment_exceeded(what, deadline, at) from None


def alignment_exceeded(what: str, deadline: float | None, at: float) -> DeadlineExceeded:
    """The error of a call whose deadline passed while its images were aligned."""
    spent = (time.monotonic() - (at - (deadline or 0.0))) * 1e3
    return DeadlineExceeded(
        f"{what}: deadline of {(deadline or 0.0) * 1e3:.0f} ms passed after {spent:.0f} ms "
        "while its images were aligned; this call was given up, other calls go on "
        "(align images once beforehand to leave the deadline to the model)"
    )


_ALIGNERS: dict[int, concurrent.futures.ThreadPoolExecutor] = {}  # pid -> its pool


def _aligners() -> concurrent.futures.ThreadPoolExecutor:
    """The worker threads that align for calls with a deadline (made on first use, one pool
    per process; joined at interpreter exit by :mod:`concurrent.futures` itself)."""
    with Engine._registry_lock:
        pool = _ALIGNERS.get(os.getpid())
        if pool is None:
            pool = concurrent.futures.ThreadPoolExecutor(
                max(2, usable_cores()), thread_name_prefix="freqxfr-align"
            )
            _ALIGNERS[os.getpid()] = pool
        return pool


# ---- jobs: what a request asks of the model -------------------------------------------------


class _EmbedJob:
    """Model input to embed as it is."""

    __slots__ = ("batch_size", "n", "x")

    def __init__(self, x: np.ndarray, batch_size: int | None) -> None:
        self.x, self.batch_size, self.n = x, batch_size, x.shape[0]


class _PairJob:
    """One pair of aligned faces to explain: masked by ``masker`` and embedded."""

    __slots__ = ("batch_size", "faces", "masker", "n")

    def __init__(self, masker: PairMasker, faces: np.ndarray) -> None:
        self.masker, self.faces = masker, faces
        # Alone, it is chunked as its explainer's lone call would chunk it.
        self.batch_size: int | None = masker.max_batch
        # Images it puts through the model: 2K + 2 (2·K·R + 2 with regions).
        self.n = masker.images_per_pair

    def pairs(self) -> int:
        return 1

    def all_faces(self) -> np.ndarray:
        return self.faces


class _WarmupJob(_PairJob):
    """A full batch of copies of one pair (warm-up): always runs alone."""

    __slots__ = ("copies",)

    def __init__(self, masker: PairMasker, faces: np.ndarray, copies: int) -> None:
        super().__init__(masker, faces)
        self.copies = copies
        self.n *= copies

    def pairs(self) -> int:
        return self.copies

    def all_faces(self) -> np.ndarray:
        return np.concatenate([self.faces] * self.copies)


_Job = _EmbedJob | _PairJob

#: What a call returns: the request's embedding rows and its timings in ms.
Rows = tuple[np.ndarray, dict[str, float]]


class Call(TypedDict, total=False):
    """The options every engine call takes (:meth:`Engine.explain`, :meth:`Engine.embed` and
    their ``*_async`` twins).

    Attributes
    ----------
    deadline : float or None
        Seconds from now; when it passes first, this call alone fails with
        :class:`DeadlineExceeded`. ``None`` (the default): no deadline.
    at : float or None
        The same deadline as a :func:`time.monotonic` instant (:func:`deadline_at`), for a
        caller that counted it from before the call (alignment included).
    what : str
        Names the call in errors (default: the method's name).
    """

    deadline: float | None
    at: float | None
    what: str


def _request(job: _Job, call: Call, what: str) -> _Request:
    """The request of a call of ``job`` with ``call``'s options (``what``: its default name)."""
    return _Request(job, call.get("what", what), deadline=call.get("deadline"), at=call.get("at"))


class _Request:
    """One caller's job, its deadline and the future its result is delivered to."""

    __slots__ = (
        "at",
        "batch_size",
        "caller",
        "deadline",
        "future",
        "job",
        "n",
        "started",
        "submitted",
        "warmup",
        "what",
    )

    def __init__(
        self, job: _Job, what: str, *, deadline: float | None = None, at: float | None = None
    ) -> None:
        self.job, self.what = job, what
        self.n, self.batch_size = job.n, job.batch_size
        self.warmup = isinstance(job, _WarmupJob)
        self.deadline = deadline  # seconds, as given (for messages)
        self.at = deadline_at(deadline) if at is None else at  # monotonic
        self.future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self.submitted = time.monotonic()
        self.started = 0.0
        self.caller = _caller()  # for round-robin across callers

    def remaining(self) -> float | None:
        return None if self.at is None else self.at - time.monotonic()

    def expired(self) -> bool:
        return self.at is not None and time.monotonic() >= self.at

    def exceeded(self, where: str) -> DeadlineExceeded:
        deadline = self.deadline or 0.0
        start = self.submitted if self.at is None else self.at - deadline
        return DeadlineExceeded(
            f"{self.what}: deadline of {deadline * 1e3:.0f} ms passed after "
            f"{(time.monotonic() - start) * 1e3:.0f} ms {where}; this call was given up, "
            "other calls go on"
        )


class Engine:
    """The queue, batcher and lanes of one loaded model. Get it with :meth:`for_model`
    (or ``verifier.engine``); the Explainer and Verifier methods use it for you.

    Thread-safe; one per model runner and process. Blocking calls return when their result is
    ready; ``*_async`` calls await it without holding a thread. At interpreter exit every engine
    is shut down (:func:`shutdown`): it takes no more work and waits for its running batch.
    """

    _registry_lock = threading.Lock()

    def __init__(self, runner: ModelRunner, settings: EngineSettings) -> None:
        self.runner = runner
        self.settings = settings
        self.stats = EngineStats()
        #: Why lanes are not used, if opening or checking a lane's session failed.
        self.lane_error: BaseException | None = None
        self._reset()
        _ENGINES.add(self)

    def _reset(self) -> None:
        """Fresh queue, locks and thread (also after a fork, which copies none of the threads)."""
        self._pid = os.getpid()
        self._closed = False  # shut down: takes no more work
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)
        self._queue: deque[_Request] = deque()
        self._threads: dict[int, threading.Thread] = {}  # lane index -> its thread
        self._buffers: dict[int, np.ndarray] = {}  # lane index -> its batch buffer
        self._lane_runners: dict[int, ModelRunner] = {}  # lane index -> its narrow session
        self._lane_lock = threading.Lock()
        self._lanes_ok: bool | None = None  # None: not checked yet
        self._busy = 0  # batches running
        self._running = 0  # requests in the running batches
        self._lane_work: dict[int, tuple[float, int]] = {}  # lane -> (start, images) of its batch
        self._lane_rate: float | None = None  # images/s of a narrow lane, averaged
        self._wide_running = False  # a batch with all cores is running: start no other
        # Load: the recent share of time with two or more requests in the engine (queued or
        # running), decayed over the load window; lanes split the cores while it is high.
        self._load = 0.0
        self._load_at = time.monotonic()
        self._split = False  # lanes split the cores now (see _observe)
        self._lone_s = 0.25  # seconds of a lone (all-cores) batch, averaged; sets the window
        self._started = False

    # -- one per model --

    @classmethod
    def for_model(cls, model: Any, **settings: Any) -> Engine:
        """The engine of ``model`` (a :class:`~freqxfr.model.verifier.Verifier`, or the
        :class:`~freqxfr.model.runner.ModelRunner` it holds as ``runner``), made on first use.
        ``settings`` (see :class:`EngineSettings`) may be given until the engine first runs;
        after that, other settings are refused, because the engine's thread counts and
        batching are fixed for its life."""
        runner: ModelRunner = getattr(model, "runner", model)
        held = vars(runner)
        if not settings and "_engine" in held:
            return held["_engine"]  # the hot path: no lock
        wanted = EngineSettings(**settings) if settings else None
        with cls._registry_lock:
            engine: Engine | None = held.get("_engine")
            if engine is None:
                engine = cls(runner, wanted or EngineSettings())
                held["_engine"] = engine
            elif wanted is not None and wanted != engine.settings:
                if engine._started:
                    raise InputError(
                        f"the engine of model {runner.card.name!r} already runs with {engine.settings}; "
                        "settings are chosen once per engine, before its first call"
                    )
                engine.settings = wanted
        return engine

    @property
    def mask_threads(self) -> int:
        return self.settings.mask_threads or usable_cores()

    @property
    def lanes(self) -> int:
        """Most batches that run at once (see :attr:`EngineSettings.lanes`); 1 once lanes
        turned out unusable (a lane's session failed to open, or its rows differed)."""
        if self._lanes_ok is False:
            return 1
        if self.settings.lanes is not None:
            return self.settings.lanes
        cpu = self.runner.provider == "CPUExecutionProvider"
        return 2 if cpu and min(usable_cores(), self.intra_op_threads or 1) >= 2 else 1

    @property
    def intra_op_threads(self) -> int | None:
        """ONNX Runtime's intra-op threads for this model's session (fixed when it was loaded)."""
        return self.runner.intra_op_threads

    def on_engine_thread(self) -> bool:
        return threading.current_thread() in self._threads.values()

    @property
    def queued(self) -> int:
        """Requests waiting (not yet taken into a batch)."""
        return len(self._queue)

    def __repr__(self) -> str:
        return (
            f"Engine(model={self.runner.card.name!r}, {self.settings}, lanes={self.lanes}, "
            f"intra_op_threads={self.intra_op_threads}, queued={self.queued})"
        )

    # -- calls: blocking, and awaitable (the same request, awaited without holding a thread) --

    def explain(self, masker: PairMasker, faces: np.ndarray, **call: Unpack[Call]) -> Rows:
        """Embeddings of one explained pair of aligned ``faces`` (2, H, W, 3), laid out as a
        lone call lays them out ([ref a, ref b, C masked a, C masked b], C =
        ``masker.cells``: K bands, or K·R cells with regions), and the request's timings in ms."""
        return self._wait(_request(_PairJob(masker, faces), call, "explain"))

    def embed(
        self, x: np.ndarray, *, batch_size: int | None = None, **call: Unpack[Call]
    ) -> np.ndarray:
        """Embeddings of model input ``x`` (as ``Verifier.embed_model_input`` takes it)."""
        return self._wait(_request(_EmbedJob(x, batch_size), call, "embed"))[0]

    async def explain_async(
        self, masker: PairMasker, faces: np.ndarray, **call: Unpack[Call]
    ) -> Rows:
        """:meth:`explain`, awaited."""
        return await self._call_async(_request(_PairJob(masker, faces), call, "explain"))

    async def embed_async(
        self, x: np.ndarray, *, batch_size: int | None = None, **call: Unpack[Call]
    ) -> np.ndarray:
        """:meth:`embed`, awaited."""
        return (await self._call_async(_request(_EmbedJob(x, batch_size), call, "embed")))[0]

    def _wait(self, request: _Request) -> Rows:
        """Queue ``request`` and block until its result (or its deadline)."""
        self._submit(request)
        return self._result(request)

    async def _call_async(self, request: _Request) -> Rows:
        if not self._try_submit(request):
            # The queue is full: wait for room on a worker thread, not on the event loop.
            await asyncio.get_running_loop().run_in_executor(None, self._submit, request)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(request.future), request.remaining())
        except asyncio.TimeoutError:
            # wait_for cancelled the future: a queued request is dropped, a running one ignored.
            self._discard(request)
            raise request.exceeded(
                "while it waited in the queue" if request.started == 0 else "while its batch ran"
            ) from None
        except asyncio.CancelledError:
            self._discard(request)
            raise

    # -- warm-up --

    def warmup(self, maskers: Iterable[PairMasker] = ()) -> dict[str, float]:
        """Pay start-up costs now instead of in the first calls: the dispatcher thread, ONNX
        Runtime's first runs (memory arena, thread pool) at the sizes the engine uses (a lone
        compare, a lone explanation and a full batch), the batch buffer's page faults and each
        explainer's FFTW plans (``maskers``, the explainers); then save
        FFTW's wisdom for the next process. Returns ms per step.
        """
        card = self.runner.card
        h, w = card.input_size
        rng = np.random.default_rng(0)  # content does not matter to any of these costs
        faces = rng.integers(0, 256, (2, h, w, 3), dtype=np.uint8)
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        self.embed(to_model_input(faces, card), what="warmup")
        timings["embed_2_ms"] = (time.perf_counter() - t0) * 1e3
        for masker in maskers:
            k = masker.n_bands
            t0 = time.perf_counter()
            self.explain(masker, faces, what="warmup")
            timings[f"explain_k{k}_ms"] = (time.perf_counter() - t0) * 1e3
            t0 = time.perf_counter()
            # The most pairs of this explainer one batch can hold (at least one).
            copies = max(1, self.settings.max_batch // masker.images_per_pair)
            self._wait(_Request(_WarmupJob(masker, faces, copies), "warmup"))
            timings[f"full_batch_k{k}_ms"] = (time.perf_counter() - t0) * 1e3
        if self.lanes > 1:
            t0 = time.perf_counter()
            for lane in range(self.lanes):
                self._lane_runner(lane)  # opens and checks the lane's session
            timings["lane_sessions_ms"] = (time.perf_counter() - t0) * 1e3
        fftw.save_wisdom()
        return {key: round(v, 2) for key, v in timings.items()}

    # -- shutting down --

    def close(self, timeout: float = EXIT_WAIT_S) -> bool:
        """Stop taking work, fail the queued requests (:class:`EngineError`), let the running
        batches finish (waiting at most ``timeout`` seconds) and join the engine's threads.
        Returns whether every thread ended in time. The engine takes no work afterwards; it is
        called for every engine at interpreter exit (:func:`shutdown`)."""
        with self._lock:
            self._closed = True
            dropped = list(self._queue)
            self._queue.clear()
            self._not_empty.notify_all()
            self._not_full.notify_all()
            threads = [t for t in self._threads.values() if t is not threading.current_thread()]
        for request in dropped:
            if request.future.set_running_or_notify_cancel():
                request.future.set_exception(self._closed_error())
        end = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, end - time.monotonic()))
        return not any(t.is_alive() for t in threads)

    def _closed_error(self) -> EngineError:
        return EngineError(
            f"the engine of model {self.runner.card.name!r} is shut down (the process is "
            "exiting); it takes no more work"
        )

    # -- the queue --

    def _ensure_thread(self) -> None:
        """Start the lanes' threads that are not running (caller holds ``_lock``)."""
        self._started = True
        for lane in range(self.lanes):
            if lane not in self._threads:
                thread = threading.Thread(
                    target=self._loop,
                    args=(lane,),
                    daemon=True,  # joined at interpreter exit by shutdown()
                    name=f"freqxfr-engine-{self.runner.card.name}-{lane}",
                )
                try:
                    thread.start()
                except RuntimeError as exc:  # no thread to be had: fewer lanes, or none
                    if not self._threads:
                        raise EngineError(
                            f"the engine of model {self.runner.card.name!r} could not start "
                            f"a thread: {exc}"
                        ) from exc
                    return
                self._threads[lane] = thread  # it waits for _lock, which the caller holds

    def _try_submit(self, request: _Request) -> bool:
        if os.getpid() != self._pid:
            self._reset()
        if request.expired():
            raise request.exceeded("before it was queued")
        with self._lock:
            if self._closed:
                raise self._closed_error()
            if len(self._queue) >= self.settings.max_queue:
                return False
            self._enqueue(request)
            return True

    def _submit(self, request: _Request) -> None:
        """Queue ``request``; while the queue is full, block (back-pressure) until its deadline."""
        if self._try_submit(request):
            return
        with self._lock:
            while len(self._queue) >= self.settings.max_queue:
                remaining = request.remaining()
                if remaining is not None and remaining <= 0:
                    raise request.exceeded(
                        f"while the engine's queue was full ({self.settings.max_queue} requests)"
                    )
                self._not_full.wait(remaining)
                if self._closed:
                    raise self._closed_error()
            self._enqueue(request)

    def _enqueue(self, request: _Request) -> None:
        """Append ``request`` to the queue (caller holds ``_lock``)."""
        self._ensure_thread()
        self._observe()
        self._queue.append(request)
        self.stats.peak_queued = max(self.stats.peak_queued, len(self._queue))
        self._not_empty.notify()

    def _result(self, request: _Request) -> Rows:
        try:
            return request.future.result(timeout=request.remaining())
        except concurrent.futures.TimeoutError:
            if request.future.cancel():  # still queued: drop it
                self._discard(request)
                raise request.exceeded("while it waited in the queue") from None
        try:
            return request.future.result(timeout=0)  # it finished just as the deadline passed
        except concurrent.futures.TimeoutError:
            raise request.exceeded("while its batch ran") from None

    def _discard(self, request: _Request) -> None:
        """Take a request its caller gave up on out of the queue, freeing its slot."""
        if request.future.cancelled():
            with self._lock:
                try:
                    self._queue.remove(request)
                except ValueError:
                    return  # the dispatcher took it already and will skip it
                self.stats.cancelled += 1
                self._observe()
                self._not_full.notify()

    # -- the lanes --

    def _loop(self, lane: int) -> None:
        try:
            while True:
                taken = self._next_batch(lane)
                if taken is None:
                    return
                batch, wide = taken
                t0 = time.monotonic()
                try:
                    self._run(batch, lane, wide)
                except BaseException as exc:  # outside any one request: its callers get it
                    self._fail(batch, exc)
                finally:
                    with self._lock:
                        self._observe()
                        self._busy -= 1
                        self._running -= len(batch)
                        _, images = self._lane_work.pop(lane)
                        if not wide and not batch[0].warmup:
                            rate = images / max(time.monotonic() - t0, 1e-6)
                            old = self._lane_rate
                            self._lane_rate = rate if old is None else old + 0.2 * (rate - old)
                        if wide:
                            self._wide_running = False
                            if len(batch) == 1 and not batch[0].warmup:
                                # A slow average: compares and explanations mix.
                                self._lone_s += 0.2 * (time.monotonic() - t0 - self._lone_s)
                            self._not_empty.notify_all()  # lanes held back by it may start
        except BaseException as exc:  # the lane itself broke: fail what waits, never strand it
            with self._lock:
                if self._threads.get(lane) is threading.current_thread():
                    del self._threads[lane]  # the next request starts a new thread
                waiting = list(self._queue)
                self._queue.clear()
                self._not_full.notify_all()
            self._fail(waiting, exc)

    def _fail(self, requests: Iterable[_Request], exc: BaseException) -> None:
        """Deliver a failure that belongs to no one request to each request not yet answered."""
        error = EngineError(
            f"the engine of model {self.runner.card.name!r} failed outside any one request "
            f"({type(exc).__name__}: {exc}); this call was not run"
        )
        error.__cause__ = exc
        for request in requests:
            try:
                if not request.future.done():
                    request.future.set_exception(error)
                    self._count("failed")
            except concurrent.futures.InvalidStateError:
                pass  # its caller cancelled it just now

    def _observe(self) -> None:
        """Update the load before the number of requests in the engine changes (caller holds
        ``_lock``), and with it whether the lanes split the cores.

        The load is the share of the last load window (:attr:`EngineSettings.load_window_ms`)
        in which two or more requests were in the engine. Lanes split the cores from a load of
        1/2 and give a lone request all cores again below 1/4 (hysteresis: no flapping).
        """
        now = time.monotonic()
        window = self.settings.load_window_ms
        window_s = window / 1e3 if window is not None else max(0.1, 4 * self._lone_s)
        crowded = len(self._queue) + self._running >= 2
        decay = math.exp(-(now - self._load_at) / window_s)
        self._load = self._load * decay + (1.0 - decay) * crowded
        self._load_at = now
        if self._load >= 0.5:
            self._split = True
        elif self._load < 0.25:
            self._split = False

    @property
    def load(self) -> float:
        """The recent share of time with two or more requests in the engine (0..1)."""
        with self._lock:
            self._observe()
            return self._load

    def _pop(self) -> _Request:
        request = self._queue.popleft()
        self._not_full.notify()
        return request

    def _next_batch(self, lane: int) -> tuple[list[_Request], bool] | None:
        """The next requests this lane runs together, and whether it may use all cores.

        Oldest first, up to ``max_batch`` images and this lane's share of the work
        (:meth:`_take`), one request per caller before a second of any caller. All cores (``wide``) only when no other batch runs, nothing else waits and the
        engine has not been busy with several requests lately (:meth:`_observe`); while a wide
        batch runs, the other lanes start nothing (they would oversubscribe the cores).
        """
        s = self.settings
        with self._lock:
            until = None
            while True:
                while not self._queue or self._wide_running or lane >= self.lanes:
                    if self._closed or lane >= self.lanes:  # shut down, or lanes given up
                        self._threads.pop(lane, None)
                        return None
                    if not self._not_empty.wait(IDLE_EXIT_S) and not self._queue:
                        del self._threads[lane]  # idle: the next request starts a new thread
                        return None
                if until is None:
                    until = time.monotonic() + s.max_wait_ms / 1e3
                left = until - time.monotonic()
                if (
                    left <= 0
                    or not s.combine
                    or self._queue[0].warmup
                    or sum(r.n for r in self._queue) >= s.max_batch
                ):
                    break
                self._not_empty.wait(left)  # gather more; another lane may take them meanwhile
            self._observe()
            batch = self._take()
            wide = self.lanes == 1 or (self._busy == 0 and not self._queue and not self._split)
            self._busy += 1
            self._running += len(batch)
            self._lane_work[lane] = (time.monotonic(), sum(r.n for r in batch))
            self._wide_running = wide and self.lanes > 1
            self.stats.most_in_flight = max(self.stats.most_in_flight, self._busy)
            if self._queue:
                self._not_empty.notify()  # another free lane may take the rest
            return batch, wide

    def _take(self) -> list[_Request]:
        """Pop this lane's share of the queue (caller holds ``_lock``): the oldest request, then
        others up to ``max_batch`` images and the lane's share of the work, other callers'
        first.

        The share balances the lanes: the waiting images plus what the busy lanes have left
        (estimated from a narrow lane's recent images/s), over the lanes, so that all finish
        about together. Taking only ``waiting / lanes`` would leave requests behind for a lane
        that is still busy with a long batch (they waited for two batches); taking all of the
        queue would leave the other lanes idle while one long batch runs. A narrow batch stops
        at about :data:`LANE_CALL_IMAGES` images (at least the oldest request): beyond that a
        one-thread call gets no more done per second, and every request in a batch waits for
        the whole batch, so one explanation per lane call is both the fastest and the fairest.
        """
        s = self.settings
        first = self._pop()
        if not s.combine or first.warmup:
            return [first]
        work = first.n + sum(r.n for r in self._queue)
        now = time.monotonic()
        if self._lane_rate:
            for start, images in self._lane_work.values():
                work += max(0.0, images - (now - start) * self._lane_rate)
        budget = work / self.lanes
        if self.lanes > 1:
            # A batch of more than one request runs narrow (it leaves the rest for the other
            # lanes): past LANE_CALL_IMAGES it gets no more done per second on one thread, and
            # each of its requests waits for all of it.
            budget = min(budget, LANE_CALL_IMAGES)
        batch, callers, images = [first], {first.caller}, first.n
        for distinct in (True, False):  # round-robin: other callers first, then the rest
            for request in list(self._queue):
                if images >= budget:
                    return batch
                if request.warmup or images + request.n > s.max_batch:
                    continue
                if images + request.n / 2 > budget:  # nearer the share without it
                    continue
                if distinct and request.caller in callers:
                    continue
                self._queue.remove(request)
                self._not_full.notify()
                batch.append(request)
                callers.add(request.caller)
                images += request.n
        return batch

    def _run(self, batch: list[_Request], lane: int, wide: bool) -> None:
        live = []
        for request in batch:
            if not request.future.set_running_or_notify_cancel():
                self._count("cancelled")  # its caller gave up while it was being batched
            elif request.expired():
                self._count("expired")
                request.future.set_exception(request.exceeded("while it waited in the queue"))
            else:
                request.started = time.monotonic()
                live.append(request)
        if not live:
            return
        runner = self.runner if wide else self._lane_runner(lane)
        results: list[tuple[np.ndarray, dict[str, float]] | Exception]
        try:
            results = list(self._compute(live, lane, runner))
        except Exception as exc:  # delivered to the callers, never lost
            if len(live) == 1:
                self._count("failed")
                live[0].future.set_exception(exc)
                return
            # One bad request must not fail the others: run each alone.
            results = []
            for request in live:
                try:
                    results.append(self._compute([request], lane, runner)[0])
                except Exception as single:
                    results.append(single)
        for request, result in zip(live, results, strict=True):
            if isinstance(result, BaseException):
                self._count("failed")
                request.future.set_exception(result)
            else:
                self._count("requests")
                request.future.set_result(result)

    def _count(self, name: str) -> None:
        """Add one to a counter of :attr:`stats` (lanes update them from several threads)."""
        with self._lock:
            setattr(self.stats, name, getattr(self.stats, name) + 1)

    def _batch_buffer(self, lane: int, images: int) -> np.ndarray:
        shape = self.runner.card.input_shape
        buffer = self._buffers.get(lane)
        if buffer is None or buffer.shape[0] < images:
            buffer = np.empty((max(images, self.settings.max_batch), *shape), np.float32)
            self._buffers[lane] = buffer
        return buffer[:images]

    def _lane_runner(self, lane: int) -> ModelRunner:
        """The model with a lane's share of the intra-op threads (its own session, made once
        and checked against the model's: same rows to the bit, else lanes are not used).

        If opening or checking a lane's session fails for any reason (a ``ModelError``, or
        ``MemoryError``), lanes are not used either: the engine runs one batch at a time on the
        model's own session (:attr:`lanes` becomes 1, :attr:`lane_error` holds the cause), so
        no caller is left waiting on a lane that cannot run."""
        with self._lane_lock:
            runner = self._lane_runners.get(lane)
            if runner is not None or self._lanes_ok is False:
                return runner or self.runner
            threads = max(1, (self.intra_op_threads or usable_cores()) // self.lanes)
            try:
                runner = self.runner.with_threads(threads)
                if self._lanes_ok is None:
                    h, w = self.runner.card.input_size
                    rng = np.random.default_rng(0)
                    probe = rng.integers(0, 256, (2, h, w, 3), dtype=np.uint8)
                    x = to_model_input(probe, self.runner.card)
                    same = np.array_equal(self.runner.run_model(x), runner.run_model(x))
                    self._lanes_ok = bool(same)
                    if not same:
                        return self.runner
            except Exception as exc:  # any failure: run on the model's own session instead
                self.lane_error = exc
                self._lanes_ok = False
                with self._lock:
                    self._not_empty.notify_all()  # lanes beyond the first see it and end
                return self.runner
            self._lane_runners[lane] = runner
            return runner

    def _compute(
        self, live: list[_Request], lane: int, runner: ModelRunner
    ) -> list[tuple[np.ndarray, dict[str, float]]]:
        """Mask every request of the batch into one buffer, run the model once, split the rows.

        Layout: for each explainer configuration, the layout ``PairMasker.fill_batch`` gives P
        pairs ([2P references][2P x K masked]), then the images of each embed request.
        """
        t0 = time.perf_counter()
        wide = runner is self.runner
        threads = self.mask_threads if wide else max(1, self.mask_threads // self.lanes)
        only = live[0].job
        if len(live) == 1 and isinstance(only, _EmbedJob):
            x = only.x  # nothing to copy
            places: list[tuple[int, int, int]] = [(0, 0, 1)]
        else:
            groups: dict[Hashable, list[int]] = {}
            for i, request in enumerate(live):
                if isinstance(request.job, _PairJob):  # pairs masked alike are masked together
                    groups.setdefault(request.job.masker.mask_key, []).append(i)
            x = self._batch_buffer(lane, sum(r.n for r in live))
            places = [(0, 0, 1)] * len(live)
            offset = 0
            for members in groups.values():
                jobs = [job for i in members if isinstance(job := live[i].job, _PairJob)]
                first = jobs[0]
                if isinstance(first, _WarmupJob):  # a full batch of copies of one pair
                    pairs, faces = first.pairs(), first.all_faces()
                else:
                    pairs = len(members)
                    faces = np.concatenate([job.faces for job in jobs])
                size = pairs * first.masker.images_per_pair
                first.masker.fill_batch(
                    x[offset : offset + size], faces, pairs=pairs, threads=threads
                )
                for j, i in enumerate(members):
                    places[i] = (offset, j, pairs)
                offset += size
            for i, request in enumerate(live):
                if isinstance(request.job, _EmbedJob):
                    x[offset : offset + request.n] = request.job.x
                    places[i] = (offset, 0, 1)
                    offset += request.n
            x = x[:offset]
        t1 = time.perf_counter()
        # Alone, a request is chunked as a lone call would chunk it; together they fit one call.
        batch_size = live[0].batch_size if len(live) == 1 else None
        if not wide and x.shape[0] > LANE_CALL_IMAGES:
            # A narrow lane runs calls of at most LANE_CALL_IMAGES images, in even chunks.
            calls = math.ceil(x.shape[0] / LANE_CALL_IMAGES)
            batch_size = math.ceil(x.shape[0] / calls)
        embeddings = runner.run_model(x, batch_size=batch_size)
        t2 = time.perf_counter()
        with self._lock:
            self.stats.batches += 1
            self.stats.lane_batches += not wide
            self.stats.images += x.shape[0]
            self.stats.largest_batch = max(self.stats.largest_batch, len(live))
        results = []
        for request, (offset, j, pairs) in zip(live, places, strict=True):
            timings = {
                "queue": (request.started - request.submitted) * 1e3,
                "mask": (t1 - t0) * 1e3,
                "model": (t2 - t1) * 1e3,
            }
            job = request.job
            if isinstance(job, _EmbedJob):
                rows = embeddings[offset : offset + request.n]
                results.append((rows if len(live) == 1 else rows.copy(), timings))
            else:
                rows = _pair_rows(embeddings, offset, j, pairs, job.masker.cells)
                results.append((rows, timings))
        return results


def _caller() -> int:
    """Who is calling, for round-robin: the submitting thread (so all tasks of one asyncio
    loop are one caller, and cannot crowd out a thread with a single request)."""
    return threading.get_ident()


def _pair_rows(embeddings: np.ndarray, offset: int, j: int, pairs: int, k: int) -> np.ndarray:
    """Pair j's rows of a group of ``pairs`` pairs at ``offset``, in a lone call's layout
    (``k`` masked images per explained image: bands, or band × region cells)."""
    refs = embeddings[offset + 2 * j : offset + 2 * j + 2]
    masked = embeddings[offset + 2 * pairs : offset + 2 * pairs * (k + 1)]
    masked = masked.reshape(2 * pairs, k, -1)[2 * j : 2 * j + 2].reshape(2 * k, -1)
    return np.concatenate([refs, masked])


def shutdown(timeout: float = EXIT_WAIT_S) -> bool:
    """Shut down every engine of this process (:meth:`Engine.close`): no new work, queued
    requests fail, running batches finish (at most ``timeout`` seconds in all), threads joined.

    Registered with :mod:`atexit`, so it runs when the interpreter exits, also after an
    uncaught ``KeyboardInterrupt`` (SIGINT) or a ``SystemExit`` raised by a SIGTERM handler:
    a worker thread still inside ONNX Runtime while the interpreter tears down aborts the
    process (``terminate called without an active exception``, exit 134). A process killed by
    an unhandled SIGTERM runs no Python code; programs that should clean up on SIGTERM turn it
    into ``SystemExit`` (the CLI does). Returns whether every thread ended in time.
    """
    done = True
    end = time.monotonic() + timeout
    try:
        for engine in list(_ENGINES):
            if engine._pid == os.getpid():
                done = engine.close(max(0.0, end - time.monotonic())) and done
    except KeyboardInterrupt:  # a second Ctrl-C while waiting: leave now, without teardown
        sys.stderr.flush()
        os._exit(130)
    return done


#: Every engine of this process, for :func:`shutdown` (weak: an unused model may be collected).
_ENGINES: weakref.WeakSet[Engine] = weakref.WeakSet()
atexit.register(shutdown)
