"""Where an engine call's latency goes: a per-batch trace of N closed-loop callers.

For each caller count: pairs/s, p50/p99/max latency, per call the time queued vs its batch's
masking and model time, and per batch whether it ran wide (all cores) or narrow (a lane), and
how many wide batches overlapped another batch (three or more compute threads on two cores).
The slowest calls are printed as [latency, queue, mask, model] ms. A diagnostic, not a
benchmark: it wraps ``Engine._run`` to time the batches, and keeps no JSON.

    python benchmarks/trace_engine.py --callers 1,2,4,8 --calls 100 [--no-spin]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import add_smoke_option
from bench_latency import DATA, chips

from freqxfr.explanations.explainer import Explainer
from freqxfr.model.engine import Engine
from freqxfr.model.verifier import load_model


def traced(trace: list[dict]) -> None:
    """Record every batch's start, end, lane and width (wraps ``Engine._run``)."""
    run = Engine._run

    def wrapper(self, batch, lane, wide):
        t0 = time.perf_counter()
        run(self, batch, lane, wide)
        trace.append(
            {"t0": t0, "t1": time.perf_counter(), "lane": lane, "wide": wide, "n": len(batch)}
        )

    Engine._run = wrapper


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--callers", default="1,2,4,8")
    parser.add_argument("--calls", type=int, default=100, help="calls per caller count")
    parser.add_argument("--bands", type=int, default=16)
    parser.add_argument("--no-spin", action="store_true", help="load_model(spin=False)")
    add_smoke_option(parser)
    args = parser.parse_args()
    if args.smoke:
        args.callers, args.calls, args.bands = "1,2", 4, 4
    model = load_model("dlib_resnet", spin=not args.no_spin)
    explainer = Explainer(model, args.bands)
    faces = chips(model, 32, DATA)
    pairs = [(faces[2 * i], faces[2 * i + 1]) for i in range(16)]
    explainer.warmup()
    print(f"{Engine.for_model(model)}, spinning {not args.no_spin}", flush=True)
    trace: list[dict] = []
    traced(trace)
    for n in (int(c) for c in args.callers.split(",")):
        trace.clear()
        rows: list[tuple[float, float, float, float]] = []
        barrier = threading.Barrier(n)

        def caller(c: int, n: int = n, barrier=barrier, rows=rows) -> None:
            barrier.wait()
            for j in range(max(3, args.calls // n)):
                t0 = time.perf_counter()
                e = explainer.explain(*pairs[(c * 7 + j) % len(pairs)], aligned=True)
                t = e.timings_ms
                rows.append(((time.perf_counter() - t0) * 1e3, t["queue"], t["mask"], t["model"]))

        threads = [threading.Thread(target=caller, args=(c,)) for c in range(n)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        lat, queue, mask, run = (np.array([r[k] for r in rows]) for k in range(4))
        wide = [b for b in trace if b["wide"]]
        mixed = sum(
            any(o is not b and o["t0"] < b["t1"] and o["t1"] > b["t0"] for o in trace) for b in wide
        )
        print(
            f"N={n}: {len(rows)} calls, {len(rows) / wall:.2f} pairs/s, latency p50 "
            f"{np.percentile(lat, 50):.0f} / p99 {np.percentile(lat, 99):.0f} / max "
            f"{lat.max():.0f} ms (load {os.getloadavg()[0]:.2f})\n"
            f"   queue p50/p99 {np.percentile(queue, 50):.0f}/{np.percentile(queue, 99):.0f}, "
            f"mask {np.percentile(mask, 50):.1f}/{np.percentile(mask, 99):.1f}, model "
            f"{np.percentile(run, 50):.0f}/{np.percentile(run, 99):.0f} ms\n"
            f"   batches {len(trace)}: wide {len(wide)} (overlapping another batch: {mixed}), "
            f"requests per batch {statistics.mean(b['n'] for b in trace):.2f}",
            flush=True,
        )
        for name, chosen in (("wide", wide), ("narrow", [b for b in trace if not b["wide"]])):
            single = [(b["t1"] - b["t0"]) * 1e3 for b in chosen if b["n"] == 1]
            if single:
                print(
                    f"   {name} 1-request batches: median {statistics.median(single):.0f}, "
                    f"max {max(single):.0f} ms"
                )
        for i in np.argsort(lat)[-3:]:
            print("   slow call [latency, queue, mask, model] ms:", [round(v) for v in rows[i]])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
