"""Make docs/regions.png: region × band explanations of one genuine LFW pair for both models.

python tools/regions_figure.py [--out docs/regions.png] [--bands 8]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from freqxfr.explanations.explainer import Explainer
from freqxfr.model.verifier import load_model
from freqxfr.reports.region_plots import plot_pair_regions

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
PAIR = (
    "lfw_aligned112/images/Abdullah_Gul/Abdullah_Gul_0001.jpg",
    "lfw_aligned112/images/Abdullah_Gul/Abdullah_Gul_0006.jpg",
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/regions.png"))
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--bands", type=int, default=8)
    args = parser.parse_args()
    parts = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("dlib_resnet", "sface"):
            explainer = Explainer(load_model(name), args.bands, regions="face")
            faces = np.stack([explainer.prepare(args.data / p) for p in PAIR])
            e = explainer.explain(faces[0], faces[1], aligned=True)
            record = e.to_dict()
            for side, path in zip(("a", "b"), PAIR, strict=True):
                record[side]["source"] = Path(path).name
            title = (
                f"{name}, {args.bands} rings × face regions: score {e.score_ref:.3f} "
                f"(threshold {e.threshold}) → {'match' if e.decision else 'non-match'}"
            )
            parts.append(
                Image.open(
                    plot_pair_regions(
                        record,
                        faces,
                        explainer.regions.weights,
                        Path(tmp) / f"{name}.png",
                        title=title,
                    )
                ).convert("RGB")
            )
    width = max(p.width for p in parts)
    canvas = Image.new("RGB", (width, sum(p.height for p in parts)), "white")
    y = 0
    for p in parts:
        canvas.paste(p, (0, y))
        y += p.height
    args.out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(args.out, optimize=True)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
