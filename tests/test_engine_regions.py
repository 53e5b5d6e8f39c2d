"""Region explanations (issue 13's (band, region) cells) through the model's engine: a request
of 2·K·R + 2 images, batched with other callers' requests, bit-identical to a lone call.

The real dlib ResNet model (the engine is under test, not the model; SFace costs ~6x per image)
on real LFW crops, aligned once; ``GatedVerifier`` (see test_engine.py) holds the engine so that
requests queue up and batch on purpose rather than by timing luck.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from test_engine import GatedVerifier, assert_same_explanation, run_threads, twin, wait_until

from freqxfr.explanations.explainer import Explainer
from freqxfr.imaging.regions import Regions
from freqxfr.model.engine import DeadlineExceeded

pytestmark = pytest.mark.model

GRID = Regions.grid(2, 2)  # R = 4: with K = 4 a region pair is 2·4·4 + 2 = 34 images


@pytest.fixture(scope="module")
def dlib(dlib_model):
    return dlib_model  # the run's one dlib ResNet verifier (conftest.py)


@pytest.fixture(scope="module")
def faces(dlib, lfw_images):
    """The LFW crops aligned once as dlib chips (as in test_engine.py)."""
    return np.stack([dlib.align(image) for image in lfw_images])


def test_concurrent_region_explanations_equal_serial_ones_bit_for_bit(dlib, faces):
    """Two region explanations, a band explanation and a comparison queued together run as one
    masking pass per setting and one model call of 34 + 34 + 10 + 2 images, and each equals a
    serial call without the engine to the bit; guards against a region request sized or laid
    out as a band request (2K + 2 rows, K cells per side) inside a shared batch."""
    serial_model = twin(dlib, engine=False)
    gated = twin(dlib, GatedVerifier)
    serial_cells = Explainer(serial_model, 4, regions=GRID)
    serial_bands = Explainer(serial_model, 4)
    cells, bands = Explainer(gated, 4, regions=GRID), Explainer(gated, 4)
    first, first_out = run_threads([lambda: cells.explain(faces[0], faces[1])])
    wait_until(lambda: gated.at_gate == 1, "the first call holds the model")
    queued, out = run_threads(
        [
            lambda: cells.explain(faces[2], faces[3]),
            lambda: cells.explain(faces[4], faces[5]),
            lambda: bands.explain(faces[6], faces[7]),
            lambda: gated.compare(faces[1], faces[6]),
        ]
    )
    wait_until(lambda: gated.engine.queued == 4, "four requests are queued")
    gated.gate.set()
    for t in first + queued:
        t.join()
    assert gated.batch_sizes == [34, 34 + 34 + 10 + 2]
    for got, (a, b) in zip([first_out[0], *out[:2]], [(0, 1), (2, 3), (4, 5)], strict=True):
        want = serial_cells.explain(faces[a], faces[b])
        assert got.regions is not None and got.a.scores.shape == (4, 4)
        assert "queue" in got.timings_ms  # masked and run by the engine, not on this thread
        assert_same_explanation(got, want)
        assert got.to_dict()["regions"] == want.to_dict()["regions"]
    assert_same_explanation(out[2], serial_bands.explain(faces[6], faces[7]))
    assert cells.images_per_pair == 34 and bands.images_per_pair == 10
    assert out[3] == serial_model.compare(faces[1], faces[6])


def test_a_region_request_larger_than_max_batch_runs_alone_in_its_own_calls(dlib, faces):
    """With the engine's max_batch (20) below a region pair's 34 images, the pair runs in a
    batch of its own, chunked as its explainer's lone call chunks it (its max_batch, 16), not
    merged with the comparison queued after it; its result equals the lone call's."""
    gated = twin(dlib, GatedVerifier, max_batch=20)
    cells = Explainer(gated, 4, regions=GRID, max_batch=16)
    first, _ = run_threads([lambda: gated.compare(faces[0], faces[1])])
    wait_until(lambda: gated.at_gate == 1, "the first call holds the model")
    queued, out = run_threads([lambda: cells.explain(faces[2], faces[3])])
    wait_until(lambda: gated.engine.queued == 1, "the region request is queued")
    late, late_out = run_threads([lambda: gated.compare(faces[4], faces[5])])
    wait_until(lambda: gated.engine.queued == 2, "the comparison is queued behind it")
    gated.gate.set()
    for t in first + queued + late:
        t.join()
    assert gated.batch_sizes == [2, 34, 2] and gated.chunking[1] == 16
    serial_model = twin(dlib, engine=False)
    serial = Explainer(serial_model, 4, regions=GRID, max_batch=16)
    assert_same_explanation(out[0], serial.explain(faces[2], faces[3]))
    assert late_out[0] == serial_model.compare(faces[4], faces[5])


def test_a_region_explanation_whose_deadline_passes_in_the_queue_fails_alone(dlib, faces):
    """A region explanation honours ``deadline`` like a band one: while the engine is busy it
    waits in the queue, fails with DeadlineExceeded when its deadline passes, and is never
    masked or run; guards against region explanations that bypass the engine's queue."""
    gated = twin(dlib, GatedVerifier)
    cells = Explainer(gated, 4, regions=GRID)
    first, first_out = run_threads([lambda: gated.compare(faces[0], faces[1])])
    wait_until(lambda: gated.at_gate == 1, "the first call holds the model")
    with pytest.raises(DeadlineExceeded, match=r"explain: deadline of 50 ms passed .* queue"):
        cells.explain(faces[2], faces[3], deadline=0.05)
    gated.gate.set()
    first[0].join()
    assert gated.batch_sizes == [2] and gated.engine.stats.cancelled == 1
    assert first_out[0] == twin(dlib, engine=False).compare(faces[0], faces[1])


def test_explain_async_with_regions_equals_serial_calls(dlib, faces):
    """explain_async of a region explainer, gathered with a band explanation, awaits the engine
    and returns what a serial lone call returns (region cells, names and all)."""
    model = twin(dlib)
    serial_model = twin(dlib, engine=False)
    cells, bands = Explainer(model, 4, regions=GRID), Explainer(model, 4)

    async def main():
        return await asyncio.gather(
            cells.explain_async(faces[0], faces[1], deadline=600),
            cells.explain_async(faces[2], faces[3]),
            bands.explain_async(faces[4], faces[5]),
        )

    got = asyncio.run(main())
    serial_cells = Explainer(serial_model, 4, regions=GRID)
    for e, (a, b) in zip(got[:2], [(0, 1), (2, 3)], strict=True):
        want = serial_cells.explain(faces[a], faces[b])
        assert e.regions is not None and e.a.regions == want.a.regions
        assert_same_explanation(e, want)
    assert_same_explanation(got[2], Explainer(serial_model, 4).explain(faces[4], faces[5]))
    assert model.engine.stats.requests == 3
    np.testing.assert_array_equal(got[0].a.scores.shape, (4, 4))
