"""The two scenarios on the shared data, with both built-in models: numbers and wall time.

- Cross-resolution (``freqxfr.runs.crossres``): ``--pairs`` pairs spread evenly over
  ``lfw_aligned112/pairs_generated.csv`` (half genuine, half impostor), factors 1, 2, 4, 8, for
  each kernel in ``--kernels`` (default bicubic and spectral). SFace takes the 112 crops as they
  are; dlib's ResNet gets chips re-cut with dlib's landmarks (the model's own ``prepare``).
- Morphing attacks (``freqxfr.runs.morph``): the whole ``frll_morphs/index.csv``.

Every run uses 16 equal-width rings, deletion in the pixel domain (the defaults) and 2,000
bootstrap resamples. Full outputs (reports included) go to ``--out`` (default: a folder in the
freqxfr cache). ``--docs DIR`` also draws the README's two pictures from the results.

    python benchmarks/bench_scenarios.py --json benchmarks/results/scenarios.json --docs docs
"""

from __future__ import annotations

import argparse
import io
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import add_smoke_option, machine_info

from freqxfr.common import atomic
from freqxfr.common.cache import cache_dir
from freqxfr.explanations.explainer import Explainer
from freqxfr.explanations.pairs import read_pairs, spread
from freqxfr.imaging.images import load_image
from freqxfr.imaging.resolution import degrade
from freqxfr.model.verifier import load_model
from freqxfr.reports import plots
from freqxfr.runs.crossres import run_crossres
from freqxfr.runs.morph import run_morph
from freqxfr.runs.morph_index import read_morph_index

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
MODELS = ("dlib_resnet", "sface")
FACTORS = (1.0, 2.0, 4.0, 8.0)
BANDS = 16
MORPHS: int | None = None  # morph index rows (--smoke: 4)


def fresh(out: Path) -> Path:
    """An empty run folder: scenario runs resume from what a folder holds, and a benchmark must
    time a whole run."""
    shutil.rmtree(out, ignore_errors=True)
    return out


def bench_crossres(model: str, kernel: str, n_pairs: int, out: Path) -> dict[str, Any]:
    pairs = spread(read_pairs(DATA / "lfw_aligned112" / "pairs_generated.csv", root=DATA), n_pairs)
    explainer = Explainer(load_model(model), BANDS)
    t0 = time.perf_counter()
    summary = run_crossres(
        pairs, out, explainer, factors=FACTORS, resample=kernel, pairs_file="pairs_generated.csv"
    )
    wall = time.perf_counter() - t0
    keep = (
        "factor", "accuracy", "fmr", "fnmr", "centroid", "centroid_ci", "centroid_shift",
        "centroid_shift_ci", "centroid_shift_same_sign",
    )  # fmt: skip
    return {
        "model": model,
        "kernel": summary["kernel"],
        "pairs": summary["pairs"],
        "genuine": summary["genuine"],
        "failed_images": len(summary["failed"]),
        "wall_s": round(wall, 1),
        "explained_images_per_s": round(
            len(FACTORS) * summary["pairs"] * (2 * BANDS + 2) / wall, 1
        ),
        "factors": [
            {
                **{k: e[k] for k in keep},
                "reference": {k: e["reference"][k] for k in keep if k in e["reference"]},
                "by_class": e["by_class"],
            }
            for e in summary["factors"]
        ],
        "out": str(out),
    }


def bench_morph(model: str, out: Path) -> dict[str, Any]:
    entries = read_morph_index(DATA / "frll_morphs" / "index.csv", root=DATA)[:MORPHS]
    explainer = Explainer(load_model(model), BANDS)
    t0 = time.perf_counter()
    summary = run_morph(entries, out, explainer, index_file="frll_morphs/index.csv")
    wall = time.perf_counter() - t0
    detectors = {
        name: {k: v for k, v in d.items() if k != "det"} for name, d in summary["detectors"].items()
    }
    return {
        "model": model,
        "morphs": summary["n_morphs"],
        "comparisons": summary["comparisons"],
        "wall_s": round(wall, 1),
        "mmpmr": summary["mmpmr"],
        "mmpmr_by_method": summary["mmpmr_by_method"],
        "bona_fide_acceptance": summary["bona_fide_acceptance"],
        "d_eer": summary["d_eer"],
        "bpcer_at_apcer_10": summary["bpcer_at_apcer_10"],
        "bpcer_at_apcer_5": summary["bpcer_at_apcer_5"],
        "auc": summary["auc"],
        "auc_ci": summary["auc_ci"],
        "detectors": detectors,
        "centroid_mean": {
            "bona_fide": summary["profiles"]["bona_fide"]["centroid_mean"],
            "morph": summary["profiles"]["morph"]["centroid_mean"],
        },
        "out": str(out),
    }


# ---- the README pictures -------------------------------------------------------------------------


def draw_crossres(results: list[dict[str, Any]], example: Path, path: Path) -> None:
    """Probe crops per kernel and factor; accuracy and probe centroid against the factor."""
    kernels = list(dict.fromkeys(r["kernel_name"] for r in results))
    models = list(dict.fromkeys(r["model"] for r in results))
    fig = plots.new_figure(10.5, 4.3)
    left, right = fig.subfigures(1, 2, width_ratios=[0.55 * len(kernels), 3.0])
    image = load_image(example)
    strips = left.subplots(len(FACTORS), len(kernels), squeeze=False)
    for col, kernel in enumerate(kernels):
        for row, factor in enumerate(FACTORS):
            ax = strips[row, col]
            ax.imshow(degrade(image, factor, kernel), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(kernel, fontsize=7)
            if col == 0:
                ax.set_ylabel(f"{factor:g}×", fontsize=8)
    acc_ax, cen_ax = right.subplots(1, 2)
    for r in results:
        f = [e["factor"] for e in r["factors"]]
        style = ("-", "--", ":")[kernels.index(r["kernel_name"]) % 3]
        colour = f"C{models.index(r['model'])}"
        label = f"{r['model']}, {r['kernel_name']}"
        acc = [e["accuracy"] for e in r["factors"]]
        acc_ax.plot(f, acc, style, marker="o", markersize=4, color=colour, label=label)
        c = np.array([e["centroid"] for e in r["factors"]])
        ci = np.array([e["centroid_ci"] for e in r["factors"]])
        cen_ax.errorbar(f, c, yerr=np.abs(ci.T - c), fmt=style, marker="o", markersize=4,
                        capsize=3, color=colour, label=label)  # fmt: skip
    for ax, ylabel in (
        (acc_ax, "accuracy at the model's threshold"),
        (cen_ax, "probe centroid (mean band index), 95% CI"),
    ):
        ax.set_xscale("log", base=2)
        ax.set_xticks(FACTORS, [f"{v:g}×" for v in FACTORS])
        ax.minorticks_off()
        ax.set_xlabel("downscaling factor of the probe", fontsize=8)
        ax.set_ylabel(ylabel, fontsize=8)
        ax.grid(alpha=0.3)
    acc_ax.legend(fontsize=7)
    plots.save_figure(fig, path)
    _shrink_png(path)


def draw_morph(results: list[dict[str, Any]], path: Path) -> None:
    """Score scatter and the frequency detector's class profiles, per model, side by side."""
    import json

    fig = plots.new_figure(4.2 * len(results), 7.4)
    axes = fig.subplots(2, len(results), squeeze=False)
    for col, r in enumerate(results):
        summary = json.loads((Path(r["out"]) / "summary.json").read_text())
        t = summary["threshold"]
        ax = axes[0, col]
        for i, method in enumerate(sorted({m["method"] for m in summary["morphs"]})):
            ms = [m for m in summary["morphs"] if m["method"] == method]
            ax.scatter(
                [m["score_a"] for m in ms],
                [m["score_b"] for m in ms],
                s=22,
                color=f"C{i}",
                label=method,
            )
        ax.axvline(t, color="0.3", linestyle="--", linewidth=0.8)
        ax.axhline(t, color="0.3", linestyle="--", linewidth=0.8)
        ax.set_title(f"{r['model']}: MMPMR {r['mmpmr']:.2f}", fontsize=9)
        ax.set_xlabel("morph vs probe A", fontsize=8)
        ax.set_ylabel("morph vs probe B", fontsize=8)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
        ax = axes[1, col]
        prof = summary["profiles"]
        x = np.arange(len(summary["bands"]))
        for i, name in enumerate(("bona_fide", "morph")):
            m = np.array(prof[name]["directed_normalised_mean"])
            s = np.array(prof[name]["directed_normalised_std"])
            ax.plot(x, m, marker="o", markersize=3, color=f"C{i}", label=name.replace("_", " "))
            ax.fill_between(x, m - s, m + s, color=f"C{i}", alpha=0.18, linewidth=0)
        auc = r["auc"]
        ax.set_title(
            f"AUC: frequency {auc['frequency']:.2f}, score {auc['score']:.2f}, "
            f"both {auc['combined']:.2f}",
            fontsize=8,
        )
        ax.set_xticks(x[::2], [str(k) for k in x[::2]])
        ax.set_xlabel("band of the enrolled image (0 = lowest)", fontsize=8)
        ax.set_ylabel("directed influence, normalised", fontsize=8)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    plots.save_figure(fig, path)
    _shrink_png(path)


def _shrink_png(path: Path) -> None:
    """Re-save with a 256-colour palette: README pictures stay well under 200 KB."""
    from PIL import Image

    with Image.open(path) as img:
        small = img.convert("RGB").quantize(256, dither=Image.Dither.NONE)
    buffer = io.BytesIO()
    small.save(buffer, format="PNG", optimize=True)
    atomic.write_bytes(path, buffer.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=None, help="folder for the run outputs")
    parser.add_argument("--pairs", type=int, default=200, help="cross-resolution pairs")
    parser.add_argument("--kernels", default="bicubic,spectral")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--docs", type=Path, default=None, help="write the README pictures here")
    add_smoke_option(parser)
    args = parser.parse_args()
    global BANDS, MORPHS
    if args.smoke:
        args.pairs, args.kernels, args.models = 4, "bicubic", "dlib_resnet"
        BANDS, MORPHS = 4, 4
    out = args.out or cache_dir("bench", "scenarios")
    models = args.models.split(",")
    started = time.perf_counter()
    results: dict[str, Any] = {
        "machine": machine_info("onnxruntime"),
        "bands": BANDS,
        "crossres": [],
        "morph": [],
    }
    for model in models:
        r = bench_morph(model, fresh(out / f"morph_{model}"))
        results["morph"].append(r)
        print(
            f"morph {model}: MMPMR {r['mmpmr']:.3f}, AUC {r['auc']}, D-EER {r['d_eer']:.3f} "
            f"({r['wall_s']} s)",
            flush=True,
        )
    for model in models:
        for kernel in args.kernels.split(","):
            r = bench_crossres(model, kernel, args.pairs, fresh(out / f"crossres_{model}_{kernel}"))
            r["kernel_name"] = kernel
            results["crossres"].append(r)
            print(
                f"crossres {model} {kernel}: "
                + ", ".join(
                    f"{e['factor']:g}x acc {e['accuracy']:.3f} centroid {e['centroid']:.3f} "
                    f"shift {e['centroid_shift']:+.3f}"
                    for e in r["factors"]
                )
                + f" ({r['wall_s']} s)",
                flush=True,
            )
    results["wall_s"] = round(time.perf_counter() - started, 1)
    atomic.write_json(args.json, results)
    if args.docs is not None:
        example = read_pairs(DATA / "lfw_aligned112" / "pairs_generated.csv", root=DATA)[0].path_b
        draw_crossres(results["crossres"], example, args.docs / "crossres.png")
        draw_morph(results["morph"], args.docs / "morph.png")
    print(f"wrote {args.json} ({results['wall_s']} s)")


if __name__ == "__main__":
    main()
