"""The freqxfr command line, run as users run it: a subprocess, real files, real models."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image


def freqxfr(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "freqxfr", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, timeout=600)


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    """README: an error a user can cause prints one line and exits with status 2."""
    assert result.returncode == 2, (result.returncode, result.stderr)
    err = result.stderr.strip()
    assert "Traceback" not in err, err
    assert len(err.splitlines()) == 1, err
    for fragment in fragments:
        assert fragment in err, err


def test_demo_writes_reports_for_a_genuine_and_an_impostor_pair(tmp_path):
    result = freqxfr("demo", "--out", tmp_path / "demo")
    assert result.returncode == 0, result.stderr
    assert "genuine pair: MATCH" in result.stdout and "impostor pair: NO MATCH" in result.stdout
    for name in ("genuine", "impostor"):
        record = json.loads((tmp_path / "demo" / name / "explanation.json").read_text())
        assert record["model"]["name"] == "dlib_resnet"
        assert len(record["a"]["absolute"]) == 16 and "faithfulness" in record
        assert (tmp_path / "demo" / name / "report.html").stat().st_size > 10_000


def test_explain_writes_explanation_json(data_dir, tmp_path):
    a = data_dir / "lfw_aligned112" / "images" / "Abdullah_Gul" / "Abdullah_Gul_0001.jpg"
    b = data_dir / "lfw_aligned112" / "images" / "Abdullah_Gul" / "Abdullah_Gul_0006.jpg"
    result = freqxfr("explain", a, b, "--model", "sface", "--bands", "8", "--out", tmp_path, "--json")
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    on_disk = json.loads((tmp_path / "explanation.json").read_text())
    assert printed["score_ref"] == on_disk["score_ref"]
    assert on_disk["threshold"] == 0.363 and on_disk["decision"] == (on_disk["score_ref"] >= 0.363)
    assert on_disk["a"]["source"].endswith("Abdullah_Gul_0001.jpg")
    assert on_disk["b"]["source"].endswith("Abdullah_Gul_0006.jpg")
    assert [len(on_disk["bands"]), len(on_disk["a"]["directed_normalised"])] == [8, 8]
    assert on_disk["bands"][7]["radius"] == [0.875, 1.0]
    assert max(on_disk["b"]["absolute_normalised"]) == pytest.approx(1.0)


def test_errors_are_one_line_without_traceback(data_dir, tmp_path):
    face = data_dir / "frll" / "neutral" / "001_03.jpg"
    missing = tmp_path / "missing.jpg"
    assert_one_line_error(freqxfr("explain", missing, face, "--out", tmp_path / "o1"), "missing.jpg")

    text = tmp_path / "notes.jpg"
    text.write_text("this is not an image")
    assert_one_line_error(freqxfr("explain", text, face, "--out", tmp_path / "o2"), "notes.jpg")

    grey = tmp_path / "grey.png"
    Image.fromarray(np.full((400, 400, 3), 128, np.uint8)).save(grey)
    assert_one_line_error(freqxfr("explain", grey, face, "--out", tmp_path / "o3"), "grey.png")

    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    assert_one_line_error(freqxfr("explain", face, face, "--out", blocker / "out"), "blocker")

    pairs = tmp_path / "pairs.csv"
    pairs.write_text("path1,path2,same\nfrll/neutral/001_03.jpg,frll/smiling/001_08.jpg,1\n"
                     "only-one-column\n")
    assert_one_line_error(freqxfr("dataset", pairs, "--root", data_dir, "--out", tmp_path / "o4"),
                          "pairs.csv", "line 3")

    verbose = freqxfr("--verbose", "explain", missing, face, "--out", tmp_path / "o5")
    # --verbose lets the exception through: Python's own exit status 1, with the traceback.
    assert verbose.returncode == 1 and "Traceback" in verbose.stderr


def test_dataset_command_runs_and_resumes(data_dir, tmp_path):
    pairs = tmp_path / "pairs.csv"
    lines = (data_dir / "lfw_aligned112" / "pairs_generated.csv").read_text().splitlines()
    pairs.write_text("\n".join([lines[0], *lines[1::300]]) + "\n")
    args = ("dataset", pairs, "--root", data_dir, "--out", tmp_path / "run", "--model", "sface",
            "--bands", "8", "--no-progress")
    first = freqxfr(*args)
    assert first.returncode == 0, first.stderr
    assert "5 pairs explained, 0 failed" in first.stdout
    results = tmp_path / "run" / "results.jsonl"
    done = results.read_bytes()
    # Drop the last two records, as if the first run had stopped after three pairs.
    lines = done.decode().splitlines(keepends=True)
    results.write_text("".join(lines[:3]))
    again = freqxfr(*args)
    assert again.returncode == 0, again.stderr
    redone = results.read_text().splitlines(keepends=True)
    assert redone[:3] == lines[:3]  # finished pairs are neither redone nor rewritten
    # the two missing pairs come back with the numbers of the first run
    first_run = {json.loads(line)["index"]: json.loads(line) for line in lines}
    for line in redone[3:]:
        record = json.loads(line)
        np.testing.assert_allclose(record["a"]["scores"], first_run[record["index"]]["a"]["scores"],
                                   atol=1e-5)
    assert sorted(json.loads(line)["index"] for line in redone) == [0, 1, 2, 3, 4]
    untouched = results.read_bytes()
    assert freqxfr(*args).returncode == 0  # nothing left to do: the file stays as it is
    assert results.read_bytes() == untouched


# ---- masking options and faithfulness through the command line, on the toy model ----------------

D = np.sqrt(25**2 + 50**2 + 75**2 + 10**2) - 10  # see test_explain: band 0 of the toy pair


@pytest.fixture(scope="module")
def toy_files(tmp_path_factory):
    import _toy_model as toy

    root = tmp_path_factory.mktemp("toy_cli")
    a = toy.save(toy.flat((50, 100, 150)), root / "a.png")
    b = toy.save(toy.waved((50, 100, 150), 40), root / "b.png")
    return root, a, b, toy.write_model(root / "model")


@pytest.mark.parametrize("flags, a_directed, b_directed", [
    (["--mode", "keep"], [0, D, D, D], [-10, D, np.sqrt(8750) - 10, np.sqrt(8750) - 10]),
    (["--domain", "normalised"], [np.sqrt(5700) - 10, 0, 0, 0], [np.sqrt(5700) - 10, -10, 0, 0]),
    (["--clip"], [D, 0, 0, 0], [np.sqrt(8550) - 10, -10, 0, 0]),
])
def test_explain_masking_options_reach_the_explanation(toy_files, tmp_path, flags, a_directed,
                                                       b_directed):
    """README: ``--mode keep``, ``--domain normalised`` and ``--clip`` change what is deleted; the
    numbers are those worked out by hand in test_explain's toy tests."""
    _, a, b, card = toy_files
    result = freqxfr("explain", a, b, "--model", card, "--bands", "4", "--out", tmp_path, "--json",
                     *flags)
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "explanation.json").read_text())
    np.testing.assert_allclose(record["a"]["directed"], a_directed, atol=1e-4)
    np.testing.assert_allclose(record["b"]["directed"], b_directed, atol=1e-4)
    assert record["mode"] == ("keep" if "keep" in flags else "delete")
    assert record["domain"] == ("normalised" if "normalised" in flags else "pixel")
    assert record["clip"] is ("--clip" in flags)


def test_faithfulness_command_with_a_pair_list(toy_files, tmp_path):
    """README: ``freqxfr faithfulness --pairs PAIRS --root DIR --limit N``: N pairs, spread over
    the list, both images of each explained."""
    root, _, _, card = toy_files
    pairs = root / "pairs.csv"
    pairs.write_text("path1,path2,same\na.png,b.png,1\nb.png,a.png,1\na.png,a.png,1\n")
    result = freqxfr("faithfulness", "--pairs", pairs, "--root", root, "--limit", "2", "--seeds",
                     "2", "--model", card, "--bands", "4", "--out", tmp_path / "f")
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "f" / "faithfulness.json").read_text())
    assert summary["pairs"] == 2 and summary["n_images"] == 4
    assert sorted((image["pair"], image["side"]) for image in summary["per_image"]) == [
        (0, "a"), (0, "b"), (2, "a"), (2, "b")]
    missing = freqxfr("faithfulness", "--pairs", root / "nowhere.csv", "--model", card,
                      "--out", tmp_path / "g")
    assert_one_line_error(missing, "nowhere.csv")
