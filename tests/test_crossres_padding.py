"""``freqxfr crossres --padding``: real LFW crops re-cut into dlib chips, whose rim lies beyond the
crop. The option must reach the alignment, be recorded, and be named in the report."""

from __future__ import annotations

import json

import numpy as np
import pytest

from freqxfr.cli import main
from freqxfr.common.errors import InputError
from freqxfr.explanations.explainer import Explainer
from freqxfr.explanations.pairs import read_pairs, spread
from freqxfr.imaging.align import align_crop
from freqxfr.runs.crossres import run_crossres

pytestmark = [pytest.mark.model, pytest.mark.dlib]


def _args(data_dir, out, *extra):
    return [
        "crossres",
        str(data_dir / "lfw_aligned112" / "pairs_generated.csv"),
        "--root",
        str(data_dir),
        "--out",
        str(out),
        "--factors",
        "1,4",
        "--limit",
        "4",
        "--bands",
        "4",
        "--model",
        "dlib_resnet",
        "--boot",
        "50",
        "--no-progress",
        *extra,
    ]


@pytest.fixture(scope="module")
def runs(data_dir, tmp_path_factory):
    """Two CLI runs on the same 4 LFW pairs: --padding black, and the default."""
    out = {}
    for name, extra in (("black", ["--padding", "black"]), ("default", [])):
        folder = tmp_path_factory.mktemp(f"crossres_{name}")
        assert main(_args(data_dir, folder, *extra)) == 0
        records = [
            json.loads(line) for line in (folder / "explanations.jsonl").read_text().splitlines()
        ]
        out[name] = (folder, json.loads((folder / "summary.json").read_text()), records)
    return out


def test_cli_padding_reaches_the_alignment(runs, data_dir) -> None:
    """Each run's chips are those of its padding: the recorded padded share of every probe is
    what ``align_crop`` reports for it, and the scores differ between the two paddings (same
    pairs, same model), so the option reached the crops the model saw."""
    _, black, black_records = runs["black"]
    _, default, default_records = runs["default"]
    assert black["alignment"]["padding"] == "black"
    assert default["alignment"]["padding"] == "edge"
    assert black["settings"]["--padding"] == "black"
    for record in black_records:
        crop = align_crop(data_dir / record["path_b"], "dlib_chip", padding="black")
        assert record["padded_b"] == pytest.approx(crop.padded_fraction, abs=1e-12)
        assert record["padded_b"] > 0.0
    key = lambda r: (r["factor"], r["index"])  # noqa: E731
    scores_black = {key(r): r["score"] for r in black_records}
    scores_edge = {key(r): r["score"] for r in default_records}
    assert scores_black.keys() == scores_edge.keys()
    differences = [abs(scores_black[k] - scores_edge[k]) for k in scores_black]
    assert max(differences) > 1e-3


def test_summary_and_report_say_how_much_was_padded(runs) -> None:
    """The summary counts the images whose chips reached beyond the crop and the mean share;
    the report's overview names the padding and, for black, the black band."""
    for name, (folder, summary, records) in runs.items():
        alignment = summary["alignment"]
        shares = {r["path_a"]: r["padded_a"] for r in records}
        shares.update({r["path_b"]: r["padded_b"] for r in records})
        assert alignment["images"] == len(shares) == 8
        assert alignment["images_padded"] == sum(v > 0 for v in shares.values())
        assert alignment["padded_fraction_mean"] == pytest.approx(np.mean(list(shares.values())))
        assert 0.02 < alignment["padded_fraction_mean"] < 0.3
        report = (folder / "report.html").read_text()
        assert "alignment padding" in report
        assert f"{100 * alignment['padded_fraction_mean']:.1f}%" in report
        assert ("black band" in report) == (name == "black")
        run = json.loads((folder / "run.json").read_text())
        assert run["settings"]["--padding"] == alignment["padding"]


def test_restart_with_another_padding_is_refused(runs, data_dir, capsys) -> None:
    folder, _, _ = runs["black"]
    capsys.readouterr()
    assert main(_args(data_dir, folder, "--padding", "edge")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--padding: was black, now edge" in err[0], err


def test_bad_padding_exits_2_naming_the_option(data_dir, tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(_args(data_dir, tmp_path / "out", "--padding", "grey"))
    assert exit_info.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "argument --padding: invalid choice: 'grey'" in last and "edge" in last
    assert not (tmp_path / "out").exists()


def test_library_refuses_a_bad_padding_before_writing(data_dir, tmp_path) -> None:
    pairs = spread(
        read_pairs(data_dir / "lfw_aligned112" / "pairs_generated.csv", root=data_dir), 2
    )
    with pytest.raises(InputError, match=r"^padding: unknown padding 'zero'"):
        run_crossres(pairs, tmp_path / "out", Explainer(), padding="zero")
    assert not (tmp_path / "out").exists()
