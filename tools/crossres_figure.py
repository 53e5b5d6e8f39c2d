"""Make docs/crossres.png from saved results: dlib with the default (edge) alignment padding and
SFace, each with the bicubic and the spectral kernel.

SFace comes from ``bench_scenarios.py``'s ``benchmarks/results/scenarios.json``; dlib from the
edge-padding run summaries ``benchmarks/results/crossres_dlib_edge_{bicubic,spectral}.json`` (the
scenarios file's dlib rows are from before ``--padding``, with dlib's black band). Nothing is
re-run: the figure draws the numbers the README's table gives.

python tools/crossres_figure.py [--out docs/crossres.png]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_scenarios import DATA, draw_crossres  # noqa: E402

from freqxfr.explanations.pairs import read_pairs  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "crossres.png")
    args = parser.parse_args()
    results = []
    for kernel in ("bicubic", "spectral"):
        summary = json.loads((RESULTS / f"crossres_dlib_edge_{kernel}.json").read_text())
        results.append({**summary, "model": "dlib_resnet", "kernel_name": kernel})
    scenarios = json.loads((RESULTS / "scenarios.json").read_text())
    results += [r for r in scenarios["crossres"] if r["model"] == "sface"]
    example = read_pairs(DATA / "lfw_aligned112" / "pairs_generated.csv", root=DATA)[0].path_b
    draw_crossres(results, example, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
