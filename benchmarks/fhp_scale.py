"""How much of a frequency heat plot's disc the influential bands get under each radial scale.

The FHP disc (``freqxfr.reports.plots.fhp_disc``) draws band k as a ring; ``radial`` says how a band's
relative radius maps to the displayed radius (``plots.radial_scale``: ``linear``, ``area``,
``log``). On real faces almost all influence sits in the lowest bands. This script measures

- on real faces, the share of each explained image's absolute influence held by bands 0-4
  (mean and minimum over images): the demo's genuine pair (the bundled FRLL photos) and
  PAIRS pairs spread over ``lfw_aligned112/pairs_generated.csv``, with dlib's ResNet and SFace,
  16 equal-width rings, the explainer's defaults;
- for each radial scale, the share of the disc's radius and of its area that bands 0-4 occupy,
  and the share of the disc's area left to the bands that hold the last 5 % of the influence
  (rings that are, in effect, one flat colour).

The README's choice of ``area`` as the default cites these numbers.

    python benchmarks/fhp_scale.py --json benchmarks/results/fhp_scale.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import add_smoke_option, machine_info

from freqxfr.common import atomic
from freqxfr.core.bands import BandSchedule
from freqxfr.explanations.explainer import Explainer
from freqxfr.explanations.pairs import read_pairs, spread
from freqxfr.model.verifier import load_model
from freqxfr.reports.plots import RADIAL_SCALES, radial_scale

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
DEMO = Path(__file__).resolve().parents[1] / "python" / "freqxfr" / "demo_data"
PAIRS = 20
RINGS = 16
LOW = 5  # bands 0-4


def influence_shares(explanations: list) -> np.ndarray:
    """(images, K) absolute influence of each explained image, as shares of its total."""
    rows = [getattr(e, side).absolute for e in explanations for side in ("a", "b")]
    values = np.array(rows, dtype=np.float64)
    return values / values.sum(axis=1, keepdims=True)


def disc_geometry(bands: list[dict[str, Any]], shares: np.ndarray) -> dict[str, Any]:
    """Radius and area of the disc given to bands 0-4, and the area of the 'flat' bands (those
    outside the smallest set of lowest bands that holds 95 % of the mean influence)."""
    edges = np.array([bands[0]["radius"][0]] + [b["radius"][1] for b in bands])
    mean = shares.mean(axis=0)
    held = int(np.searchsorted(np.cumsum(mean), 0.95) + 1)  # lowest bands holding 95 %
    out = {"bands_holding_95_percent": held}
    for radial in RADIAL_SCALES:
        scale = radial_scale(bands, radial)
        shown = np.asarray(scale(edges), dtype=np.float64) / float(scale(edges[-1]))
        out[radial] = {
            "radius_share_bands_0_4": float(shown[LOW]),
            "area_share_bands_0_4": float(shown[LOW] ** 2),
            "area_share_of_the_last_5_percent": float(1 - shown[held] ** 2),
        }
    return out


def measure(model_name: str) -> dict[str, Any]:
    explainer = Explainer(load_model(model_name), RINGS)
    demo = [explainer.explain(DEMO / "frll_001_neutral.jpg", DEMO / "frll_001_smiling.jpg")]
    pairs = spread(read_pairs(DATA / "lfw_aligned112" / "pairs_generated.csv", root=DATA), PAIRS)
    lfw = list(explainer.explain_pairs(pairs))
    side = explainer.model.card.input_size[0]
    bands = [b.to_dict() for b in BandSchedule.rings(RINGS).resolve(side, side).bands]
    result = {}
    for name, explanations in (("demo_genuine_pair", demo), ("lfw", lfw)):
        shares = influence_shares(explanations)
        low = shares[:, :LOW].sum(axis=1)
        result[name] = {
            "images": int(shares.shape[0]),
            "influence_share_bands_0_4_mean": float(low.mean()),
            "influence_share_bands_0_4_min": float(low.min()),
            "influence_share_per_band_mean": [round(float(v), 4) for v in shares.mean(axis=0)],
            "disc": disc_geometry(bands, shares),
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    add_smoke_option(parser)
    args = parser.parse_args()
    global PAIRS
    if args.smoke:
        PAIRS = 2
    result = {
        "benchmark": "fhp_scale",
        "machine": machine_info("onnxruntime"),
        "settings": {"rings": RINGS, "lfw_pairs": PAIRS, "low_bands": f"0-{LOW - 1}"},
        "models": {name: measure(name) for name in ("dlib_resnet", "sface")},
    }
    print(json.dumps(result["models"], indent=1))
    if args.json is not None:
        atomic.write_json(args.json, result)


if __name__ == "__main__":
    main()
