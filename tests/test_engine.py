"""The engine: concurrent callers of one model, batched, with deadlines and a bounded queue.

The real dlib ResNet model on real LFW crops (aligned once) throughout: the engine is under test,
not the model (SFace costs ~6x per image). To make batching and queueing happen on purpose
rather than by timing luck, some tests use ``GatedVerifier``: the real model whose
runner's engine-side calls wait until the test opens a gate (a spy that controls timing, not a
mock).
Its engine runs one lane unless a test is about lanes (a lane with a share of the cores runs
its own, ungated session).
"""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from freqxfr.common.cores import cgroup_quota
from freqxfr.common.errors import InputError
from freqxfr.explanations.explainer import Explainer
from freqxfr.model.engine import DeadlineExceeded, Engine, _EmbedJob, _Request
from freqxfr.model.runner import Runner
from freqxfr.model.verifier import Verifier, to_model_input

pytestmark = pytest.mark.model


class GatedRunner(Runner):
    """The real model's runner; its engine's model calls wait for ``gate`` and count the images.
    Its lanes' sessions (``with_threads``) wait for ``lane_gate`` and count into ``lane_sizes``."""

    def __init__(self, *args, owner: GatedRunner | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.owner = owner  # for a lane's session: the runner whose engine runs it
        self.gate = threading.Event()
        self.lane_gate = threading.Event()
        self.lane_gate.set()
        self.embedded = 0
        self.batch_sizes: list[int] = []
        self.lane_sizes: list[int] = []
        self.chunking: list[int | None] = []  # the batch_size of each of the engine's calls
        self.at_gate = 0  # calls waiting at a gate now

    def run_model(self, x, *, batch_size=None):
        main = self.owner or self
        if Engine.for_model(main).on_engine_thread():
            gate = main.lane_gate if self.owner else main.gate
            main.at_gate += 1
            assert gate.wait(60), "test gate never opened"
            main.at_gate -= 1
            main.embedded += x.shape[0]
            (main.lane_sizes if self.owner else main.batch_sizes).append(x.shape[0])
            main.chunking.append(batch_size)
        return super().run_model(x, batch_size=batch_size)

    def with_threads(self, threads: int) -> Runner:
        lane = super().with_threads(threads)
        return GatedRunner(
            lane.session,
            lane.card,
            lane.path,
            input_name=lane.input_name,
            output_name=lane.output_name,
            fixed_batch=lane.fixed_batch,
            owner=self,
        )


class GatedVerifier(Verifier):
    """The real model on a :class:`GatedRunner`; the gates and counters are the runner's."""

    def __getattr__(self, name):
        return getattr(self.runner, name)


@pytest.fixture(scope="module")
def dlib(dlib_model):
    return dlib_model  # the run's one dlib ResNet verifier (conftest.py)


@pytest.fixture(scope="module")
def faces(dlib, lfw_images):
    """The eight LFW crops aligned once as the model's card says ((8, 150, 150, 3) dlib chips), so
    that calls take them as aligned and the tests time the engine, not the face detector."""
    return np.stack([dlib.align(image) for image in lfw_images])


def twin(model: Verifier, cls=Verifier, *, engine: bool = True, **settings) -> Verifier:
    """Another Verifier on the same ONNX Runtime session (so: its own runner and engine). A
    GatedVerifier's engine gets one lane unless ``settings`` say otherwise."""
    r = model.runner
    runner_cls = GatedRunner if cls is GatedVerifier else Runner
    runner = runner_cls(
        r.session,
        r.card,
        r.path,
        input_name=r.input_name,
        output_name=r.output_name,
        fixed_batch=r.fixed_batch,
    )
    out = cls(runner, engine=engine)
    if cls is GatedVerifier:
        settings = {"lanes": 1, **settings}
    if settings:
        Engine.for_model(out, **settings)
    return out


def wait_until(condition, what: str) -> None:
    """Poll until ``condition()`` holds (a liveness wait, not a timing assertion)."""
    for _ in range(6000):
        if condition():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting until {what}")


def run_threads(calls):
    """Run each zero-argument call on its own thread; return results (or exceptions) in order."""
    out: list = [None] * len(calls)

    def work(i, call):
        try:
            out[i] = call()
        except Exception as exc:  # handed to the test
            out[i] = exc

    threads = [threading.Thread(target=work, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    return threads, out


def assert_same_explanation(got, want) -> None:
    assert got.score_ref == want.score_ref
    np.testing.assert_array_equal(got.a.scores, want.a.scores)
    np.testing.assert_array_equal(got.b.scores, want.b.scores)


def test_onnxruntime_rows_do_not_depend_on_the_rest_of_the_batch(dlib, faces):
    """Guards the engine's premise: an image's embedding inside a batch of other images is
    bit-identical to its embedding alone (else batching callers would change their results)."""
    serial = twin(dlib, engine=False)
    x = to_model_input(faces, dlib.card)
    together = serial.embed_model_input(x)
    for i in (0, 5):
        np.testing.assert_array_equal(serial.embed_model_input(x[i : i + 1])[0], together[i])
    shuffled = serial.embed_model_input(x[::-1].copy())
    np.testing.assert_array_equal(shuffled[::-1], together)


def test_concurrent_explain_and_compare_equal_serial_calls_bit_for_bit(dlib, faces):
    """Six threads (four explanations with two explainer settings, two comparisons) batched
    into one masking pass and one model call get exactly what serial calls without the engine
    get; guards against rows of one caller landing in another's result."""
    serial_model = twin(dlib, engine=False)
    gated = twin(dlib, GatedVerifier)
    settings = [dict(schedule=4), dict(schedule=4, mode="keep")]
    serial_ex = [Explainer(serial_model, **s) for s in settings]
    engine_ex = [Explainer(gated, **s) for s in settings]
    pairs = [(0, 1), (2, 3), (4, 5), (6, 7)]
    want = [serial_ex[i % 2].explain(faces[a], faces[b]) for i, (a, b) in enumerate(pairs)]
    want_cmp = [serial_model.compare(faces[a], faces[b]) for a, b in ((1, 2), (3, 6))]

    calls = [
        lambda i=i, p=p: engine_ex[i % 2].explain(faces[p[0]], faces[p[1]])
        for i, p in enumerate(pairs)
    ]
    calls += [
        lambda: gated.compare(faces[1], faces[2]),
        lambda: gated.compare(faces[3], faces[6]),
    ]
    # The first request blocks in the model; the other five queue up and form one batch.
    threads, out = run_threads(calls[:1])
    wait_until(
        lambda: gated.engine.stats.peak_queued == 1 and gated.engine.queued == 0,
        "the first call is in the model",
    )
    more, rest = run_threads(calls[1:])
    wait_until(lambda: gated.engine.queued == 5, "five requests are queued")
    gated.gate.set()
    for t in threads + more:
        t.join()
    out = out + rest
    for got, expected in zip(out[:4], want, strict=True):
        assert_same_explanation(got, expected)
    for got, expected in zip(out[4:], want_cmp, strict=True):
        assert got == expected
    stats = gated.engine.stats
    assert stats.batches == 2 and stats.largest_batch == 5 and stats.requests == 6
    assert gated.embedded == 4 * 10 + 2 * 2


def test_async_calls_equal_serial_calls(dlib, faces):
    """explain_async / compare_async / embed_async, gathered, equal the blocking serial calls."""
    serial_model = twin(dlib, engine=False)
    model = twin(dlib)
    serial_ex, ex = Explainer(serial_model, 4), Explainer(model, 4)

    async def main():
        return await asyncio.gather(
            ex.explain_async(faces[0], faces[1]),
            ex.explain_async(faces[2], faces[3], deadline=600),
            model.compare_async(faces[4], faces[5]),
            model.embed_async(faces[6:8]),
        )

    e1, e2, cmp, emb = asyncio.run(main())
    assert_same_explanation(e1, serial_ex.explain(faces[0], faces[1]))
    assert_same_explanation(e2, serial_ex.explain(faces[2], faces[3]))
    assert cmp == serial_model.compare(faces[4], faces[5])
    np.testing.assert_array_equal(emb, serial_model.embed(faces[6:8]))


def test_an_expired_deadline_fails_only_that_call(dlib, faces):
    """A call whose deadline passes in the queue raises DeadlineExceeded, is never run, and
    leaves the calls before and after it (and the engine) working; guards against a deadline
    that fails a whole batch, or a dropped request that still occupies the model."""
    serial = twin(dlib, engine=False)
    gated = twin(dlib, GatedVerifier)
    ex = Explainer(gated, 4)
    threads, out = run_threads([lambda: ex.explain(faces[0], faces[1])])
    wait_until(
        lambda: gated.engine.stats.peak_queued == 1 and gated.engine.queued == 0,
        "the first call is in the model",
    )
    late_threads, late = run_threads([lambda: gated.compare(faces[2], faces[3])])
    wait_until(lambda: gated.engine.queued == 1, "the second call is queued")
    with pytest.raises(DeadlineExceeded, match=r"explain: deadline of 50 ms passed .* queue"):
        ex.explain(faces[4], faces[5], deadline=0.05)
    assert gated.engine.queued == 1  # the expired call left the queue at once
    gated.gate.set()
    for t in threads + late_threads:
        t.join()
    assert_same_explanation(out[0], Explainer(serial, 4).explain(faces[0], faces[1]))
    assert late[0] == serial.compare(faces[2], faces[3])
    assert gated.engine.stats.cancelled == 1 and gated.embedded == 10 + 2
    assert gated.compare(faces[4], faces[5]) == serial.compare(faces[4], faces[5])


def test_a_deadline_that_passes_while_the_batch_runs(dlib, faces):
    """The caller gets DeadlineExceeded on time even though its batch is inside the model; the
    engine finishes that batch and serves the next call."""
    gated = twin(dlib, GatedVerifier)
    threads, out = run_threads([lambda: gated.compare(faces[0], faces[1], deadline=1.0)])
    wait_until(
        lambda: gated.engine.stats.peak_queued == 1 and gated.engine.queued == 0,
        "the call is in the model",
    )
    threads[0].join()
    assert isinstance(out[0], DeadlineExceeded) and "while its batch ran" in str(out[0])
    gated.gate.set()
    serial = twin(dlib, engine=False)
    assert gated.compare(faces[2], faces[3]) == serial.compare(faces[2], faces[3])


def test_the_queue_bound_holds_and_pushes_back(dlib, faces):
    """With max_queue = 2 and the model busy, two calls queue, a third waits for room (and
    fails at its deadline if none comes), and the queue never holds more than two."""
    gated = twin(dlib, GatedVerifier, max_queue=2)
    engine = gated.engine
    first, _ = run_threads([lambda: gated.compare(faces[0], faces[1])])
    wait_until(lambda: engine.queued == 0 and engine.stats.peak_queued == 1, "the model is busy")
    queued, results = run_threads(
        [lambda i=i: gated.compare(faces[i], faces[i + 1]) for i in (2, 4)]
    )
    wait_until(lambda: engine.queued == 2, "two calls are queued")
    with pytest.raises(DeadlineExceeded, match=r"queue was full \(2 requests\)"):
        gated.compare(faces[6], faces[7], deadline=0.05)
    blocked, late = run_threads([lambda: gated.compare(faces[6], faces[7])])
    blocked[0].join(0.2)
    assert blocked[0].is_alive() and engine.queued == 2  # back-pressure: the caller waits
    gated.gate.set()
    for t in first + queued + blocked:
        t.join()
    assert engine.stats.peak_queued == 2 and engine.stats.requests == 4
    assert all(r.decision in (True, False) for r in [*results, *late])


def test_settings_are_chosen_once_and_checked(dlib, faces):
    """Bad settings and deadlines are refused with a message naming them; settings cannot change
    once the engine has run (its thread counts are fixed)."""
    model = twin(dlib)
    with pytest.raises(InputError, match="max_batch must be a positive integer"):
        Engine.for_model(model, max_batch=0)
    engine = Engine.for_model(model, max_wait_ms=1.0, mask_threads=1)
    assert model.engine is engine and engine.mask_threads == 1
    model.compare(faces[0], faces[1])
    with pytest.raises(InputError, match="settings are chosen once per engine"):
        Engine.for_model(model, max_wait_ms=5.0)
    assert Engine.for_model(model, max_wait_ms=1.0, mask_threads=1) is engine
    with pytest.raises(InputError, match="deadline must be a positive number"):
        model.compare(faces[0], faces[1], deadline=-1)


def test_warmup_runs_each_size_the_engine_uses(dlib, faces):
    """warmup() embeds a lone pair, explains a lone pair and runs one full batch, and leaves
    results unchanged."""
    model = twin(dlib)
    Engine.for_model(model, max_batch=20)
    ex = Explainer(model, 4)
    timings = ex.warmup()
    lanes = {"lane_sessions_ms"} if model.engine.lanes > 1 else set()
    assert set(timings) == {"embed_2_ms", "explain_k4_ms", "full_batch_k4_ms", *lanes}
    assert model.engine.stats.images == 2 + 10 + 20
    serial = Explainer(twin(dlib, engine=False), 4)
    assert_same_explanation(ex.explain(faces[0], faces[1]), serial.explain(faces[0], faces[1]))


def test_lanes_split_the_cores_only_under_load_and_never_beside_a_wide_batch(dlib, faces):
    """A lone request on an idle engine runs wide (all cores, the model's own session). A
    request that arrives meanwhile waits for it instead of starting a lane beside it, which
    would oversubscribe the cores (the tail of the first engine with lanes). Once two requests
    have been in the engine for a while (load ≥ 1/2), waiting requests run narrow, two lanes at
    once; every result equals a serial call to the bit. Guards against mixing wide and narrow
    batches, lanes that wait for each other, and thread counts that change results."""
    gated = twin(dlib, GatedVerifier, lanes=2, load_window_ms=1.0)
    engine = gated.engine
    ex = Explainer(gated, 4)
    threads = engine.intra_op_threads
    gated.gate.set()
    assert "lane_sessions_ms" in ex.warmup()  # opens and checks both lanes' sessions
    assert engine.intra_op_threads == threads  # a lane's session leaves the model's alone
    gated.gate.clear()
    gated.lane_gate.clear()
    wide, wide_out = run_threads([lambda: ex.explain(faces[0], faces[1])])
    wait_until(lambda: gated.at_gate == 1, "the first call holds the model")
    assert gated.lane_sizes == []  # it runs wide
    later, later_out = run_threads(
        [
            lambda: gated.compare(faces[2], faces[3]),
            lambda: ex.explain(faces[4], faces[5]),
        ]
    )
    wait_until(lambda: engine.queued == 2, "two calls are queued")
    wait_until(lambda: engine.load >= 0.5, "the engine counts itself loaded")
    assert engine.queued == 2 and gated.at_gate == 1  # nothing started beside the wide batch
    gated.gate.set()
    wide[0].join()
    wait_until(lambda: gated.at_gate == 2, "both waiting calls run, each on a lane")
    assert engine.stats.most_in_flight == 2
    gated.lane_gate.set()
    for t in later:
        t.join()
    assert sorted(gated.lane_sizes) == [2, 10] and engine.stats.lane_batches == 2
    serial = twin(dlib, engine=False)
    serial_ex = Explainer(serial, 4)
    assert_same_explanation(wide_out[0], serial_ex.explain(faces[0], faces[1]))
    assert later_out[0] == serial.compare(faces[2], faces[3])
    assert_same_explanation(later_out[1], serial_ex.explain(faces[4], faces[5]))


def test_waiting_requests_are_taken_round_robin_across_callers(dlib, faces):
    """Three queued requests from one asyncio loop and then one from another thread: the next
    batch takes one of the loop's and the thread's, not the loop's first two (FIFO would);
    guards against a caller with a burst of requests crowding out the others."""
    gated = twin(dlib, GatedVerifier, max_batch=20)  # two K=4 explanations per batch
    ex = Explainer(gated, 4)
    first, _ = run_threads([lambda: ex.explain(faces[0], faces[1])])
    wait_until(
        lambda: gated.engine.stats.peak_queued == 1 and gated.engine.queued == 0,
        "the first call is in the model",
    )

    async def burst():
        return await asyncio.gather(*(ex.explain_async(faces[i], faces[i + 1]) for i in (1, 3, 5)))

    loop_thread, _ = run_threads([lambda: asyncio.run(burst())])
    wait_until(lambda: gated.engine.queued == 3, "the loop's three requests are queued")
    late, _ = run_threads([lambda: gated.compare(faces[7], faces[0])])
    wait_until(lambda: gated.engine.queued == 4, "the thread's request is queued")
    gated.gate.set()
    for t in first + loop_thread + late:
        t.join()
    assert gated.batch_sizes == [10, 10 + 2, 10 + 10]


def test_a_free_lane_takes_its_share_of_the_work_not_only_of_the_queue(dlib, faces):
    """With both lanes free, two waiting requests are split one per lane. With the other lane
    busy for a long batch, the free lane takes both: splitting the queue alone would leave one
    request waiting for that long batch and then for its own (two batches, the tail the first
    engine with lanes had at 4 and 8 callers). The lanes' state is set directly here, since
    making a batch run long on purpose would need a timing assumption."""
    engine = twin(dlib, lanes=2).engine
    x = to_model_input(faces[:2], dlib.card)
    with engine._lock:
        for busy in (False, True):
            if busy:
                engine._lane_rate = 100.0  # images/s of a narrow lane
                engine._lane_work = {1: (time.monotonic(), 10_000)}  # about 100 s left
            for _ in range(2):
                engine._queue.append(_Request(_EmbedJob(x, None), "embed"))
            taken = engine._take()
            assert len(taken) == (2 if busy else 1)
            engine._queue.clear()
        engine._lane_work = {}


def test_cgroup_cpu_quota_limits_the_usable_cores(tmp_path):
    """A container's CFS quota (docker --cpus) counts, rounded up; no quota means no limit."""
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert cgroup_quota(tmp_path) == 2
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cgroup_quota(tmp_path) is None
    (tmp_path / "cpu.max").unlink()
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("400000\n")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert cgroup_quota(tmp_path) == 4
