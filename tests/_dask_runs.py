"""Helpers of the Dask run tests (tests/test_dask.py, tests/test_region_dask.py): the CLI in a
subprocess, a run's records by pair, and a client killed with SIGKILL after its first chunk."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from freqxfr.runs import distributed as fd
from freqxfr.runs.folder import read_results


def freqxfr(*args: str | Path) -> subprocess.CompletedProcess:
    """``python -m freqxfr ARGS``, its output captured."""
    return subprocess.run(
        [sys.executable, "-m", "freqxfr", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=900,
    )


def by_index(path: Path) -> dict[int, dict]:
    """Records by pair, without timings; fails on a pair written twice."""
    records: dict[int, dict] = {}
    for record in read_results(path):
        record.pop("timings_ms", None)
        assert record["index"] not in records, f"pair {record['index']} written twice"
        records[record["index"]] = record
    return records


def summary_of(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())


def kill_client_after_first_chunk(args: list, out: Path) -> list[str]:
    """Start ``freqxfr ARGS --out OUT --workers 2``, SIGKILL the client as soon as it has written
    its first chunk, check that no worker outlives it, and return the lines it kept."""
    psutil = pytest.importorskip("psutil")
    proc = subprocess.Popen(
        [sys.executable, "-m", "freqxfr", *map(str, args), "--out", str(out), "--workers", "2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while proc.poll() is None and not list((out / fd.PARTS).glob("chunk-*.jsonl")):
            time.sleep(0.01)
        children = psutil.Process(proc.pid).children(recursive=True)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # The client's cluster goes with it: the scheduler and nannies lived in the client, and
    # its worker processes exit when their parent does. (Stragglers are ended, by pid, before
    # the assertion, so that none outlives the test.)
    _, alive = psutil.wait_procs(children, timeout=60)
    for child in alive:
        child.kill()
    assert not alive, f"worker processes outlived their killed client: {alive}"
    parts = sorted((out / fd.PARTS).glob("chunk-*.jsonl"))
    assert parts, "the client finished before it could be killed"
    kept = [line for part in parts for line in part.read_text().splitlines()]
    assert not (out / "summary.json").exists()
    return kept


def assert_same_run(got: object, expected: object, where: str = "") -> None:
    """``got == expected``, but floats only to float32 rounding (relative 1e-3, absolute 1e-4:
    influences are differences of scores, and normalising them by the largest amplifies a last-bit
    difference of the scores).

    Why not to the bit: each process plans FFTW by measurement, and a worker (one masking thread)
    may be given another algorithm than the client for the same transform, whose rounding
    differs in the last float32 bit. Everything else (keys, order, strings, decisions, counts)
    must match exactly."""
    if isinstance(got, float) and isinstance(expected, float):
        assert math.isclose(got, expected, rel_tol=1e-3, abs_tol=1e-4), (
            f"{where}: {got} != {expected}"
        )
    elif isinstance(got, dict) and isinstance(expected, dict):
        assert list(got) == list(expected), f"{where}: keys {list(got)} != {list(expected)}"
        for key in got:
            assert_same_run(got[key], expected[key], f"{where}/{key}")
    elif isinstance(got, list) and isinstance(expected, list):
        assert len(got) == len(expected), f"{where}: {len(got)} items != {len(expected)}"
        for i, (a, b) in enumerate(zip(got, expected, strict=True)):
            assert_same_run(a, b, f"{where}[{i}]")
    else:
        assert got == expected, f"{where}: {got!r} != {expected!r}"
