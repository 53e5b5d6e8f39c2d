"""kill -9, then the same command again: ``dataset``, ``crossres`` and ``morph`` end with the
same outputs as an uninterrupted run, with no pair lost or repeated.

Each run is a real ``freqxfr`` process on real data (LFW crops, FRLL morphs) with dlib's ResNet
(the model is not what these tests are about; SFace cost six times as much per pair) and 16
bands, planned for a 256 MB memory budget: model calls of a few images (dlib needs 246 MB for
one), so the 8 results lines arrive one by one, about a sixth of a second apart (crossres: 4
pairs at each of 2 factors).
A run is killed with SIGKILL once its results file holds a given number of lines (once the
first line is written, and once all lines are written, while the summary and report are being
made), then the same command runs to the end. The outputs are compared field by field with an
uninterrupted run's; only the timings, which differ between any two runs, are left out."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from freqxfr.runs.folder import LOCK_NAME

pytestmark = pytest.mark.integration

#: Small model calls (results do not depend on the call size): the lines arrive one by one, so
#: the first kill, once one line is written, lands long before the last of the 8 lines.
COMMON = ["--model", "dlib_resnet", "--bands", "16", "--memory-budget", "256MB"]


def freqxfr(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "freqxfr", *args], capture_output=True, text=True, timeout=600
    )


def lines_in(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def kill_when(args: list[str], results: Path, lines: int) -> bool:
    """Start the command and SIGKILL it once ``results`` has ``lines`` lines; False if it
    finished first."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "freqxfr", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while proc.poll() is None:
            if lines_in(results) >= lines:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                return True
            time.sleep(0.01)
        return False
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def interrupted_then_finished(
    args: list[str], out: Path, results: str, kill_points: list[int], total: int
) -> None:
    """Kill the command at each point in turn, then run it to the end.

    The first kill must hit a run that had written some results but not all: results are
    streamed, not written at the end. The lines finished before each kill must stay,
    unchanged and in place, to the end: a restart continues after them instead of starting
    again."""
    kept: list[str] = []
    for k, n in enumerate(kill_points):
        hit = kill_when([*args, "--out", str(out)], out / results, n)
        text = (out / results).read_text() if (out / results).exists() else ""
        kept = text.splitlines()[: text.count("\n")]  # complete lines only
        if k == 0:
            assert hit and 0 < len(kept) < total, (hit, len(kept))
    final = freqxfr([*args, "--out", str(out)])
    assert final.returncode == 0, final.stderr
    assert not (out / LOCK_NAME).exists()
    assert (out / results).read_text().splitlines()[: len(kept)] == kept


def reference_beside(args: list[str], out: Path, killed: Path, results: str, total: int) -> None:
    """The uninterrupted run into ``out``, in a second process while the killed run and its
    restarts go on (most of a run is imports and model load on one core; the kill points are
    counted in lines, not time)."""
    with ThreadPoolExecutor(1) as pool:
        reference = pool.submit(freqxfr, [*args, "--out", str(out)])
        interrupted_then_finished(args, killed, results, [1, 8], total=total)
        done = reference.result()
    assert done.returncode == 0, done.stderr


def jsonl(path: Path, key: str | tuple[str, ...]) -> dict:
    """Records by key, without timings; fails on a repeated key (a pair written twice)."""
    records = {}
    for line in path.read_text().splitlines():
        record = json.loads(line)
        record.pop("timings_ms", None)
        k = record[key] if isinstance(key, str) else tuple(record[p] for p in key)
        assert k not in records, f"{k} written twice in {path.name}"
        records[k] = record
    return records


def rows(path: Path) -> list[dict]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def summary(path: Path) -> dict:
    return json.loads((path / "summary.json").read_text())


def test_dataset_killed_twice_ends_like_an_uninterrupted_run(data_dir, tmp_path):
    """Guards against lost or repeated pairs after a crash of `freqxfr dataset`."""
    args = [
        "dataset",
        str(data_dir / "lfw_aligned112" / "pairs_generated.csv"),
        "--root",
        str(data_dir),
        "--limit",
        "8",
        "--no-progress",
        *COMMON,
    ]
    out = tmp_path / "killed"
    reference_beside(args, tmp_path / "reference", out, "results.jsonl", total=8)

    expected = jsonl(tmp_path / "reference" / "results.jsonl", "index")
    got = jsonl(out / "results.jsonl", "index")
    assert sorted(got) == list(range(8))
    assert got == expected
    assert summary(out) == summary(tmp_path / "reference")


def test_crossres_killed_twice_ends_like_an_uninterrupted_run(data_dir, tmp_path):
    """Guards against a `freqxfr crossres` that started from zero after a crash, and against
    lost or repeated (factor, pair) results when it resumes."""
    args = [
        "crossres",
        str(data_dir / "lfw_aligned112" / "pairs_generated.csv"),
        "--root",
        str(data_dir),
        "--limit",
        "4",
        "--factors",
        "1,4",
        "--boot",
        "200",
        "--no-progress",
        *COMMON,
    ]
    out = tmp_path / "killed"
    reference_beside(args, tmp_path / "reference", out, "explanations.jsonl", total=8)

    key = ("factor", "index")
    got = jsonl(out / "explanations.jsonl", key)
    assert sorted(got) == [(f, i) for f in (1.0, 4.0) for i in range(4)]
    assert got == jsonl(tmp_path / "reference" / "explanations.jsonl", key)
    assert rows(out / "pairs.csv") == rows(tmp_path / "reference" / "pairs.csv")
    assert summary(out) == summary(tmp_path / "reference")


@pytest.fixture(scope="module")
def small_morph_index(data_dir, tmp_path_factory):
    """Two 'full' morphs of the FRLL index: 4 attack and 4 bona fide comparisons."""
    lines = (data_dir / "frll_morphs" / "index.csv").read_text().splitlines()
    picked = [lines[0], *[line for line in lines[1:] if ",full," in line][:2]]
    path = tmp_path_factory.mktemp("morph-index") / "index.csv"
    path.write_text("\n".join(picked) + "\n")
    return path


def test_morph_killed_twice_ends_like_an_uninterrupted_run(data_dir, small_morph_index, tmp_path):
    """Guards against a `freqxfr morph` that started from zero after a crash, and against
    lost or repeated comparisons when it resumes."""
    args = ["morph", str(small_morph_index), "--root", str(data_dir), "--boot", "200", *COMMON]
    out = tmp_path / "killed"
    reference_beside(args, tmp_path / "reference", out, "explanations.jsonl", total=8)

    got = jsonl(out / "explanations.jsonl", "comparison")
    assert sorted(got) == list(range(8))
    assert got == jsonl(tmp_path / "reference" / "explanations.jsonl", "comparison")
    assert rows(out / "comparisons.csv") == rows(tmp_path / "reference" / "comparisons.csv")
    assert summary(out) == summary(tmp_path / "reference")
