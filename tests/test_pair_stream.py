"""The one pair stream (freqxfr.explanations.stream): results and failures in order, and each
image of a run aligned once, whatever the run also writes (faithfulness curves, pair pages).

The spy wraps the real alignment every model uses (``verifier.align_for_card``): the real
function still runs, the spy only records the images it was called on."""

from __future__ import annotations

import json

import pytest

from freqxfr.explanations.explainer import Explainer
from freqxfr.explanations.pairs import Pair, read_pairs
from freqxfr.explanations.results import PairFailure
from freqxfr.explanations.stream import stream_pairs
from freqxfr.model import verifier
from freqxfr.runs.dataset import read_results, run_dataset

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """Five pairs of toy images (A flat, B = A + red wave, C another flat colour), a model."""
    import _toy_model as toy

    root = tmp_path_factory.mktemp("toy_stream")
    toy.save(toy.flat((50, 100, 150)), root / "img" / "a.png")
    toy.save(toy.waved((50, 100, 150), 40), root / "img" / "b.png")
    toy.save(toy.flat((94, 100, 150)), root / "img" / "c.png")
    listing = root / "pairs.csv"
    listing.write_text(
        "path1,path2,same\nimg/a.png,img/b.png,1\nimg/b.png,img/c.png,0\n"
        "img/a.png,img/a.png,1\nimg/c.png,img/a.png,0\nimg/b.png,img/a.png,1\n"
    )
    toy.write_model(root / "model")
    pairs = read_pairs(listing, root=root)
    return Explainer(toy.load(root / "model"), 4, threads=1), pairs


@pytest.fixture
def align_spy(monkeypatch):
    """A spy on the alignment every model uses: the images it was called on, in order."""
    calls: list[str] = []
    real = verifier.align_for_card

    def spy(image, card, *args, **kwargs):
        calls.append(str(image))
        return real(image, card, *args, **kwargs)

    monkeypatch.setattr(verifier, "align_for_card", spy)
    return calls


def _numbers(path):
    """A results file's records without their timings (which differ from run to run)."""
    return [{k: v for k, v in record.items() if k != "timings_ms"} for record in read_results(path)]


def _each_image_of(pairs):
    return sorted(str(p) for pair in pairs for p in (pair.path_a, pair.path_b))


def test_a_dataset_run_aligns_each_image_once_per_pair(toy, align_spy, tmp_path):
    """Guards against a run that aligns a pair again for its faithfulness curves or its pair
    page (both are made from the faces the stream aligned for the explanation)."""
    explainer, pairs = toy
    out = tmp_path / "run"
    run_dataset(pairs, out, explainer, progress=False, faithfulness_seeds=2, pair_pages="all")
    assert sorted(align_spy) == _each_image_of(pairs)
    assert len(list((out / "pairs").glob("*/images.npz"))) == len(pairs)
    assert sorted(r["index"] for r in read_results(out / "faithfulness.jsonl")) == [0, 1, 2, 3, 4]


def test_a_faithfulness_pass_over_an_earlier_run_aligns_each_image_once(toy, align_spy, tmp_path):
    """The curves of pairs explained before (a resume, a cluster run) align each of their
    images once, and are those the stream computes as it explains, to the bit; the results of
    a run with curves are those of a run without."""
    explainer, pairs = toy
    run_dataset(pairs, tmp_path / "plain", explainer, progress=False, report=False)
    align_spy.clear()
    run_dataset(
        pairs, tmp_path / "plain", explainer, progress=False, report=False, faithfulness_seeds=2
    )
    assert sorted(align_spy) == _each_image_of(pairs)  # the curves' pass, nothing explained
    run_dataset(
        pairs, tmp_path / "streamed", explainer, progress=False, report=False, faithfulness_seeds=2
    )
    for name in ("results.jsonl", "faithfulness.jsonl"):
        after, during = (_numbers(tmp_path / run / name) for run in ("plain", "streamed"))
        assert after == during, name
    summaries = [
        json.loads((tmp_path / f / "summary.json").read_text()) for f in ("plain", "streamed")
    ]
    assert summaries[0]["faithfulness"] == summaries[1]["faithfulness"]


def test_the_stream_yields_results_and_failures_in_order_with_their_faces(toy, align_spy):
    explainer, pairs = toy
    missing = Pair(pairs[0].path_a, pairs[0].path_a.with_name("missing.png"), same=True)
    items = list(stream_pairs(explainer, [pairs[0], missing, pairs[1]], indices=[7, 8, 9]))
    assert [item.index for item in items] == [7, 8, 9]
    assert isinstance(items[1].result, PairFailure) and items[1].faces is None
    assert "missing.png" in items[1].result.error
    for item in (items[0], items[2]):
        assert [face.name for face in item.faces] == [str(item.pair.path_a), str(item.pair.path_b)]
    # The facade streams the same numbers (explain_pairs is the stream's results).
    again = list(explainer.explain_pairs([pairs[0], pairs[1]]))
    assert again[0].score_ref == items[0].result.score_ref
    assert (again[1].a.directed == items[2].result.a.directed).all()
