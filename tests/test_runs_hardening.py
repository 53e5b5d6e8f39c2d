"""Issues 27 and 28 (runs, compare, inputs): what a hostile user tries gets one line and exit 2,
nothing hangs, and no record is lost on resume.

Real model (dlib, 4 bands) and real LFW crops; the only mocks are failure injections (a full
disk), named as such.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from freqxfr.cli import main
from freqxfr.common.errors import ImageError, InputError, OutputError
from freqxfr.explanations.pairs import read_pairs, spread
from freqxfr.explanations.templates import load_template
from freqxfr.imaging.images import checked_file, load_image
from freqxfr.imaging.regions import MAX_GRID_CELLS, Regions
from freqxfr.runs import folder as folder_module
from freqxfr.runs.comparison import compare_runs
from freqxfr.runs.folder import LOCK_NAME, locked_folder
from freqxfr.stats.bootstrap import MAX_RESAMPLES, cluster_weights, resample_indices

pytestmark = pytest.mark.integration

N_PAIRS = 6
BANDS = "4"


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def cli(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def records(out: Path) -> dict[int, dict]:
    got = {}
    for line in (out / "results.jsonl").read_text().splitlines():
        record = json.loads(line)
        record.pop("timings_ms", None)
        assert record["index"] not in got
        got[record["index"]] = record
    return got


def summary(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())


@pytest.fixture(scope="module")
def root(data_dir, tmp_path_factory) -> Path:
    """A root folder with copies of 6 LFW pairs' images and a pair list of them (relative)."""
    base = tmp_path_factory.mktemp("root")
    pairs = spread(
        read_pairs(data_dir / "lfw_aligned112" / "pairs_generated.csv", root=data_dir), N_PAIRS
    )
    lines = ["path1,path2,same"]
    (base / "images").mkdir()
    for pair in pairs:
        names = []
        for path in (pair.path_a, pair.path_b):
            shutil.copy(path, base / "images" / path.name)
            names.append(f"images/{path.name}")
        lines.append(f"{names[0]},{names[1]},{int(pair.same)}")
    (base / "pairs.csv").write_text("\n".join(lines) + "\n")
    return base


def dataset(root: Path, out: Path, *more) -> list[str]:
    return [
        "dataset",
        root / "pairs.csv",
        "--root",
        root,
        "--bands",
        BANDS,
        "--no-progress",
        "--no-report",
        "--out",
        out,
        *more,
    ]


@pytest.fixture(scope="module")
def reference(root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ref") / "run"
    assert main([str(a) for a in dataset(root, out)]) == 0
    return out


# ---- resume: invalid records are redone, summaries bit for bit --------------------------------


def test_invalid_records_are_redone_and_the_summary_is_exact(reference, root, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(reference, out)
    lines = (reference / "results.jsonl").read_text().splitlines()
    bad = json.loads(lines[2])
    bad["index"] = "2"  # a string index: once a KeyError on every rerun, and pair 2 lost
    extra = [dict(json.loads(lines[0]), index=i) for i in (99, -1)]  # out of range
    no_a = json.loads(lines[4])
    del no_a["a"]
    (out / "results.jsonl").write_text(
        "\n".join(
            [lines[0], lines[1], json.dumps(bad), lines[3], json.dumps(no_a), lines[5]]
            + [json.dumps(e) for e in extra]
            + ["[1, 2]", '{"index": 3'],
        )
        + "\n"
    )
    code, _, err = cli(capsys, *dataset(root, out))
    assert code == 0, err
    assert records(out) == records(reference)
    assert summary(out) == summary(reference)


def test_the_summary_follows_pair_order_not_line_order(reference, root, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(reference, out)
    lines = (reference / "results.jsonl").read_text().splitlines()
    (out / "results.jsonl").write_text("\n".join(reversed(lines)) + "\n")
    (out / "summary.json").unlink()
    code, _, err = cli(capsys, *dataset(root, out))
    assert code == 0, err
    assert summary(out) == summary(reference)


def test_a_retried_failure_gives_the_uninterrupted_summary_bit_for_bit(
    reference, root, tmp_path, capsys
):
    """The README's "identical outputs" after a failed pair is retried (it is appended last)."""
    out = tmp_path / "run"
    image = root / "images" / sorted((root / "images").iterdir())[0].name
    hidden = image.with_suffix(".hidden")
    image.rename(hidden)
    try:
        code, _, err = cli(capsys, *dataset(root, out))
    finally:
        hidden.rename(image)
    assert code == 3 and "file not found" in err
    code, _, err = cli(capsys, *dataset(root, out))
    assert code == 0, err
    lines = [json.loads(x)["index"] for x in (out / "results.jsonl").read_text().splitlines()]
    assert lines != sorted(lines)  # the retried pair came last
    assert records(out) == records(reference)
    assert (out / "summary.json").read_bytes() == (reference / "summary.json").read_bytes()


# ---- dataset: --restart, a wrong --root, pair lists, grids -------------------------------------


def test_restart_starts_the_folder_over(reference, root, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(reference, out)
    (out / "stale.txt").write_text("from the old run")
    code, _, err = cli(capsys, *dataset(root, out, "--restart"))
    assert code == 0, err
    assert not (out / "stale.txt").exists() and not (out / LOCK_NAME).exists()
    assert records(out) == records(reference)


def test_a_wrong_root_leaves_no_folder_that_the_corrected_command_refuses(
    root, reference, tmp_path, capsys
):
    out = tmp_path / "run"
    wrong = tmp_path / "elsewhere"
    wrong.mkdir()
    code, _, err = cli(
        capsys,
        "dataset",
        root / "pairs.csv",
        "--root",
        wrong,
        "--allow-outside-root",
        "--bands",
        BANDS,
        "--no-progress",
        "--no-report",
        "--out",
        out,
    )
    assert code == 3, err
    code, _, err = cli(capsys, *dataset(root, out))
    assert code == 0, err
    assert records(out) == records(reference)


def test_a_nul_byte_in_a_pair_list_is_one_line(root, tmp_path, capsys):
    bad = tmp_path / "nul.csv"
    bad.write_text("images/a\0b.jpg,images/c.jpg,1\n")
    code, _, err = cli(capsys, "dataset", bad, "--root", root, "--out", tmp_path / "n")
    assert code == 2 and "line 1" in one_line(err) and "NUL byte" in err
    assert not (tmp_path / "n").exists()
    with pytest.raises(ImageError, match="NUL byte"):
        load_image("a\0b.jpg")


def test_a_huge_region_grid_is_refused_before_allocating(root, tmp_path, capsys):
    code, _, err = cli(capsys, *dataset(root, tmp_path / "o"), "--regions", "grid:64x64")
    assert code == 2 and str(MAX_GRID_CELLS) in one_line(err)
    assert not (tmp_path / "o").exists()
    assert Regions.grid(16, 16).params["rows"] == 16


# ---- explain --json ---------------------------------------------------------------------------


def test_explain_json_prints_and_writes_nothing(root, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    images = sorted((root / "images").iterdir())
    for a, b in ((images[0], images[1]), (images[2], images[3])):  # a shell loop over pairs
        code, out, err = cli(capsys, "explain", a, b, "--bands", BANDS, "--json")
        assert code == 0, err
        assert json.loads(out)["a"]["source"] == str(a)
    assert list(tmp_path.iterdir()) == []


# ---- one rule for every file read on a pair list's behalf --------------------------------------


def test_reports_read_nothing_outside_root_and_never_a_fifo(root, tmp_path):
    """A pair naming ../secret/x.jpg fails unread, and report.html has no thumbnail of it; a
    FIFO listed inside the root fails by name, and neither the run nor its report hangs."""
    base = tmp_path / "root"
    shutil.copytree(root / "images", base / "images")
    secret = tmp_path / "secret"
    secret.mkdir()
    images = sorted((base / "images").iterdir())
    shutil.copy(images[0], secret / "x.jpg")
    os.mkfifo(base / "images" / "pipe.jpg")
    (base / "pairs.csv").write_text(
        f"images/{images[0].name},../secret/x.jpg,1\n"
        f"images/{images[1].name},images/pipe.jpg,0\n"
        f"images/{images[2].name},images/{images[3].name},1\n"
    )
    out = tmp_path / "run"
    command = [sys.executable, "-m", "freqxfr", "dataset", base / "pairs.csv", "--root", base]
    command += ["--bands", BANDS, "--no-progress", "--out", out]
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 3, result.stderr
    assert "outside the root folder" in result.stderr and "FIFO" in result.stderr
    report = (out / "report.html").read_text()
    assert 'alt="x.jpg"' not in report and 'alt="pipe.jpg"' not in report
    assert f'alt="{images[0].name}"' in report  # thumbnails inside the root stay
    with pytest.raises(ImageError, match="outside the root"):
        checked_file(secret / "x.jpg", root=base)


def test_verify_refuses_a_fifo_at_once(root, tmp_path):
    fifo = tmp_path / "face.jpg"
    os.mkfifo(fifo)
    image = sorted((root / "images").iterdir())[0]
    result = subprocess.run(
        [sys.executable, "-m", "freqxfr", "verify", fifo, image],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "FIFO" in one_line(result.stderr)


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda p: p.mkdir(), "is a folder"),
        (lambda p: None, "file not found"),
    ],
)
def test_image_paths_that_are_not_regular_files(tmp_path, make, words):
    path = tmp_path / "x.jpg"
    make(path)
    with pytest.raises(ImageError, match=words):
        load_image(path)


def test_dev_zero_is_a_device_not_a_missing_file(capsys, root):
    with pytest.raises(ImageError, match="character device"):
        load_image("/dev/zero")
    image = sorted((root / "images").iterdir())[0]
    code, _, err = cli(capsys, "explain", image, "--template", "/dev/zero", "--json")
    assert code == 2 and "character device" in one_line(err)


# ---- .npy templates ----------------------------------------------------------------------------


def test_npy_templates_are_checked_before_reading(tmp_path):
    empty = tmp_path / "empty.npy"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match="empty file"):
        load_template(empty)
    huge = tmp_path / "huge.npy"
    with huge.open("wb") as handle:
        np.lib.format.write_array_header_1_0(
            handle, {"descr": "<f8", "fortran_order": False, "shape": (10**12,)}
        )
        handle.write(b"\0" * 64)
    with pytest.raises(InputError, match="truncated or damaged"):
        load_template(huge)
    good = tmp_path / "good.npy"
    np.save(good, np.ones(128, np.float32))
    vector, _ = load_template(good)
    assert vector.shape == (128,)


# ---- disk full and the lock file (mocks: failure injection) -------------------------------------


class _FullDiskMock:
    """Mock: a results file whose writes fail with ENOSPC."""

    def __init__(self, real):
        self.real = real

    def write(self, text):
        raise OSError(errno.ENOSPC, "No space left on device")

    def __getattr__(self, name):
        return getattr(self.real, name)


def test_a_full_disk_names_the_file_and_the_run_resumes(
    reference, root, tmp_path, monkeypatch, capsys
):
    real_open = folder_module.ResultsLog._open

    def open_full_disk_mock(self):
        done = real_open(self)
        self._sink = _FullDiskMock(self._sink)
        return done

    out = tmp_path / "run"
    monkeypatch.setattr(folder_module.ResultsLog, "_open", open_full_disk_mock)
    code, _, err = cli(capsys, *dataset(root, out))
    line = one_line(err)
    assert code == 2 and "results.jsonl" in line and "No space left" in line and "resume" in line
    assert "its 0 finished records are kept" in line
    assert not (out / LOCK_NAME).exists()
    monkeypatch.undo()
    code, _, err = cli(capsys, *dataset(root, out))
    assert code == 0, err
    assert records(out) == records(reference)


def test_a_lock_that_cannot_be_written_is_not_left_empty(tmp_path, monkeypatch):
    def pwrite_full_disk_mock(fd, data, offset):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(folder_module.os, "pwrite", pwrite_full_disk_mock)
    out = tmp_path / "run"
    out.mkdir()
    with pytest.raises(OutputError, match="No space left"):
        with locked_folder(out, command="test"):
            pass
    assert not (out / LOCK_NAME).exists()


# ---- compare ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def other(root, tmp_path_factory) -> Path:
    """A second run over the same pairs (another band count is refused, so: 4 bands, clip)."""
    out = tmp_path_factory.mktemp("other") / "other"
    assert main([str(a) for a in dataset(root, out, "--clip")]) == 0
    return out


def edited(run: Path, tmp_path: Path, name: str, edit) -> Path:
    copy = tmp_path / name
    shutil.copytree(run, copy)
    edit(copy)
    return copy


def test_compare_refuses_runs_over_other_pairs_of_the_same_count(
    reference, other, root, tmp_path, capsys
):
    def swap_sources(run: Path) -> None:
        lines = [json.loads(x) for x in (run / "results.jsonl").read_text().splitlines()]
        lines[0]["a"]["source"], lines[1]["a"]["source"] = (
            lines[1]["a"]["source"],
            lines[0]["a"]["source"],
        )
        (run / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))

    swapped = edited(other, tmp_path, "swapped", swap_sources)
    with pytest.raises(InputError, match="other pairs"):
        compare_runs([reference, swapped])

    def other_hash(run: Path) -> None:
        config = json.loads((run / "run.json").read_text())
        config["settings"]["pairs"] = "6 pairs, sha256 0000000000000000"
        (run / "run.json").write_text(json.dumps(config))

    rehashed = edited(other, tmp_path, "rehashed", other_hash)
    code, _, err = cli(capsys, "compare", reference, rehashed, "--out", tmp_path / "c")
    assert code == 2 and "another pair list" in one_line(err)
    code, _, err = cli(capsys, "compare", reference, other, "--out", tmp_path / "ok")
    assert code == 0, err


def _set_line(index: int, text: str):
    def edit(run: Path) -> None:
        lines = (run / "results.jsonl").read_bytes().split(b"\n")
        lines[index] = text.encode("utf-8") if isinstance(text, str) else text
        (run / "results.jsonl").write_bytes(b"\n".join(lines))

    return edit


def _record_edit(index: int, change):
    def edit(run: Path) -> None:
        lines = (run / "results.jsonl").read_text().split("\n")
        record = json.loads(lines[index])
        change(record)
        lines[index] = json.dumps(record)
        (run / "results.jsonl").write_text("\n".join(lines))

    return edit


@pytest.mark.parametrize(
    ("name", "edit", "where", "words"),
    [
        ("no_a", _record_edit(1, lambda r: r.pop("a")), "line 2", "no 'a'"),
        ("a_list", _set_line(2, "[1, 2, 3]"), "line 3", "got a list"),
        ("bad_utf8", _set_line(0, b'{"index": 0, "x": "\xff\xfe"}'), "line 1", "UTF-8"),
        (
            "nan_score",
            _record_edit(3, lambda r: r.update(score_ref=float("nan"))),
            "line 4",
            "not a finite number",
        ),
        (
            "inf_influence",
            _record_edit(3, lambda r: r["b"]["directed"].__setitem__(0, float("inf"))),
            "line 4",
            "NaN or infinity",
        ),
        (
            "other_shape",
            _record_edit(0, lambda r: r["a"]["directed"].append(0.5)),
            "line 1",
            "5 values",
        ),
        ("index_text", _record_edit(5, lambda r: r.update(index="5")), "line 6", "'index'"),
    ],
)
def test_compare_names_the_file_and_line_of_a_malformed_record(
    reference, other, tmp_path, capsys, name, edit, where, words
):
    bad = edited(other, tmp_path, name, edit)
    code, _, err = cli(capsys, "compare", reference, bad, "--out", tmp_path / "c")
    line = one_line(err)
    assert code == 2 and f"{bad / 'results.jsonl'}, {where}" in line and words in line, line
    assert not (tmp_path / "c").exists()


def test_compare_refuses_a_run_json_that_is_a_list(reference, other, tmp_path, capsys):
    bad = edited(other, tmp_path, "list", lambda r: (r / "run.json").write_text("[1]"))
    code, _, err = cli(capsys, "compare", reference, bad, "--out", tmp_path / "c")
    assert code == 2 and "run.json" in one_line(err) and "got a list" in err


def test_compare_refuses_bad_options_and_outputs(reference, other, tmp_path, capsys):
    code, _, err = cli(capsys, "compare", reference, other, "--out", tmp_path / "c", "--names", ",")
    assert code == 2 and "--names" in one_line(err)
    code, _, err = cli(capsys, "compare", reference, other, "--out", tmp_path / "c", "--names", "")
    assert code == 2 and "--names" in one_line(err)
    for resamples in ("0", "-5"):
        code, _, err = cli(
            capsys, "compare", reference, other, "--out", tmp_path / "c", "--resamples", resamples
        )
        assert code == 2 and "--resamples must be a positive integer" in one_line(err)
    with pytest.raises(InputError, match="resamples"):
        compare_runs([reference, other], n_boot=0)
    before = (other / "summary.json").read_bytes()
    code, _, err = cli(capsys, "compare", reference, other, "--out", other)
    assert code == 2 and "is the input run" in one_line(err)
    assert (other / "summary.json").read_bytes() == before
    # An --out another run holds: refused at once, nothing written there.
    busy = tmp_path / "busy"
    taken, release = threading.Event(), threading.Event()

    def hold() -> None:
        with locked_folder(busy, command="dataset"):
            taken.set()
            release.wait(60)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        taken.wait(60)
        code, _, err = cli(capsys, "compare", reference, other, "--out", busy)
    finally:
        release.set()
        holder.join()
    assert code == 2 and "in use by another run" in one_line(err)
    assert not (busy / "summary.json").exists()


def test_a_pair_list_that_is_a_fifo_or_a_folder_is_one_line(tmp_path, capsys):
    fifo = tmp_path / "pairs.csv"
    os.mkfifo(fifo)
    code, _, err = cli(capsys, "dataset", fifo, "--out", tmp_path / "o")
    assert code == 2 and "FIFO" in one_line(err) and "pair list" in err
    folder = tmp_path / "list.csv"
    folder.mkdir()
    code, _, err = cli(capsys, "dataset", folder, "--out", tmp_path / "o")
    assert code == 2 and "is a folder" in one_line(err)
    assert not (tmp_path / "o").exists()


def test_a_full_disk_in_the_atomic_writer_names_the_file(tmp_path, monkeypatch):
    from freqxfr.common import atomic

    def fsync_full_disk_mock(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(atomic.os, "fsync", fsync_full_disk_mock)
        with pytest.raises(OutputError, match=r"summary\.json.*No space left.*free some space"):
            atomic.write_json(tmp_path / "summary.json", {"a": 1})
    with pytest.raises(OutputError, match=r"results\.parquet.*No space left"):
        with atomic.atomic_open(tmp_path / "results.parquet", "wb"):
            raise OSError(errno.ENOSPC, "No space left on device")  # mock: the disk fills
    assert list(tmp_path.iterdir()) == []  # no temporary file left


def test_absurd_resample_counts_are_refused_before_drawing(reference, other, tmp_path, capsys):
    """``--resamples 10000000000000`` once ran for ever, growing a list of resamples."""
    code, _, err = cli(
        capsys, "compare", reference, other, "--out", tmp_path / "c", "--resamples", "10" * 7
    )
    assert code == 2 and f"at most {MAX_RESAMPLES}" in one_line(err)
    assert not (tmp_path / "c").exists()
    with pytest.raises(InputError, match="n_boot"):
        resample_indices(6, MAX_RESAMPLES + 1)
    with pytest.raises(InputError, match="n_boot"):
        cluster_weights(6, MAX_RESAMPLES + 1)
    with pytest.raises(SystemExit):
        main(["crossres", str(tmp_path / "p.csv"), "--out", str(tmp_path / "x"), "--boot", "1e9"])
    assert "at most" in capsys.readouterr().err


def test_no_command_overwrites_another_commands_output_folder(
    reference, other, root, tmp_path, capsys
):
    """compare --out into a dataset run once replaced its summary.json and report.html;
    explain --out its report.html; dataset --out a comparison's summary.json."""
    run = tmp_path / "run"
    shutil.copytree(reference, run)
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    code, _, err = cli(capsys, "compare", reference, other, "--out", run)
    assert code == 2 and "holds a dataset, crossres or morph run (run.json)" in one_line(err)
    images = sorted((root / "images").iterdir())
    for more in ((), ("--overwrite",)):
        code, _, err = cli(
            capsys, "explain", images[0], images[1], "--bands", BANDS, "--out", run, *more
        )
        assert code == 2 and "which explain would overwrite" in one_line(err)
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before
    compared = tmp_path / "compared"
    code, _, err = cli(capsys, "compare", reference, other, "--out", compared, "--no-report")
    assert code == 0, err
    code, _, err = cli(capsys, *dataset(root, compared))
    assert code == 2 and "holds a comparison of runs (summary.json)" in one_line(err)
    assert not (compared / "run.json").exists()
    code, _, err = cli(capsys, "compare", reference, other, "--out", compared, "--no-report")
    assert code == 0, err  # a comparison replaces a comparison


def test_os_errors_read_as_words_not_errno_text(root, tmp_path, capsys):
    run = tmp_path / "run"
    (run / "run.json").mkdir(parents=True)
    code, _, err = cli(capsys, *dataset(root, run))
    line = one_line(err)
    assert code == 2 and "run.json is unreadable (Is a directory)" in line and "Errno" not in line
    image = sorted((root / "images").iterdir())[0]
    code, _, err = cli(capsys, "explain", image, image, "--bands", BANDS, "--out", "/proc/x/y")
    line = one_line(err)
    assert code == 2 and line.endswith("file not found") and "or directory" not in line


def test_compare_names_the_run_without_explained_pairs(reference, other, tmp_path, capsys):
    empty = edited(other, tmp_path, "empty", lambda r: (r / "results.jsonl").write_text(""))
    code, _, err = cli(capsys, "compare", reference, empty, "--out", tmp_path / "c")
    assert code == 2 and f"{empty}: 0 explained" in one_line(err)
    assert not (tmp_path / "c").exists()


def test_crossres_reads_nothing_outside_root_and_never_a_fifo(root, tmp_path):
    """The root rule and the regular-file rule hold for crossres's images too: a pair naming
    ../secret/x.jpg, a symlink out of the root and a FIFO inside it each fail by name, unread."""
    base = tmp_path / "root"
    shutil.copytree(root / "images", base / "images")
    (tmp_path / "secret").mkdir()
    images = sorted((base / "images").iterdir())
    shutil.copy(images[0], tmp_path / "secret" / "x.jpg")
    os.mkfifo(base / "images" / "pipe.jpg")
    (base / "images" / "link.jpg").symlink_to(tmp_path / "secret" / "x.jpg")
    (base / "pairs.csv").write_text(
        f"images/{images[0].name},../secret/x.jpg,1\n"
        f"images/{images[1].name},images/pipe.jpg,0\n"
        f"images/{images[2].name},images/link.jpg,0\n"
        f"images/{images[2].name},images/{images[3].name},1\n"
    )
    command = [sys.executable, "-m", "freqxfr", "crossres", base / "pairs.csv", "--root", base]
    command += ["--factors", "2", "--bands", BANDS, "--boot", "50", "--no-progress"]
    command += ["--out", tmp_path / "run"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.count("outside the root folder") == 2 and "FIFO" in result.stderr


@pytest.fixture
def tiny_disk(tmp_path):
    """A real full disk: a 256 KiB tmpfs (needs root and mount; skipped elsewhere)."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_a_real_full_disk_names_the_file_and_the_run_resumes(reference, root, tiny_disk, capsys):
    """A tmpfs left with about 12 KiB: results.jsonl fills it after a few records; the error
    names the file and the records kept, no lock is left, and after space is freed the same
    command ends like an uninterrupted run. Full to the last byte: the lock cannot be written,
    and no 0-byte lock file is left."""
    filler = tiny_disk / "filler"
    free = os.statvfs(tiny_disk).f_bavail * os.statvfs(tiny_disk).f_frsize
    filler.write_bytes(b"\0" * (free - 12 * 1024))
    out = tiny_disk / "run"
    code, _, err = cli(capsys, *dataset(root, out))
    line = one_line(err)
    assert code == 2 and "No space left" in line and "resume" in line, line
    assert "results.jsonl" in line or "summary.json" in line or "run.json" in line, line
    assert not (out / LOCK_NAME).exists()
    filler.unlink()
    code, _, err = cli(capsys, *dataset(root, out))
    assert code == 0, err
    assert records(out) == records(reference)
    assert (out / "summary.json").read_bytes() == (reference / "summary.json").read_bytes()

    shutil.rmtree(out)
    full = tiny_disk / "full"
    full.mkdir()
    free = os.statvfs(tiny_disk).f_bavail * os.statvfs(tiny_disk).f_frsize
    filler.write_bytes(b"\0" * free)
    code, _, err = cli(capsys, *dataset(root, full))
    assert code == 2 and "No space left" in one_line(err) and str(full) in err
    assert list(full.iterdir()) == []  # no 0-byte lock file
