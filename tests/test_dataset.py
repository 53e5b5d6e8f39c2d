"""Dataset runs: streamed results, resumption after an interruption, aggregates."""

from __future__ import annotations

import json

import numpy as np
import pytest

from freqxfr.dataset import read_results, run_dataset
from freqxfr.errors import OutputError
from freqxfr.explain import Explainer
from freqxfr.pairs import read_pairs
from freqxfr.profiles import centroid, profile, summarise
from freqxfr.verifier import load_model


@pytest.fixture(scope="module")
def explainer():
    return Explainer(load_model("sface"), 8)


@pytest.fixture(scope="module")
def pairs(data_dir):
    # Genuine and impostor pairs alike, spread over the list.
    return read_pairs(data_dir / "lfw_aligned112" / "pairs_generated.csv", root=data_dir)[::250]


class InterruptingExplainer(Explainer):
    """Failure injection: the real explainer, stopped by a KeyboardInterrupt after `stop_after`
    pairs, as when a user presses Ctrl-C in the middle of a run."""

    stop_after = 3

    def explain_pairs(self, pairs, **kwargs):
        for n, item in enumerate(super().explain_pairs(pairs, **kwargs)):
            if n == self.stop_after:
                raise KeyboardInterrupt
            yield item


def test_a_run_writes_results_summary_and_report(explainer, pairs, tmp_path):
    summary = run_dataset(pairs, tmp_path, explainer, progress=False)
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


def test_an_interrupted_run_resumes_without_redoing_pairs(explainer, pairs, tmp_path):
    stopper = InterruptingExplainer(explainer.model, 8)
    with pytest.raises(KeyboardInterrupt):
        run_dataset(pairs, tmp_path, stopper, progress=False)
    first = (tmp_path / "results.jsonl").read_text().splitlines()
    assert len(first) == InterruptingExplainer.stop_after
    assert not (tmp_path / "summary.json").exists()
    # A crash mid-write leaves a partial line; the restart drops and redoes it.
    with (tmp_path / "results.jsonl").open("a") as handle:
        handle.write('{"index": 3, "score_ref": 0.')
    run_dataset(pairs, tmp_path, explainer, progress=False)
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    assert lines[: len(first)] == first  # finished pairs were neither redone nor lost
    assert sorted(json.loads(line)["index"] for line in lines) == list(range(len(pairs)))


def test_a_restart_with_other_settings_is_refused(explainer, pairs, tmp_path):
    run_dataset(pairs[:2], tmp_path, explainer, progress=False, report=False)
    other = Explainer(explainer.model, 4)
    with pytest.raises(OutputError, match="schedule"):
        run_dataset(pairs[:2], tmp_path, other, progress=False, report=False)


def test_an_unwritable_output_folder_is_reported(explainer, pairs, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="file"):
        run_dataset(pairs[:1], blocker / "out", explainer, progress=False)


def test_profiles_by_class_outcome_and_group():
    records = [
        {"a": {"directed": [0.3, 0.1]}, "b": {"directed": [0.2, 0.0]}, "same": True,
         "decision": True, "groups": {"gender": "female"}},
        {"a": {"directed": [-0.1, 0.2]}, "b": {"directed": [0.0, -0.4]}, "same": False,
         "decision": True, "groups": {"gender": "male"}},
    ]
    summary = summarise(records)
    assert summary["pairs"] == 2 and summary["accuracy"] == 0.5
    assert summary["classes"]["genuine"]["directed_mean"] == pytest.approx([0.25, 0.05])
    assert summary["outcomes"]["false_match"]["absolute_mean"] == pytest.approx([0.05, 0.3])
    assert summary["groups"]["gender"]["male"]["n_images"] == 2
    assert summary["all"]["n_images"] == 4
    assert profile(np.array([[0.0, -2.0]]))["directed_normalised_mean"] == [0.0, -1.0]
    assert centroid(np.array([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]]))[0] == pytest.approx(1.0)


def test_groups_from_an_attribute_table_give_per_group_profiles(explainer, data_dir, tmp_path):
    from freqxfr.pairs import attach_groups

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


def test_a_group_table_without_the_image_is_an_error(data_dir, tmp_path):
    from freqxfr.errors import InputError
    from freqxfr.pairs import attach_groups

    frll = read_pairs(data_dir / "frll" / "pairs.csv", root=data_dir)[:1]
    table = tmp_path / "index.csv"
    table.write_text("path,gender\nfrll/neutral/999_03.jpg,female\n")
    with pytest.raises(InputError, match="no row for image"):
        attach_groups(frll, table, root=data_dir)
