"""What drawing a pair's report costs, against explaining it.

Per picture of a pair report (``fhp.png``, ``bands.png``, ``strip.png``, ``curves.png``): the
median time to draw and write it, and its size; one pair's report without faithfulness curves
(plots + HTML, what ``freqxfr dataset`` draws per pair page); a dataset pair page's size (it links
its PNGs); the time of the explanation and of its faithfulness curves on the same pair; and
``freqxfr demo`` warm (a second run in a fresh process), wall and CPU time, split by its own
timings where it can.

The pair is a real LFW pair (pre-aligned 112 crops) with 16 rings, for dlib's ResNet and SFace.
Wall times on a shared machine wander with its load; the JSON records the load average and the
process CPU time beside each wall time.

    python benchmarks/bench_drawing.py --json results/drawing.json
    python benchmarks/bench_drawing.py --smoke --json /tmp/drawing.json   # seconds
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine_info

from freqxfr.common import atomic
from freqxfr.explanations.explainer import Explainer
from freqxfr.model.verifier import load_model
from freqxfr.reports import plots
from freqxfr.reports.dataset import write_pair_pages
from freqxfr.reports.pair import write_pair_report
from freqxfr.runs.pair import read_explanation, read_images, write_pair_outputs

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
PAIR = ("Jean_Charest/Jean_Charest_0001.jpg", "Jean_Charest/Jean_Charest_0008.jpg")


def timed(run, repeats: int) -> dict[str, float]:
    """Median wall and CPU (process) seconds of ``run()`` over ``repeats`` calls, after one."""
    run()
    walls, cpus = [], []
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        run()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return {
        "wall_s": round(statistics.median(walls), 4),
        "cpu_s": round(statistics.median(cpus), 4),
    }


def pair_costs(model_name: str, bands: int, seeds: int, repeats: int, work: Path) -> dict[str, Any]:
    explainer = Explainer(load_model(model_name), bands)
    images = DATA / "lfw_aligned112" / "images"
    a, b = (images / p for p in PAIR)
    folder = work / model_name
    explain = timed(lambda: explainer.explain(a, b, aligned=True), repeats)
    face_a, face_b = explainer.align(a, True), explainer.align(b, True)
    explanation = explainer.explain(face_a, face_b, aligned=True)
    curves = timed(
        lambda: explainer.faithfulness(face_a, face_b, seeds=seeds, explanation=explanation),
        max(1, repeats // 2),
    )
    write_pair_outputs(explainer, a, b, folder, aligned=True, same=True, faithfulness=True,
                       seeds=seeds, overwrite=True)  # fmt: skip
    record, stored = read_explanation(folder), read_images(folder)
    faces, views = stored["faces"], stored["views"]
    pictures = {
        "fhp.png": lambda: plots.plot_pair(record, faces, folder / "fhp.png"),
        "bands.png": lambda: plots.plot_band_bars(record, folder / "bands.png"),
        "strip.png": lambda: plots.plot_masked_strip(
            views, record["bands"], folder / "strip.png", faces=faces
        ),
        "curves.png": lambda: plots.plot_curves(record["faithfulness"], folder / "curves.png"),
    }
    per_picture = {}
    for name, draw in pictures.items():
        per_picture[name] = {**timed(draw, repeats), "bytes": (folder / name).stat().st_size}
    report_dir = work / f"{model_name}_report"
    report = timed(lambda: write_pair_report(report_dir, record, faces, views), repeats)
    # A dataset run's pair page: the same pictures, linked instead of embedded.
    run = work / f"{model_name}_run"
    page = run / "pairs" / "000000"
    write_pair_outputs(explainer, a, b, page, aligned=True, same=True, overwrite=True)
    line = {**read_explanation(page), "index": 0}
    page_time = timed(lambda: write_pair_pages(run, {}, [line], which="all"), repeats)
    return {
        "model": model_name,
        "bands": bands,
        "seeds": seeds,
        "pair": list(PAIR),
        "explain": explain,
        "faithfulness": curves,
        "pictures": per_picture,
        "pair_report_without_curves": {
            **report,
            "html_bytes": (report_dir / "report.html").stat().st_size,
        },
        "pair_page": {**page_time, "html_bytes": (page / "report.html").stat().st_size},
    }


def demo_cost(runs: int, work: Path) -> dict[str, Any]:
    """``freqxfr demo`` in fresh processes; the first warms the caches, the rest are timed."""
    exe = Path(sys.executable).with_name("freqxfr")
    command = [str(exe)] if exe.exists() else [sys.executable, "-m", "freqxfr"]
    out = work / "demo"
    walls, cpus = [], []
    for i in range(runs + 1):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run([*command, "demo", "--out", str(out)], check=True, capture_output=True)
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if i:
            walls.append(wall)
            cpus.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    sizes = {p.name: p.stat().st_size for p in sorted((out / "genuine").iterdir()) if p.is_file()}
    return {
        "runs": runs,
        "warm_wall_s": round(statistics.median(walls), 2),
        "warm_cpu_s": round(statistics.median(cpus), 2),
        "genuine_files_bytes": sizes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write results here")
    parser.add_argument("--models", default="dlib_resnet,sface")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--demo-runs", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="one model, 4 bands, no demo")
    args = parser.parse_args()
    models = ["dlib_resnet"] if args.smoke else args.models.split(",")
    bands, seeds = (4, 1) if args.smoke else (16, 5)
    repeats = 1 if args.smoke else args.repeats
    load = {"loadavg_before": os.getloadavg()}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        results = [pair_costs(m, bands, seeds, repeats, work) for m in models]
        demo = None if args.smoke else demo_cost(args.demo_runs, work)
    load["loadavg_after"] = os.getloadavg()
    for r in results:
        pics = ", ".join(
            f"{n} {v['wall_s']:.3f} s {v['bytes'] / 1e3:.0f} kB" for n, v in r["pictures"].items()
        )
        print(
            f"{r['model']}: explain {r['explain']['wall_s']:.3f} s, faithfulness "
            f"{r['faithfulness']['wall_s']:.2f} s; {pics}; pair report without curves "
            f"{r['pair_report_without_curves']['wall_s']:.3f} s "
            f"({r['pair_report_without_curves']['html_bytes'] / 1e6:.2f} MB); pair page "
            f"{r['pair_page']['html_bytes'] / 1e3:.1f} kB"
        )
    if demo:
        print(f"demo warm: {demo['warm_wall_s']} s wall, {demo['warm_cpu_s']} s CPU")
    payload = {
        "benchmark": "drawing",
        "machine": machine_info("matplotlib", "Pillow", "onnxruntime"),
        "load": load,
        "smoke": args.smoke,
        "results": results,
        "demo": demo,
    }
    if args.json:
        atomic.write_output(args.json, json.dumps(payload, indent=2) + "\n")


if __name__ == "__main__":
    main()
