"""Answers known before the code runs, for the meaning of the newer modules (issue 23).

Each test pins one thing a one-line bug could silently get wrong while every other test of its
module still passes: which cell of a region explanation holds an influence, which outcome class
a pair belongs to, which pairs a comparison of two runs compares, which direction cell
faithfulness deletes in, which pairs a resumed Dask run retries, which settings a restart checks.
The cases are small enough to work out by hand (the toy model of ``_toy_model.py``).
"""

from __future__ import annotations

import _toy_model as toy
import numpy as np
import pytest

from freqxfr.explanations.explainer import Explainer
from freqxfr.imaging.regions import Regions


@pytest.fixture(scope="module")
def toy_verifier(tmp_path_factory):
    return toy.load(tmp_path_factory.mktemp("toy"))


# ---- a region cell's (band, region) layout ------------------------------------------------------


@pytest.mark.unit
def test_flat_image_puts_all_influence_in_band_0_of_each_region(toy_verifier):
    """A flat image holds only the DC coefficient (band 0 of every ring schedule): with 4 rings
    and 2 regions, deleting band 0 inside either region moves the score, deleting any other band
    moves nothing. So of the (region, band) cells only column 0 may carry influence; a (band,
    region) layout read the wrong way round puts region 1's band-0 influence into band 1."""
    explainer = Explainer(toy_verifier, 4, regions=Regions.grid(1, 2), threads=1)
    a, b = toy.flat((120, 90, 60)), toy.flat((100, 100, 100))
    cells = explainer.explain(a, b, aligned=True)
    for side in (cells.a, cells.b):
        directed = np.asarray(side.directed)
        assert directed.shape == (2, 4)  # (region, band)
        assert np.all(np.abs(directed[:, 0]) > 1e-3), directed
        np.testing.assert_allclose(directed[:, 1:], 0, atol=1e-5)


# ---- the region summary's outcome classes --------------------------------------------------------


def _region_record(same: bool, decision: bool, value: float) -> dict:
    """A pair record with 2 regions × 2 bands whose every directed cell is ``value``."""
    side = {"regions": ["left", "right"], "directed": [[value, value], [value, value]]}
    return {"same": same, "decision": decision, "a": side, "b": side}


@pytest.mark.unit
def test_region_summary_classes_pairs_by_truth_and_decision():
    """A genuine pair the model rejected is a false non-match; an impostor it accepted is a false
    match (the outcome is (ground truth, decision), not the other way round). Each class's mean
    map is that of its own pairs: directed cells of +1 here, -1 there, so the normalised means
    tell which pairs went where."""
    from freqxfr.explanations.region_explanations import region_summary

    summary = region_summary(
        [
            _region_record(same=True, decision=False, value=-1.0),  # false non-match
            _region_record(same=False, decision=True, value=1.0),  # false match
            _region_record(same=True, decision=True, value=1.0),  # true match
            _region_record(same=True, decision=True, value=1.0),  # true match
        ]
    )["by_class"]
    assert set(summary) == {
        "all",
        "genuine",
        "impostor",
        "true_match",
        "false_match",
        "false_non_match",
    }
    counts = {cls: summary[cls]["n_images"] for cls in summary}
    assert counts == {
        "all": 8,
        "genuine": 6,
        "impostor": 2,
        "true_match": 4,
        "false_match": 2,
        "false_non_match": 2,
    }
    assert np.all(np.asarray(summary["false_non_match"]["directed_normalised_mean"]) == -1.0)
    assert np.all(np.asarray(summary["false_match"]["directed_normalised_mean"]) == 1.0)


# ---- compare: a class's pairs are those both runs put in it ------------------------------------


def _write_run(folder, decisions, directed_of, *, same=(True, True, False, False)):
    """A dataset-run folder by hand: 4 pairs, 2 bands; pair i's images have directed influences
    ``directed_of(i)`` and the run decided ``decisions[i]``."""
    import json

    folder.mkdir(parents=True)
    config = {
        "pairs_sha256": "0" * 64,
        "pairs": 4,
        "bands": [{"radius": [0.0, 0.5]}, {"radius": [0.5, 1.0]}],
    }
    (folder / "run.json").write_text(json.dumps(config))
    lines = []
    for i, decision in enumerate(decisions):
        side = {"directed": list(directed_of(i))}
        lines.append(
            {
                "index": i,
                "a": side,
                "b": side,
                "decision": decision,
                "score_ref": 0.5,
                "same": same[i],
            }
        )
    (folder / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    return folder


@pytest.mark.unit
def test_compare_class_holds_the_pairs_both_runs_put_there(tmp_path):
    """Run A accepts pairs 0 and 1, run B pairs 1 and 2: only pair 1 is a match for both runs,
    only pair 3 a non-match for both. Every image's influence lies in band 0 in both runs, except
    pair 1's in run B, which lies in band 1: so B - A over the pairs both runs accepted is
    (-1, +1) exactly, and over the pairs both rejected (0, 0)."""
    from freqxfr.runs.comparison import compare_runs

    a = _write_run(tmp_path / "A", [True, True, False, False], lambda i: [1.0, 0.0])
    b = _write_run(
        tmp_path / "B", [False, True, True, False], lambda i: [0.0, 1.0] if i == 1 else [1.0, 0.0]
    )
    summary = compare_runs([a, b], names=["A", "B"], n_boot=50)
    counts = summary["n_pairs_per_class"]
    assert counts["match"] == {"A": 2, "B": 2, "B - A": 1}
    assert counts["non_match"] == {"A": 2, "B": 2, "B - A": 1}
    assert counts["all"]["B - A"] == 4
    diff = [
        [band[cls]["diff"]["B - A"]["directed"] for band in summary["bands"]]
        for cls in ("match", "non_match")
    ]
    assert diff == [[-1.0, 1.0], [0.0, 0.0]]


# ---- cell faithfulness deletes in the decision's direction ----------------------------------------


@pytest.mark.unit
@pytest.mark.parametrize("base", [(120, 90, 60), (100, 100, 100)])
def test_cell_faithfulness_deletes_against_the_decision_first(toy_verifier, base):
    """Image a: a flat colour plus the wave P (band 1) on its red channel; image b: flat grey,
    without the wave (the toy's e[3] of b is 0). Deleting a's wave moves e_a[3] to 0 = e_b[3]:
    it raises the score, so its cells' directed influence is negative; deleting a's colour (band
    0) lowers it. With base (120, 90, 60) the pair is a non-match (score -25 < -20): the
    decision-aware order deletes the cell most against the match first, a wave cell, and the
    score rises. With base grey it is a match (score -10): the order deletes a colour cell
    first, and the score falls."""
    from freqxfr.explanations.faithfulness import cell_faithfulness

    explainer = Explainer(toy_verifier, 4, regions=Regions.grid(1, 2), threads=1)
    a, b = toy.waved(base, 40), toy.flat((100, 100, 100))
    explanation = explainer.explain(a, b, aligned=True)
    curves, _ = cell_faithfulness(explainer, np.stack([a, b]), explanation, seeds=1)
    cells = np.asarray(explanation.a.directed).T.ravel()  # band-major: cell k·R + r
    first = int(curves.order[0])
    if explanation.decision:
        assert explanation.score_ref == pytest.approx(-10.0, abs=1e-3)
        assert first // 2 == 0 and first == int(np.argmax(cells))  # a colour cell (band 0)
        assert curves.deletion[1] < curves.deletion[0]
    else:
        assert explanation.score_ref == pytest.approx(-25.0, abs=1e-3)
        assert first // 2 == 1 and first == int(np.argmin(cells))  # a wave cell (band 1)
        assert curves.deletion[1] > curves.deletion[0]


# ---- a resumed Dask run retries the pairs that failed --------------------------------------------


@pytest.mark.integration
def test_resumed_dask_run_retries_a_pair_that_failed(toy_verifier, tmp_path):
    """Pair 1's second image is missing when the run starts, so pair 1 fails; the client is then
    killed before merging its finished chunk (its records stay in ``parts/``, as a SIGKILL
    leaves them). Once the image exists, the resumed run must explain pair 1 again — a failure
    is not a finished pair — and keep pairs 0 and 2 as they were."""
    import json

    from dask.distributed import Client, LocalCluster

    from freqxfr.explanations.pairs import Pair
    from freqxfr.runs.dataset import run_dataset
    from freqxfr.runs.distributed import PARTS

    images = tmp_path / "images"
    a = toy.save(toy.waved((120, 90, 60), 40), images / "a.png")
    b = toy.save(toy.flat((100, 100, 100)), images / "b.png")
    late = images / "late.png"
    pairs = [Pair(a, b, True), Pair(a, late, False), Pair(b, a, True)]
    explainer = Explainer(toy_verifier, 4, threads=1)
    out = tmp_path / "run"
    with (
        LocalCluster(
            n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as client,
    ):
        run_dataset(pairs, out, explainer, progress=False, report=False, client=client)
        first = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
        assert [("error" in r) for r in sorted(first, key=lambda r: r["index"])] == [
            False,
            True,
            False,
        ]
        # What a client killed after its chunk finished leaves: the chunk's records as a part,
        # nothing merged yet.
        (out / PARTS).mkdir()
        (out / "results.jsonl").rename(out / PARTS / "chunk-000000.jsonl")
        (out / "summary.json").unlink(missing_ok=True)
        toy.save(toy.flat((100, 100, 100)), late)
        run_dataset(pairs, out, explainer, progress=False, report=False, client=client)
    records = {
        r["index"]: r for r in map(json.loads, (out / "results.jsonl").read_text().splitlines())
    }
    assert sorted(records) == [0, 1, 2]
    assert "error" not in records[1], records[1]
    before = {r["index"]: r for r in first}
    assert records[0]["score_ref"] == before[0]["score_ref"]
    assert records[2]["score_ref"] == before[2]["score_ref"]


# ---- a restart names every setting that changed --------------------------------------------------


@pytest.mark.unit
def test_restart_refuses_a_setting_only_the_new_run_names(tmp_path):
    """The first run explained whole bands; the restart asks for region cells. The old run.json
    has no ``--regions`` at all, so only a check over the new run's settings too sees the
    change: the restart must be refused, naming it, and run.json must stay as it was."""
    from freqxfr.common.errors import OutputError
    from freqxfr.runs.folder import SETTINGS_KEY, check_settings

    run_json = tmp_path / "run.json"
    check_settings(run_json, {SETTINGS_KEY: {"--mode": "delete"}})
    before = run_json.read_text()
    check_settings(run_json, {SETTINGS_KEY: {"--mode": "delete"}})  # the same: continues
    with pytest.raises(OutputError, match=r"--regions: was \(not set\), now grid:2x2"):
        check_settings(run_json, {SETTINGS_KEY: {"--mode": "delete", "--regions": "grid:2x2"}})
    assert run_json.read_text() == before
