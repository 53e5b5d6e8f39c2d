"""What holds memory in ``freqxfr dataset``: peak resident memory per stage, per model.

Each (model, variant) runs in a fresh process that explains ``--pairs`` LFW pairs (pre-aligned
112 crops, spread over ``lfw_aligned112/pairs_generated.csv``) with ``run_dataset`` exactly as
``freqxfr dataset --no-report`` does (16 rings, default settings), and records:

- ``rss_mb`` after the imports, after loading the model (the ONNX Runtime session: weights and
  its optimised graph), after one warm-up explanation, and the peak over the whole run (Linux
  ``VmHWM``), with a trace of the resident size every 50 ms;
- ``numpy_peak_mb``: tracemalloc's peak over the run (numpy registers its buffers with it): what
  freqxfr's own arrays hold at most, i.e. the masking buffers, the model batches and the prefetched
  images, and the allocation sites that held most at the sampled peak;
- the rest of the peak (resident minus imports, model and numpy) is ONNX Runtime's working
  memory: its CPU arena (which keeps the largest batch's activations) and memory patterns.

Variants are memory budgets (``Explainer(memory_budget=...)``, ``--memory-budget``):
``default`` (none given: 1 GB) and ``512MB``; each records the plan the budget gave (images per
model call, prefetch depth, lanes, the estimate). Every variant's scores are compared bit for bit
with the default's. ONNX Runtime's CPU arena is off since the budget came (it kept SFace's
256-image calls' activations: 4.1 GB; ``results/memory.json`` measured that, with the arena
patched off as variants ``no_arena*``).

With ``--cli`` each (model, variant) also runs ``freqxfr dataset PAIRS --aligned --no-report
--memory-budget ...`` as its own process under ``/usr/bin/time -v`` and records its "Maximum
resident set size" (``cli_peak_rss_mb``): what a user sees.

    python benchmarks/bench_memory.py --cli --json results/memory_budget.json [--pairs 100]
    python benchmarks/bench_memory.py --smoke --json /tmp/memory.json   # seconds
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine_info

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
VARIANTS = ("default", "512MB")
#: The children's environment: "default" is the library's default budget, not the caller's.
_ENV = {k: v for k, v in os.environ.items() if k != "FREQXFR_MEMORY_BUDGET"}


def _status(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024  # MB
    return 0.0


class Sampler(threading.Thread):
    """Samples the resident size every ``period`` s, and a tracemalloc snapshot whenever the
    traced total reaches a new high (by 5 %)."""

    def __init__(self, period: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.period, self.trace, self.stop = period, [], threading.Event()
        self.t0, self.best, self.snapshot = time.perf_counter(), 0, None

    def run(self) -> None:
        while not self.stop.wait(self.period):
            self.trace.append((round(time.perf_counter() - self.t0, 2), round(_status("VmRSS"))))
            current = tracemalloc.get_traced_memory()[0]
            if current > 1.05 * self.best:
                self.best, self.snapshot = current, tracemalloc.take_snapshot()


def child(model_name: str, variant: str, n_pairs: int, out: Path) -> dict[str, Any]:
    """One measured run, in this (fresh) process."""
    import numpy as np

    from freqxfr.explanations.explainer import Explainer
    from freqxfr.explanations.pairs import read_pairs, spread
    from freqxfr.model.verifier import load_model
    from freqxfr.runs.dataset import run_dataset

    rss = {"imports": _status("VmRSS")}
    root = DATA
    pairs = spread(read_pairs(DATA / "lfw_aligned112" / "pairs_generated.csv", root=root), n_pairs)
    budget = {} if variant == "default" else {"memory_budget": variant}
    explainer = Explainer(load_model(model_name), 16, **budget)
    rss["model_loaded"] = _status("VmRSS")
    explainer.explain(pairs[0].path_a, pairs[0].path_b, aligned=True)
    rss["after_one_pair"] = _status("VmRSS")
    tracemalloc.start(8)
    sampler = Sampler()
    sampler.start()
    t0 = time.perf_counter()
    run_dataset(pairs, out, explainer, root=root, aligned=True, progress=False, report=False)
    seconds = time.perf_counter() - t0
    sampler.stop.set()
    sampler.join()
    numpy_peak = tracemalloc.get_traced_memory()[1] / 2**20
    sites = []
    if sampler.snapshot is not None:
        for stat in sampler.snapshot.statistics("lineno")[:8]:
            frame = stat.traceback[0]
            sites.append(
                {
                    "site": f"{Path(frame.filename).name}:{frame.lineno}",
                    "mb": round(stat.size / 2**20, 1),
                }
            )
    tracemalloc.stop()
    rss["peak"] = _status("VmHWM")
    scores = [
        json.loads(line)["score_ref"] for line in (out / "results.jsonl").read_text().splitlines()
    ]
    onnx_working = rss["peak"] - rss["model_loaded"] - numpy_peak
    return {
        "model": model_name,
        "variant": variant,
        "plan": {
            "memory_budget_mb": round(explainer.memory.budget / 2**20),
            "max_batch": explainer.max_batch,
            "prefetch": explainer.memory.prefetch,
            "lanes": explainer.memory.lanes,
            "estimate_mb": round(explainer.memory.estimate / 2**20),
        },
        "pairs": len(pairs),
        "seconds": round(seconds, 1),
        "seconds_per_pair": round(seconds / len(pairs), 3),
        "rss_mb": {k: round(v) for k, v in rss.items()},
        "model_mb": round(rss["model_loaded"] - rss["imports"]),
        "numpy_peak_mb": round(numpy_peak),
        "numpy_sites_at_peak": sites,
        "onnxruntime_working_mb_estimate": round(onnx_working),
        "scores_checksum": float(np.float64(np.sum(np.asarray(scores, np.float64)))),
        "scores": scores,
        "rss_trace_mb": sampler.trace[:: max(1, len(sampler.trace) // 200)],
    }


def measure(model_name: str, variant: str, n_pairs: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run(
            [sys.executable, __file__, "--child", model_name, variant, str(n_pairs), tmp],
            env=_ENV,
            capture_output=True,
            text=True,
            check=False,
        )
    if done.returncode != 0:
        raise SystemExit(f"{model_name}/{variant} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure_cli(model_name: str, variant: str, n_pairs: int) -> dict[str, Any]:
    """Peak RSS and wall time of ``freqxfr dataset`` over the same pairs, under /usr/bin/time -v."""
    from freqxfr.explanations.pairs import spread

    listing = (DATA / "lfw_aligned112" / "pairs_generated.csv").read_text().splitlines()
    chosen = spread(listing[1:], n_pairs)
    freqxfr = Path(sys.executable).with_name("freqxfr")
    with tempfile.TemporaryDirectory() as tmp:
        pairs = Path(tmp) / "pairs.csv"
        pairs.write_text("\n".join([listing[0], *chosen]) + "\n")
        command = [str(freqxfr), "dataset", str(pairs), "--root", str(DATA), "--aligned"]
        command += ["--out", str(Path(tmp) / "out"), "--no-report", "--no-progress"]
        command += ["--model", model_name]
        if variant != "default":
            command += ["--memory-budget", variant]
        t0 = time.perf_counter()
        if Path("/usr/bin/time").exists():
            done = subprocess.run(
                ["/usr/bin/time", "-v", *command], capture_output=True, text=True, env=_ENV
            )
            status, err = done.returncode, done.stderr
            peak_kb = max(
                [int(line.split(":")[1]) for line in err.splitlines() if "Maximum resident" in line]
                or [0]
            )
        else:  # the same number: time -v prints wait4's ru_maxrss
            child = subprocess.Popen(command, stdout=subprocess.DEVNULL, env=_ENV)
            _, status, usage = os.wait4(child.pid, 0)
            child.returncode, err, peak_kb = status, "", usage.ru_maxrss
        wall = time.perf_counter() - t0
    if status != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{err[-3000:]}")
    return {
        "command": " ".join(["freqxfr", *command[1:]]),
        "cli_peak_rss_mb": round(peak_kb / 1024),
        "cli_wall_s": round(wall, 1),
    }


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        model_name, variant, n, out = sys.argv[2:6]
        print(json.dumps(child(model_name, variant, int(n), Path(out))))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write results here")
    parser.add_argument("--models", default="dlib_resnet,sface")
    parser.add_argument("--pairs", type=int, default=100)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--smoke", action="store_true", help="dlib, 2 pairs, every variant, --cli")
    parser.add_argument(
        "--cli", action="store_true", help="also measure freqxfr dataset under /usr/bin/time -v"
    )
    args = parser.parse_args()
    models = ["dlib_resnet"] if args.smoke else args.models.split(",")
    args.cli = args.cli or args.smoke
    n_pairs = 2 if args.smoke else args.pairs
    results = []
    load = {"loadavg_before": os.getloadavg()}
    for model_name in models:
        runs = {}
        for v in args.variants.split(","):  # one at a time: each run is a process of its own
            runs[v] = measure(model_name, v, n_pairs)
            if args.cli:
                runs[v].update(measure_cli(model_name, v, n_pairs))
        base = runs.get("default")
        for r in runs.values():
            r["scores_identical_to_default"] = (
                None if base is None else r["scores"] == base["scores"]
            )
        for v, r in runs.items():
            del r["scores"]
            results.append(r)
            cli = f"; freqxfr dataset peak {r['cli_peak_rss_mb']} MB" if args.cli else ""
            print(
                f"{model_name} {v} {r['plan']}{cli}: {r['pairs']} pairs, "
                f"{r['seconds_per_pair']} s/pair; RSS MB "
                f"{r['rss_mb']}; numpy peak {r['numpy_peak_mb']} MB; ONNX Runtime working "
                f"~{r['onnxruntime_working_mb_estimate']} MB; scores identical: "
                f"{r['scores_identical_to_default']}"
            )
        _write(args, load, results)  # after each model: a run cut short keeps what it measured


def _write(args: argparse.Namespace, load: dict[str, Any], results: list[dict[str, Any]]) -> None:
    load["loadavg_after"] = os.getloadavg()
    payload = {
        "benchmark": "memory",
        "machine": machine_info("onnxruntime"),
        "load": load,
        "smoke": args.smoke,
        "results": results,
    }
    if args.json:
        from freqxfr.common import atomic

        atomic.write_output(args.json, json.dumps(payload, indent=2) + "\n")


if __name__ == "__main__":
    main()
