"""Dataset runs on Dask: pairs/s of one process against a LocalCluster of 1 and 2 workers.

The same ``--pairs`` pairs (spread over ``lfw_aligned112/pairs_generated.csv``), the same model
and bands, explained by ``run_dataset`` four ways in one run of this script:

- **single**: the single-process path (the model loaded beforehand, as in the other runs);
- **1 worker**, **2 workers**: a LocalCluster started as ``freqxfr dataset --workers N`` starts
  it (one thread per worker process; each worker's model and masking get the machine's usable
  cores divided by the workers on it). For each: the time to start the cluster, a *cold* run
  (every worker loads the model and plans FFTW on its first chunk), then a *warm* run of the
  same pairs into a fresh folder (the workers' cached explainers), and each worker's resident
  memory after the runs.

Reported ratios: warm pairs/s of each cluster over the single process (the overhead at one
worker; the scaling at two). Summaries are checked equal to the single-process one.

The load average is recorded before and after every phase: on a shared machine, read the
ratios together with it.

    python benchmarks/bench_dask.py --json benchmarks/results/dask.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine_info

from freqxfr import atomic
from freqxfr import distributed as fd
from freqxfr.dataset import run_dataset
from freqxfr.explain import Explainer
from freqxfr.pairs import read_pairs, spread
from freqxfr.verifier import load_model

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def timed_run(pairs, out: Path, explainer: Explainer, client=None) -> tuple[float, dict]:
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    summary = run_dataset(pairs, out, explainer, progress=False, report=False, client=client)
    return time.perf_counter() - t0, summary


def worker_rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def cluster_phase(n_workers: int, pairs, explainer: Explainer, work: Path,
                  reference: dict) -> dict[str, Any]:
    from distributed import Client, LocalCluster

    result: dict[str, Any] = {"workers": n_workers, "load_before": load()}
    t0 = time.perf_counter()
    with LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                      dashboard_address=None, silence_logs=logging.ERROR) as cluster, \
            Client(cluster) as client:
        client.wait_for_workers(n_workers)
        result["start_s"] = round(time.perf_counter() - t0, 2)
        cold, summary = timed_run(pairs, work / f"cold{n_workers}", explainer, client)
        warm, again = timed_run(pairs, work / f"warm{n_workers}", explainer, client)
        assert summary == again == reference, "a cluster run's summary differs from one process's"
        rss = client.run(worker_rss_mb)
        builds = client.run(lambda: __import__("freqxfr.distributed").distributed.builds)
    result.update({
        "cold_s": round(cold, 2),
        "cold_pairs_per_s": round(len(pairs) / cold, 2),
        "warm_s": round(warm, 2),
        "warm_pairs_per_s": round(len(pairs) / warm, 2),
        "worker_rss_mb": sorted(round(v, 1) for v in rss.values()),
        "explainers_built_per_worker": sorted(builds.values()),
        "chunk_pairs": fd.chunk_size(len(pairs), n_workers, fd.batch_pairs(explainer)),
        "load_after": load(),
    })
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=64)
    parser.add_argument("--model", default="dlib_resnet")
    parser.add_argument("--bands", type=int, default=16)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    pairs = spread(read_pairs(DATA / "lfw_aligned112" / "pairs_generated.csv", root=DATA),
                   args.pairs)
    explainer = Explainer(load_model(args.model), args.bands)
    work = Path(tempfile.mkdtemp(prefix="freqxfr-bench-dask-"))
    try:
        before = load()
        single_s, reference = timed_run(pairs, work / "single", explainer)
        single = {"s": round(single_s, 2), "pairs_per_s": round(len(pairs) / single_s, 2),
                  "load_before": before, "load_after": load()}
        print(f"single process: {single['pairs_per_s']} pairs/s ({single_s:.1f} s), "
              f"load {before} -> {single['load_after']}", flush=True)
        clusters = []
        for n in (1, 2):
            phase = cluster_phase(n, pairs, explainer, work, reference)
            phase["warm_over_single"] = round(phase["warm_pairs_per_s"] / single["pairs_per_s"], 3)
            clusters.append(phase)
            print(f"{n} worker(s): start {phase['start_s']} s, cold {phase['cold_pairs_per_s']} "
                  f"pairs/s, warm {phase['warm_pairs_per_s']} pairs/s "
                  f"(x{phase['warm_over_single']} of one process), chunk {phase['chunk_pairs']} "
                  f"pairs, worker RSS {phase['worker_rss_mb']} MB, load {phase['load_before']} "
                  f"-> {phase['load_after']}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = {
        "benchmark": "dask",
        "machine": machine_info("onnxruntime", "dask", "distributed"),
        "model": args.model,
        "bands": args.bands,
        "pairs": len(pairs),
        "single": single,
        "clusters": clusters,
        "two_over_one_worker": round(clusters[1]["warm_pairs_per_s"]
                                     / clusters[0]["warm_pairs_per_s"], 3),
        "note": "the machine is shared: see load_before/load_after (1-minute, 5, 15 load "
                "averages) next to each rate",
    }
    print(f"2 workers / 1 worker: x{result['two_over_one_worker']}")
    if args.json:
        atomic.write_text(args.json, json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
