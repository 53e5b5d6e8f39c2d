"""Where the lowest bands' influence sits, and how far region windows spread a band's spectrum:
the numbers of the README's region finding, on LFW crops or FRLL studio photos (``--set``).

1. Finding: genuine (and, for contrast, impostor) pairs from LFW's ``pairs_generated.csv`` or
   FRLL's ``pairs.csv`` (spread evenly over each class; raw FRLL photos are aligned as the model's
   card says, as every freqxfr command does), explained per (band, region) cell with 4 rings ×
   face regions by both models. Per explained image: the share of the absolute influence of
   bands 0–1 in the eye regions (against the eyes' share of the image area), the share of all
   influence in bands 0–1, and each region's share of the band 0–1 influence per unit of its
   area. Each mean has a 95% identity-cluster bootstrap interval (each image belongs to its own
   identity, from its path; 2,000 resamples, seed 0: :func:`freqxfr.stats.bootstrap.cluster_weights`).
2. Spectral spread (LFW only) (:func:`freqxfr.imaging.regions.spectral_spread`): LFW crops at 112×112, face and
   grid:3x3 regions, 8 and 16 rings: the share of the cells' energy outside their own band
   (pooled, and the median cell) and the largest share of any cell beyond the neighbouring
   rings.

    python benchmarks/region_finding.py --json benchmarks/results/region_finding.json
    python benchmarks/region_finding.py --set frll --genuine 20 --impostor 20 \\
        --json benchmarks/results/findings_regions_frll.json
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import add_smoke_option, machine_info, write_result

from freqxfr.core.bands import BandSchedule
from freqxfr.explanations.explainer import Explainer
from freqxfr.explanations.pairs import read_pairs, spread
from freqxfr.imaging.regions import EYE_REGIONS, Regions, spectral_spread
from freqxfr.model.verifier import load_model
from freqxfr.stats.bootstrap import cluster_weights, percentile_ci, weighted_means
from freqxfr.stats.identities import identity_from_path, resampling

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
LOW = slice(0, 2)  # bands 0–1
PAIR_LISTS = {
    "lfw": ("lfw_aligned112/pairs_generated.csv", "LFW aligned 112×112 crops"),
    "frll": ("frll/pairs.csv", "FRLL studio photos (1350×1350, aligned by freqxfr)"),
}
RESAMPLES, SEED = 2000, 0


def _stats(values: list[float]) -> dict[str, float]:
    v = np.asarray(values, np.float64)
    return {
        "mean": round(float(v.mean()), 4),
        "median": round(float(np.median(v)), 4),
        "min": round(float(v.min()), 4),
        "max": round(float(v.max()), 4),
    }


def _intervals(values: np.ndarray, identities: list[str | None]) -> tuple[list, dict]:
    """Identity-cluster bootstrap intervals of the column means of ``values`` (images × m)."""
    clusters = [str(i) for i in identities] if all(identities) else None
    w = cluster_weights(len(values), RESAMPLES, clusters=clusters, seed=SEED)
    means = weighted_means(w, values)
    cis = [[round(v, 4) for v in percentile_ci(means[:, j])] for j in range(values.shape[1])]
    return cis, resampling(clusters, len(values))


def finding(
    name: str, data: Path, n_genuine: int, n_impostor: int, bands: int, which: str = "lfw"
) -> dict:
    """Per-image shares of the low bands' influence for one model, by class."""
    model = load_model(name)
    explainer = Explainer(model, bands, regions="face")
    names = explainer.regions.names
    area = np.array(explainer.regions.to_dict()["area"])
    eyes = [names.index(r) for r in EYE_REGIONS]
    listed = read_pairs(data / PAIR_LISTS[which][0], root=data)
    out: dict = {
        "model": name,
        "bands": bands,
        "regions": list(names),
        "area": area.round(4).tolist(),
        "eye_area": round(float(area[eyes].sum()), 4),
    }
    t0 = time.perf_counter()
    for cls, same, count in (("genuine", True, n_genuine), ("impostor", False, n_impostor)):
        pairs = spread([p for p in listed if p.same is same], count)
        eye_share, low_share, per_area, decisions, ids = [], [], [], [], []
        for pair in pairs:
            e = explainer.explain(pair.path_a, pair.path_b, same=same)
            decisions.append(e.decision)
            for side, path in ((e.a, pair.path_a), (e.b, pair.path_b)):
                ids.append(identity_from_path(path))
                low = side.absolute[:, LOW].sum(axis=1)  # (R,) band 0–1 influence per region
                eye_share.append(side.region_share(EYE_REGIONS, LOW))
                low_share.append(float(low.sum() / side.absolute.sum()))
                per_area.append(low / low.sum() / area)
        # columns: eye share, band 0–1 share of all, then per-area share of each region
        table = np.column_stack([eye_share, low_share, np.asarray(per_area)])
        cis, unit = _intervals(table, ids)
        out[cls] = {
            "pairs": len(pairs),
            "identities": len(set(ids)),
            "bootstrap": {"resamples": RESAMPLES, "seed": SEED, **unit},
            "eye_share_of_band01_ci": cis[0],
            "band01_share_of_all_ci": cis[1],
            "band01_share_per_area_ci": dict(zip(names, cis[2:], strict=True)),
            "images": len(eye_share),
            "decided_right": int(sum(d is same for d in decisions)),
            "eye_share_of_band01": _stats(eye_share),
            "band01_share_of_all": _stats(low_share),
            "band01_share_per_area": dict(
                zip(names, np.mean(per_area, axis=0).round(3).tolist(), strict=True)
            ),
        }
    out["seconds"] = round(time.perf_counter() - t0, 1)
    return out


def spread_of_windows(data: Path, n_faces: int) -> list[dict]:
    """Spectral spread of face and grid:3x3 cells on ``n_faces`` LFW crops at 112×112."""
    paths = sorted((data / "lfw_aligned112" / "images").rglob("*.jpg"))
    chosen = [paths[i] for i in np.linspace(0, len(paths) - 1, n_faces).astype(int)]
    faces = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in chosen])
    rows = []
    for regions in ("face", "grid:3x3"):
        resolved = Regions.parse(regions).resolve(112, 112, "arcface112")
        for k in (8, 16):
            schedule = BandSchedule.rings(k)
            share, pooled = spectral_spread(faces, schedule, resolved)
            beyond, _ = spectral_spread(faces, schedule, resolved, neighbours=1)
            rows.append(
                {
                    "regions": regions,
                    "bands": k,
                    "faces": n_faces,
                    "pooled_outside_own_band": round(pooled, 4),
                    "median_cell_outside_own_band": round(float(np.median(share)), 4),
                    "max_cell_beyond_neighbours": round(float(beyond.max()), 4),
                }
            )
            print(
                f"spread {regions:8} K={k:2}: pooled {pooled:.1%} outside the own band, median "
                f"cell {np.median(share):.1%}, at most {beyond.max():.1%} beyond the neighbours"
            )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path)
    parser.add_argument("--data", type=Path, default=DATA, help="the shared data folder")
    parser.add_argument("--set", choices=sorted(PAIR_LISTS), default="lfw", help="LFW or FRLL")
    parser.add_argument("--genuine", type=int, default=12, help="genuine pairs per model")
    parser.add_argument("--impostor", type=int, default=8, help="impostor pairs per model")
    parser.add_argument("--bands", type=int, default=4)
    parser.add_argument("--faces", type=int, default=16, help="faces for the spectral spread")
    parser.add_argument("--models", default="dlib_resnet,sface")
    add_smoke_option(parser)
    args = parser.parse_args()
    if args.smoke:
        args.genuine, args.impostor, args.faces, args.models = 2, 2, 2, "dlib_resnet"
    findings = []
    for name in args.models.split(","):
        entry = finding(name, args.data, args.genuine, args.impostor, args.bands, args.set)
        findings.append(entry)
        for cls in ("genuine", "impostor"):
            e = entry[cls]
            print(
                f"{name} {cls} ({e['pairs']} pairs, {e['decided_right']} decided right): eyes hold "
                f"{e['eye_share_of_band01']['mean']:.1%} of band 0–1 influence (range "
                f"{e['eye_share_of_band01']['min']:.1%}–{e['eye_share_of_band01']['max']:.1%}; "
                f"eye area {entry['eye_area']:.1%}); bands 0–1 hold "
                f"{e['band01_share_of_all']['mean']:.1%} {e['band01_share_of_all_ci']} of all; "
                f"per area "
                + ", ".join(f"{r} {v:.2f}x" for r, v in e["band01_share_per_area"].items())
            )
    result = {
        "benchmark": "region_finding",
        "machine": machine_info("onnxruntime"),
        "data_set": args.set,
        "data": f"{PAIR_LISTS[args.set][1]} (../shared/data/{PAIR_LISTS[args.set][0]})",
        "command": "python benchmarks/region_finding.py " + " ".join(sys.argv[1:]),
        "findings": findings,
        "spectral_spread": spread_of_windows(args.data, args.faces) if args.set == "lfw" else None,
        "load_average_1min_at_end": round(os.getloadavg()[0], 2),
    }
    write_result(args.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
