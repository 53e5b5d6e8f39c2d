"""The engine never leaves a caller waiting on a dead thread (issue 28), and its deadlines are
checked and cover alignment (issues 27, 28).

The real dlib ResNet model on real LFW crops aligned once (the engine is under test, not the
model; SFace costs ~6x per image), and dlib on real FRLL photos for alignment. Failures are
injected by mocks named as such (``mock_*``): a session that cannot be opened, a model call
that runs out of memory, a lane whose loop breaks.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from test_engine import assert_same_explanation, run_threads, twin

from freqxfr.common.errors import InputError
from freqxfr.explanations.explainer import Explainer
from freqxfr.model.engine import DeadlineExceeded, Engine, EngineError
from freqxfr.model.runner import Runner
from freqxfr.model.verifier import load_model

pytestmark = pytest.mark.model

TIMEOUT_S = 120  # a call that takes longer than this is taken as hung


@pytest.fixture(scope="module")
def dlib(dlib_model):
    return dlib_model  # the run's one dlib ResNet verifier (conftest.py)


@pytest.fixture(scope="module")
def faces(dlib, lfw_images):
    """The LFW crops aligned once as dlib chips (as in test_engine.py)."""
    return np.stack([dlib.align(image) for image in lfw_images])


def finish(threads) -> None:
    for t in threads:
        t.join(TIMEOUT_S)
    assert not any(t.is_alive() for t in threads), "a call hung"


def mock_out_of_memory(*args, **kwargs):
    raise MemoryError("mock: no memory for another session")


def test_a_lane_session_that_fails_to_open_falls_back_to_one_lane(dlib, faces, monkeypatch):
    """Opening a lane's session raises MemoryError (not a ModelError): the engine runs on the
    model's own session with one lane, and every waiting call gets the serial result. Guards
    against lane threads that die and leave their callers waiting for ever."""
    monkeypatch.setattr(Runner, "with_threads", mock_out_of_memory)
    model = twin(dlib, lanes=2, load_window_ms=1e6)
    engine = model.engine
    with engine._lock:  # loaded: the next batches run narrow, on lanes (a state, not a timing)
        engine._load, engine._split = 1.0, True
    ex = Explainer(model, 4)
    calls = [lambda i=i: ex.explain(faces[i], faces[i + 1]) for i in range(4)]
    calls += [lambda: model.compare(faces[4], faces[5])]
    threads, out = run_threads(calls)
    finish(threads)
    serial = twin(dlib, engine=False)
    serial_ex = Explainer(serial, 4)
    for i in range(4):
        assert_same_explanation(out[i], serial_ex.explain(faces[i], faces[i + 1]))
    assert out[4] == serial.compare(faces[4], faces[5])
    assert engine.lanes == 1 and isinstance(engine.lane_error, MemoryError)


class MockOutOfMemoryRunner(Runner):
    """A mock: the real runner whose model call raises MemoryError while ``failing``."""

    failing = True

    def run_model(self, x, *, batch_size=None):
        if self.failing:
            raise MemoryError("mock: out of memory in the model call")
        return super().run_model(x, batch_size=batch_size)


def test_a_model_call_that_runs_out_of_memory_fails_its_callers_with_the_cause(dlib, faces):
    """Waiting calls and a later call end with the MemoryError, not a hang; once the model runs
    again, so do the calls."""
    model = twin(dlib)
    r = model.runner
    model.runner = MockOutOfMemoryRunner(
        r.session, r.card, r.path, input_name=r.input_name, output_name=r.output_name
    )
    ex = Explainer(model, 4)
    threads, out = run_threads([lambda i=i: ex.explain(faces[i], faces[i + 1]) for i in range(3)])
    finish(threads)
    assert all(isinstance(o, MemoryError) for o in out), out
    with pytest.raises(MemoryError, match="mock"):
        model.compare(faces[0], faces[1])
    model.runner.failing = False
    assert model.compare(faces[0], faces[1]) == twin(dlib, engine=False).compare(faces[0], faces[1])


@pytest.mark.parametrize("broken", ["_run", "_take"])
def test_a_lane_that_breaks_outside_any_request_fails_the_calls_waiting_on_it(
    dlib, faces, monkeypatch, broken
):
    """The lane's batch runner (``_run``) or its queue-taking (``_take``) raises: every
    waiting call ends with an EngineError that names the cause, and the engine serves calls
    again once the fault is gone."""
    model = twin(dlib, lanes=1)

    def mock_broken(*args, **kwargs):
        raise RuntimeError("mock: a broken lane")

    with monkeypatch.context() as patch:
        patch.setattr(Engine, broken, mock_broken)
        threads, out = run_threads(
            [lambda i=i: model.compare(faces[i], faces[i + 1]) for i in range(3)]
        )
        finish(threads)
    assert all(isinstance(o, EngineError) for o in out), out
    assert all("RuntimeError: mock: a broken lane" in str(o) for o in out)
    assert model.compare(faces[0], faces[1]) == twin(dlib, engine=False).compare(faces[0], faces[1])


def test_a_closed_engine_refuses_work_in_one_line(dlib, faces):
    model = twin(dlib)
    model.compare(faces[0], faces[1])
    assert model.engine.close(timeout=TIMEOUT_S)
    assert not model.engine._threads
    with pytest.raises(EngineError, match="is shut down"):
        model.compare(faces[0], faces[1])


@pytest.mark.parametrize("deadline", [math.nan, -1.0, 0, math.inf, 1e308, True, "1"])
def test_bad_deadlines_are_one_line_input_errors(dlib, faces, deadline):
    """NaN, negative, zero, infinite and absurd deadlines are refused before any work (1e308
    was an OverflowError deep inside threading)."""
    ex = Explainer(dlib, 4)
    for call in (
        lambda: dlib.compare(faces[0], faces[1], deadline=deadline),
        lambda: dlib.embed(faces[:2], deadline=deadline),
        lambda: ex.explain(faces[0], faces[1], deadline=deadline),
    ):
        with pytest.raises(InputError, match="deadline must be a positive number") as info:
            call()
        assert "\n" not in str(info.value)


@pytest.mark.dlib
def test_a_deadline_covers_alignment(data_dir):
    """A 50 ms deadline on raw photos fails on time, while the faces are still being detected
    (it raised only after alignment, 1.9 s later, before); aligned once beforehand, the same
    pair is explained within a generous deadline."""
    model = load_model()
    ex = Explainer(model, 4)
    a, b = (
        data_dir / "frll" / "neutral" / "002_03.jpg",
        data_dir / "frll" / "smiling" / "002_08.jpg",
    )
    t0 = time.perf_counter()
    faces = ex.align(a), ex.align(b)
    align_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    with pytest.raises(DeadlineExceeded, match="while its images were aligned"):
        ex.explain(a, b, deadline=0.05)
    if align_s > 1.0:  # only a clear margin says anything about time
        assert time.perf_counter() - t0 < align_s / 2
    with pytest.raises(DeadlineExceeded, match="while its images were aligned"):
        model.compare(a, b, deadline=0.05)
    e = ex.explain(*faces, deadline=600)
    assert np.isfinite(e.score_ref)
