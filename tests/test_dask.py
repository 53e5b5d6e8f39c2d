"""Dataset, cross-resolution and morph runs on a real Dask ``LocalCluster`` of two worker
processes (:mod:`freqxfr.runs.distributed`), against the single-process path on the same pairs.

Real parts throughout: dlib's ResNet (the default model; what is tested is the distribution, not
the model, and SFace costs about six times as much per pair), real FFTW and onnxruntime in every
worker, LFW crops and FRLL morphs from ../shared/data. Each test uses a few pairs, split into
small chunks (an explainer with 2 pairs per model call, and the automatic chunk size of whole
model calls, at least four chunks per worker where the pairs allow), so that both workers and
several chunks take part. Numbers are compared to the last bit: every pair's explanation depends
on its own images only (the kill/resume tests of the single-process path already rely on batch
composition not changing a number), and worker and client run the same code on the same model.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

pytest.importorskip("distributed")

from _dask_runs import by_index, freqxfr, kill_client_after_first_chunk, summary_of
from distributed import Client, LocalCluster

from freqxfr.common.errors import OutputError
from freqxfr.explanations.explainer import Explainer
from freqxfr.explanations.pairs import Pair, read_pairs
from freqxfr.reports import render_run
from freqxfr.runs import distributed as fd
from freqxfr.runs.cluster import ClusterError
from freqxfr.runs.dataset import read_results, run_dataset
from freqxfr.runs.folder import LOCK_NAME

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def client():
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as c,
    ):
        c.wait_for_workers(2)
        yield c


@pytest.fixture(scope="module")
def explainer(dlib_model):
    """dlib's ResNet, 8 bands, 2 pairs per model call: chunks (whole model calls) of a few
    pairs."""
    return Explainer(dlib_model, 8, max_batch=36)


@pytest.fixture(scope="module")
def pairs(data_dir):
    """12 genuine and impostor pairs, and one whose image is missing (a per-pair failure)."""
    listed = read_pairs(data_dir / "lfw_aligned112" / "pairs_generated.csv", root=data_dir)
    chosen = listed[::125]
    missing = Pair(data_dir / "lfw_aligned112" / "no-such-image.jpg", chosen[0].path_b, False)
    return [*chosen[:5], missing, *chosen[5:]]


@pytest.fixture(scope="module")
def reference(explainer, pairs, tmp_path_factory):
    """The single-process run of ``pairs``: its folder."""
    out = tmp_path_factory.mktemp("single")
    run_dataset(pairs, out, explainer, progress=False, parquet=True)
    return out


def test_distributed_results_equal_single_process_results(
    client, explainer, pairs, reference, tmp_path
):
    """Guards against a cluster run that loses, repeats, reorders or changes pairs, or turns a
    bad pair into a lost chunk; and against workers that load the model for every chunk."""
    summary = run_dataset(pairs, tmp_path, explainer, progress=False, parquet=True, client=client)
    got, expected = by_index(tmp_path / "results.jsonl"), by_index(reference / "results.jsonl")
    assert sorted(got) == list(range(len(pairs)))
    assert got == expected  # every number to the last bit
    assert "no-such-image" in got[5]["error"] and summary["failed"] == 1
    assert summary == summary_of(reference) == summary_of(tmp_path)
    import pyarrow.parquet as pq

    assert pq.read_table(tmp_path / "results.parquet").equals(
        pq.read_table(reference / "results.parquet")
    )
    # Merged in pair order, like a single-process run; no parts or lock left behind.
    assert [r["index"] for r in read_results(tmp_path / "results.jsonl")] == list(range(len(pairs)))
    assert not (tmp_path / fd.PARTS).exists() and not (tmp_path / LOCK_NAME).exists()
    render_run(tmp_path)  # the report is drawn from the folder, as the CLI does after a run
    assert (tmp_path / "report.html").is_file()
    # 4 chunks over two workers, one explainer each (the spec cache, not a model per chunk).
    builds = client.run(lambda: __import__("freqxfr.runs.distributed", fromlist=["builds"]).builds)
    assert sorted(builds.values()) == [1, 1], builds


def test_a_finished_cluster_run_is_not_redone_and_other_settings_are_refused(
    client, explainer, pairs, tmp_path
):
    """Guards against a rerun that explains finished pairs again, and against a cluster path
    that skips the settings check of a restart."""
    run_dataset(pairs[:4], tmp_path, explainer, progress=False, report=False, client=client)
    first = (tmp_path / "results.jsonl").read_text()
    run_dataset(pairs[:4], tmp_path, explainer, progress=False, report=False, client=client)
    assert (tmp_path / "results.jsonl").read_text() == first  # same timings: nothing redone
    with pytest.raises(OutputError, match="schedule"):
        run_dataset(
            pairs[:4],
            tmp_path,
            Explainer(explainer.model, 4),
            progress=False,
            report=False,
            client=client,
        )


def test_a_worker_killed_mid_run_loses_only_its_chunk(client, explainer, data_dir, tmp_path):
    """Guards against a run that loses (or writes twice) the pairs of a worker that died with
    SIGKILL in the middle of a chunk."""
    listed = read_pairs(data_dir / "lfw_aligned112" / "pairs_generated.csv", root=data_dir)
    # 34 pairs, 6 per chunk (3 model calls): 6 chunks, enough work left after the first part for
    # the kill to land mid-run with dlib's fast model.
    pairs = listed[3::45]
    single = tmp_path / "single"
    run_dataset(pairs, single, explainer, progress=False, report=False)
    pids = client.run(os.getpid)
    killed: list[int] = []

    def kill_a_busy_worker() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not killed:
            busy = [w for w, tasks in client.processing().items() if tasks and w in pids]
            if busy and (tmp_path / "dask" / fd.PARTS).is_dir():  # mid-run: a part is written
                os.kill(pids[busy[0]], signal.SIGKILL)
                killed.append(pids[busy[0]])
            time.sleep(0.02)

    killer = threading.Thread(target=kill_a_busy_worker)
    killer.start()
    try:
        run_dataset(
            pairs, tmp_path / "dask", explainer, progress=False, report=False, client=client
        )
    finally:
        killed.append(-1)  # stops the killer if the run ended first
        killer.join()
    assert killed[0] > 0, "the run finished before a worker could be killed"
    got = by_index(tmp_path / "dask" / "results.jsonl")
    assert sorted(got) == list(range(len(pairs)))
    assert got == by_index(single / "results.jsonl")
    client.wait_for_workers(2, timeout=120)  # the nanny restarts it for the next tests


def test_a_killed_client_resumes_from_its_finished_chunks(data_dir, tmp_path):
    """Guards against a `freqxfr dataset --workers 2` that starts from zero after the client
    was killed, or that loses or repeats pairs when it resumes; and checks that the command
    works from the command line at all."""
    args = [
        "dataset",
        data_dir / "lfw_aligned112" / "pairs_generated.csv",
        "--root",
        data_dir,
        "--limit",
        "16",
        "--no-progress",
        "--bands",
        "8",
    ]
    reference = freqxfr(*args, "--out", tmp_path / "single", "--no-report")  # not read
    assert reference.returncode == 0, reference.stderr

    out = tmp_path / "dask"
    kept = kill_client_after_first_chunk(args, out)
    assert 0 < len(kept) < 16

    final = freqxfr(*args, "--out", out, "--workers", "2")
    assert final.returncode == 0, final.stderr
    lines = set((out / "results.jsonl").read_text().splitlines())
    assert lines.issuperset(kept)  # the finished chunks, timings and all: not redone
    got = by_index(out / "results.jsonl")
    assert sorted(got) == list(range(16))
    assert got == by_index(tmp_path / "single" / "results.jsonl")
    assert summary_of(out) == summary_of(tmp_path / "single")
    assert not (out / fd.PARTS).exists() and not (out / LOCK_NAME).exists()


def test_crossres_over_dask_gives_the_single_process_summary(client, explainer, pairs, tmp_path):
    """Guards against a cross-resolution run whose cluster path loses a (factor, pair), lists
    failed images differently, or changes a number."""
    from freqxfr.runs.crossres import run_crossres

    chosen = pairs[:7]  # with the pair whose image is missing
    options = dict(factors=(1.0, 4.0), n_boot=200, report=False)
    single = run_crossres(chosen, tmp_path / "single", explainer, **options)
    dask = run_crossres(chosen, tmp_path / "dask", explainer, client=client, **options)
    assert dask == single
    assert len(single["failed"]) == 1 and single["pairs"] == 6
    assert (tmp_path / "dask" / "pairs.csv").read_text() == (
        tmp_path / "single" / "pairs.csv"
    ).read_text()
    records = [
        json.loads(line)
        for line in (tmp_path / "dask" / "explanations.jsonl").read_text().splitlines()
    ]
    assert sorted((r["factor"], r["index"]) for r in records) == sorted(
        (f, i) for f in (1.0, 4.0) for i in range(7) if i != 5
    )


@pytest.fixture(scope="module")
def small_morph_index(data_dir, tmp_path_factory):
    """Two 'full' morphs of the FRLL index: 4 attack and 4 bona fide comparisons."""
    lines = (data_dir / "frll_morphs" / "index.csv").read_text().splitlines()
    picked = [lines[0], *[line for line in lines[1:] if ",full," in line][:2]]
    path = tmp_path_factory.mktemp("morph-index") / "index.csv"
    path.write_text("\n".join(picked) + "\n")
    return path


def test_morph_over_dask_gives_the_single_process_summary(
    client, explainer, small_morph_index, data_dir, tmp_path
):
    """Guards against a morph run whose cluster path loses, repeats or changes a comparison."""
    from freqxfr.runs.morph import run_morph
    from freqxfr.runs.morph_index import read_morph_index

    entries = read_morph_index(small_morph_index, root=data_dir)
    single = run_morph(entries, tmp_path / "single", explainer, root=data_dir, n_boot=200)
    dask = run_morph(
        entries,
        tmp_path / "dask",
        explainer,
        root=data_dir,
        n_boot=200,
        client=client,
    )
    assert dask == single
    for name in ("comparisons.csv", "explanations.jsonl"):
        got = (tmp_path / "dask" / name).read_text().splitlines()
        want = (tmp_path / "single" / name).read_text().splitlines()
        assert len(got) == len(want) == (9 if name.endswith("csv") else 8)
        if name.endswith("csv"):
            assert got == want


def test_workers_with_other_versions_are_refused():
    """Guards against a cluster run that mixes freqxfr versions (or numpy, onnxruntime)."""
    local = fd.versions()
    fd.check_versions(local, {"tcp://a:1": dict(local), "tcp://b:1": dict(local)})
    other = {**local, "freqxfr": "0.0.1"}
    with pytest.raises(ClusterError, match=r"tcp://b:1: freqxfr 0\.0\.1 \(client: "):
        fd.check_versions(local, {"tcp://a:1": dict(local), "tcp://b:1": other})


def test_a_worker_that_builds_another_model_is_refused(explainer):
    """Guards against a worker whose model conversion or card differs from the client's
    explaining with it anyway."""
    spec = fd.ExplainerSpec.of(explainer, {})
    settings = json.loads(spec.settings)
    assert fd.ExplainerSpec.of(spec.build(), {}).settings == spec.settings
    settings["--model"] = settings["--model"].replace("sha256 ", "sha256 0")
    with pytest.raises(ClusterError, match=r"--model: client .*sha256 0"):
        dataclasses.replace(spec, settings=json.dumps(settings, sort_keys=True)).build()


def test_an_unreachable_scheduler_is_one_line_and_exit_status_2(data_dir, tmp_path):
    """Guards against a traceback (or a half-made output folder) when --scheduler names no
    scheduler."""
    env = {**os.environ, "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "1s"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "freqxfr",
            "dataset",
            str(data_dir / "lfw_aligned112" / "pairs_generated.csv"),
            "--root",
            str(data_dir),
            "--out",
            str(tmp_path / "out"),
            "--scheduler",
            "tcp://127.0.0.1:9",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(
        "freqxfr dataset: error: cannot reach the Dask scheduler tcp://127.0.0.1:9"
    )
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_chunks_are_whole_model_calls_spread_over_the_workers():
    """Guards against chunks that split model calls (half-empty batches on every worker), that
    leave nothing to overlap with the model, or that are too few to keep every worker busy."""
    assert fd.chunk_size(10_000, 2, 7) == 7 * fd.MAX_BATCHES_PER_CHUNK
    assert fd.chunk_size(64, 2, 7) == 14  # 5 chunks for 2 workers
    assert fd.chunk_size(13, 2, 2) == 4  # two batches: one to prepare while one runs
    assert fd.chunk_size(16, 2, 14) == 14 and fd.chunk_size(3, 4, 7) == 7
