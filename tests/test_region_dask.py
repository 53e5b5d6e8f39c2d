"""``dataset --regions`` on a real Dask ``LocalCluster``, against the single-process run, and
each image aligned once per pair for both the band explanation and the region cells.

Real parts throughout: dlib's ResNet (the default model; what is tested is the distribution and
the alignment, not the model), real FFTW and onnxruntime in every worker, LFW crops from
../shared/data. Coarse settings keep the cells cheap: 4 rings × a 2×2 grid, 2·4·4 + 2 = 34
cell embeddings and 10 band embeddings per pair. A pair's band explanation and cells depend on
its own images only, and worker and client run the same code
(:func:`freqxfr.runs.dataset.explain_chunk`) on the same model, so everything but the floats must
match exactly, and the floats to float32 rounding (:func:`_dask_runs.assert_same_run`: each
process plans FFTW by measurement; one CI run in three differed in the last bit).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("distributed")

from _dask_runs import (
    assert_same_run,
    by_index,
    freqxfr,
    kill_client_after_first_chunk,
    summary_of,
)
from distributed import Client, LocalCluster

from freqxfr.common.errors import OutputError
from freqxfr.explanations.explainer import Explainer
from freqxfr.explanations.pairs import Pair, read_pairs
from freqxfr.imaging import align
from freqxfr.imaging.regions import Regions
from freqxfr.reports import render_run
from freqxfr.runs import distributed as fd
from freqxfr.runs.dataset import run_dataset
from freqxfr.runs.folder import LOCK_NAME, read_results

pytestmark = pytest.mark.integration

BANDS = 4
REGIONS = "grid:2x2"


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
    """dlib's ResNet, 4 rings × 2×2 grid; one pair per model call (34 cell images), so that the
    automatic chunks are of 2 pairs and both workers and several chunks take part."""
    return Explainer(dlib_model, BANDS, max_batch=36, regions=REGIONS)


@pytest.fixture(scope="module")
def pairs(data_dir):
    """6 genuine and impostor pairs, and one whose image is missing (a per-pair failure)."""
    listed = read_pairs(data_dir / "lfw_aligned112" / "pairs_generated.csv", root=data_dir)
    chosen = listed[::250]
    missing = Pair(data_dir / "lfw_aligned112" / "no-such-image.jpg", chosen[0].path_b, False)
    return [*chosen[:3], missing, *chosen[3:6]]


@pytest.fixture(scope="module")
def reference(explainer, pairs, tmp_path_factory):
    """The single-process region run of ``pairs``: its folder."""
    out = tmp_path_factory.mktemp("single")
    run_dataset(pairs, out, explainer, progress=False, pair_pages="none")
    return out


def test_region_records_of_a_cluster_run_equal_the_single_process_records(
    client, explainer, pairs, reference, tmp_path
):
    """Guards against a cluster region run whose workers build another explainer than the
    client's (no regions, other weights: cells missing or different), that drops the cells or
    the region summary, or loses, repeats, reorders or changes pairs. The numbers agree to float32 rounding."""
    summary = run_dataset(
        pairs, tmp_path, explainer, progress=False, pair_pages="none", client=client
    )
    got, expected = by_index(tmp_path / "results.jsonl"), by_index(reference / "results.jsonl")
    assert sorted(got) == list(range(len(pairs)))
    assert "no-such-image" in got[3]["error"] and "cells" not in got[3]
    for index in set(got) - {3}:
        assert np.shape(got[index]["cells"]["a"]["directed"]) == (4, BANDS)
        assert np.shape(got[index]["a"]["directed"]) == (BANDS,)
    assert_same_run(got, expected)  # band influences and cells
    assert summary == summary_of(tmp_path)
    assert_same_run(summary, summary_of(reference))
    by_class = summary["regions"]["by_class"]
    assert by_class["all"]["n_images"] == 2 * (len(pairs) - 1)
    assert {"genuine", "impostor"} <= set(by_class)
    # Merged in pair order; no parts or lock left behind; the report has its region section.
    assert [r["index"] for r in read_results(tmp_path / "results.jsonl")] == list(range(7))
    assert not (tmp_path / fd.PARTS).exists() and not (tmp_path / LOCK_NAME).exists()
    render_run(tmp_path)  # the report is drawn from the folder, as the CLI does after a run
    assert "Where and which frequency" in (tmp_path / "report.html").read_text()


def test_a_finished_cluster_region_run_is_not_redone_and_other_regions_are_refused(
    client, explainer, pairs, tmp_path
):
    """Guards against a rerun that explains finished pairs again, and against a cluster path
    that lets a restart with another region set mix two region sets in one results file."""
    run_dataset(pairs[:2], tmp_path, explainer, progress=False, report=False, client=client)
    first = (tmp_path / "results.jsonl").read_text()
    run_dataset(pairs[:2], tmp_path, explainer, progress=False, report=False, client=client)
    assert (tmp_path / "results.jsonl").read_text() == first  # same timings: nothing redone
    other = Explainer(explainer.model, BANDS, max_batch=36, regions="grid:1x2")
    with pytest.raises(OutputError, match="--regions"):
        run_dataset(pairs[:2], tmp_path, other, progress=False, report=False, client=client)


@pytest.mark.parametrize(
    "regions",
    [
        Regions.grid(2, 2, edge=0.25),
        Regions.face(edge=0.5),
        Regions.from_arrays(
            np.stack([np.linspace(0, 1, 112 * 112, dtype=np.float32).reshape(112, 112)] * 2)
            * np.array([1, -1], np.float32)[:, None, None]
            + np.array([0, 1], np.float32)[:, None, None],
            ["ramp", "rest"],
        ),
    ],
    ids=["grid", "face", "custom"],
)
def test_a_worker_builds_the_clients_region_weights(explainer, regions):
    """Guards against a spec that rebuilds the region set from its name alone (default edges, or
    no way to rebuild custom maps): a worker's weights must be the client's, bit for bit."""
    client_side = Explainer(explainer.model, BANDS, regions=regions)
    spec = fd.ExplainerSpec.of(client_side, {})
    worker_side = spec.build()
    assert worker_side.regions.names == client_side.regions.names
    np.testing.assert_array_equal(worker_side.regions.weights, client_side.regions.weights)


def test_a_worker_with_other_region_weights_is_refused(explainer):
    """Guards against a worker whose region set differs from the client's (e.g. another
    template) computing cells silently: its first chunk is refused, naming ``--regions``."""
    import dataclasses

    spec = fd.ExplainerSpec.of(explainer, {})
    settings = json.loads(spec.settings)
    settings["--regions"]["sha256"] = "0" * 64
    tampered = dataclasses.replace(spec, settings=json.dumps(settings, sort_keys=True))
    with pytest.raises(fd.ClusterError, match="--regions"):
        tampered.build()


@pytest.fixture
def align_spy(monkeypatch):
    """A spy on the alignment every model uses (``align.card_crop``): the images it
    was called on, in this process (the threads of an in-process cluster included)."""
    calls: list[str] = []
    real = align.card_crop

    def spy(image, card, *args, **kwargs):
        calls.append(str(image))
        return real(image, card, *args, **kwargs)

    monkeypatch.setattr(align, "card_crop", spy)
    return calls


@pytest.mark.parametrize("where", ["one process", "cluster"])
def test_a_region_run_aligns_each_image_once_per_pair(
    align_spy, explainer, pairs, reference, tmp_path, where
):
    """Guards against a region run that aligns a pair's images twice, once for the band
    explanation and once for the cells (which doubles the alignment work of raw photos), in
    one process (here without overlap, so that both ways of aligning are covered) or on the
    workers; and checks that the lines are still those of the reference run, to the bit."""
    good = [i for i, p in enumerate(pairs) if p.path_a.exists()]
    chosen = [pairs[i] for i in good]
    if where == "cluster":  # threads, so that the spy sees the workers' calls
        with (
            LocalCluster(
                n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0"
            ) as cluster,
            Client(cluster) as c,
        ):
            run_dataset(chosen, tmp_path, explainer, progress=False, report=False, client=c)
    else:
        run_dataset(chosen, tmp_path, explainer, progress=False, report=False, overlap=False)
    assert sorted(align_spy) == sorted(
        str(p) for pair in chosen for p in (pair.path_a, pair.path_b)
    )
    got = by_index(tmp_path / "results.jsonl")
    expected = by_index(reference / "results.jsonl")
    for new, old in enumerate(good):
        assert_same_run({**got[new], "index": old}, expected[old])


def test_a_killed_region_client_resumes_from_its_finished_chunks(data_dir, tmp_path):
    """Guards against a `freqxfr dataset --regions grid:2x2 --workers 2` that is refused, that
    starts from zero after the client was killed, or that loses or repeats pairs when it
    resumes; the outcome equals the single-process command's, cells and region summary too."""
    args = [
        "dataset",
        data_dir / "lfw_aligned112" / "pairs_generated.csv",
        "--root",
        data_dir,
        "--limit",
        "8",
        "--no-progress",
        "--bands",
        str(BANDS),
        "--regions",
        REGIONS,
        "--pair-pages",
        "none",
    ]
    reference = freqxfr(*args, "--out", tmp_path / "single", "--no-report")  # not read
    assert reference.returncode == 0, reference.stderr

    out = tmp_path / "dask"
    kept = kill_client_after_first_chunk(args, out)
    assert 0 < len(kept) < 8
    assert all("cells" in json.loads(line) for line in kept)

    final = freqxfr(*args, "--out", out, "--workers", "2")
    assert final.returncode == 0, final.stderr
    lines = set((out / "results.jsonl").read_text().splitlines())
    assert lines.issuperset(kept)  # the finished chunks, timings and all: not redone
    got = by_index(out / "results.jsonl")
    assert sorted(got) == list(range(8))
    assert_same_run(got, by_index(tmp_path / "single" / "results.jsonl"))
    summary = summary_of(out)
    assert_same_run(summary, summary_of(tmp_path / "single"))
    assert summary["regions"]["provenance"]["kind"] == "grid"
    assert summary["regions"]["by_class"]["all"]["n_images"] == 16
    assert not (out / fd.PARTS).exists() and not (out / LOCK_NAME).exists()
