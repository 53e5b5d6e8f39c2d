"""SIGINT and SIGTERM at random points of a real ``freqxfr dataset`` run (issue 27).

Each trial starts a real process (dlib, 4 bands, 4 LFW pairs, no report: the smallest run that
still streams several results), waits until it holds its output folder's lock (the run has
started), sends the signal after a random delay within the run's length, and checks: exit
status 130 (SIGINT) or 143 (SIGTERM), one line on stderr, no traceback, no abort, the lock
released; then the same command resumes the run, and its records and summary equal an
uninterrupted run's exactly (timings aside). 20 trials per signal; a trial whose run finished
before the signal arrived is drawn again. Four trials run at a time to keep the test short.
"""

from __future__ import annotations

import fcntl
import json
import os
import random
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from freqxfr.runs.folder import LOCK_NAME

pytestmark = pytest.mark.integration

TRIALS = 20
EXPECTED = {signal.SIGINT: 130, signal.SIGTERM: 143}
WORD = {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated"}


def dataset_args(data_dir: Path, out: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "freqxfr",
        "dataset",
        str(data_dir / "lfw_aligned112" / "pairs_generated.csv"),
        "--root",
        str(data_dir),
        "--limit",
        "4",
        "--bands",
        "4",
        "--no-progress",
        "--no-report",
        "--out",
        str(out),
    ]


def records(out: Path) -> dict[int, dict]:
    got = {}
    for line in (out / "results.jsonl").read_text().splitlines():
        record = json.loads(line)
        record.pop("timings_ms", None)
        assert record["index"] not in got, "a pair written twice"
        got[record["index"]] = record
    return got


def lock_free(out: Path) -> bool:
    """No lock file left, and nobody holds the folder's flock."""
    lock = out / LOCK_NAME
    if not lock.exists():
        return True
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False  # the file was left behind, though no one holds it
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


@pytest.fixture(scope="module")
def reference(data_dir, tmp_path_factory):
    """An uninterrupted run, and how long its work took after it took its lock."""
    out = tmp_path_factory.mktemp("signals") / "reference"
    start = time.monotonic()
    proc = subprocess.Popen(dataset_args(data_dir, out), stderr=subprocess.PIPE, text=True)
    locked = None
    while proc.poll() is None:
        if locked is None and (out / LOCK_NAME).exists():
            locked = time.monotonic()
        time.sleep(0.005)
    _, err = proc.communicate()
    assert proc.returncode == 0, err
    end = time.monotonic()
    return out, end - (locked or start)


def trial(data_dir: Path, out: Path, sig: int, span: float, seed: int) -> str | None:
    """One interrupted run then its resume; ``None`` if the run finished before the signal
    (no hit), else a description of what went wrong, or ``"ok"``."""
    rng = random.Random(seed)
    proc = subprocess.Popen(
        dataset_args(data_dir, out), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 120
        while not (out / LOCK_NAME).exists() and proc.poll() is None:
            if time.monotonic() > deadline:
                return "the run never took its lock"
            time.sleep(0.002)
        time.sleep(rng.uniform(0.0, span))
        if proc.poll() is None:
            proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if proc.returncode == 0:
        return None  # finished first: draw again
    lines = err.strip().splitlines()
    problems = []
    if proc.returncode != EXPECTED[sig]:
        problems.append(f"exit {proc.returncode}")
    if len(lines) != 1 or WORD[sig] not in lines[0] or "resume with the same command" not in err:
        problems.append(f"stderr {err!r}")
    if "Traceback" in err or "terminate called" in err:
        problems.append("traceback or abort")
    if out.exists() and not lock_free(out):
        problems.append("lock not released")
    if problems:
        return "; ".join(problems)
    resumed = subprocess.run(
        dataset_args(data_dir, out), capture_output=True, text=True, timeout=300
    )
    if resumed.returncode != 0:
        return f"resume failed: {resumed.stderr!r}"
    return "ok"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_at_a_random_point_stops_cleanly_and_resumes_exactly(
    sig, reference, data_dir, tmp_path
):
    ref_out, span = reference
    expected = records(ref_out)
    expected_summary = json.loads((ref_out / "summary.json").read_text())

    def until_hit(k: int) -> tuple[str, Path]:
        for attempt in range(10):
            out = tmp_path / f"t{k}-{attempt}"
            result = trial(data_dir, out, sig, span, seed=1000 * int(sig) + 10 * k + attempt)
            if result is not None:
                return result, out
        return "the run always finished before the signal", out

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(until_hit, range(TRIALS)))
    failed = [(k, r) for k, (r, _) in enumerate(results) if r != "ok"]
    assert not failed, failed
    for _, out in results:
        assert records(out) == expected
        summary = json.loads((out / "summary.json").read_text())
        assert summary == expected_summary
        assert lock_free(out)
