"""The engine's bookkeeping with answers known by hand: deadlines, requests, which rows of a shared
model call belong to which pair, which waiting requests a lane takes, and the load that decides
whether lanes split the cores.

The toy model of ``_toy_model.py`` gives the engine a real runner; no thread of the engine runs
here: each case puts requests in its queue (under its lock, as the engine's own threads do) and
asks the one method what it takes, so the answers do not depend on timing. test_engine.py runs
the same methods through real concurrent calls on SFace.
"""

from __future__ import annotations

import math
import re
import threading
import time

import _toy_model as toy
import numpy as np
import pytest

from freqxfr.common.errors import InputError
from freqxfr.explanations.explainer import Explainer
from freqxfr.model.engine import (
    LANE_CALL_IMAGES,
    MAX_DEADLINE_S,
    Engine,
    EngineSettings,
    _EmbedJob,
    _pair_rows,
    _Request,
    _WarmupJob,
    deadline_at,
)

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def toy_verifier(tmp_path_factory):
    return toy.load(tmp_path_factory.mktemp("toy"))


# ---- deadlines and requests --------------------------------------------------------------------


def test_deadline_at_is_now_plus_the_deadline_and_refuses_what_is_not_a_positive_time():
    assert deadline_at(None) is None
    before = time.monotonic()
    at = deadline_at(0.5)
    after = time.monotonic()
    assert before + 0.5 <= at <= after + 0.5
    assert isinstance(deadline_at(2), float)
    assert deadline_at(MAX_DEADLINE_S) >= before + MAX_DEADLINE_S  # a year is allowed
    for bad in (0, 0.0, -1.0, True, False, "1", math.nan, math.inf, MAX_DEADLINE_S + 1):
        with pytest.raises(InputError, match="deadline must be a positive number of seconds"):
            deadline_at(bad)


def _embed(n: int, caller: int = 0, batch_size: int | None = None, **call) -> _Request:
    request = _Request(_EmbedJob(np.zeros((n, 3, 16, 16), np.float32), batch_size), "embed", **call)
    request.caller = caller
    return request


def test_a_request_holds_its_job_and_its_deadline():
    before = time.monotonic()
    request = _Request(_EmbedJob(np.zeros((3, 3, 16, 16), np.float32), 2), "embed", deadline=2.0)
    assert (request.n, request.batch_size, request.warmup) == (3, 2, False)
    assert request.what == "embed" and request.deadline == 2.0
    assert before + 2.0 <= request.at <= time.monotonic() + 2.0
    assert 0 < request.remaining() <= 2.0 and not request.expired()
    assert request.caller == threading.get_ident()
    assert request.started == 0.0 and before <= request.submitted <= time.monotonic()
    assert not request.future.done()
    # No deadline: never expires, no time remaining to report.
    free = _Request(_EmbedJob(np.zeros((1, 3, 16, 16), np.float32), None), "embed")
    assert free.at is None and free.remaining() is None and not free.expired()
    # The deadline and the instant by name only (two floats in a row are easily swapped).
    with pytest.raises(TypeError):
        _Request(free.job, "embed", 2.0)
    # A given instant wins over the deadline (the caller computed it when the call began).
    assert _Request(free.job, "embed", deadline=5.0, at=123.0).at == 123.0
    # Passed half a second ago: expired; the message gives the deadline and the time since the
    # call began (the instant minus the deadline), at least 2.5 s.
    late = _Request(free.job, "compare", deadline=2.0, at=time.monotonic() - 0.5)
    assert late.expired() and late.remaining() < -0.5 + 1e-9
    message = str(late.exceeded("while it waited in the queue"))
    found = re.fullmatch(
        r"compare: deadline of 2000 ms passed after (\d+) ms while it waited in the queue; "
        r"this call was given up, other calls go on",
        message,
    )
    assert found, message
    assert 2500 <= int(found.group(1)) < 2500 + 60_000
    # An instant without a deadline (seconds) to name: "0 ms", the time since that instant.
    message = str(_Request(free.job, "embed", at=time.monotonic() - 0.5).exceeded("queued"))
    found = re.match(r"embed: deadline of 0 ms passed after (\d+) ms queued", message)
    assert found and 500 <= int(found.group(1)) < 500 + 60_000, message


def test_a_warmup_request_is_marked_and_counts_its_copies(toy_verifier):
    explainer = Explainer(toy_verifier, 4, threads=1)
    faces = np.zeros((2, 16, 16, 3), np.uint8)
    job = _WarmupJob(explainer, faces, 3)
    request = _Request(job, "warmup")
    assert request.warmup and request.n == 3 * explainer.images_per_pair


# ---- a pair's rows of a shared model call ------------------------------------------------------


def test_pair_rows_are_the_pairs_references_then_its_images_masked_images():
    """A model call whose rows are numbered: 3 rows of another request, then a group of 2 pairs
    with k = 3 masked images per image: references 3, 4 (pair 0) and 5, 6 (pair 1), then the
    masked images image by image: 7-9 (pair 0, a), 10-12 (pair 0, b), 13-15 (pair 1, a), 16-18
    (pair 1, b); rows 19.. belong to the next request. A lone call's layout per pair: a's and
    b's references, then a's k masked images, then b's."""
    rows = np.arange(24, dtype=np.float32)[:, None] * np.array([1.0, -1.0], np.float32)
    pair0 = _pair_rows(rows, 3, 0, 2, 3)
    pair1 = _pair_rows(rows, 3, 1, 2, 3)
    assert pair0[:, 0].tolist() == [3, 4, 7, 8, 9, 10, 11, 12]
    assert pair1[:, 0].tolist() == [5, 6, 13, 14, 15, 16, 17, 18]
    np.testing.assert_array_equal(pair1[:, 1], -pair1[:, 0])  # whole rows, not a column
    # The middle pair of three, k = 1: references 0-5, then one masked image each, rows 6-11.
    assert _pair_rows(rows, 0, 1, 3, 1)[:, 0].tolist() == [2, 3, 8, 9]
    # One pair at the start of the call, k = 2.
    assert _pair_rows(rows, 0, 0, 1, 2)[:, 0].tolist() == [0, 1, 2, 3, 4, 5]


# ---- which waiting requests a lane takes -------------------------------------------------------


def _engine(toy_verifier, **settings) -> Engine:
    """An engine of the toy model's runner whose threads never start: the cases drive it."""
    return Engine(toy_verifier.runner, EngineSettings(**settings))


def _take(engine: Engine, *requests: _Request) -> list[_Request]:
    with engine._lock:
        engine._queue.extend(requests)
        return engine._take()


def test_take_pops_only_the_oldest_without_combining_or_for_a_warmup(toy_verifier):
    a, b = _embed(1, caller=1), _embed(1, caller=2)
    engine = _engine(toy_verifier, lanes=1, combine=False)
    assert _take(engine, a, b) == [a] and list(engine._queue) == [b]
    explainer = Explainer(toy_verifier, 4, threads=1)
    warm = _Request(_WarmupJob(explainer, np.zeros((2, 16, 16, 3), np.uint8), 1), "warmup")
    engine = _engine(toy_verifier, lanes=1)
    assert _take(engine, warm, a, b) == [warm]
    # A warm-up waiting behind others is left for a batch of its own.
    c = _embed(1, caller=3)
    assert _take(engine, c) == [a, b, c] and not engine._queue
    assert _take(engine, a, warm, b) == [a, b] and list(engine._queue) == [warm]


def test_take_serves_other_callers_first_then_the_rest_up_to_the_lanes_share(toy_verifier):
    """One lane: its share is all the waiting work (12 images). Oldest A (caller 1) first; then
    other callers' requests (C, caller 2) before a second one of caller 1 (B)."""
    a, b, c = _embed(4, caller=1), _embed(4, caller=1), _embed(4, caller=2)
    engine = _engine(toy_verifier, lanes=1)
    assert _take(engine, a, b, c) == [a, c, b] and not engine._queue


def test_take_stays_within_max_batch(toy_verifier):
    a, b, c = _embed(4, caller=1), _embed(4, caller=2), _embed(2, caller=3)
    engine = _engine(toy_verifier, lanes=1, max_batch=6)
    assert _take(engine, a, b, c) == [a, c] and list(engine._queue) == [b]
    engine = _engine(toy_verifier, lanes=1, max_batch=8)  # exactly max_batch fits
    assert _take(engine, _embed(4, caller=1), _embed(4, caller=2))[1].n == 4


def test_take_with_two_lanes_takes_half_the_work(toy_verifier):
    """Two lanes, 16 images of four callers waiting: each lane's share is 8, so A and B."""
    requests = [_embed(4, caller=i) for i in range(4)]
    engine = _engine(toy_verifier, lanes=2)
    assert _take(engine, *requests) == requests[:2] and list(engine._queue) == requests[2:]


@pytest.mark.parametrize(
    ("sizes", "taken"),
    [
        ((2, 10, 2), [0, 1]),  # share 7: with B the batch has 12, 5 over; without it 2, 5 under
        ((2, 4, 1), [0, 2]),  # share 3.5: with B 6, 2.5 over; without it 2, 1.5 under: C instead
    ],
)
def test_take_adds_a_request_only_if_that_brings_the_batch_nearer_its_share(
    toy_verifier, sizes, taken
):
    """Two lanes, A, B and C (three callers) waiting: a lane's share is half their images. After
    the oldest (A), a request is added when the batch ends at least as near its share with it as
    without: images + n/2 ≤ share (a tie adds it)."""
    requests = [_embed(n, caller=i) for i, n in enumerate(sizes)]
    engine = _engine(toy_verifier, lanes=2)
    assert _take(engine, *requests) == [requests[i] for i in taken]


def test_take_on_two_lanes_stops_near_lane_call_images(toy_verifier):
    """Three requests of 40 images: two lanes' share would be 60, but a narrow batch stops at
    LANE_CALL_IMAGES (48): A alone (40 + 20 > 48). One lane (no narrow batches) takes all 120."""
    assert LANE_CALL_IMAGES == 48
    requests = [_embed(40, caller=i) for i in range(3)]
    assert _take(_engine(toy_verifier, lanes=2), *requests) == requests[:1]
    requests = [_embed(40, caller=i) for i in range(3)]
    assert _take(_engine(toy_verifier, lanes=1), *requests) == requests


def test_take_counts_what_the_busy_lanes_have_left(toy_verifier):
    """A lane that started 30 images 1 s ago at 10 images/s has 20 left: with 16 waiting the
    work is 36 and each of two lanes' share 18, so all four waiting requests go. A lane that
    finished long ago has nothing left (never less): the share is 8, two requests."""
    engine = _engine(toy_verifier, lanes=2)
    engine._lane_rate = 10.0
    engine._lane_work = {1: (time.monotonic() - 1.0, 30)}
    requests = [_embed(4, caller=i) for i in range(4)]
    assert _take(engine, *requests) == requests
    engine._lane_work = {1: (time.monotonic() - 100.0, 30)}
    requests = [_embed(4, caller=i) for i in range(4)]
    assert _take(engine, *requests) == requests[:2]
    # Nothing left is exactly nothing: the shares of the tie cases above stay 7 and 3.5.
    for sizes, taken in (((2, 10, 2), [0, 1]), ((2, 4, 1), [0, 2])):
        engine._queue.clear()  # the requests the lane left above
        requests = [_embed(n, caller=i) for i, n in enumerate(sizes)]
        assert _take(engine, *requests) == [requests[i] for i in taken]


# ---- the load, and whether lanes split the cores -----------------------------------------------


def _observe(engine: Engine, load: float, ago: float, queued: int, running: int = 0) -> float:
    with engine._lock:
        engine._queue.extend(_embed(1, caller=i) for i in range(queued))
        engine._running = running
        engine._load = load
        engine._load_at = time.monotonic() - ago
        engine._observe()
        engine._queue.clear()
        return engine._load


def test_load_decays_over_its_window_toward_whether_two_requests_are_in(toy_verifier):
    """load ← load·d + (1 − d)·crowded, d = exp(−elapsed / window), crowded: two or more
    requests queued or running. With a window of 1000 s and ln 2 · 1000 s elapsed, d = 1/2."""
    engine = _engine(toy_verifier, lanes=2, load_window_ms=1e6)
    half = 1000 * math.log(2)
    assert _observe(engine, 0.0, half, queued=2) == pytest.approx(0.5, abs=1e-5)
    assert _observe(engine, 0.0, half, queued=1, running=1) == pytest.approx(0.5, abs=1e-5)
    assert _observe(engine, 0.0, half, queued=0, running=2) == pytest.approx(0.5, abs=1e-5)
    assert _observe(engine, 1.0, half, queued=1) == pytest.approx(0.5, abs=1e-5)
    assert _observe(engine, 0.6, half, queued=0, running=1) == pytest.approx(0.3, abs=1e-5)
    # Long after: only whether it is crowded now counts.
    assert _observe(engine, 0.3, 1e6, queued=2) == 1.0
    assert _observe(engine, 0.7, 1e6, queued=1) == 0.0
    # Without a window: 4 × the time of a lone batch (here 1 s: 4 s), at least 0.1 s.
    engine = _engine(toy_verifier, lanes=2)
    engine._lone_s = 1.0
    assert _observe(engine, 0.0, 4 * math.log(2), queued=2) == pytest.approx(0.5, abs=1e-4)
    engine._lone_s = 0.001  # 4 ms, so the window is 0.1 s: after 1 s, 1 − load = e^−10
    assert 1 - _observe(engine, 0.0, 1.0, queued=2) == pytest.approx(math.exp(-10), rel=0.5)


@pytest.mark.parametrize(
    ("load", "split_before", "split_after"),
    [
        (0.5, False, True),  # from a load of 1/2 lanes split the cores
        (0.49, False, False),
        (0.49, True, True),  # ... and keep splitting down to 1/4 (hysteresis)
        (0.25, True, True),
        (0.2499, True, False),  # below 1/4 a lone request gets all cores again
    ],
)
def test_lanes_split_from_half_load_and_join_below_a_quarter(
    toy_verifier, load, split_before, split_after
):
    """An endless window (set past the settings' check, which allows less than 1e7 ms): the
    decay factor is exactly 1, so the load stays as set and the thresholds are met exactly."""
    engine = _engine(toy_verifier, lanes=2, load_window_ms=1.0)
    object.__setattr__(engine.settings, "load_window_ms", math.inf)
    engine._split = split_before
    assert _observe(engine, load, 0.0, queued=0) == load
    assert engine._split is split_after
