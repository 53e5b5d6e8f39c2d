"""A cluster run's chunks and parts without a cluster: how many items a chunk holds, how the
finished chunks (``OUT/parts/``) are merged into the results file, and how a later run picks up
the parts a killed cluster run left behind.

The numbers are worked out by hand; the toy model of ``_toy_model.py`` explains the pairs.
test_known_answers.py's ``test_resumed_dask_run_retries_a_pair_that_failed`` runs the same on
an in-process Dask cluster (integration tier).
"""

from __future__ import annotations

import json

import _toy_model as toy
import pytest

from freqxfr.explanations.explainer import Explainer
from freqxfr.explanations.pairs import Pair
from freqxfr.runs.dataset import run_dataset
from freqxfr.runs.distributed import (
    CHUNKS_PER_WORKER,
    MAX_BATCHES_PER_CHUNK,
    PARTS,
    Parts,
    _chunked,
    chunk_size,
)
from freqxfr.runs.folder import ResultsLog

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def toy_verifier(tmp_path_factory):
    return toy.load(tmp_path_factory.mktemp("toy"))


@pytest.mark.parametrize(
    ("items", "workers", "batch", "size"),
    [
        (10, 2, 4, 4),  # few items: one batch per chunk (10 < 2 batches for each of 2 workers)
        (15, 2, 4, 4),
        (16, 2, 4, 8),  # 16 = 2 batches for each worker: chunks of two batches, to overlap
        (33, 2, 4, 8),  # ceil(33 / (4 chunks/worker · 2 workers · 4)) = 2 batches
        (65, 2, 4, 12),  # ceil(65 / 32) = 3 batches
        (256, 2, 4, 32),  # 8 batches: the most a chunk holds
        (257, 2, 4, 32),  # ceil(257 / 32) = 9, capped at 8
        (10_000, 3, 1, 8),
        (7, 1, 1, 2),  # ceil(7 / 4) = 2
    ],
)
def test_chunk_size_by_hand(items, workers, batch, size):
    assert (CHUNKS_PER_WORKER, MAX_BATCHES_PER_CHUNK) == (4, 8)
    assert chunk_size(items, workers, batch) == size


def test_chunked_keeps_every_item_once_in_order():
    assert _chunked(list(range(7)), 3) == [[0, 1, 2], [3, 4, 5], [6]]
    assert _chunked(list(range(6)), 3) == [[0, 1, 2], [3, 4, 5]]
    assert _chunked(tuple("ab"), 5) == [["a", "b"]]
    assert _chunked([], 3) == []


def _lines(*records: dict) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


def test_parts_merge_adds_new_kept_records_in_key_order_and_the_file_wins(tmp_path):
    """The results file holds pairs 2 and 0 (in that order) and the partial line of a crash;
    two parts hold pairs 1, 2 (another version), 3 (a failure, which ``keep`` refuses) and 4.
    The merge adds 1 and 4, keeps the file's own pair 2, rewrites the file in key order without
    the partial line, and removes the parts and their folder."""
    results = tmp_path / "results.jsonl"
    results.write_text(_lines({"index": 2, "v": "file"}, {"index": 0}) + '{"index": 5')
    parts = Parts(tmp_path)
    assert parts.files() == []  # no folder yet
    parts.write(1, [{"index": 3, "error": "boom"}, {"index": 4}])
    parts.write(0, [{"index": 1}, {"index": 2, "v": "part"}])
    assert [p.name for p in parts.files()] == ["chunk-000000.jsonl", "chunk-000001.jsonl"]
    assert (tmp_path / PARTS / "chunk-000001.jsonl").read_text() == _lines(
        {"index": 3, "error": "boom"}, {"index": 4}
    )
    log = ResultsLog(results, key=lambda r: r["index"])
    added = parts.merge_into(log, lambda r: r["index"], keep=lambda r: "error" not in r)
    assert added == {1, 4}
    assert results.read_text() == _lines(
        {"index": 0}, {"index": 1}, {"index": 2, "v": "file"}, {"index": 4}
    )
    assert not (tmp_path / PARTS).exists() and parts.files() == []
    # A part is strict JSON, as the results file is: a NaN is refused, not written as `NaN`.
    with pytest.raises(ValueError, match="JSON"):
        parts.write(2, [{"index": 6, "score_ref": float("nan")}])
    assert parts.files() == []


def test_parts_that_add_nothing_leave_the_file_as_it_is(tmp_path):
    """Every part's record is already in the file or refused: the file is not rewritten (its
    lines stay in their order), and the parts are removed all the same."""
    results = tmp_path / "results.jsonl"
    text = _lines({"index": 2}, {"index": 0})
    results.write_text(text)
    parts = Parts(tmp_path)
    parts.write(0, [{"index": 0, "v": "part"}, {"index": 1, "error": "boom"}])
    log = ResultsLog(results, key=lambda r: r["index"])
    assert parts.merge_into(log, lambda r: r["index"], keep=lambda r: "error" not in r) == set()
    assert results.read_text() == text
    assert not (tmp_path / PARTS).exists()


def _untimed(record: dict) -> dict:
    return {k: v for k, v in record.items() if k != "timings_ms"}  # wall-clock, differs per run


def test_resumed_run_takes_the_finished_parts_of_a_killed_cluster_run(
    toy_verifier, tmp_path, capsys
):
    """A cluster run killed before its merge leaves finished chunks in ``parts/``: here pair 1's
    record (marked, so that a recomputed record would differ) and pair 2's failure. A later run
    without a cluster keeps pair 1's record as the part holds it, explains pair 2 again (a
    failure is not a finished pair), and writes each pair once, in pair order. Its progress
    bar starts at the 2 of 3 pairs done."""
    a = toy.save(toy.waved((120, 90, 60), 40), tmp_path / "a.png")
    b = toy.save(toy.flat((100, 100, 100)), tmp_path / "b.png")
    pairs = [Pair(a, b, True), Pair(b, a, False), Pair(a, a, True)]
    explainer = Explainer(toy_verifier, 4, threads=1)
    out = tmp_path / "run"
    run_dataset(pairs, out, explainer, progress=False, report=False)
    results = out / "results.jsonl"
    first = [json.loads(line) for line in results.read_text().splitlines()]
    assert [r["index"] for r in first] == [0, 1, 2]
    marked = {**first[1], "score_ref": first[1]["score_ref"] + 0.5}
    failure = {"index": 2, "error": "image b.png: unreadable"}
    results.write_text(_lines(first[0]))
    Parts(out).write(0, [marked, failure])
    capsys.readouterr()
    summary = run_dataset(pairs, out, explainer, progress=True, report=False)
    assert "resuming: 2 of 3 pairs done" in capsys.readouterr().err
    again = [json.loads(line) for line in results.read_text().splitlines()]
    assert [r["index"] for r in again] == [0, 1, 2]
    assert again[1] == marked  # taken from the part, not explained again
    assert _untimed(again[2]) == _untimed(first[2])  # explained again
    assert again[0] == first[0]
    assert summary["failed"] == 0 and summary["pairs"] == 3
    assert not (out / PARTS).exists()


def test_a_pair_the_root_rule_refuses_is_recorded_as_a_failure(toy_verifier, tmp_path):
    """With a root, a pair with an image outside it is refused before anything is read: the run
    writes its failure record (naming the reason) among the explained pairs, in pair order,
    and counts it as failed."""
    root = tmp_path / "images"
    a = toy.save(toy.waved((120, 90, 60), 40), root / "a.png")
    b = toy.save(toy.flat((100, 100, 100)), root / "b.png")
    outside = toy.save(toy.flat((100, 100, 100)), tmp_path / "elsewhere" / "c.png")
    pairs = [Pair(a, b, True), Pair(a, outside, False), Pair(b, a, True)]
    out = tmp_path / "run"
    explainer = Explainer(toy_verifier, 4, threads=1)
    summary = run_dataset(pairs, out, explainer, root=root, progress=False, report=False)
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert sorted(r["index"] for r in records) == [0, 1, 2]
    (failure,) = [r for r in records if "error" in r]
    assert failure["index"] == 1 and "root" in failure["error"], failure
    assert summary["failed"] == 1
