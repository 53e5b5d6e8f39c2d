"""Latency and throughput with 1, 2, 4 and 8 concurrent callers, with and without the engine.

N threads each explain pairs back to back (closed loop; dlib's ResNet by default, K = 16,
pre-aligned chips, two-sided explanations), through the model's engine (one queue, batched, with
lanes), on the direct path (every call runs its own masking and model call) and through an
engine with one lane (the engine before lanes; ``--no-one-lane`` skips it). All run in one
process on one ONNX Runtime session, in rotating rounds, so that load from other processes hits
them alike; the JSON keeps every round's pairs/s, and the ratios are taken per round.

Per callers and path: p50, p95 and p99 of the per-call latency (with the number of calls they
are taken over: by default 200, so that p99 is the second-slowest call, not the slowest of 24),
pairs/s, and where an engine call's time went (queued vs its batch running; the share of
batches that ran narrow, on a lane with a share of the cores). The callers of a round start
together on an idle engine, so their first calls also measure the engine's switch from one
caller's mode to many callers'; ``steady_p99_ms`` leaves out each caller's first ``RAMP_UP``
calls per round (the JSON and the table give both). Before measuring,
it checks that ONNX Runtime's rows do not depend on the rest of the batch and, during the run,
that every engine result equals the serial result of its pair bit for bit.

The machine's own spread: before and after the callers, the same fixed work alone (a CPU loop,
one pair's model call with all intra-op threads and with one), interleaved, as p99 / p50; a p99
target compares with it (see :func:`machine_spread`).

First-call latency: fresh processes that load the model and build the explainer, then time the
first call and the steady state, without and with ``warmup()`` in between (interleaved).

    python benchmarks/bench_latency.py --json results/latency.json [--model sface] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import add_smoke_option, machine_info, write_result

from freqxfr.common.cache import cache_dir
from freqxfr.explanations.explainer import Explainer
from freqxfr.imaging.images import load_image
from freqxfr.model.engine import Engine
from freqxfr.model.runner import Runner
from freqxfr.model.verifier import Verifier, load_model, to_model_input

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CALLERS = (1, 2, 4, 8)
RAMP_UP = 2  # calls per caller and round left out of the steady-state percentiles


def chips(model, count: int, data: Path) -> list[np.ndarray]:
    """``count`` real LFW faces as the model's aligned input (dlib chips are cut once and cached,
    in the folder bench_explain.py uses)."""
    sources = sorted((data / "lfw_aligned112" / "images").rglob("*.jpg"))[::7][:count]
    if model.card.input_size == (112, 112):
        return [load_image(p) for p in sources]
    folder = cache_dir("bench", "lfw_dlib_chips")
    out = []
    for src in sources:
        target = folder / src.parent.name / src.name.replace(".jpg", ".png")
        if not target.exists():
            target.parent.mkdir(exist_ok=True)
            Image.fromarray(model.align(src)).save(target)
        out.append(np.asarray(Image.open(target).convert("RGB")))
    return out


def rows_batch_invariant(model, faces: list[np.ndarray]) -> bool:
    """Whether each face's embedding is bit-identical alone, in a batch of 34 and of 136, and
    with one intra-op thread (as an engine lane runs it) instead of all."""
    x = to_model_input(np.stack(faces), model.card)
    big = np.concatenate([x] * (136 // len(x) + 1))[:136]
    run = model.runner.run_model  # straight to ONNX Runtime
    alone = np.concatenate([run(x[i : i + 1]) for i in range(len(x))])
    return bool(
        np.array_equal(run(big[:34])[: len(x)], alone)
        and np.array_equal(run(big)[: len(x)], alone)
        and np.array_equal(model.runner.with_threads(1).run_model(big[:34])[: len(x)], alone)
    )


def breakdown(model, explainer, pairs, repeats: int = 8) -> dict[str, Any]:
    """Where a lone call's time goes (direct path): masking, the model call, the rest (Python
    glue: stacking, scoring, building the result); and the model alone at 1 and all threads."""
    model.use_engine = False
    rows = []
    for i in range(repeats):
        t0 = time.perf_counter()
        e = explainer.explain(*pairs[i % len(pairs)], aligned=True)
        total = (time.perf_counter() - t0) * 1e3
        rows.append((total, e.timings_ms["mask"], e.timings_ms["model"]))
    model.use_engine = True
    total, mask, run = (statistics.median(r[k] for r in rows) for k in range(3))
    k = explainer.n_bands
    x = to_model_input(np.stack(list(pairs[0]) * (k + 1)), model.card)  # a pair's 2K + 2 images
    one = model.runner.with_threads(1)
    rates = {}
    for name, m in (("all_threads", model.runner), ("one_thread", one)):
        m.run_model(x)
        t0 = time.perf_counter()
        for _ in range(3):
            m.run_model(x)
        rates[name] = round(3 * x.shape[0] / (time.perf_counter() - t0), 1)
    return {
        "images_per_pair": x.shape[0],
        "latency_ms": round(total, 1),
        "mask_ms": round(mask, 1),
        "model_ms": round(run, 1),
        "other_ms": round(total - mask - run, 1),
        "model_images_per_s": rates,
        "loadavg_1min": os.getloadavg()[0],
    }


def spread(times_ms: list[float]) -> dict[str, float]:
    t = np.asarray(times_ms)
    p50, p99 = float(np.percentile(t, 50)), float(np.percentile(t, 99))
    return {"p50_ms": round(p50, 1), "p99_ms": round(p99, 1), "p99_over_p50": round(p99 / p50, 3)}


def cpu_loop(a: np.ndarray, out: np.ndarray, repeats: int = 2500) -> None:
    """About 100 ms of single-threaded arithmetic on 256 KiB (it stays in one core's L2): a
    fixed amount of work that touches neither ONNX Runtime nor memory bandwidth."""
    x = a
    for _ in range(repeats):
        np.multiply(x, x, out=out)
        np.add(out, 1.0, out=out)
        np.sqrt(out, out=out)
        x = out


def machine_spread(model, faces: list[np.ndarray], samples: int = 40) -> dict[str, Any]:
    """How much the same work's time spreads on this machine, with nothing else running in the
    process: a fixed CPU loop, one lone call of a pair's 2K + 2 images with all intra-op threads
    (the engine's wide run) and with one (a narrow lane's run), interleaved.

    Why: in a closed loop a caller's mean latency is N / throughput, so p99 <= N x the single
    caller's p50 needs a throughput gain at N callers larger than the spread of one call. At 2
    callers each call is one narrow run, so ``floor_at_2`` = narrow p99 / (2 x wide p50) is about
    the best p99 / (2 x single p50) two lanes can reach here."""
    x = to_model_input(np.stack(faces[:2] * 17), model.card)  # 34 images, as a K = 16 pair
    one = model.runner.with_threads(1)
    a = np.random.default_rng(0).random(65536, dtype=np.float32)
    out = np.empty_like(a)
    work = {
        "cpu_loop": lambda: cpu_loop(a, out),
        "wide_model_call": lambda: model.runner.run_model(x),
        "narrow_model_call": lambda: one.run_model(x),
    }
    times: dict[str, list[float]] = {name: [] for name in work}
    for fn in work.values():
        fn()
    for _ in range(samples):
        for name, fn in work.items():
            t0 = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - t0) * 1e3)
    out_ = {name: spread(t) for name, t in times.items()}
    out_["samples"] = samples
    out_["floor_at_2"] = round(
        out_["narrow_model_call"]["p99_ms"] / (2 * out_["wide_model_call"]["p50_ms"]), 3
    )
    return out_


def one_round(explainer, pairs, serial, callers: int, calls: int, engine: bool) -> dict[str, Any]:
    """``callers`` threads, each explaining ``calls`` pairs back to back (with ``explainer``'s
    model's engine, or on the direct path)."""
    explainer.model.use_engine = engine
    stats = explainer.model.engine.stats
    batches0, requests0, lanes0 = stats.batches, stats.requests, stats.lane_batches
    latencies: list[list[float]] = [[] for _ in range(callers)]
    waits: list[float] = []  # per call: ms queued in the engine, and ms its batch ran
    runs: list[float] = []
    mismatches = [0]
    barrier = threading.Barrier(callers + 1)

    def caller(c: int) -> None:
        barrier.wait()
        for j in range(calls):
            i = (c * calls + j) % len(pairs)
            t0 = time.perf_counter()
            e = explainer.explain(*pairs[i], aligned=True)
            latencies[c].append(time.perf_counter() - t0)
            waits.append(e.timings_ms.get("queue", 0.0))
            runs.append(e.timings_ms["mask"] + e.timings_ms["model"])
            want = serial[i]
            if not (
                e.score_ref == want.score_ref
                and np.array_equal(e.a.scores, want.a.scores)
                and np.array_equal(e.b.scores, want.b.scores)
            ):
                mismatches[0] += 1

    threads = [threading.Thread(target=caller, args=(c,)) for c in range(callers)]
    for t in threads:
        t.start()
    barrier.wait()
    t0, cpu0 = time.perf_counter(), time.process_time()
    for t in threads:
        t.join()
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    flat = [v for per in latencies for v in per]
    # CPU time per pair (all threads of this process) measures the work a pair costs; on a
    # shared machine it is less sensitive to other processes than wall time, which also depends
    # on how many runnable threads the OS sees here (the direct path has more of them).
    out = {
        "pairs_per_s": len(flat) / wall,
        "latencies_ms": [v * 1e3 for v in flat],
        # Without each caller's first RAMP_UP calls: the callers start together on an idle
        # engine, so the first calls of a round also measure its switch from one caller's
        # mode (all cores per call) to many callers' (lanes).
        "steady_latencies_ms": [v * 1e3 for per in latencies for v in per[RAMP_UP:]],
        "queue_ms": waits,
        "run_ms": runs,
        "cpu_ms_per_pair": cpu / len(flat) * 1e3,
        "mismatches": mismatches[0],
    }
    if engine:
        out["requests_per_batch"] = (stats.requests - requests0) / max(1, stats.batches - batches0)
        out["lane_batch_share"] = (stats.lane_batches - lanes0) / max(1, stats.batches - batches0)
    return out


def summary(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    lat = np.concatenate([r["latencies_ms"] for r in rounds])
    steady = np.concatenate([r["steady_latencies_ms"] for r in rounds])
    wait = np.concatenate([r["queue_ms"] for r in rounds])
    run = np.concatenate([r["run_ms"] for r in rounds])
    out = {
        "calls": int(lat.size),
        "p50_ms": round(float(np.percentile(lat, 50)), 1),
        "p95_ms": round(float(np.percentile(lat, 95)), 1),
        "p99_ms": round(float(np.percentile(lat, 99)), 1),
        "max_ms": round(float(lat.max()), 1),
        "steady_calls": int(steady.size),
        "steady_p50_ms": round(float(np.percentile(steady, 50)), 1),
        "steady_p99_ms": round(float(np.percentile(steady, 99)), 1),
        # Where a call's time went: queued in the engine, and its batch's masking + model
        # (the rest is the caller's own: building the explanation).
        "queue_p50_p99_ms": [round(float(np.percentile(wait, q)), 1) for q in (50, 99)],
        "run_p50_p99_ms": [round(float(np.percentile(run, q)), 1) for q in (50, 99)],
        "pairs_per_s": round(statistics.median(r["pairs_per_s"] for r in rounds), 2),
        "pairs_per_s_rounds": [round(r["pairs_per_s"], 2) for r in rounds],
        "cpu_ms_per_pair": round(statistics.median(r["cpu_ms_per_pair"] for r in rounds), 1),
        "mismatches": sum(r["mismatches"] for r in rounds),
    }
    if "requests_per_batch" in rounds[0]:
        out["requests_per_batch"] = round(
            statistics.mean(r["requests_per_batch"] for r in rounds), 2
        )
        out["lane_batch_share"] = round(statistics.mean(r["lane_batch_share"] for r in rounds), 2)
    return out


def concurrency(args, explainer, one_lane, pairs, serial) -> list[dict[str, Any]]:
    """Per caller count: the engine, the direct path and (``one_lane``, unless ``None``) an
    engine with one lane (the engine before lanes), in rotating order per round."""
    arms = {"engine": (explainer, True), "direct": (explainer, False)}
    if one_lane is not None:
        arms["engine_one_lane"] = (one_lane, True)
    results = []
    for n in (int(c) for c in args.callers.split(",")):
        calls = max(args.min_calls, args.calls // n)
        rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in arms}
        names = list(arms)
        for r in range(args.rounds):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                ex, engine = arms[name]
                rounds[name].append(one_round(ex, pairs, serial, n, calls, engine))
        eng, direct = summary(rounds["engine"]), summary(rounds["direct"])
        ratios = [
            e["pairs_per_s"] / d["pairs_per_s"]
            for e, d in zip(rounds["engine"], rounds["direct"], strict=True)
        ]
        entry = {
            "callers": n,
            "calls_per_caller": calls,
            "engine": eng,
            "direct": direct,
            "throughput_ratio_engine_vs_direct": round(statistics.median(ratios), 3),
            "throughput_ratio_rounds": [round(v, 3) for v in ratios],
            "loadavg_1min": os.getloadavg()[0],
        }
        if one_lane is not None:
            entry["engine_one_lane"] = summary(rounds["engine_one_lane"])
            entry["throughput_ratio_engine_vs_one_lane"] = round(
                statistics.median(
                    e["pairs_per_s"] / o["pairs_per_s"]
                    for e, o in zip(rounds["engine"], rounds["engine_one_lane"], strict=True)
                ),
                3,
            )
        results.append(entry)
        print(
            f"{n} callers: engine p50 {eng['p50_ms']:.0f} / p95 {eng['p95_ms']:.0f} / p99 "
            f"{eng['p99_ms']:.0f} ms (steady p99 {eng['steady_p99_ms']:.0f}), "
            f"{eng['pairs_per_s']:.2f} pairs/s "
            f"(n={eng['calls']}; queue p50/p99 {eng['queue_p50_p99_ms'][0]:.0f}/"
            f"{eng['queue_p50_p99_ms'][1]:.0f}, run {eng['run_p50_p99_ms'][0]:.0f}/"
            f"{eng['run_p50_p99_ms'][1]:.0f}; {eng.get('requests_per_batch', 1):.2f} requests/batch,"
            f" {eng.get('lane_batch_share', 0):.2f} narrow) | direct p50 "
            f"{direct['p50_ms']:.0f} / p95 {direct['p95_ms']:.0f} / p99 {direct['p99_ms']:.0f} ms, "
            f"{direct['pairs_per_s']:.2f} pairs/s | engine/direct {entry['throughput_ratio_engine_vs_direct']:.2f}"
            f" | CPU ms/pair {eng['cpu_ms_per_pair']:.0f} vs {direct['cpu_ms_per_pair']:.0f}"
            f" (load {entry['loadavg_1min']:.1f})",
            flush=True,
        )
        if one_lane is not None:
            o = entry["engine_one_lane"]
            print(
                f"   one lane: p50 {o['p50_ms']:.0f} / p99 {o['p99_ms']:.0f} ms (queue p99 "
                f"{o['queue_p50_p99_ms'][1]:.0f}, run p99 {o['run_p50_p99_ms'][1]:.0f}), "
                f"{o['pairs_per_s']:.2f} pairs/s | lanes / one lane "
                f"{entry['throughput_ratio_engine_vs_one_lane']:.2f}",
                flush=True,
            )
    return results


def targets(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The issue's targets, judged on the engine's numbers."""
    one = results[0]["engine"]
    out = {}
    for entry in results[1:]:
        n, eng = entry["callers"], entry["engine"]
        out[str(n)] = {
            "throughput_at_least_single": eng["pairs_per_s"] >= one["pairs_per_s"],
            "throughput_vs_single": round(eng["pairs_per_s"] / one["pairs_per_s"], 3),
            "p99_within_n_times_single_p50": eng["p99_ms"] <= n * one["p50_ms"],
            "p99_over_n_times_single_p50": round(eng["p99_ms"] / (n * one["p50_ms"]), 3),
            # The same after each caller's first RAMP_UP calls of a round (steady state).
            "steady_p99_over_n_times_single_p50": round(
                eng["steady_p99_ms"] / (n * one["p50_ms"]), 3
            ),
            "engine_beats_direct": entry["throughput_ratio_engine_vs_direct"] > 1,
        }
    return out


# ---- first call, in fresh processes ----------------------------------------------------------


def first_call_child(args) -> None:
    """One fresh process: load, build, [warm up], then time the first and steady calls."""
    t0 = time.perf_counter()
    model = load_model(args.model)
    explainer = Explainer(model, args.bands)
    t1 = time.perf_counter()
    if args.engine_settings:
        Engine.for_model(model, **json.loads(args.engine_settings))
    faces = np.load(args.first_call_faces)
    warm = None
    if args.first_call == "warm":
        t = time.perf_counter()
        explainer.warmup()
        warm = (time.perf_counter() - t) * 1e3
    times = []
    for i in range(6):
        t = time.perf_counter()
        explainer.explain(faces[2 * i % len(faces)], faces[(2 * i + 1) % len(faces)], aligned=True)
        times.append((time.perf_counter() - t) * 1e3)
    print(
        json.dumps(
            {
                "load_ms": (t1 - t0) * 1e3,
                "warmup_ms": warm,
                "first_ms": times[0],
                "steady_ms": statistics.median(times[1:]),
            }
        )
    )


def first_call(args, faces: list[np.ndarray], settings: dict[str, Any]) -> dict[str, Any]:
    path = cache_dir("bench") / "latency_faces.npy"
    np.save(path, np.stack(faces[:12]))
    runs: dict[str, list[dict[str, float]]] = {"cold": [], "warm": []}
    for r in range(args.first_call_repeats):
        for kind in ("cold", "warm") if r % 2 == 0 else ("warm", "cold"):
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--first-call",
                    kind,
                    "--first-call-faces",
                    str(path),
                    "--model",
                    args.model,
                    "--bands",
                    str(args.bands),
                    "--engine-settings",
                    json.dumps(settings),
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            runs[kind].append(json.loads(out.stdout.strip().splitlines()[-1]))
    result = {}
    for kind, values in runs.items():
        result[kind] = {
            key: round(statistics.median(v[key] for v in values), 1)
            for key in values[0]
            if values[0][key] is not None
        }
        result[kind]["repeats"] = len(values)
        print(
            f"first call, {'after warmup()' if kind == 'warm' else 'no warmup'}: {result[kind]}",
            flush=True,
        )
    return result


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| callers | calls | engine p50 / p95 / p99 (steady p99) (ms) | engine pairs/s "
        "| direct p50 / p95 / p99 "
        "(ms) | direct pairs/s | pairs/s engine / direct | CPU ms per pair, engine / direct |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for e in results:
        a, b = e["engine"], e["direct"]
        lines.append(
            f"| {e['callers']} | {a['calls']} | {a['p50_ms']:.0f} / {a['p95_ms']:.0f} / "
            f"{a['p99_ms']:.0f} ({a['steady_p99_ms']:.0f}) "
            f"| {a['pairs_per_s']:.1f} | {b['p50_ms']:.0f} / {b['p95_ms']:.0f} / "
            f"{b['p99_ms']:.0f} | {b['pairs_per_s']:.1f} | "
            f"{e['throughput_ratio_engine_vs_direct']:.2f}× | "
            f"{a['cpu_ms_per_pair']:.0f} / {b['cpu_ms_per_pair']:.0f} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--model", default="dlib_resnet")
    parser.add_argument("--providers", default=None, help="e.g. cuda (default: the CPU)")
    parser.add_argument("--bands", type=int, default=16)
    parser.add_argument("--no-spin", action="store_true", help="load_model(spin=False)")
    parser.add_argument("--rounds", type=int, default=2)
    # 2 rounds × 100 calls: a p99 of 200 calls per caller count and path (the 2nd-slowest call),
    # about 5 minutes for all of it on 2 cores.
    parser.add_argument(
        "--calls", type=int, default=100, help="calls per round, split over callers"
    )
    parser.add_argument("--min-calls", type=int, default=4, help="least calls per caller per round")
    parser.add_argument("--max-wait-ms", type=float, default=0.0)
    parser.add_argument("--max-batch", type=int, default=128)
    parser.add_argument("--lanes", type=int, default=None, help="engine lanes (default: auto)")
    parser.add_argument(
        "--no-one-lane",
        action="store_true",
        help="skip the one-lane engine (the engine before lanes)",
    )
    parser.add_argument(
        "--callers", default=",".join(map(str, CALLERS)), help="comma-separated caller counts"
    )
    parser.add_argument("--first-call-repeats", type=int, default=3)
    parser.add_argument(
        "--spread-samples",
        type=int,
        default=40,
        help="samples of each fixed piece of work, before and after the callers",
    )
    parser.add_argument("--first-call", choices=("cold", "warm"), help=argparse.SUPPRESS)
    parser.add_argument("--first-call-faces", help=argparse.SUPPRESS)
    parser.add_argument("--engine-settings", help=argparse.SUPPRESS)
    add_smoke_option(parser)
    args = parser.parse_args()
    if args.smoke:
        args.rounds, args.calls, args.min_calls, args.callers = 1, 6, RAMP_UP + 1, "1,2"
        args.bands, args.first_call_repeats, args.spread_samples = 4, 1, 2
    if args.first_call:
        first_call_child(args)
        return 0

    load_start = os.getloadavg()
    model = load_model(args.model, providers=args.providers, spin=not args.no_spin)
    settings = {"max_wait_ms": args.max_wait_ms, "max_batch": args.max_batch, "lanes": args.lanes}
    engine = Engine.for_model(model, **settings)
    explainer = Explainer(model, args.bands)
    faces = chips(model, 32, args.data)
    pairs = [(faces[2 * i], faces[2 * i + 1]) for i in range(len(faces) // 2)]

    model.use_engine = False
    invariant = rows_batch_invariant(model, faces[:8])
    serial = [explainer.explain(a, b, aligned=True) for a, b in pairs]  # references, and warm-up
    model.use_engine = True
    explainer.warmup()
    print(
        f"ONNX Runtime rows independent of the batch and thread count: {invariant}; "
        f"engine {engine}",
        flush=True,
    )
    where = breakdown(model, explainer, pairs)
    print(f"a lone call: {where}", flush=True)

    one_lane = None
    if engine.lanes > 1 and not args.no_one_lane:
        # The same session under a second runner: its own engine, with one lane.
        r = model.runner
        twin = Verifier(
            Runner(
                r.session,
                r.card,
                r.path,
                input_name=r.input_name,
                output_name=r.output_name,
                fixed_batch=r.fixed_batch,
            )
        )
        Engine.for_model(twin, **{**settings, "lanes": 1})
        one_lane = Explainer(twin, args.bands)
        one_lane.warmup()
    # The machine's own spread, sampled before and after the callers (the run takes minutes).
    noise_before = machine_spread(model, faces, args.spread_samples)
    results = concurrency(args, explainer, one_lane, pairs, serial)
    noise_after = machine_spread(model, faces, args.spread_samples)
    noise = {"before": noise_before, "after": noise_after}
    print(f"machine spread (p99 / p50 of the same work, alone): {noise}", flush=True)
    print(table(results))
    first = first_call(args, faces, settings) if args.first_call_repeats > 0 else None
    out = {
        "benchmark": "latency",
        "machine": machine_info("onnxruntime"),
        "loadavg_at_start": load_start,
        "loadavg_at_end": os.getloadavg(),
        "niceness": os.nice(0),  # < 0: run at raised priority on a machine shared with others
        "model": model.card.name,
        "provider": model.provider,
        "bands": args.bands,
        "onnxruntime_spinning": not args.no_spin,
        "engine_settings": {
            **settings,
            "lanes": engine.lanes,
            "mask_threads": engine.mask_threads,
            "intra_op_threads": engine.intra_op_threads,
        },
        "lone_call_breakdown": where,
        "rows_batch_invariant": invariant,
        "most_batches_in_flight": engine.stats.most_in_flight,
        "engine_results_equal_serial": all(
            e["engine"]["mismatches"] == 0 and e["direct"]["mismatches"] == 0 for e in results
        ),
        "concurrency": results,
        "targets": targets(results),
        "machine_spread": noise,
        "first_call": first,
        "rounds_detail": "latencies per call are summarised; every round's pairs/s is kept",
    }
    print(json.dumps(out["targets"], indent=1))
    write_result(args.json, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
