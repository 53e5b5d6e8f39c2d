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


# ---- 0.2: the settings a restart must match, each on its own ------------------------------------
#
# A restart continues a run only when every setting that changes its numbers is the same; each
# case below changes one such setting and nothing else, so a check that overlooks it lets two
# configurations into one results file.


def _toy_pairs(folder):
    """Three pairs of two toy images (a waved, b flat), with their ground truth."""
    from freqxfr.explanations.pairs import Pair

    a = toy.save(toy.waved((120, 90, 60), 40), folder / "a.png")
    b = toy.save(toy.flat((100, 100, 100)), folder / "b.png")
    return [Pair(a, b, True), Pair(b, a, False), Pair(a, a, True)]


def _another_file_same_card(folder, into):
    """A copy of the toy model whose ONNX file differs (its doc string) but whose card is the
    same, name included: another model to the restart check, the same one to its card."""
    import shutil

    import onnx

    shutil.copytree(folder, into)
    model = onnx.load(str(into / "toy.onnx"))
    model.doc_string = "another toy"
    onnx.save(model, str(into / "toy.onnx"))
    return into


@pytest.mark.unit
@pytest.mark.parametrize(
    "setting",
    ["--model", "--padding", "--planner", "--bands/--schedule", "--aligned", "pairs"],
)
def test_restart_refuses_each_setting_that_changes_the_numbers(tmp_path, setting):
    """The first run: toy model, 4 rings of equal width, edge padding, measured plans, alignment
    left to the card, three labelled pairs. The restart changes exactly one thing: another model
    file under the same name and card, reflect padding, estimated plans, 4 bands with other
    edges (same kind and count), ``aligned=True``, or the pairs' labels. Each must be refused
    naming that setting, and the results file must stay as it was."""
    from freqxfr.common.errors import OutputError
    from freqxfr.core.bands import BandSchedule
    from freqxfr.explanations.pairs import Pair
    from freqxfr.runs.dataset import run_dataset

    toy.write_model(tmp_path / "model")
    pairs = _toy_pairs(tmp_path)
    even = BandSchedule.from_edges([0.0, 0.25, 0.5, 0.75, 1.0])
    first = Explainer(toy.load(tmp_path / "model"), even, threads=1)
    out = tmp_path / "run"
    run_dataset(pairs, out, first, progress=False, report=False)
    before = (out / "results.jsonl").read_bytes()
    explainer, options = first, {}
    if setting == "--model":
        other = _another_file_same_card(tmp_path / "model", tmp_path / "other")
        explainer = Explainer(toy.load(other), even, threads=1)
    elif setting == "--padding":
        explainer = first.with_(padding="reflect")
    elif setting == "--planner":
        explainer = first.with_(planner="estimate")
    elif setting == "--bands/--schedule":
        uneven = BandSchedule.from_edges([0.0, 0.1, 0.5, 0.75, 1.0])
        explainer = Explainer(first.model, uneven, threads=1)
    elif setting == "--aligned":
        options = {"aligned": True}
    else:
        pairs = [Pair(p.path_a, p.path_b, not p.same) for p in pairs]
    with pytest.raises(OutputError, match=f"{setting}: was|{setting} [a-z]+: was"):
        run_dataset(pairs, out, explainer, progress=False, report=False, **options)
    assert (out / "results.jsonl").read_bytes() == before


@pytest.mark.unit
def test_a_run_of_an_older_freqxfr_continues_only_with_the_padding_it_used(tmp_path):
    """A run.json written before padding was recorded (an older freqxfr, whose dlib and OpenCV
    crops had black borders): the restart that says ``--padding black`` continues it, one that
    says today's default ``edge`` is refused, naming the value the old run used."""
    from freqxfr.common.errors import OutputError
    from freqxfr.runs.folder import SETTINGS_KEY, check_settings

    run_json = tmp_path / "run.json"
    run_json.write_text('{"settings": {"--mode": "delete"}}')
    check_settings(run_json, {SETTINGS_KEY: {"--mode": "delete", "--padding": "black"}})
    with pytest.raises(OutputError, match="--padding black"):
        check_settings(run_json, {SETTINGS_KEY: {"--mode": "delete", "--padding": "edge"}})
    assert run_json.read_text() == '{"settings": {"--mode": "delete"}}'


# ---- 0.2: which explainers the engine may mask together ------------------------------------------


@pytest.mark.unit
@pytest.mark.parametrize(
    "change",
    [
        {"mode": "keep"},
        {"domain": "normalised"},
        {"clip": True},
        {"planner": "estimate"},
        {"schedule": 8},
        {"backend": "numpy"},
    ],
    ids=lambda change: next(iter(change)),
)
def test_explainers_that_mask_differently_never_share_a_mask_key(change):
    """The engine masks the pairs of explainers with equal mask keys in one batch, with one set
    of masking settings. Each of these settings changes the masked images (clip: pixels beyond
    0..255 are clipped before normalising; keep: the band is kept rather than deleted; ...), so
    two configs that differ only in it must never share a key. Padding, the batch size and the
    thread count do not touch the masking: they share it."""
    from freqxfr.explanations.config import ExplainerConfig

    base = ExplainerConfig(schedule=4)
    assert base.replace(**change).mask_key(None) != base.mask_key(None)
    for same in ({"padding": "reflect"}, {"max_batch": 7}, {"threads": 3}):
        assert base.replace(**same).mask_key(None) == base.mask_key(None)


# ---- 0.2: a single-process resume retries failures and counts each pair once --------------------


@pytest.mark.unit
def test_resumed_run_retries_a_pair_that_failed(toy_verifier, tmp_path):
    """Pair 1's second image is missing at first, so pair 1 fails. Once the image exists, running
    the same command again must explain pair 1 (a failure is not a finished pair) and keep
    pairs 0 and 2 as they were."""
    import json

    from freqxfr.explanations.pairs import Pair
    from freqxfr.runs.dataset import run_dataset

    a = toy.save(toy.waved((120, 90, 60), 40), tmp_path / "a.png")
    b = toy.save(toy.flat((100, 100, 100)), tmp_path / "b.png")
    late = tmp_path / "late.png"
    pairs = [Pair(a, b, True), Pair(a, late, False), Pair(b, a, True)]
    explainer = Explainer(toy_verifier, 4, threads=1)
    out = tmp_path / "run"
    first = run_dataset(pairs, out, explainer, progress=False, report=False)
    assert first["failed"] == 1
    toy.save(toy.flat((100, 100, 100)), late)
    again = run_dataset(pairs, out, explainer, progress=False, report=False)
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert sorted(r["index"] for r in records) == [0, 1, 2]
    assert all("error" not in r for r in records), records
    assert again["failed"] == 0


@pytest.mark.unit
def test_resumed_run_counts_a_pair_written_twice_once(toy_verifier, tmp_path):
    """A results file that holds one pair's record twice (a merge interrupted between writing and
    recording it): the resumed run keeps one record per pair, and its summary counts 3 pairs
    for 3 pairs, not 4."""
    import json

    from freqxfr.runs.dataset import run_dataset

    pairs = _toy_pairs(tmp_path)
    explainer = Explainer(toy_verifier, 4, threads=1)
    out = tmp_path / "run"
    run_dataset(pairs, out, explainer, progress=False, report=False)
    results = out / "results.jsonl"
    lines = results.read_text().splitlines(keepends=True)
    results.write_text("".join(lines + lines[:1]))
    summary = run_dataset(pairs, out, explainer, progress=False, report=False)
    records = [json.loads(line) for line in results.read_text().splitlines()]
    assert sorted(r["index"] for r in records) == [0, 1, 2]
    assert summary["pairs"] == 3
    assert summary["classes"]["genuine"]["n_images"] == 4  # pairs 0 and 2, two images each


# ---- 0.2: faithfulness's decision-aware variants --------------------------------------------------


@pytest.mark.unit
def test_support_and_against_orders_of_a_known_pair(toy_verifier):
    """The toy pair A flat (50, 100, 150), B = A + 40·P on red: s_ref = -10, a match. In B,
    deleting band 0 (its colour) lowers the score (supports the match); deleting band 1 (its
    wave) makes B equal to A, score 0 (works against it); bands 2 and 3 hold nothing. So B's
    support order deletes band 0 first and band 1 last; the against order is the reverse, and
    for a match the decision-aware curve is the support curve. The scores of each step follow
    from which bands are gone (see test_faithfulness_curves.py's table)."""
    explainer = Explainer(toy_verifier, 4, threads=1)
    curves = explainer.faithfulness(
        toy.flat((50, 100, 150)), toy.waved((50, 100, 150), 40), seeds=[2]
    )
    wave_only = -np.sqrt(25**2 + 50**2 + 75**2 + 10**2)
    black = -np.sqrt(25**2 + 50**2 + 75**2)
    b = curves.b
    support, against = b.variant("support"), b.variant("against")
    assert support.order.tolist() == [0, 2, 3, 1]
    assert against.order.tolist() == [1, 3, 2, 0]
    np.testing.assert_allclose(
        support.deletion, [-10, wave_only, wave_only, wave_only, black], atol=1e-4
    )
    np.testing.assert_allclose(against.deletion, [-10, 0, 0, 0, black], atol=1e-4)
    assert b.variant("decision_aware") is support


# ---- 0.2: compare refuses runs over other bands ---------------------------------------------------


@pytest.mark.unit
def test_compare_refuses_runs_whose_bands_differ(tmp_path):
    """Two runs over the same pairs, with 2 bands each, but the second run's band edge at 0.4
    instead of 0.5: band k of one is not band k of the other, so a per-band difference would
    compare unlike things. compare must refuse, naming the band."""
    import json

    from freqxfr.common.errors import InputError
    from freqxfr.runs.comparison import compare_runs

    a = _write_run(tmp_path / "A", [True, True, False, False], lambda i: [1.0, 0.0])
    b = _write_run(tmp_path / "B", [True, True, False, False], lambda i: [1.0, 0.0])
    config = json.loads((b / "run.json").read_text())
    config["bands"] = [{"radius": [0.0, 0.4]}, {"radius": [0.4, 1.0]}]
    (b / "run.json").write_text(json.dumps(config))
    with pytest.raises(InputError, match="band 0 differs"):
        compare_runs([a, b], names=["A", "B"], n_boot=10)


# ---- 0.2: the reports' numbers ---------------------------------------------------------------------


@pytest.mark.unit
def test_dataset_report_shows_each_mean_with_its_sd_to_four_significant_digits(
    toy_verifier, tmp_path
):
    """A toy run's summary with hand-set profile numbers: band 0 of the genuine pairs has |Δ| mean 0.5 ± sd
    0.25 and Δ mean 0.0001234 ± 12345.67 (a tiny and a large number). The report's table must
    show each mean before its sd, each to 4 significant digits in the reports' one number format
    (positional, trailing zeros dropped; reports/html.py's ``number``): '0.5 ± 0.25' and
    '0.0001234 ± 12350'."""
    from freqxfr.reports.dataset import write_dataset_report
    from freqxfr.runs.dataset import run_dataset

    summary = run_dataset(
        _toy_pairs(tmp_path), tmp_path / "run", Explainer(toy_verifier, 4, threads=1),
        progress=False, report=False,
    )  # fmt: skip
    profile = summary["classes"]["genuine"]
    profile["absolute_mean"][0], profile["absolute_std"][0] = 0.5, 0.25
    profile["directed_mean"][0], profile["directed_std"][0] = 0.0001234, 12345.67
    page = write_dataset_report(tmp_path / "report", summary).read_text()
    assert "<td>0.5 ± 0.25</td>" in page
    assert "<td>0.0001234 ± 12350</td>" in page


@pytest.mark.unit
def test_comparison_report_gives_the_decision_agreement_in_percent(tmp_path):
    """Run A accepts pairs 0 and 1, run B pairs 1 and 2: they decide alike on pairs 1 and 3, half
    of the four. The report says 50.0%, both in its summary and in its Decisions section."""
    from freqxfr.reports.comparison import write_comparison_report
    from freqxfr.runs.comparison import compare_runs

    a = _write_run(tmp_path / "A", [True, True, False, False], lambda i: [1.0, 0.0])
    b = _write_run(tmp_path / "B", [False, True, True, False], lambda i: [1.0, 0.0])
    summary = compare_runs([a, b], names=["A", "B"], n_boot=10)
    page = write_comparison_report(tmp_path / "cmp", summary).read_text()
    assert "the decisions agree on 50.0% of the pairs" in page
    assert "the runs agree on 50.0% of the pairs" in page


@pytest.mark.unit
def test_region_report_gives_each_regions_area_in_percent(toy_verifier, tmp_path):
    """A 1×3 grid on 16×16 pixels with soft edges: the side cells cover 0.332987 of the image,
    the middle one 0.334025 (the run records them). The report's area column shows them as
    percentages: 33.3% and 33.4%."""
    from freqxfr.reports.dataset import write_dataset_report
    from freqxfr.runs.dataset import run_dataset

    explainer = Explainer(toy_verifier, 4, regions=Regions.grid(1, 3), threads=1)
    summary = run_dataset(
        _toy_pairs(tmp_path), tmp_path / "run", explainer, progress=False, report=False
    )
    assert summary["regions"]["area"] == pytest.approx([0.332987, 0.334025, 0.332987], abs=1e-6)
    page = write_dataset_report(tmp_path / "report", summary).read_text()
    assert "<td>r0c0</td><td>33.3%</td>" in page
    assert "<td>r0c1</td><td>33.4%</td>" in page


# ---- 0.2: compare's classes, pairs and influences (cosmic-ray survivors of run_comparison) -------


@pytest.mark.unit
def test_compare_genuine_and_impostor_classes_leave_unlabelled_pairs_out(tmp_path):
    """Pairs 0 and 1 are genuine, pair 2 an impostor, pair 3 unlabelled: the genuine class holds
    2 pairs, the impostor class 1, whatever the runs decided; the unlabelled pair is in 'all'
    only."""
    from freqxfr.runs.comparison import compare_runs

    same = (True, True, False, None)
    a = _write_run(tmp_path / "A", [True, False, True, False], lambda i: [1.0, 0.0], same=same)
    b = _write_run(tmp_path / "B", [True, True, False, False], lambda i: [1.0, 0.0], same=same)
    counts = compare_runs([a, b], names=["A", "B"], n_boot=10)["n_pairs_per_class"]
    assert counts["genuine"] == {"A": 2, "B": 2, "B - A": 2}
    assert counts["impostor"] == {"A": 1, "B": 1, "B - A": 1}
    assert counts["all"] == {"A": 4, "B": 4, "B - A": 4}


@pytest.mark.unit
def test_compare_reads_every_common_pair_after_one_only_a_run_explained(tmp_path):
    """Run B has no record of pair 0 (pair 0 is first in run A's file): compare covers pairs 1-3,
    read from both files in full. A accepted pair 1 of those, B pairs 1 and 2."""
    from freqxfr.runs.comparison import compare_runs

    a = _write_run(tmp_path / "A", [True, True, False, False], lambda i: [1.0, 0.0])
    b = _write_run(tmp_path / "B", [True, True, True, False], lambda i: [1.0, 0.0])
    results = b / "results.jsonl"
    results.write_text("".join(results.read_text().splitlines(keepends=True)[1:]))
    counts = compare_runs([a, b], names=["A", "B"], n_boot=10)["n_pairs_per_class"]
    assert counts["all"] == {"A": 3, "B": 3, "B - A": 3}
    assert counts["match"] == {"A": 1, "B": 2, "B - A": 1}


@pytest.mark.unit
def test_compare_absolute_influence_is_each_bands_mean_over_the_pairs_images(tmp_path):
    """Every image of run A has directed influences (1, 0), of run B (0.5, -1). Relative to each
    image's peak magnitude: A |(1, 0)|, B |(0.5, -1)| = (0.5, 1). The per-band mean over the
    images is the same, so B - A is (-0.5, +1) for |influence| and (-0.5, -1) directed."""
    from freqxfr.runs.comparison import compare_runs

    a = _write_run(tmp_path / "A", [True, True, False, False], lambda i: [1.0, 0.0])
    b = _write_run(tmp_path / "B", [True, True, False, False], lambda i: [0.5, -1.0])
    summary = compare_runs([a, b], names=["A", "B"], n_boot=10)
    diff = [band["all"]["diff"]["B - A"] for band in summary["bands"]]
    assert [d["absolute"] for d in diff] == pytest.approx([-0.5, 1.0])
    assert [d["directed"] for d in diff] == pytest.approx([-0.5, -1.0])


@pytest.mark.unit
def test_compare_refuses_runs_over_other_pair_lists(tmp_path):
    """Two runs whose recorded pair lists differ (another digest) cover other pairs under the
    same indices: compare must refuse, naming the pair list."""
    import json

    from freqxfr.common.errors import InputError
    from freqxfr.runs.comparison import compare_runs

    a = _write_run(tmp_path / "A", [True, True, False, False], lambda i: [1.0, 0.0])
    b = _write_run(tmp_path / "B", [True, True, False, False], lambda i: [1.0, 0.0])
    config = json.loads((b / "run.json").read_text())
    config["pairs_sha256"] = "1" * 64
    (b / "run.json").write_text(json.dumps(config))
    with pytest.raises(InputError, match="another pair list"):
        compare_runs([a, b], names=["A", "B"], n_boot=10)


# ---- 0.2: what a refused restart says (cosmic-ray survivors of run_folders) -----------------------


@pytest.mark.unit
def test_refused_restart_names_the_changed_key_inside_a_setting_and_shortens_long_values(tmp_path):
    """A setting whose value is a dict is compared key by key: a region grid of 3 rows instead
    of 2 is named as '--regions rows: was 2, now 3'. A value longer than 120 characters is shown
    as its first 117 and '...'; one of exactly 120 is shown whole. A dict replaced by a plain
    value is shown whole on both sides."""
    from freqxfr.common.errors import OutputError
    from freqxfr.runs.folder import SETTINGS_KEY, check_settings

    run_json = tmp_path / "run.json"
    long_old, long_new = "x" * 200, "y" * 200
    whole_old, whole_new = "a" * 120, "b" * 120
    old = {"--regions": {"kind": "grid", "rows": 2}, "--long": long_old, "--whole": whole_old}
    new = {"--regions": {"kind": "grid", "rows": 3}, "--long": long_new, "--whole": whole_new}
    old["--schedule"] = {"kind": "rings"}
    new["--schedule"] = "rings"  # a dict replaced by a plain value: shown whole, both sides
    old["--edge"], new["--edge"] = "c" * 121, "d" * 121  # one character too many
    check_settings(run_json, {SETTINGS_KEY: old})
    with pytest.raises(OutputError) as refused:
        check_settings(run_json, {SETTINGS_KEY: new})
    message = str(refused.value)
    assert "--regions rows: was 2, now 3" in message
    assert f"--long: was {'x' * 117}..., now {'y' * 117}...;" in message
    assert f"--whole: was {whole_old}, now {whole_new};" in message
    assert '--schedule: was {"kind": "rings"}, now rings' in message
    assert f"--edge: was {'c' * 117}..., now {'d' * 117}...;" in message


@pytest.mark.unit
@pytest.mark.parametrize("broken", ["a folder", "not JSON"])
def test_restart_over_an_unreadable_run_json_is_one_line_naming_it(tmp_path, broken):
    """A run.json that is a folder, or not JSON, cannot say which settings the run used: the
    restart is refused with an OutputError naming the file, and the file is left as it was."""
    from freqxfr.common.errors import OutputError
    from freqxfr.runs.folder import SETTINGS_KEY, check_settings

    run_json = tmp_path / "run.json"
    if broken == "a folder":
        run_json.mkdir()
    else:
        run_json.write_text("{not json")
    with pytest.raises(OutputError, match=r"run\.json is unreadable"):
        check_settings(run_json, {SETTINGS_KEY: {"--mode": "delete"}})
    assert run_json.is_dir() if broken == "a folder" else run_json.read_text() == "{not json"


# ---- a region explanation's views, by hand (cosmic-ray survivors of region_explanations) ---------


@pytest.mark.unit
def test_region_share_and_sums_of_a_hand_made_region_explanation():
    """Regions (eyes, mouth), 2 bands, s_ref 0.5; the scores with each cell masked are
    eyes (0.25, 0.625), mouth (0.5, 0): directed influences eyes (0.25, -0.125), mouth (0, 0.5),
    absolute eyes (0.25, 0.125), mouth (0, 0.5). The eyes hold 0.375 of the 0.875 in all bands,
    all 0.25 of band 0, and 0.125 of band 1's 0.625 (a total below 1). Per region the directed
    influence sums to (0.125, 0.5), per band to (0.25, 0.375). An image that no mask moves has
    share 0, not 0/0."""
    from freqxfr.explanations.results import ImageExplanation

    image = ImageExplanation("x", np.array([[0.25, 0.625], [0.5, 0.0]]), 0.5, ("eyes", "mouth"))
    np.testing.assert_allclose(image.directed, [[0.25, -0.125], [0.0, 0.5]])
    np.testing.assert_allclose(image.absolute, [[0.25, 0.125], [0.0, 0.5]])
    assert image.region_share(["eyes"], slice(None)) == pytest.approx(0.375 / 0.875)
    assert image.region_share(["eyes"], [0]) == pytest.approx(1.0)
    assert image.region_share(["eyes"], [1]) == pytest.approx(0.125 / 0.625)
    assert image.region_share(["mouth", "eyes"], [1]) == pytest.approx(1.0)
    np.testing.assert_allclose(image.directed_by_region, [0.125, 0.5])
    np.testing.assert_allclose(image.directed_by_band, [0.25, 0.375])
    np.testing.assert_allclose(image.directed_relative, [[0.5, -0.25], [0.0, 1.0]])
    still = ImageExplanation("y", np.full((2, 2), 0.5), 0.5, ("eyes", "mouth"))
    assert still.region_share(["eyes"], slice(None)) == 0.0


@pytest.mark.unit
@pytest.mark.parametrize("shape", [(3, 2), (2,), (2, 2, 1)])
def test_region_explanation_refuses_cells_of_another_layout(shape):
    """Two regions need (2, K) cells: three rows, a flat (K,) row or a third axis is refused."""
    from freqxfr.explanations.results import ImageExplanation

    with pytest.raises(ValueError, match="cells must be"):
        ImageExplanation("x", np.zeros(shape), 0.0, ("eyes", "mouth"))


@pytest.mark.unit
def test_region_summary_mean_maps_are_per_cell_means_over_the_images():
    """Two genuine matches, 2 regions × 2 bands, both images of a pair alike. Pair 1's cells
    (1, 0 / 0, -0.5) and pair 2's (0, 0.5 / -1, 0) both peak at magnitude 1, so normalising
    leaves them as they are, and each class's mean map is their cell-by-cell mean over the four
    images: directed (0.5, 0.25 / -0.5, -0.25), absolute (0.5, 0.25 / 0.5, 0.25), one value per
    (region, band)."""
    from freqxfr.explanations.region_explanations import region_summary

    def record(directed):
        side = {"regions": ["left", "right"], "directed": directed}
        return {"same": True, "decision": True, "a": side, "b": side}

    summary = region_summary([record([[1, 0], [0, -0.5]]), record([[0, 0.5], [-1, 0]])])
    for cls in ("all", "genuine", "true_match"):
        entry = summary["by_class"][cls]
        assert entry["n_images"] == 4
        np.testing.assert_allclose(entry["directed_normalised_mean"], [[0.5, 0.25], [-0.5, -0.25]])
        np.testing.assert_allclose(entry["absolute_normalised_mean"], [[0.5, 0.25], [0.5, 0.25]])


# ---- the pair stream's double buffer (cosmic-ray survivor of stream) -----------------------------


@pytest.mark.unit
def test_prefetched_runs_one_item_of_work_at_a_time_in_order():
    """With overlap, the next item's work runs on *one* worker thread while the caller uses the
    current result: two buffers that alternate are then enough. So no two calls of ``work`` ever
    run at once: the first call waits (up to 0.2 s) for a second one to start, and must not see
    it. The results come in the items' order, the last short chunk included."""
    import threading

    from freqxfr.explanations.stream import chunks, prefetched

    running, overlapped = threading.Semaphore(1), []
    started = threading.Event()

    def work(chunk):
        if not running.acquire(blocking=False):
            overlapped.append(chunk)
        if chunk[0] == 0:
            started.wait(0.2)  # a second call, if one could start now, has started by then
        else:
            started.set()
        running.release()
        return [10 * x for x in chunk]

    out = list(prefetched(work, chunks(range(7), 3), overlap=True, thread_name="test"))
    assert out == [[0, 10, 20], [30, 40, 50], [60]]
    assert overlapped == []


# ---- the bootstrap's defaults and bounds (cosmic-ray survivors of bootstrap) --------------------


@pytest.mark.unit
def test_bootstrap_defaults_bounds_and_draws():
    """Documented defaults: 2000 resamples, seed 0, a 95 % interval (of 0..100: 2.5 to 97.5).
    One item and one resample are the smallest valid request; 0, a float or a string count is
    refused. Each item of 3 is drawn a third of the time (6000 draws, seed 0), the first as
    often as the last. An interval needs a level strictly inside (0, 1) and one finite sample
    (a single sample is its own interval). Sign stability of a zero estimate is the share of
    zero samples."""
    from freqxfr.common.errors import InputError
    from freqxfr.stats.bootstrap import percentile_ci, resample_indices, sign_stability

    draws = resample_indices(3)
    assert len(draws) == 2000
    assert all(
        np.array_equal(a, b) for a, b in zip(draws, resample_indices(3, seed=0), strict=True)
    )
    counts = np.bincount(np.concatenate(draws), minlength=3) / 6000
    np.testing.assert_allclose(counts, 1 / 3, atol=0.03)
    assert [d.tolist() for d in resample_indices(n=1, n_boot=1)] == [[0]]
    for bad in ({"n": 0}, {"n": 2.0}, {"n": "3"}, {"n": 3, "n_boot": 0}, {"n": 3, "n_boot": 2.0}):
        with pytest.raises(InputError):
            resample_indices(**bad)
    assert percentile_ci(np.arange(101.0)) == pytest.approx((2.5, 97.5))
    assert percentile_ci([3.0]) == (3.0, 3.0)
    assert percentile_ci(np.arange(101.0), 0.5) == pytest.approx((25.0, 75.0))
    for level in (0.0, 1.0, -0.5, 1.5):
        with pytest.raises(InputError):
            percentile_ci([1.0, 2.0], level)
    for empty in ([], [np.nan]):
        with pytest.raises(InputError):
            percentile_ci(empty)
    with pytest.raises(InputError):
        sign_stability([], 1.0)
    assert sign_stability([2.0], 1.0) == 1.0
    assert sign_stability([0.0, 0.0, 0.0, -1.0], 0.0) == 0.75


# ---- cell faithfulness: the curves of a known pair (cosmic-ray group region_faithfulness) -------


@pytest.mark.unit
def test_cell_faithfulness_curves_of_a_known_pair_start_at_the_score_and_end_empty(toy_verifier):
    """The non-match of the cell test above (a: colour (120, 90, 60) and the wave, e_a = (55,
    35, 15, 10); b: flat grey, e_b = (45, 40, 35, 0); score -25), 4 bands × 2 regions = 8 cells,
    index k·R + r. Each side's curve scores the masked image against the *other* unmasked one.

    Side a deletes its most negative cells first: the two wave cells (band 1), then the empty
    cells of bands 2 and 3, then the colour cells. With both wave cells gone e_a = (55, 35, 15,
    0), score -√525; with every cell gone the pixels are 0, e_a = (-5, -10, -15, 0) against
    e_b: score -√7500. Side b has influence only in band 0 (its cells 0 and 1), so its curve
    stays at -25 until they go; at the end e_b = (-5, -10, -15, 0) against e_a: -√6625. A
    random order's curve ends at the same empty image, and for side b it is -25 exactly while
    neither band-0 cell has been deleted. Areas are trapezoids over x = 0, 1/8, ..., 1; a
    non-match's explanation beats random when its area is larger (the score rises faster)."""
    from freqxfr.explanations.faithfulness import cell_faithfulness

    explainer = Explainer(toy_verifier, 4, regions=Regions.grid(1, 2), threads=1)
    a, b = toy.waved((120, 90, 60), 40), toy.flat((100, 100, 100))
    explanation = explainer.explain(a, b, aligned=True)
    assert not explanation.decision and explanation.score_ref == pytest.approx(-25.0, abs=1e-4)
    side_a, side_b = cell_faithfulness(explainer, np.stack([a, b]), explanation, seeds=[3, 7])

    assert side_a.order.tolist()[:6] == [2, 3, 4, 5, 6, 7]
    assert sorted(side_a.order.tolist()[6:]) == [0, 1]
    assert side_b.order.tolist()[:6] == [2, 3, 4, 5, 6, 7]
    for side, end in ((side_a, -np.sqrt(7500)), (side_b, -np.sqrt(6625))):
        assert side.decision is False
        assert side.deletion.shape == (9,) and side.random_deletion.shape == (2, 9)
        assert side.deletion[0] == pytest.approx(-25.0, abs=1e-4)
        np.testing.assert_allclose(side.random_deletion[:, 0], -25.0, atol=1e-4)
        assert side.deletion[-1] == pytest.approx(end, abs=1e-3)
        np.testing.assert_allclose(side.random_deletion[:, -1], end, atol=1e-3)
        d = side.deletion
        assert side.area == pytest.approx((d[0] / 2 + d[1:-1].sum() + d[-1] / 2) / 8, abs=1e-9)
        rows = [(r[0] / 2 + r[1:-1].sum() + r[-1] / 2) / 8 for r in side.random_deletion]
        assert side.random_area == pytest.approx(np.mean(rows), abs=1e-9)
        assert side.beats_random == (side.area > side.random_area)
        assert side.to_dict() == {
            "decision": False,
            "order": side.order.tolist(),
            "deletion": side.deletion.tolist(),
            "random_deletion": side.random_deletion.tolist(),
            "deletion_auc": side.area,
            "random_deletion_auc": side.random_area,
            "beats_random": side.beats_random,
        }
    assert side_a.deletion[2] == pytest.approx(-np.sqrt(525), abs=1e-3)
    np.testing.assert_allclose(side_b.deletion[:7], -25.0, atol=1e-4)
    # The random orders are the seeds' permutations: for side b, -25 until cell 0 or 1 goes.
    for seed, row in zip((3, 7), side_b.random_deletion, strict=True):
        perm = np.random.default_rng(seed).permutation(8)
        for step in range(1, 9):
            gone = np.isin([0, 1], perm[:step]).sum()
            if gone == 0:
                assert row[step] == pytest.approx(-25.0, abs=1e-4)
            elif gone == 2:
                assert row[step] == pytest.approx(-np.sqrt(6625), abs=1e-3)
            else:
                assert -np.sqrt(6625) + 1 < row[step] < -26.0
    (only_7,) = cell_faithfulness(explainer, np.stack([a, b]), explanation, seeds=[7])[
        1
    ].random_deletion
    np.testing.assert_array_equal(only_7, side_b.random_deletion[1])
    # By default five random orders (seeds 0..4), as for bands.
    default = cell_faithfulness(explainer, np.stack([a, b]), explanation)
    assert [side.random_deletion.shape for side in default] == [(5, 9), (5, 9)]


@pytest.mark.unit
def test_cell_faithfulness_beats_random_only_by_a_strictly_better_area():
    """A match is faithful with a *smaller* deletion area than random, a non-match with a larger
    one; an equal area beats random for neither. Areas by hand: [0, -1, -2] → -1, [0, -2, -2]
    → -1.5 (trapezoids over x = 0, 1/2, 1)."""
    from freqxfr.explanations.faithfulness import CellCurves

    order = np.arange(2)
    straight, steep = np.array([0.0, -1.0, -2.0]), np.array([0.0, -2.0, -2.0])
    for decision in (True, False):
        same = CellCurves(decision, order, straight, np.stack([straight, straight]))
        assert same.area == same.random_area == pytest.approx(-1.0)
        assert same.beats_random is False
    mixed = np.stack([straight, steep])  # random areas -1 and -1.5: mean -1.25
    assert CellCurves(True, order, steep, mixed).random_area == pytest.approx(-1.25)
    assert CellCurves(True, order, steep, mixed).beats_random is True
    assert CellCurves(False, order, steep, mixed).beats_random is False
    assert CellCurves(True, order, straight, mixed).beats_random is False
    assert CellCurves(False, order, straight, mixed).beats_random is True


@pytest.mark.unit
def test_cell_faithfulness_refuses_an_explainer_or_explanation_without_regions(toy_verifier):
    from freqxfr.common.errors import InputError
    from freqxfr.explanations.faithfulness import cell_faithfulness

    a, b = toy.waved((120, 90, 60), 40), toy.flat((100, 100, 100))
    faces = np.stack([a, b])
    bands = Explainer(toy_verifier, 4, threads=1)
    cells = Explainer(toy_verifier, 4, regions=Regions.grid(1, 2), threads=1)
    for explainer, explanation in (
        (bands, bands.explain(a, b, aligned=True)),
        (bands, cells.explain(a, b, aligned=True)),
        (cells, bands.explain(a, b, aligned=True)),
        (
            cells,
            Explainer(toy_verifier, 4, regions=Regions.grid(2, 1), threads=1).explain(
                a, b, aligned=True
            ),
        ),
    ):
        with pytest.raises(InputError, match="cell faithfulness needs an explainer with regions"):
            cell_faithfulness(explainer, faces, explanation, seeds=1)
    # The arguments by name, the seeds only by name.
    explanation = cells.explain(a, b, aligned=True)
    by_name = cell_faithfulness(explainer=cells, faces=faces, explanation=explanation, seeds=1)
    assert len(by_name) == 2
    with pytest.raises(TypeError):
        cell_faithfulness(cells, faces, explanation, 1)


# ---- a dataset run's faithfulness.jsonl (cosmic-ray group faithfulness_run) -------------------


@pytest.mark.unit
def test_faithfulness_run_lines_hold_each_sides_curves_and_refuse_other_seeds(
    toy_verifier, tmp_path
):
    """Three toy pairs (a: waved colour, e = (55, 35, 15, 10); b: flat grey, e = (45, 40, 35,
    0)): (a, b), (b, a), (a, a). Every line holds its pair's index, the seeds and, per side, the
    curves of that side's own image against the other: with every band deleted an image is 0,
    e = (-5, -10, -15, 0), so image a's curves end at -√7500 against b and image b's at -√6625
    against a (pair 1 has them the other way round; pair 2 compares a with itself: -√(60² +
    45² + 30² + 10²) = -√6625 too). The random means are over the seeds, one value per step
    (K + 1 = 5). A restart with other seeds is refused; with the same seeds it adds nothing."""
    import json

    from freqxfr.common.errors import OutputError
    from freqxfr.runs.dataset import run_dataset

    pairs = _toy_pairs(tmp_path)
    explainer = Explainer(toy_verifier, 4, threads=1)
    out = tmp_path / "run"
    run_dataset(pairs, out, explainer, progress=False, report=False, faithfulness_seeds=2)
    path = out / "faithfulness.jsonl"
    lines = {json.loads(line)["index"]: json.loads(line) for line in path.read_text().splitlines()}
    assert sorted(lines) == [0, 1, 2]
    a_end, b_end = -np.sqrt(7500), -np.sqrt(6625)
    ends = {0: (a_end, b_end), 1: (b_end, a_end), 2: (b_end, b_end)}
    for index, line in lines.items():
        assert line["seeds"] == [0, 1]
        assert [(i["pair"], i["side"]) for i in line["images"]] == [(index, "a"), (index, "b")]
        assert [i["path"] for i in line["images"]] == [
            str(pairs[index].path_a),
            str(pairs[index].path_b),
        ]
        for side, end in zip("ab", ends[index], strict=True):
            curves = line["curves"][side]
            assert set(curves["order"]) == {"support", "against", "absolute"}
            for name in ("support", "against", "absolute"):
                assert sorted(curves["order"][name]) == [0, 1, 2, 3]
                deletion, insertion = curves["deletion"][name], curves["insertion"][name]
                assert len(deletion) == len(insertion) == 5
                assert deletion[-1] == pytest.approx(end, abs=1e-3)
                assert insertion[0] == pytest.approx(end, abs=1e-3)
            for name in ("random_deletion_mean", "random_insertion_mean"):
                assert len(curves[name]) == 5
            assert curves["random_deletion_mean"][-1] == pytest.approx(end, abs=1e-3)
            assert curves["random_insertion_mean"][0] == pytest.approx(end, abs=1e-3)
    # Pair 0's image b holds only its colour (band 0), the one band with any influence.
    order_b = lines[0]["curves"]["b"]["order"]["absolute"]
    assert order_b[0] == 0  # its one influential band first
    before = path.read_text()
    run_dataset(pairs, out, explainer, progress=False, report=False, faithfulness_seeds=2)
    assert path.read_text() == before
    with pytest.raises(
        OutputError, match=r"faithfulness curves for seeds \[0, 1\], not \[0, 1, 2\]"
    ):
        run_dataset(pairs, out, explainer, progress=False, report=False, faithfulness_seeds=3)


# ---- a results log that cannot be written says how much it kept (group results_log) -----------


@pytest.mark.unit
def test_results_log_that_cannot_write_names_the_records_it_kept(tmp_path):
    """A log opened over one finished record, two records appended, then the disk is full
    (failure injection: the log's file is swapped for /dev/full, which refuses every write):
    the error names the file and the 3 records that are kept."""
    import os

    from freqxfr.common.errors import OutputError
    from freqxfr.runs.folder import ResultsLog

    if not os.path.exists("/dev/full"):
        pytest.skip("needs /dev/full")
    path = tmp_path / "results.jsonl"
    path.write_text('{"index": 0}\n')
    with ResultsLog(path, key=lambda r: r["index"]) as log:
        assert log.open() == {0}
        log.append({"index": 1})
        log.append({"index": 2})
        log._sink.close()
        log._sink = open("/dev/full", "w", encoding="utf-8")  # the full disk
        with pytest.raises(OutputError, match=r"results\.jsonl: .*its 3 finished records are kept"):
            log.append({"index": 3})
    assert path.read_text() == '{"index": 0}\n{"index": 1}\n{"index": 2}\n'


@pytest.mark.unit
def test_results_log_open_keeps_one_finished_record_per_key_and_drops_the_rest(tmp_path):
    """What a crash, a bad merge or a hand edit can leave in a results file, line by line: a
    record (kept), a line that is not JSON, a JSON list, a record without the key field, a key
    of the wrong type (``int("x")``: ValueError; ``int(None)``: TypeError), a second record of
    key 0, a failure (not finished: its item is redone), another record (kept) and a partial
    last line. Opening keeps the two finished records, in file order, and rewrites the file
    to just them; appending goes after them."""
    from freqxfr.runs.folder import ResultsLog, read_results

    path = tmp_path / "results.jsonl"
    lines = [
        '{"index": 0}',
        "not json",
        "[1, 2]",
        '{"other": 1}',
        '{"index": "x"}',
        '{"index": null}',
        '{"index": 0, "again": true}',
        '{"index": 1, "error": "boom"}',
        '{"index": 2}',
    ]
    path.write_text("\n".join(lines) + '\n{"index": 3')
    with ResultsLog(path, key=lambda r: int(r["index"])) as log:
        assert log.open() == {0, 2}
        assert path.read_text() == '{"index": 0}\n{"index": 2}\n'
        log.append({"index": 1})
        assert log.records() == [{"index": 0}, {"index": 2}, {"index": 1}]
        with pytest.raises(ValueError, match="JSON"):  # strict JSON: no NaN line is written
            log.append({"index": 3, "score_ref": float("nan")})
    assert list(read_results(path)) == [{"index": 0}, {"index": 2}, {"index": 1}]
    assert ResultsLog(tmp_path / "none.jsonl", key=lambda r: r["index"]).records() == []
    # A file that needs nothing dropped is left as it is: not even rewritten (same file).
    path.write_text('{"index": 5}\n{"index": 4}\n')
    inode = path.stat().st_ino
    with ResultsLog(path, key=lambda r: int(r["index"])) as log:
        assert log.open() == {4, 5}
    assert path.read_text() == '{"index": 5}\n{"index": 4}\n' and path.stat().st_ino == inode
    # A key read from a list (an identity's first name, lower case): an empty list (IndexError)
    # or a name that is not a string (AttributeError) is a record to drop too.
    path.write_text('{"ids": []}\n{"ids": [1]}\n{"ids": ["A"]}\n')
    with ResultsLog(path, key=lambda r: r["ids"][0].lower()) as log:
        assert log.open() == {"a"}
    assert path.read_text() == '{"ids": ["A"]}\n'


@pytest.mark.unit
def test_pair_list_settings_name_the_pairs_by_content_not_place(tmp_path):
    """A run records its pairs as their count and a 16-digit sha256 of the list's content, with
    paths relative to the root: the same pairs under another root are the same list (the root
    is its own setting); another ground truth is another list."""
    import re

    from freqxfr.explanations.pairs import Pair
    from freqxfr.runs.folder import pair_list_settings

    def settings(root, same=True, allow=False):
        pairs = [
            Pair(root / "a.png", root / "b.png", same),
            Pair(root / "b.png", root / "c.png", False),
        ]
        return pair_list_settings(pairs, root, allow)

    here, there = settings(tmp_path / "here"), settings(tmp_path / "there")
    assert re.fullmatch(r"2 pairs, sha256 [0-9a-f]{16}", here["pairs"]), here
    assert here["pairs"] == there["pairs"]
    assert (here["--root"], there["--root"]) == (str(tmp_path / "here"), str(tmp_path / "there"))
    assert settings(tmp_path / "here", same=False)["pairs"] != here["pairs"]
    assert here["--allow-outside-root"] is False
    # Labels are content too, whatever order the columns came in.
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    labelled = [Pair(a, b, True, groups={"gender": "f", "age": "30s"})]
    reordered = [Pair(a, b, True, groups={"age": "30s", "gender": "f"})]
    assert (
        pair_list_settings(labelled, tmp_path, False)["pairs"]
        == pair_list_settings(reordered, tmp_path, False)["pairs"]
        != pair_list_settings(
            [Pair(a, b, True, groups={"gender": "m", "age": "30s"})], tmp_path, False
        )["pairs"]
    )
    assert settings(tmp_path / "here", allow=1)["--allow-outside-root"] is True


@pytest.mark.unit
def test_results_log_restart_settings_name_the_model_by_file_not_by_card_name(tmp_path):
    """The same ONNX file under another card name and with another threshold: the
    restart's "model card" setting (what changes the numbers) is the same; the threshold is a
    setting of its own, and the name is no setting at all (a rename does not stop a resume)."""
    from freqxfr.runs.folder import explainer_settings

    folder = tmp_path / "models"
    first = toy.load(folder)
    renamed = toy.load(folder, name="toy renamed", threshold=-15.0, card_name="renamed.toml")
    one, other = (explainer_settings(Explainer(model, 4, threads=1)) for model in (first, renamed))
    assert one["model card"] == other["model card"]
    assert (one["threshold"], other["threshold"]) == (-20.0, -15.0)
    assert not {"name", "threshold", "notes", "source"} & set(one["model card"])
    assert one["--model"].startswith("toy (toy.onnx, sha256 ")


@pytest.mark.unit
def test_results_log_that_cannot_compact_its_file_is_one_error_naming_it(tmp_path):
    """Opening a log whose file holds a line to drop rewrites the file; when that write fails
    (failure injection: a file size limit of 16 bytes, as a quota would impose, with SIGXFSZ
    ignored so that the write fails with EFBIG instead of killing the process) the error is an
    OutputError naming the file and why, and the file is left as it was."""
    resource = pytest.importorskip("resource")
    import signal

    from freqxfr.common.errors import OutputError
    from freqxfr.runs.folder import ResultsLog

    path = tmp_path / "results.jsonl"
    text = 'not json\n{"index": 0, "pad": "' + "x" * 100 + '"}\n'
    path.write_text(text)
    log = ResultsLog(path, key=lambda r: r["index"])
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    try:
        resource.setrlimit(resource.RLIMIT_FSIZE, (16, hard))
        with pytest.raises(OutputError, match=r"results\.jsonl.*: File too large"):
            log.open()
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)
    assert path.read_text() == text
    assert [p.name for p in tmp_path.iterdir()] == ["results.jsonl"]  # no temporary file left


@pytest.mark.unit
def test_atomic_writer_reports_the_write_error_not_the_close_that_follows_it(tmp_path):
    """Data still in the file object's buffer when the write fails is flushed again by
    closing, which fails again: the error reported is the atomic writer's, naming the file and
    the folder (failure injection: a 16-byte file size limit with SIGXFSZ ignored), not a raw
    OSError from the close; nothing is left behind."""
    resource = pytest.importorskip("resource")
    import signal

    from freqxfr.common import atomic
    from freqxfr.common.errors import OutputError

    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    try:
        resource.setrlimit(resource.RLIMIT_FSIZE, (16, hard))
        with pytest.raises(
            OutputError, match=r"cannot write out\.txt in output folder .*: File too large"
        ):
            with atomic.atomic_open(tmp_path / "out.txt") as handle:
                handle.write("x" * 100)  # buffered: the write fails at the flush
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)
    assert list(tmp_path.iterdir()) == []
