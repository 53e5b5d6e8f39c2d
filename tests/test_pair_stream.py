"""The one pair stream (freqxfr.explanations.stream): results and failures in order, and each
image of a run aligned once, whatever the run also writes (faithfulness curves, pair pages).

The spy wraps the real alignment every model and stream uses (``align.card_crop``): the real
function still runs, the spy only records the images it was
called on."""

from __future__ import annotations

import json

import pytest

from freqxfr.explanations.explainer import Explainer
from freqxfr.explanations.pairs import Pair, read_pairs
from freqxfr.explanations.results import PairFailure
from freqxfr.explanations.stream import stream_pairs
from freqxfr.imaging import align
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
    real = align.card_crop

    def spy(image, card, *args, **kwargs):
        calls.append(str(image))
        return real(image, card, *args, **kwargs)

    monkeypatch.setattr(align, "card_crop", spy)
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


# ---- every route aligns through the stream, each image once -------------------------------------


def test_explain_and_explain_pairs_align_each_image_once(toy, align_spy):
    """The facade's single pair and its many pairs align through the same alignment as the
    runs: two calls for one pair, one per image occurrence for a stream of pairs."""
    explainer, pairs = toy
    explainer.explain(pairs[0].path_a, pairs[0].path_b)
    assert align_spy == [str(pairs[0].path_a), str(pairs[0].path_b)]
    align_spy.clear()
    results = list(explainer.explain_pairs(pairs))
    assert sorted(align_spy) == _each_image_of(pairs)
    assert len(results) == len(pairs)


def test_a_crossres_run_aligns_each_distinct_image_once(toy, align_spy, tmp_path):
    """Cross-resolution explains every pair at every factor from faces aligned once per image
    (the degraded probe is made from the aligned crop, never aligned again)."""
    from freqxfr.runs.crossres import run_crossres

    explainer, pairs = toy
    run_crossres(
        pairs,
        tmp_path / "crossres",
        explainer,
        factors=(1.0, 2.0),
        resample="area",
        n_boot=20,
        report=False,
    )
    distinct = sorted({str(p) for pair in pairs for p in (pair.path_a, pair.path_b)})
    assert sorted(align_spy) == distinct
    records = list(read_results(tmp_path / "crossres" / "explanations.jsonl"))
    assert len(records) == 2 * len(pairs)  # every pair at both factors, from those faces


def test_a_morph_run_aligns_each_distinct_image_once(toy, align_spy, tmp_path):
    """A morph run explains each morph and bona fide photo against probes that recur across
    comparisons; each image is aligned once."""
    import csv

    import _toy_model as toy_model

    from freqxfr.runs.morph import run_morph
    from freqxfr.runs.morph_index import read_morph_index

    explainer, _ = toy
    root = tmp_path / "morphs"
    people = {"p1": 60, "p2": 100, "p3": 140, "p4": 180}
    for person, r in people.items():
        toy_model.save(toy_model.flat((r, 100, 150)), root / "probe" / f"{person}.png")
        toy_model.save(toy_model.waved((r, 100, 150), 20), root / "bona_fide" / f"{person}.png")
    rows = []
    for a, b, r in (("p1", "p2", 80), ("p3", "p4", 160)):
        toy_model.save(toy_model.waved((r, 100, 150), 40), root / f"m_{a}{b}.png")
        rows.append(
            {
                "path": f"m_{a}{b}.png",
                "identity_a": a,
                "identity_b": b,
                "alpha": "0.5",
                "method": "toy",
                "bona_fide_a": f"bona_fide/{a}.png",
                "bona_fide_b": f"bona_fide/{b}.png",
                "probe_a": f"probe/{a}.png",
                "probe_b": f"probe/{b}.png",
            }
        )
    with (root / "index.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    entries = read_morph_index(root / "index.csv", root)
    run_morph(entries, tmp_path / "morph", explainer, n_boot=20)
    used = sorted({str(root / p) for row in rows for p in row.values() if p.endswith(".png")})
    assert sorted(align_spy) == used  # 10 images, each once, though probes recur
