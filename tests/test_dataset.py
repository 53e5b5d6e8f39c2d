"""Dataset runs: streamed results, resumption after an interruption, aggregates.

The real runs use dlib's ResNet with 8 bands (the model is not what these tests are about; SFace
cost six times as much per pair)."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import numpy as np
import pytest

from freqxfr.common.errors import OutputError
from freqxfr.explanations.explainer import Explainer
from freqxfr.explanations.pairs import read_pairs
from freqxfr.reports import render_run
from freqxfr.runs import dataset as dataset_module
from freqxfr.runs.dataset import read_results, run_dataset
from freqxfr.stats.profiles import centroid, profile, summarise


@pytest.fixture(scope="module")
def explainer(dlib_model):
    return Explainer(dlib_model, 8)  # planned for the suite's memory budget (conftest.py)


@pytest.fixture(scope="module")
def pairs(data_dir):
    # Genuine and impostor pairs alike, spread over the list.
    return read_pairs(data_dir / "lfw_aligned112" / "pairs_generated.csv", root=data_dir)[::250]


STOP_AFTER = 3


@contextlib.contextmanager
def interrupted_after(stop_after=STOP_AFTER):
    """Failure injection (a mock of Ctrl-C): the run's real pair stream, stopped by a
    KeyboardInterrupt after `stop_after` pairs, as when a user presses Ctrl-C mid-run."""
    real = dataset_module.stream_pairs

    def stopped(*args, **kwargs):
        for n, item in enumerate(real(*args, **kwargs)):
            if n == stop_after:
                raise KeyboardInterrupt
            yield item

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(dataset_module, "stream_pairs", stopped)
        yield


@pytest.mark.model
def test_a_run_writes_results_summary_and_report(explainer, pairs, tmp_path):
    summary = run_dataset(pairs, tmp_path, explainer, progress=False)
    render_run(tmp_path)  # the report is drawn from the folder, as the CLI does after a run
    records = list(read_results(tmp_path / "results.jsonl"))
    assert sorted(r["index"] for r in records) == list(range(len(pairs)))
    assert summary["pairs"] == len(pairs) and summary["failed"] == 0
    assert set(summary["classes"]) == {"genuine", "impostor"}
    assert summary["classes"]["genuine"]["n_images"] == 2 * sum(p.same for p in pairs)
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert on_disk["accuracy"] == summary["accuracy"] > 0.8
    assert (tmp_path / "report.html").is_file()
    # Genuine pairs: deleting their bands mostly lowers the score (positive directed influence).
    assert np.sum(summary["classes"]["genuine"]["directed_mean"]) > 0
    # LFW paths name the people: records carry them, and the intervals resample identities.
    assert [r["identities"] for r in sorted(records, key=lambda r: r["index"])] == [
        list(p.identities) for p in pairs
    ]
    intervals = summary["intervals"]
    assert intervals["bootstrap"]["unit"] == "identity"
    assert intervals["bootstrap"]["n_units"] == len({p.identities[0] for p in pairs})
    genuine = intervals["classes"]["genuine"]
    assert genuine["absolute_normalised_mean"] == pytest.approx(
        summary["classes"]["genuine"]["absolute_normalised_mean"]
    )
    assert genuine["centroid_ci"][0] <= genuine["centroid"] <= genuine["centroid_ci"][1]
    assert "resampled by identity" in (tmp_path / "report.html").read_text()


@pytest.mark.model
def test_an_interrupted_run_resumes_without_redoing_pairs(explainer, pairs, tmp_path):
    stopper = Explainer(explainer.model, 8)
    with pytest.raises(KeyboardInterrupt), interrupted_after():
        run_dataset(pairs, tmp_path, stopper, progress=False)
    first = (tmp_path / "results.jsonl").read_text().splitlines()
    assert len(first) == STOP_AFTER
    assert not (tmp_path / "summary.json").exists()
    # A crash mid-write leaves a partial line; the restart drops and redoes it.
    with (tmp_path / "results.jsonl").open("a") as handle:
        handle.write('{"index": 3, "score_ref": 0.')
    run_dataset(pairs, tmp_path, explainer, progress=False)
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    assert lines[: len(first)] == first  # finished pairs were neither redone nor lost
    assert sorted(json.loads(line)["index"] for line in lines) == list(range(len(pairs)))


@pytest.mark.model
def test_a_restart_with_other_settings_is_refused(explainer, pairs, tmp_path):
    run_dataset(pairs[:2], tmp_path, explainer, progress=False, report=False)
    other = Explainer(explainer.model, 4)
    with pytest.raises(OutputError, match="schedule"):
        run_dataset(pairs[:2], tmp_path, other, progress=False, report=False)


@pytest.mark.model
def test_an_unwritable_output_folder_is_reported(explainer, pairs, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="file"):
        run_dataset(pairs[:1], blocker / "out", explainer, progress=False)


@pytest.mark.unit
def test_profiles_by_class_outcome_and_group():
    records = [
        {
            "a": {"directed": [0.3, 0.1]},
            "b": {"directed": [0.2, 0.0]},
            "same": True,
            "decision": True,
            "groups": {"gender": "female"},
        },
        {
            "a": {"directed": [-0.1, 0.2]},
            "b": {"directed": [0.0, -0.4]},
            "same": False,
            "decision": True,
            "groups": {"gender": "male"},
        },
    ]
    summary = summarise(records)
    assert summary["pairs"] == 2 and summary["accuracy"] == 0.5
    assert summary["classes"]["genuine"]["directed_mean"] == pytest.approx([0.25, 0.05])
    assert summary["outcomes"]["false_match"]["absolute_mean"] == pytest.approx([0.05, 0.3])
    assert summary["groups"]["gender"]["male"]["n_images"] == 2
    assert summary["all"]["n_images"] == 4
    assert profile(np.array([[0.0, -2.0]]))["directed_normalised_mean"] == [0.0, -1.0]
    assert centroid(np.array([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]]))[0] == pytest.approx(1.0)


@pytest.mark.model
def test_groups_from_an_attribute_table_give_per_group_profiles(explainer, data_dir, tmp_path):
    from freqxfr.explanations.pairs import attach_groups

    frll = read_pairs(data_dir / "frll" / "pairs.csv", root=data_dir)
    labelled = attach_groups(frll, data_dir / "frll" / "index.csv", root=data_dir)
    # 001 and 002 are both white women; 001 and 005 differ in gender and ethnicity.
    by_paths = {(p.path_a.name, p.path_b.name): p.groups for p in labelled}
    assert by_paths[("001_03.jpg", "001_08.jpg")]["gender"] == "female"
    picked = [p for p in labelled if p.same][:2] + [p for p in labelled if not p.same][:2]
    summary = run_dataset(picked, tmp_path, explainer, progress=False, report=False, parquet=True)
    assert "gender" in summary["groups"] and "ethnicity" in summary["groups"]
    assert sum(g["n_images"] for g in summary["groups"]["gender"].values()) == 2 * len(picked)
    import pyarrow.parquet as pq

    table = pq.read_table(tmp_path / "results.parquet")
    assert table.num_rows == len(picked) * 2 * 8
    assert set(table.column("image").to_pylist()) == {"a", "b"}


@pytest.mark.model
def test_a_group_table_without_the_image_is_an_error(data_dir, tmp_path):
    from freqxfr.common.errors import InputError
    from freqxfr.explanations.pairs import attach_groups

    frll = read_pairs(data_dir / "frll" / "pairs.csv", root=data_dir)[:1]
    table = tmp_path / "index.csv"
    table.write_text("path,gender\nfrll/neutral/999_03.jpg,female\n")
    with pytest.raises(InputError, match="no row for image"):
        attach_groups(frll, table, root=data_dir)


# ---- exact cases on the toy model (tests/_toy_model.py) -------------------------------------------

D = np.sqrt(25**2 + 50**2 + 75**2 + 10**2) - 10  # see test_explain: band 0 of the toy pair


@pytest.fixture(scope="module")
def toy_pairs(tmp_path_factory):
    """Five pairs of toy images (A flat, B = A + red wave, C another flat colour) and a card."""
    import _toy_model as toy

    root = tmp_path_factory.mktemp("toy_dataset")
    toy.save(toy.flat((50, 100, 150)), root / "img" / "a.png")
    toy.save(toy.waved((50, 100, 150), 40), root / "img" / "b.png")
    toy.save(toy.flat((94, 100, 150)), root / "img" / "c.png")  # -22 from A, no match
    listing = root / "pairs.csv"
    listing.write_text(
        "path1,path2,same\nimg/a.png,img/b.png,1\nimg/b.png,img/c.png,0\n"
        "img/a.png,img/a.png,1\nimg/c.png,img/a.png,0\nimg/b.png,img/a.png,1\n"
    )
    return root, listing, toy.write_model(root / "model")


def _toy_explainer(root, **options):
    import _toy_model as toy

    card = {k: options.pop(k) for k in ("threshold", "name") if k in options}
    folder = root / ("model-" + "-".join(f"{k}{v}" for k, v in card.items()) if card else "model")
    return Explainer(toy.load(folder, **card), options.pop("bands", 4), threads=1, **options)


@pytest.mark.unit
@pytest.mark.parametrize(
    "setting, change",
    [
        ("mode", {"mode": "keep"}),
        ("domain", {"domain": "normalised"}),
        ("clip", {"clip": True}),
        ("threshold", {"threshold": -5.0}),
        ("model", {"name": "other"}),
        ("schedule", {"bands": 8}),
    ],
)
def test_toy_restart_with_another_setting_is_refused(toy_pairs, tmp_path, setting, change):
    """README: a restart with other settings is refused, so one results file never mixes two
    configurations. Guards against a settings comparison that overlooks any one of them."""
    root, listing, _ = toy_pairs
    listed = read_pairs(listing, root=root)
    run_dataset(listed[:2], tmp_path, _toy_explainer(root), progress=False, report=False)
    with pytest.raises(OutputError, match=setting):
        run_dataset(
            listed[:2], tmp_path, _toy_explainer(root, **change), progress=False, report=False
        )


@pytest.mark.unit
def test_toy_restart_with_an_unreadable_run_json_is_refused(toy_pairs, tmp_path):
    """A run.json that can't be read (a folder in its place) or parsed is an OutputError, not a
    traceback, and nothing is overwritten."""
    root, listing, _ = toy_pairs
    listed = read_pairs(listing, root=root)
    (tmp_path / "a" / "run.json").mkdir(parents=True)
    with pytest.raises(OutputError, match="unreadable"):
        run_dataset(listed[:1], tmp_path / "a", _toy_explainer(root), progress=False, report=False)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "run.json").write_text("{not json")
    with pytest.raises(OutputError, match="unreadable"):
        run_dataset(listed[:1], tmp_path / "b", _toy_explainer(root), progress=False, report=False)
    assert (tmp_path / "b" / "run.json").read_text() == "{not json"


@pytest.mark.unit
def test_toy_restart_with_another_backend_or_list_position_continues(toy_pairs, tmp_path):
    """The masking backend may differ between machines without changing the numbers' meaning, so
    a restart with ``numpy`` instead of ``cpp`` continues the run; a different pair list does not."""
    root, listing, _ = toy_pairs
    listed = read_pairs(listing, root=root)
    run_dataset(listed[:2], tmp_path, _toy_explainer(root), progress=False, report=False)
    before = (tmp_path / "results.jsonl").read_bytes()
    run_dataset(
        listed[:2], tmp_path, _toy_explainer(root, backend="numpy"), progress=False, report=False
    )
    assert (tmp_path / "results.jsonl").read_bytes() == before
    with pytest.raises(OutputError, match="pairs"):
        run_dataset(listed[1:3], tmp_path, _toy_explainer(root), progress=False, report=False)


@pytest.mark.unit
def test_toy_resume_redoes_only_the_missing_pairs_with_the_same_numbers(toy_pairs, tmp_path):
    """A resumed run must give, for every pair, the record a run without interruption gives: the
    right pair at the right index, explained the right way round (not just the right count)."""
    root, listing, _ = toy_pairs
    listed = read_pairs(listing, root=root)
    explainer = _toy_explainer(root)
    whole = tmp_path / "whole"
    run_dataset(listed, whole, explainer, progress=False, report=False)
    stopper = Explainer(explainer.model, 4, threads=1)
    with pytest.raises(KeyboardInterrupt), interrupted_after():
        run_dataset(listed, tmp_path / "resumed", stopper, progress=False, report=False)
    summary = run_dataset(listed, tmp_path / "resumed", explainer, progress=False, report=False)
    by_index = {r["index"]: r for r in read_results(tmp_path / "resumed" / "results.jsonl")}
    for record in read_results(whole / "results.jsonl"):
        again = by_index[record["index"]]
        assert again["a"]["source"] == record["a"]["source"]
        np.testing.assert_allclose(again["a"]["directed"], record["a"]["directed"], atol=1e-5)
    np.testing.assert_allclose(by_index[4]["a"]["directed"], [D, -10, 0, 0], atol=1e-4)
    assert by_index[4]["a"]["source"].endswith("b.png")
    assert summary["pairs"] == 5 and summary["accuracy"] == 1.0


@pytest.mark.unit
def test_toy_cli_dataset_limit_and_parquet(toy_pairs, tmp_path, capsys):
    """README: ``freqxfr dataset ... --limit N --parquet``. --limit 3 of 5 pairs takes pairs 0, 2
    and 4 (spread evenly, first and last included); the Parquet copy holds one row per pair ×
    image × band, with the numbers of results.jsonl."""
    import pyarrow.parquet as pq

    from freqxfr.cli import main

    root, listing, card = toy_pairs
    out = tmp_path / "run"
    code = main(
        [
            "dataset",
            str(listing),
            "--root",
            str(root),
            "--out",
            str(out),
            "--model",
            str(card),
            "--bands",
            "4",
            "--limit",
            "3",
            "--parquet",
            "--no-progress",
        ]
    )
    assert code == 0, capsys.readouterr().err
    records = list(read_results(out / "results.jsonl"))
    assert [(Path(r["a"]["source"]).name, Path(r["b"]["source"]).name) for r in records] == [
        ("a.png", "b.png"),
        ("a.png", "a.png"),
        ("b.png", "a.png"),
    ]
    table = pq.read_table(out / "results.parquet").to_pylist()
    assert len(table) == 3 * 2 * 4
    row = next(r for r in table if (r["pair"], r["image"], r["band"]) == (2, "a", 1))
    assert row["directed"] == pytest.approx(-10, abs=1e-4) and row["same"] is True
    row = next(r for r in table if (r["pair"], r["image"], r["band"]) == (0, "b", 1))
    assert row["directed"] == pytest.approx(-10, abs=1e-4)
    assert row["score_ref"] == pytest.approx(-10, abs=1e-4)


@pytest.mark.integration
@pytest.mark.parametrize(
    "setting, flag",
    [("mode", ["--mode", "keep"]), ("domain", ["--domain", "normalised"]), ("clip", ["--clip"])],
)
def test_toy_cli_restart_with_another_setting_exits_2(toy_pairs, tmp_path, capsys, setting, flag):
    """README: bad input exits with status 2 and one line; a refused restart names the setting."""
    from freqxfr.cli import main

    root, listing, card = toy_pairs
    args = [
        "dataset",
        str(listing),
        "--root",
        str(root),
        "--out",
        str(tmp_path / "run"),
        "--model",
        str(card),
        "--bands",
        "4",
        "--limit",
        "2",
        "--no-progress",
    ]
    assert main(args) == 0
    capsys.readouterr()
    assert main([*args, *flag]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and setting in err[0]


@pytest.mark.unit
def test_profiles_of_three_images_by_hand():
    """Every number of a profile on 3 images × 2 bands (more images than bands, so a mean or a
    spread over the wrong axis has the wrong length and values), and an accuracy that is not 1/2."""
    prof = profile(np.array([[1.0, -2.0], [3.0, 0.0], [-1.0, 1.0]]))
    assert prof["n_images"] == 3
    assert prof["absolute_mean"] == pytest.approx([5 / 3, 1.0])
    assert prof["absolute_std"] == pytest.approx([np.sqrt(8 / 9), np.sqrt(2 / 3)])
    assert prof["absolute_normalised_mean"] == pytest.approx(
        [2.5 / 3, 2 / 3]
    )  # rows .5 1, 1 0, 1 1
    assert prof["directed_mean"] == pytest.approx([1.0, -1 / 3])
    assert prof["directed_std"] == pytest.approx([np.sqrt(8 / 3), np.sqrt(14 / 9)])
    assert prof["directed_normalised_mean"] == pytest.approx([1 / 6, 0.0])  # .5 -1, 1 0, -1 1
    # An image without influence stays all zeros when normalised (no 0/0).
    flat = profile(np.array([[0.0, 0.0], [0.5, -0.25]]))
    assert flat["absolute_normalised_mean"] == [0.5, 0.25]
    assert flat["directed_normalised_mean"] == [0.5, -0.25]
    records = [
        {"a": {"directed": [0.1]}, "b": {"directed": [0.1]}, "same": same, "decision": decision}
        for same, decision in ((True, True), (False, False), (False, True))
    ]
    summary = summarise(records)
    assert summary["accuracy"] == pytest.approx(2 / 3)
    assert set(summary["outcomes"]) == {"true_match", "true_non_match", "false_match"}
    assert summarise(records[:0])["accuracy"] is None
