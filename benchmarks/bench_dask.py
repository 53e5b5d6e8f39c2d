"""Dataset runs on Dask: pairs/s of one process against a LocalCluster of 1 and 2 workers.

The same ``--pairs`` pairs (spread over ``lfw_aligned112/pairs_generated.csv``), the same model
and bands, explained by ``run_dataset`` three ways in one run of this script:

- **single**: the single-process path (the model loaded and warm, as for the workers);
- **1 worker**, **2 workers**: a LocalCluster started as ``freqxfr dataset --workers N`` starts
  it (one thread per worker process; each worker's model and masking get the machine's usable
  cores divided by the workers on it).

First each cluster is started (timed: until every worker has joined) and does one *cold* run
(every worker loads the model and plans FFTW on its first chunk). Then ``--rounds`` rounds
run the three ways one after the other into fresh folders, so that a change of the machine's
load hits all three alike; the medians give the ratios (the overhead at one worker, the
scaling at two). On a shared machine wall-clock rates follow the load; the CPU time per pair
of the client (with the scheduler and nannies) and its workers shows the Dask path's own cost regardless. Every
summary is checked equal to the single-process one. Also reported:
each worker's resident memory and how many explainers it built (1: the per-process cache).
``--regions face|grid:RxC`` measures region × band runs (``dataset --regions``) the same way.

    python benchmarks/bench_dask.py --json benchmarks/results/dask.json
    python benchmarks/bench_dask.py --regions grid:2x2 --model sface --bands 4 --pairs 8
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import add_smoke_option, machine_info

from freqxfr.common import atomic
from freqxfr.explanations.explainer import Explainer
from freqxfr.explanations.pairs import read_pairs, spread
from freqxfr.model.verifier import load_model
from freqxfr.runs import distributed as fd
from freqxfr.runs.dataset import run_dataset

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def timed_run(pairs, out: Path, explainer: Explainer, client=None) -> tuple[float, dict]:
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    summary = run_dataset(pairs, out, explainer, progress=False, report=False, client=client)
    return time.perf_counter() - t0, summary


def cpu_s(pids: list[int]) -> float:
    """CPU seconds (user + system) used so far by these processes (this one included)."""
    import psutil

    return sum(sum(psutil.Process(pid).cpu_times()[:2]) for pid in {os.getpid(), *pids})


def worker_rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def start_cluster(stack: contextlib.ExitStack, n_workers: int) -> tuple[Any, float]:
    """A LocalCluster as ``--workers N`` starts it, and the seconds until all workers joined."""
    from distributed import Client, LocalCluster

    t0 = time.perf_counter()
    cluster = stack.enter_context(
        LocalCluster(
            n_workers=n_workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            silence_logs=logging.ERROR,
        )
    )
    client = stack.enter_context(Client(cluster))
    client.wait_for_workers(n_workers)
    return client, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=28)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--model", default="dlib_resnet")
    parser.add_argument("--bands", type=int, default=16)
    parser.add_argument(
        "--regions", default=None, help="face or grid:RxC: region × band runs (dataset --regions)"
    )
    parser.add_argument("--json", type=Path, default=None)
    add_smoke_option(parser)
    args = parser.parse_args()
    if args.smoke:
        args.pairs, args.rounds, args.bands = 4, 1, 4

    pairs = spread(
        read_pairs(DATA / "lfw_aligned112" / "pairs_generated.csv", root=DATA), args.pairs
    )
    explainer = Explainer(load_model(args.model), args.bands, regions=args.regions)
    work = Path(tempfile.mkdtemp(prefix="freqxfr-bench-dask-"))
    ways = ["single", "1 worker", "2 workers"]
    rates: dict[str, list[float]] = {w: [] for w in ways}
    cpu_ms: dict[str, list[float]] = {w: [] for w in ways}  # per pair, client + its workers
    loads: list[list[float]] = [load()]
    clusters: dict[str, dict[str, Any]] = {}
    with contextlib.ExitStack() as stack:
        _, reference = timed_run(pairs, work / "first", explainer)  # warms the client's model
        clients = {}
        pids: dict[str, list[int]] = {"single": []}
        for n, name in ((1, "1 worker"), (2, "2 workers")):
            clients[name], start = start_cluster(stack, n)
            # Workers are child processes; LocalCluster's nannies live in this process.
            pids[name] = list(clients[name].run(os.getpid).values())
            cold, summary = timed_run(pairs, work / f"cold{n}", explainer, clients[name])
            assert summary == reference, "a cluster run's summary differs from one process's"
            clusters[name] = {
                "workers": n,
                "start_s": round(start, 2),
                "cold_run_s": round(cold, 2),
                "chunk_pairs": fd.chunk_size(len(pairs), n, fd.batch_pairs(explainer)),
            }
            print(
                f"{name}: started in {start:.2f} s; cold run (model load and FFTW plans in "
                f"each worker) {cold:.1f} s",
                flush=True,
            )
        # Alternating rounds, so that a change in the machine's load hits every way alike.
        for r in range(args.rounds):
            for name in ways:
                cpu0 = cpu_s(pids[name])
                seconds, summary = timed_run(
                    pairs, work / f"{name}-{r}", explainer, clients.get(name)
                )
                cpu_ms[name].append(1000 * (cpu_s(pids[name]) - cpu0) / len(pairs))
                assert summary == reference
                rates[name].append(len(pairs) / seconds)
            loads.append(load())
            print(
                f"round {r + 1}: "
                + ", ".join(
                    f"{w} {rates[w][-1]:.2f} pairs/s ({cpu_ms[w][-1]:.0f} CPU ms/pair)"
                    for w in ways
                )
                + f"; load {loads[-1]}",
                flush=True,
            )
        for name, client in clients.items():
            clusters[name]["worker_rss_mb"] = sorted(
                round(v, 1) for v in client.run(worker_rss_mb).values()
            )
            clusters[name]["explainers_built_per_worker"] = sorted(
                client.run(
                    lambda: __import__("freqxfr.runs.distributed", fromlist=["builds"]).builds
                ).values()
            )
    shutil.rmtree(work, ignore_errors=True)
    median = {w: statistics.median(v) for w, v in rates.items()}
    result = {
        "benchmark": "dask",
        "machine": machine_info("onnxruntime", "dask", "distributed"),
        "model": args.model,
        "bands": args.bands,
        "regions": args.regions,
        "pairs": len(pairs),
        "rounds": args.rounds,
        "pairs_per_s": {w: [round(x, 3) for x in v] for w, v in rates.items()},
        "median_pairs_per_s": {w: round(v, 3) for w, v in median.items()},
        "cpu_ms_per_pair": {w: [round(x, 1) for x in v] for w, v in cpu_ms.items()},
        "median_cpu_ms_per_pair": {w: round(statistics.median(v), 1) for w, v in cpu_ms.items()},
        "one_worker_over_single": round(median["1 worker"] / median["single"], 3),
        "two_workers_over_single": round(median["2 workers"] / median["single"], 3),
        "two_over_one_worker": round(median["2 workers"] / median["1 worker"], 3),
        "clusters": clusters,
        "load_average_after_each_round": loads,
        "note": "1-, 5- and 15-minute load averages of the shared machine, at the start and "
        "after each round; the ways alternate within each round",
    }
    print(
        json.dumps(
            {
                k: result[k]
                for k in (
                    "median_pairs_per_s",
                    "median_cpu_ms_per_pair",
                    "one_worker_over_single",
                    "two_workers_over_single",
                    "two_over_one_worker",
                    "clusters",
                )
            },
            indent=1,
        )
    )
    if args.json:
        atomic.write_text(args.json, json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
