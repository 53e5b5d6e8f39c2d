"""Run folders: one run per output folder, settings checked by name on a restart, failed pairs
reported and retried, the root rule for pair lists, and clean one-line errors for bad --out.

The commands run as users run them (``freqxfr.cli.main`` or a subprocess) on real LFW crops and
FRLL photos with dlib's ResNet (the default; the model is not what these tests are about, and
SFace cost six times as much per pair); the settings check compares an SFace run's settings with
a dlib one's. A second process that holds a folder is a real process that takes the real lock.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from freqxfr.cli import main
from freqxfr.common.errors import InputError, OutputError
from freqxfr.explanations.pairs import Pair, outside_root, read_pairs
from freqxfr.runs.folder import LOCK_NAME, FolderBusyError, check_settings, locked_folder

LFW = "lfw_aligned112/images"
_HOLD = (
    "import sys, time\n"
    "from freqxfr.runs.folder import locked_folder\n"
    "with locked_folder(sys.argv[1], command='test-holder'):\n"
    "    print('locked', flush=True)\n"
    "    time.sleep(600)\n"
)


@contextlib.contextmanager
def held_by_another_process(folder: Path) -> Iterator[subprocess.Popen]:
    """A real second process that holds ``folder``'s lock until the block ends (then killed)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(folder)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        yield proc
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


def lfw_root(data_dir: Path, tmp_path: Path, people: int = 2) -> tuple[Path, list[str]]:
    """A small root folder with copies of real LFW crops (so that a test may change it)."""
    root = tmp_path / "root"
    names = []
    for person in sorted((data_dir / LFW).iterdir())[:people]:
        for image in sorted(person.glob("*.jpg"))[:2]:
            target = root / person.name / image.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(image, target)
            names.append(f"{person.name}/{image.name}")
    return root, names


def write_pairs(path: Path, rows: list[tuple[str, str, int]]) -> Path:
    path.write_text("path1,path2,same\n" + "".join(f"{a},{b},{s}\n" for a, b, s in rows))
    return path


# ---- one run per folder ------------------------------------------------------------------------


def _commands(data_dir: Path, tmp_path: Path, out: Path) -> dict[str, list[str]]:
    a = str(data_dir / LFW / "Abdullah_Gul" / "Abdullah_Gul_0001.jpg")
    b = str(data_dir / LFW / "Abdullah_Gul" / "Abdullah_Gul_0006.jpg")
    pairs = str(data_dir / "lfw_aligned112" / "pairs_generated.csv")
    common = ["--model", "dlib_resnet", "--bands", "4"]
    return {
        "dataset": [
            "dataset",
            pairs,
            "--root",
            str(data_dir),
            "--out",
            str(out),
            "--limit",
            "2",
            "--no-progress",
            *common,
        ],
        "crossres": [
            "crossres",
            pairs,
            "--root",
            str(data_dir),
            "--out",
            str(out),
            "--limit",
            "2",
            "--no-progress",
            *common,
        ],
        "morph": [
            "morph",
            str(data_dir / "frll_morphs" / "index.csv"),
            "--root",
            str(data_dir),
            "--out",
            str(out),
            *common,
        ],
        "faithfulness": ["faithfulness", a, b, "--out", str(out), "--seeds", "1", *common],
        "explain": ["explain", a, b, "--out", str(out), *common],
        "demo": ["demo", "--out", str(out), "--bands", "4"],
    }


@pytest.mark.model
@pytest.mark.parametrize(
    "command", ["dataset", "crossres", "morph", "faithfulness", "explain", "demo"]
)
def test_every_command_refuses_a_folder_another_run_holds(command, data_dir, tmp_path, capsys):
    """Guards against two runs writing one folder (73 results lines for 40 pairs): every
    command that writes an output folder stops at once, naming the folder and the holder."""
    out = tmp_path / "out"
    with held_by_another_process(out) as holder:
        code = main(_commands(data_dir, tmp_path, out)[command])
        err = one_line_error(capsys)
        assert code == 2
        assert str(out) in err and f"pid {holder.pid}" in err and "in use" in err
        assert sorted(os.listdir(out)) == [LOCK_NAME]  # nothing written, nothing removed


@pytest.mark.integration
def test_two_concurrent_dataset_runs_have_one_winner(data_dir, tmp_path):
    """Guards against duplicate results from two simultaneous runs into one folder: exactly one
    run finishes (0), the other exits 2 naming the folder and the winner's pid, and every pair
    has exactly one line."""
    pairs = data_dir / "lfw_aligned112" / "pairs_generated.csv"
    out = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "freqxfr",
        "dataset",
        str(pairs),
        "--root",
        str(data_dir),
        "--out",
        str(out),
        "--limit",
        "12",
        "--model",
        "dlib_resnet",
        "--bands",
        "8",
        "--no-progress",
    ]
    procs = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    results = [(p, *p.communicate(timeout=600)) for p in procs]
    codes = sorted(p.returncode for p, _, _ in results)
    assert codes == [0, 2], [err for _, _, err in results]
    winner = next(p for p, _, _ in results if p.returncode == 0)
    loser_err = next(err for p, _, err in results if p.returncode == 2).strip()
    assert len(loser_err.splitlines()) == 1 and str(out) in loser_err
    assert f"pid {winner.pid}" in loser_err
    indices = [
        json.loads(line)["index"] for line in (out / "results.jsonl").read_text().splitlines()
    ]
    assert sorted(indices) == list(range(12))
    assert not (out / LOCK_NAME).exists()  # released and removed at the end


@pytest.mark.integration
def test_a_lock_left_by_a_killed_process_does_not_block(tmp_path):
    """Guards against stale locks: a run killed with SIGKILL leaves its lock file behind, and
    the next run takes the folder anyway (flock locks die with their process)."""
    out = tmp_path / "out"
    with held_by_another_process(out) as holder:
        with pytest.raises(FolderBusyError, match=f"pid {holder.pid}"):
            with locked_folder(out, command="test"):
                pass
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        assert json.loads((out / LOCK_NAME).read_text())["pid"] == holder.pid  # stale file
        with locked_folder(out, command="test"):
            assert json.loads((out / LOCK_NAME).read_text())["pid"] == os.getpid()


@pytest.mark.unit
def test_the_lock_is_reentrant_in_one_thread_and_refused_to_another(tmp_path):
    out = tmp_path / "out"
    refused: list[BaseException] = []

    def other() -> None:
        try:
            with locked_folder(out, command="thread"):
                pass
        except FolderBusyError as exc:
            refused.append(exc)

    with locked_folder(out, command="outer"), locked_folder(out, command="inner"):
        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
        assert (out / LOCK_NAME).exists()
    assert len(refused) == 1 and f"pid {os.getpid()}" in str(refused[0])
    assert not (out / LOCK_NAME).exists()


@pytest.mark.unit
def test_a_failed_run_removes_the_folder_it_created_unless_it_can_resume(tmp_path):
    fresh = tmp_path / "new" / "out"
    with pytest.raises(RuntimeError), locked_folder(fresh, command="test"):
        (fresh / "plot.png").write_bytes(b"half")
        raise RuntimeError
    assert not (tmp_path / "new").exists()
    kept = tmp_path / "resumable"
    with pytest.raises(KeyboardInterrupt), locked_folder(kept, command="test", resumable=True):
        (kept / "run.json").write_text("{}")
        (kept / "results.jsonl").write_text('{"index": 0}\n')
        raise KeyboardInterrupt
    assert sorted(os.listdir(kept)) == ["results.jsonl", "run.json"]
    nothing_yet = tmp_path / "nothing-yet"
    with pytest.raises(RuntimeError), locked_folder(nothing_yet, command="t", resumable=True):
        (nothing_yet / "run.json").write_text("{}")
        (nothing_yet / "results.jsonl").write_text("")
        raise RuntimeError
    assert not nothing_yet.exists()
    existing = tmp_path / "mine"
    existing.mkdir()
    with pytest.raises(RuntimeError), locked_folder(existing, command="test"):
        raise RuntimeError
    assert existing.is_dir()  # a folder the user made is never removed


# ---- settings ----------------------------------------------------------------------------------


@pytest.mark.model
def test_a_restart_with_other_settings_names_each_setting_and_both_values(data_dir, tmp_path):
    """Guards against a restart refused without saying what changed ("pairs_sha256 differ"):
    every setting that changes results is checked and named with its old and new value."""
    import copy

    from freqxfr.explanations.explainer import Explainer
    from freqxfr.model.verifier import load_model
    from freqxfr.runs.dataset import run_config

    model = load_model("sface")
    pairs = read_pairs(data_dir / "lfw_aligned112" / "pairs_generated.csv", root=data_dir)[:3]
    base = Explainer(model, 8)
    run_json = tmp_path / "run.json"
    check_settings(run_json, run_config(base, "p.csv", pairs, root=data_dir))
    check_settings(run_json, run_config(base, "p.csv", pairs, root=data_dir))  # same: accepted

    def with_card(card):  # the same session behind another card (the card lives on the runner)
        twin = copy.copy(model)
        twin.runner = copy.copy(model.runner)
        twin.runner.card = card
        return twin

    other_threshold = with_card(model.card.replace(threshold=0.5))
    other_card = with_card(model.card.replace(mean=(127.0, 127.0, 127.0)))
    moved = [
        Pair(
            tmp_path / p.path_a.relative_to(data_dir),
            tmp_path / p.path_b.relative_to(data_dir),
            p.same,
        )
        for p in pairs
    ]
    variants = {
        "--bands/--schedule bands: was 8, now 4": (Explainer(model, 4), pairs, data_dir, {}),
        "--mode: was delete, now keep": (Explainer(model, 8, mode="keep"), pairs, data_dir, {}),
        "--domain: was pixel, now normalised": (
            Explainer(model, 8, domain="normalised"),
            pairs,
            data_dir,
            {},
        ),
        "--clip: was false, now true": (Explainer(model, 8, clip=True), pairs, data_dir, {}),
        "threshold: was 0.363, now 0.5": (Explainer(other_threshold, 8), pairs, data_dir, {}),
        "model card mean: was [127.5, 127.5, 127.5], now [127.0, 127.0, 127.0]": (
            Explainer(other_card, 8),
            pairs,
            data_dir,
            {},
        ),
        "--model: was sface": (Explainer(load_model("dlib_resnet"), 8), pairs, data_dir, {}),
        f"--root: was {data_dir}, now {tmp_path}": (base, moved, tmp_path, {}),
        "pairs: was 3 pairs": (base, pairs[:2], data_dir, {}),
        "--aligned: was null, now true": (base, pairs, data_dir, {"aligned": True}),
        "--allow-outside-root: was false, now true": (
            base,
            pairs,
            data_dir,
            {"allow_outside_root": True},
        ),
    }
    for expected, (explainer, listed, root, options) in variants.items():
        with pytest.raises(OutputError) as info:
            check_settings(run_json, run_config(explainer, "p.csv", listed, root=root, **options))
        message = str(info.value)
        assert expected in message, message
        assert str(tmp_path) in message and len(message.splitlines()) == 1


@pytest.mark.integration
def test_a_dataset_restart_with_another_root_is_refused_by_name(data_dir, tmp_path, capsys):
    root, names = lfw_root(data_dir, tmp_path)
    pairs = write_pairs(tmp_path / "pairs.csv", [(names[0], names[1], 1)])
    args = [
        "dataset",
        str(pairs),
        "--out",
        str(tmp_path / "run"),
        "--model",
        "dlib_resnet",
        "--bands",
        "4",
        "--no-progress",
    ]
    assert main([*args, "--root", str(root)]) == 0
    capsys.readouterr()
    other = tmp_path / "other-root"
    shutil.copytree(root, other)
    assert main([*args, "--root", str(other)]) == 2
    err = one_line_error(capsys)
    assert f"--root: was {root}, now {other}" in err


# ---- failed pairs ------------------------------------------------------------------------------


@pytest.mark.model
def test_failed_pairs_exit_3_are_listed_and_retried(data_dir, tmp_path, capsys):
    """Guards against "0 pairs explained" with exit 0: failed pairs give exit status 3, their
    reasons on stderr, in summary.json and report.html, and the same command retries them
    without redoing or repeating the others."""
    root, names = lfw_root(data_dir, tmp_path)
    rows = [
        (names[0], names[1], 1),
        (names[0], "Nobody/Nobody_0001.jpg", 0),
        (names[2], names[3], 1),
    ]
    pairs = write_pairs(tmp_path / "pairs.csv", rows)
    out = tmp_path / "run"
    args = [
        "dataset",
        str(pairs),
        "--root",
        str(root),
        "--out",
        str(out),
        "--model",
        "dlib_resnet",
        "--bands",
        "4",
        "--no-progress",
    ]
    assert main(args) == 3
    captured = capsys.readouterr()
    assert "2 pairs explained, 1 failed" in captured.out
    assert "1 of 3 pairs failed" in captured.err and "Nobody_0001.jpg" in captured.err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["failed"] == 1
    (failure,) = summary["failures"]
    assert failure["index"] == 1 and failure["line"] == 3 and "Nobody_0001.jpg" in failure["error"]
    report = (out / "report.html").read_text()
    assert "Failed pairs" in report and "Nobody_0001.jpg" in report
    finished = [
        line
        for line in (out / "results.jsonl").read_text().splitlines()
        if "error" not in json.loads(line)
    ]

    # The missing photo turns up; the same command explains only that pair.
    (root / "Nobody").mkdir()
    shutil.copyfile(root / names[1], root / "Nobody" / "Nobody_0001.jpg")
    assert main(args) == 0
    lines = (out / "results.jsonl").read_text().splitlines()
    assert lines[:2] == finished  # neither redone nor lost
    assert sorted(json.loads(line)["index"] for line in lines) == [0, 1, 2]
    assert all("error" not in json.loads(line) for line in lines)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["failed"] == 0 and summary["failures"] == [] and summary["pairs"] == 3


@pytest.mark.model
def test_a_forgotten_root_fails_every_pair_with_status_3(data_dir, tmp_path, capsys):
    pairs = data_dir / "lfw_aligned112" / "pairs_generated.csv"
    code = main(
        [
            "dataset",
            str(pairs),
            "--out",
            str(tmp_path / "run"),
            "--limit",
            "8",
            "--model",
            "dlib_resnet",
            "--bands",
            "4",
            "--no-progress",
        ]
    )
    assert code == 3
    captured = capsys.readouterr()
    assert "0 pairs explained, 8 failed" in captured.out
    reasons = captured.err.strip().splitlines()
    assert reasons[0].startswith("freqxfr dataset: 8 of 8 pairs failed")
    assert len(reasons) == 1 + 5 + 1 and reasons[-1].strip() == "... and 3 more"
    assert "no such file" in reasons[1] or "not found" in reasons[1]


@pytest.mark.model
def test_crossres_lists_failed_images_exits_3_and_retries_them(data_dir, tmp_path, capsys):
    """Guards against a crossres run whose missing images are only counted: it exits 3 with the
    reasons, and the same command explains those pairs once the images are there."""
    root, names = lfw_root(data_dir, tmp_path)
    rows = [
        (names[0], names[1], 1),
        (names[1], "Nobody/Nobody_0001.jpg", 0),
        (names[2], names[3], 1),
        (names[0], names[3], 0),
    ]
    pairs = write_pairs(tmp_path / "pairs.csv", rows)
    out = tmp_path / "run"
    args = [
        "crossres",
        str(pairs),
        "--root",
        str(root),
        "--out",
        str(out),
        "--factors",
        "1,2",
        "--boot",
        "50",
        "--model",
        "dlib_resnet",
        "--bands",
        "4",
        "--no-progress",
    ]
    assert main(args) == 3
    assert "Nobody_0001.jpg" in capsys.readouterr().err
    first = json.loads((out / "summary.json").read_text())
    assert first["pairs"] == 3 and "Nobody_0001.jpg" in first["failed"][0]["path"]
    (root / "Nobody").mkdir()
    shutil.copyfile(root / names[2], root / "Nobody" / "Nobody_0001.jpg")
    assert main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["pairs"] == 4 and summary["failed"] == []
    lines = (out / "explanations.jsonl").read_text().splitlines()
    assert sorted((json.loads(x)["factor"], json.loads(x)["index"]) for x in lines) == [
        (f, i) for f in (1.0, 2.0) for i in range(4)
    ]


# ---- the root rule -----------------------------------------------------------------------------


@pytest.mark.unit
def test_outside_root_follows_symlinks_and_dotdot(tmp_path):
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "in.jpg").write_bytes(b"x")
    (tmp_path / "secret.jpg").write_bytes(b"x")
    (root / "link.jpg").symlink_to(tmp_path / "secret.jpg")
    (root / "inner-link.jpg").symlink_to(root / "in.jpg")
    pairs = [
        Pair(root / "in.jpg", root / "sub" / ".." / "in.jpg", line=2),  # inside
        Pair(root / "in.jpg", root / ".." / "secret.jpg", line=3),  # ../ out
        Pair(tmp_path / "secret.jpg", root / "in.jpg", line=4),  # absolute, outside
        Pair(root / "link.jpg", root / "in.jpg", line=5),  # symlink out of the root
        Pair(root / "inner-link.jpg", root / "in.jpg", line=6),  # symlink within
    ]
    refused = outside_root(pairs, root, pairs_file="pairs.csv")
    assert sorted(refused) == [1, 2, 3]
    assert refused[1].startswith("pairs.csv, line 3: ") and "outside the root folder" in refused[1]
    assert "--allow-outside-root" in refused[3]


@pytest.mark.model
def test_pairs_outside_the_root_fail_unless_allowed(data_dir, tmp_path, capsys):
    """Guards against pair lists that read any file (``../../anything``, absolute paths): such
    a pair fails without being read, naming its line, unless --allow-outside-root."""
    root, names = lfw_root(data_dir, tmp_path)
    outside = tmp_path / "elsewhere.jpg"
    shutil.copyfile(root / names[1], outside)
    rows = [(names[0], names[1], 1), (names[0], "../elsewhere.jpg", 1), (str(outside), names[0], 1)]
    pairs = write_pairs(tmp_path / "pairs.csv", rows)
    args = [
        "dataset",
        str(pairs),
        "--root",
        str(root),
        "--out",
        str(tmp_path / "run"),
        "--model",
        "dlib_resnet",
        "--bands",
        "4",
        "--no-progress",
    ]
    assert main(args) == 3
    err = capsys.readouterr().err
    assert "line 3:" in err and "line 4:" in err and "outside the root folder" in err
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert [f["line"] for f in summary["failures"]] == [3, 4]

    allowed = [
        "dataset",
        str(pairs),
        "--root",
        str(root),
        "--out",
        str(tmp_path / "allowed"),
        "--model",
        "dlib_resnet",
        "--bands",
        "4",
        "--no-progress",
        "--allow-outside-root",
    ]
    assert main(allowed) == 0
    summary = json.loads((tmp_path / "allowed" / "summary.json").read_text())
    assert summary["pairs"] == 3 and summary["failed"] == 0


@pytest.mark.model
def test_a_morph_index_path_outside_the_root_is_refused(data_dir, tmp_path):
    from freqxfr.runs.morph_index import read_morph_index

    header, first = (data_dir / "frll_morphs" / "index.csv").read_text().splitlines()[:2]
    fields = first.split(",")
    outside = tmp_path / "025_03.jpg"
    shutil.copyfile(data_dir / fields[5], outside)
    fields[5] = str(outside)  # bona_fide_a: an absolute path outside the root
    index = tmp_path / "index.csv"
    index.write_text(header + "\n" + ",".join(fields) + "\n")
    with pytest.raises(
        InputError, match=r"row 2 .*bona fide source of frll_025 .*outside the root"
    ):
        read_morph_index(index, root=data_dir)
    assert len(read_morph_index(index, root=data_dir, allow_outside_root=True)) == 1


@pytest.mark.model
def test_faithfulness_pairs_outside_the_root_are_refused(data_dir, tmp_path, capsys):
    pairs = write_pairs(tmp_path / "pairs.csv", [("a.jpg", "../b.jpg", 1)])
    assert (
        main(
            [
                "faithfulness",
                "--pairs",
                str(pairs),
                "--root",
                str(tmp_path / "r"),
                "--out",
                str(tmp_path / "out"),
            ]
        )
        == 2
    )
    err = one_line_error(capsys)
    assert "pairs.csv, line 2" in err and "outside the root folder" in err
    assert not (tmp_path / "out").exists()


# ---- clean errors for bad output folders and options --------------------------------------------


def _face(data_dir: Path) -> str:
    return str(data_dir / LFW / "Abdullah_Gul" / "Abdullah_Gul_0001.jpg")


@pytest.mark.model
def test_verify_refuses_a_nan_threshold(data_dir, capsys):
    """Guards against `verify --threshold nan`, which was accepted while a card with a NaN
    threshold is refused."""
    for bad in ("nan", "inf"):
        code = main(
            [
                "verify",
                _face(data_dir),
                _face(data_dir),
                "--model",
                "dlib_resnet",
                "--threshold",
                bad,
            ]
        )
        err = one_line_error(capsys)
        assert code == 2 and f"--threshold {bad}" in err and "finite" in err


@pytest.mark.integration
def test_a_failed_explain_leaves_no_output_folder(data_dir, tmp_path, capsys):
    """Guards against an empty --out folder left behind by an explain that failed."""
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    out = tmp_path / "new" / "explanation"
    assert (
        main(["explain", str(text), _face(data_dir), "--model", "dlib_resnet", "--out", str(out)])
        == 2
    )
    assert "notes.jpg" in one_line_error(capsys)
    assert not (tmp_path / "new").exists()


@pytest.mark.model
def test_faithfulness_out_a_file_is_one_line(data_dir, tmp_path, capsys):
    """Guards against a raw FileExistsError when --out names a file."""
    blocker = tmp_path / "results"
    blocker.write_text("a file")
    code = main(
        [
            "faithfulness",
            _face(data_dir),
            _face(data_dir),
            "--model",
            "dlib_resnet",
            "--out",
            str(blocker),
        ]
    )
    err = one_line_error(capsys)
    assert code == 2 and "FileExistsError" not in err
    assert str(blocker) in err and "is a file, not a folder" in err
    assert blocker.read_text() == "a file"


def _read_only_run(folder: Path, args: list[str]) -> subprocess.CompletedProcess:
    """Run freqxfr with ``folder`` read-only, as root too: in a user and mount namespace with a
    read-only bind mount where ``unshare`` allows it, else into /sys (refused even for root)."""
    cmd = [sys.executable, "-m", "freqxfr", *args]
    probe = (
        subprocess.run(["unshare", "-rm", "true"], capture_output=True)
        if shutil.which("unshare")
        else None
    )
    if probe is not None and probe.returncode == 0:
        script = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"'
        return subprocess.run(
            ["unshare", "-rm", "sh", "-c", script, str(folder), *cmd],
            capture_output=True,
            text=True,
            timeout=600,
        )
    return subprocess.run(
        [a.replace(str(folder), "/sys") for a in cmd], capture_output=True, text=True, timeout=600
    )


@pytest.mark.model
def test_explain_into_a_read_only_folder_names_the_folder(data_dir, tmp_path):
    """Guards against an error naming a temporary file (.explanation.json.XXXX.tmp) instead of
    the read-only output folder."""
    folder = tmp_path / "ro"
    folder.mkdir()
    result = _read_only_run(
        folder,
        [
            "explain",
            _face(data_dir),
            _face(data_dir),
            "--model",
            "dlib_resnet",
            "--bands",
            "4",
            "--out",
            str(folder),
        ],
    )
    err = result.stderr.strip()
    assert result.returncode == 2 and len(err.splitlines()) == 1, err
    assert ".tmp" not in err and "can't be written" in err
    assert str(folder) in err or "/sys" in err
    assert os.listdir(folder) == []
