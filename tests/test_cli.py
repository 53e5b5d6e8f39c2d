"""The freqxfr command line, run as users run it: a subprocess, real files, real models."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.integration


def freqxfr(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "freqxfr", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=600,
    )


def freqxfr_all(*commands: tuple) -> list[subprocess.CompletedProcess]:
    """Independent commands (each its own files), two at a time: most of a command's time is its
    imports and model load on one core. The results in the order of ``commands``."""
    with ThreadPoolExecutor(2) as pool:
        return list(pool.map(lambda args: freqxfr(*args), commands))


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
    assert re.search(r"genuine pair \(.*\): MATCH: score -", result.stdout), result.stdout
    assert re.search(r"impostor pair \(.*\): NO MATCH: score -", result.stdout), result.stdout
    for name, same in (("genuine", True), ("impostor", False)):
        record = json.loads((tmp_path / "demo" / name / "explanation.json").read_text())
        assert record["model"]["name"] == "dlib_resnet"
        assert record["same"] is same  # the demo knows which of its pairs is genuine
        assert record["distance_ref"] == -record["score_ref"]
        assert len(record["a"]["absolute"]) == 16 and "faithfulness" in record
        assert (tmp_path / "demo" / name / "report.html").stat().st_size > 10_000


def test_explain_writes_explanation_json(data_dir, tmp_path):
    a = data_dir / "lfw_aligned112" / "images" / "Abdullah_Gul" / "Abdullah_Gul_0001.jpg"
    b = data_dir / "lfw_aligned112" / "images" / "Abdullah_Gul" / "Abdullah_Gul_0006.jpg"
    result = freqxfr(
        "explain", a, b, "--model", "sface", "--bands", "8", "--out", tmp_path, "--json"
    )
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
    text = tmp_path / "notes.jpg"
    text.write_text("this is not an image")
    grey = tmp_path / "grey.png"
    Image.fromarray(np.full((400, 400, 3), 128, np.uint8)).save(grey)
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    pairs = tmp_path / "pairs.csv"
    pairs.write_text(
        "path1,path2,same\nfrll/neutral/001_03.jpg,frll/smiling/001_08.jpg,1\nonly-one-column\n"
    )
    missing_run, text_run, grey_run, blocked_run, pairs_run, verbose = freqxfr_all(
        ("explain", missing, face, "--out", tmp_path / "o1"),
        ("explain", text, face, "--out", tmp_path / "o2"),
        ("explain", grey, face, "--out", tmp_path / "o3"),
        ("explain", face, face, "--out", blocker / "out"),
        ("dataset", pairs, "--root", data_dir, "--out", tmp_path / "o4"),
        ("--verbose", "explain", missing, face, "--out", tmp_path / "o5"),
    )
    assert_one_line_error(missing_run, "missing.jpg")
    assert_one_line_error(text_run, "notes.jpg")
    assert_one_line_error(grey_run, "grey.png")
    assert_one_line_error(blocked_run, "blocker")
    assert_one_line_error(pairs_run, "pairs.csv", "line 3")
    # --verbose lets the exception through: Python's own exit status 1, with the traceback.
    assert verbose.returncode == 1 and "Traceback" in verbose.stderr


def test_dataset_command_runs_and_resumes(data_dir, tmp_path):
    pairs = tmp_path / "pairs.csv"
    lines = (data_dir / "lfw_aligned112" / "pairs_generated.csv").read_text().splitlines()
    pairs.write_text("\n".join([lines[0], *lines[1::300]]) + "\n")
    args = (
        "dataset",
        pairs,
        "--root",
        data_dir,
        "--out",
        tmp_path / "run",
        "--model",
        "dlib_resnet",  # the model is not what this is about: SFace cost six times as much
        "--bands",
        "8",
        "--no-progress",
    )
    first = freqxfr(*args, "--no-report")  # the report is not what this is about
    assert first.returncode == 0, first.stderr
    assert "5 pairs explained, 0 failed" in first.stdout
    results = tmp_path / "run" / "results.jsonl"
    done = results.read_bytes()
    # Drop the last two records, as if the first run had stopped after three pairs.
    lines = done.decode().splitlines(keepends=True)
    results.write_text("".join(lines[:3]))
    again = freqxfr(*args, "--no-report")
    assert again.returncode == 0, again.stderr
    redone = results.read_text().splitlines(keepends=True)
    assert redone[:3] == lines[:3]  # finished pairs are neither redone nor rewritten
    # the two missing pairs come back with the numbers of the first run
    first_run = {json.loads(line)["index"]: json.loads(line) for line in lines}
    for line in redone[3:]:
        record = json.loads(line)
        np.testing.assert_allclose(
            record["a"]["scores"], first_run[record["index"]]["a"]["scores"], atol=1e-5
        )
    assert sorted(json.loads(line)["index"] for line in redone) == [0, 1, 2, 3, 4]
    untouched = results.read_bytes()
    assert freqxfr(*args).returncode == 0  # nothing left to do: the file stays as it is
    assert results.read_bytes() == untouched
    assert (tmp_path / "run" / "report.html").is_file()  # the last run drew the report


# ---- masking options and faithfulness through the command line, on the toy model ----------------

D = np.sqrt(25**2 + 50**2 + 75**2 + 10**2) - 10  # see test_explain: band 0 of the toy pair


@pytest.fixture(scope="module")
def toy_files(tmp_path_factory):
    import _toy_model as toy

    root = tmp_path_factory.mktemp("toy_cli")
    a = toy.save(toy.flat((50, 100, 150)), root / "a.png")
    b = toy.save(toy.waved((50, 100, 150), 40), root / "b.png")
    return root, a, b, toy.write_model(root / "model")


@pytest.mark.parametrize(
    "flags, a_directed, b_directed",
    [
        (["--mode", "keep"], [0, D, D, D], [-10, D, np.sqrt(8750) - 10, np.sqrt(8750) - 10]),
        (
            ["--domain", "normalised"],
            [np.sqrt(5700) - 10, 0, 0, 0],
            [np.sqrt(5700) - 10, -10, 0, 0],
        ),
        (["--clip"], [D, 0, 0, 0], [np.sqrt(8550) - 10, -10, 0, 0]),
    ],
)
def test_explain_masking_options_reach_the_explanation(
    toy_files, tmp_path, flags, a_directed, b_directed
):
    """README: ``--mode keep``, ``--domain normalised`` and ``--clip`` change what is deleted; the
    numbers are those worked out by hand in test_explain's toy tests."""
    _, a, b, card = toy_files
    result = freqxfr(
        "explain", a, b, "--model", card, "--bands", "4", "--out", tmp_path, "--json", *flags
    )
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
    result = freqxfr(
        "faithfulness",
        "--pairs",
        pairs,
        "--root",
        root,
        "--limit",
        "2",
        "--seeds",
        "2",
        "--model",
        card,
        "--bands",
        "4",
        "--out",
        tmp_path / "f",
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "f" / "faithfulness.json").read_text())
    assert summary["pairs"] == 2 and summary["n_images"] == 4
    assert sorted((image["pair"], image["side"]) for image in summary["per_image"]) == [
        (0, "a"),
        (0, "b"),
        (2, "a"),
        (2, "b"),
    ]
    missing = freqxfr(
        "faithfulness", "--pairs", root / "nowhere.csv", "--model", card, "--out", tmp_path / "g"
    )
    assert_one_line_error(missing, "nowhere.csv")


# ---- one CLI: flags in any place, one sign convention, quiet and scripted use --------------------


def test_every_option_has_help_and_every_command_a_description():
    """Guards against an option or command a user cannot learn about from --help."""
    import argparse

    from freqxfr.cli import build_parser

    def walk(parser, path):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    assert sub.description, f"{path} {name}: no description"
                    yield from walk(sub, f"{path} {name}")
            elif action.help is None and action.dest != "help":
                yield f"{path} {'/'.join(action.option_strings) or action.dest}"

    missing = list(walk(build_parser(), "freqxfr"))
    assert missing == []


def test_demo_help_says_it_explains_two_pairs():
    result = freqxfr("demo", "--help")
    assert result.returncode == 0 and "two" in result.stdout and "freqxfr-demo" in result.stdout


@pytest.mark.parametrize("place", ["before", "after"])
def test_verbose_and_quiet_work_before_and_after_the_command(toy_files, tmp_path, place):
    """Guards against --verbose (and --quiet) accepted only before the command's name, and against
    an exit status that depends on where the flag stands."""
    root, a, _, card = toy_files
    missing = root / "missing.png"
    args = ["explain", missing, a, "--model", card, "--out", tmp_path / "o"]
    verbose = freqxfr(*(["--verbose", *args] if place == "before" else [*args, "--verbose"]))
    assert verbose.returncode == 1 and "Traceback" in verbose.stderr, verbose.stderr
    plain = freqxfr(*(["--quiet", *args] if place == "before" else [*args, "--quiet"]))
    assert_one_line_error(plain, "missing.png: file not found")
    assert plain.stdout == ""


def test_quiet_prints_nothing_and_json_draws_nothing(toy_files, tmp_path):
    """Guards against --quiet output that scripts must filter, and --json that writes the plots
    nobody asked for (it draws them with --report)."""
    _, a, b, card = toy_files
    base = ["explain", a, b, "--model", card, "--bands", "4"]
    quiet = freqxfr(*base, "--out", tmp_path / "q", "--quiet")
    assert quiet.returncode == 0 and quiet.stdout == "" and quiet.stderr == ""
    assert (tmp_path / "q" / "report.html").is_file()

    as_json = freqxfr(*base, "--out", tmp_path / "j", "--json", "--quiet")
    assert as_json.returncode == 0
    assert json.loads(as_json.stdout)["decision"] in (True, False)
    assert sorted(p.name for p in (tmp_path / "j").iterdir() if not p.name.startswith(".")) == [
        "explanation.json"
    ]

    drawn = freqxfr(*base, "--out", tmp_path / "r", "--json", "--report")
    assert drawn.returncode == 0 and (tmp_path / "r" / "report.html").is_file()


def test_explain_does_not_overwrite_another_pairs_outputs(toy_files, tmp_path):
    """Guards against explain silently replacing another pair's explanation.json and report."""
    _, a, b, card = toy_files
    base = ["--model", card, "--bands", "4", "--out", tmp_path / "o"]
    assert freqxfr("explain", a, b, *base).returncode == 0
    assert freqxfr("explain", a, b, *base).returncode == 0  # the same pair again: fine
    before = (tmp_path / "o" / "explanation.json").read_text()
    other = freqxfr("explain", b, a, *base)
    assert_one_line_error(other, "another pair", "a.png vs b.png", "--overwrite")
    assert (tmp_path / "o" / "explanation.json").read_text() == before
    forced = freqxfr("explain", b, a, *base, "--overwrite")
    assert forced.returncode == 0, forced.stderr
    assert json.loads((tmp_path / "o" / "explanation.json").read_text())["a"]["source"] == str(b)


def test_missing_files_are_named_alike_in_every_command(toy_files, tmp_path):
    """Guards against one problem described in different words ("no such file" here, "file not
    found" there)."""
    _, a, _, card = toy_files
    gone = tmp_path / "gone"
    cases = [
        ("explain", gone / "x.png", a, "--model", card, "--out", tmp_path / "o1"),
        ("verify", gone / "x.png", a, "--model", card),
        ("dataset", gone / "pairs.csv", "--model", card, "--out", tmp_path / "o2"),
        ("faithfulness", gone / "x.png", a, "--model", card, "--out", tmp_path / "o3"),
        ("morph", gone / "index.csv", "--model", card, "--out", tmp_path / "o4"),
        ("explain", a, a, "--model", card, "--schedule", gone / "s.json", "--out", tmp_path / "o5"),
        ("verify", a, a, "--model", gone / "m.onnx"),
    ]
    for result in freqxfr_all(*cases):
        assert_one_line_error(result, "file not found")


def test_no_face_message_names_the_flag(data_dir, tmp_path):
    """Guards against a library keyword (aligned=True) in a command-line message."""
    grey = tmp_path / "grey.png"
    Image.fromarray(np.full((400, 400, 3), 128, np.uint8)).save(grey)
    face = data_dir / "frll" / "neutral" / "001_03.jpg"
    result = freqxfr("explain", grey, face, "--out", tmp_path / "o")
    assert_one_line_error(result, "grey.png", "--aligned")
    assert "aligned=True" not in result.stderr


def test_dataset_progress_says_where_it_resumes(toy_files, tmp_path):
    """Guards against a resumed run whose progress bar silently starts part-way."""
    root, _, _, card = toy_files
    pairs = root / "pairs5.csv"
    pairs.write_text(
        "path1,path2,same\n" + "a.png,b.png,1\nb.png,a.png,0\n" * 2 + "a.png,a.png,1\n"
    )
    args = ("dataset", pairs, "--model", card, "--bands", "4", "--out", tmp_path / "run")
    first = freqxfr(*args, "--no-report")  # the report is not what this is about
    assert first.returncode == 0, first.stderr
    assert "explaining" in first.stderr and "resuming" not in first.stderr  # the bar
    results = tmp_path / "run" / "results.jsonl"
    results.write_text("".join(results.read_text().splitlines(keepends=True)[:3]))
    again = freqxfr(*args, "--no-report")
    assert again.returncode == 0, again.stderr
    assert "resuming: 3 of 5 pairs done" in again.stderr
    quiet = freqxfr(*args, "--quiet")  # with its report: that prints nothing either
    assert quiet.returncode == 0 and quiet.stdout == "" and quiet.stderr == ""
    assert (tmp_path / "run" / "report.html").is_file()


def test_faithfulness_pairs_shows_a_progress_bar(toy_files, tmp_path):
    root, _, _, card = toy_files
    pairs = root / "pairs3.csv"
    pairs.write_text("path1,path2,same\na.png,b.png,1\nb.png,a.png,1\na.png,a.png,1\n")
    result = freqxfr(
        "faithfulness",
        "--pairs",
        pairs,
        "--seeds",
        "1",
        "--model",
        card,
        "--bands",
        "4",
        "--out",
        tmp_path / "f",
    )
    assert result.returncode == 0, result.stderr
    assert "faithfulness" in result.stderr and "3/3" in result.stderr


@pytest.mark.dlib
def test_one_sign_convention_across_verify_explain_and_models(data_dir, tmp_path):
    """Guards against commands that present one comparison in two conventions (verify printed
    the distance, explain the negative score): every command prints the score, and for a
    Euclidean model the distance beside it, in text and JSON."""
    a = data_dir / "frll" / "neutral" / "005_03.jpg"
    b = data_dir / "frll" / "smiling" / "005_08.jpg"
    verify, explain, listed, text, explained, table_run = freqxfr_all(
        ("verify", a, b, "--json"),
        ("explain", a, b, "--json", "--out", tmp_path / "e"),
        ("models", "list", "--json"),
        ("verify", a, b),
        ("explain", a, b, "--out", tmp_path / "t"),
        ("models", "list"),
    )
    assert verify.returncode == 0, verify.stderr
    v = json.loads(verify.stdout)
    assert v["score"] < 0 and v["distance"] == pytest.approx(-v["score"])
    assert v["threshold"] == -0.6 and v["distance_threshold"] == pytest.approx(0.6)

    assert explain.returncode == 0, explain.stderr
    e = json.loads(explain.stdout)
    assert e["score_ref"] == pytest.approx(v["score"], abs=1e-4)
    assert e["distance_ref"] == pytest.approx(-e["score_ref"]) and e["threshold"] == -0.6
    assert e["distance_threshold"] == pytest.approx(0.6)

    rows = {r["name"]: r for r in json.loads(listed.stdout)["presets"]}
    assert rows["dlib_resnet"]["threshold"] == -0.6
    assert rows["dlib_resnet"]["distance_threshold"] == pytest.approx(0.6)
    assert "distance_threshold" not in rows["sface"]

    score = f"score {v['score']:.4f}, threshold -0.6000 (distance {v['distance']:.4f}, "
    assert text.stdout.startswith(f"MATCH: {score}"), text.stdout
    assert explained.stdout.startswith(
        f"MATCH: score {e['score_ref']:.4f}, threshold -0.6000 (distance {e['distance_ref']:.4f}, "
    ), explained.stdout
    table = table_run.stdout
    assert re.search(r"^dlib_resnet .* -0\.600 \(distance 0\.600\)", table, re.M), table
