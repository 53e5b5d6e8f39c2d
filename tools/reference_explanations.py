"""Explanations that a restructuring must not change, bit for bit.

``python tools/reference_explanations.py --write`` records the reference scores (every band's and
every cell's, and the reference score) of the demo's two pairs and 20 LFW pairs (10 genuine, 10
impostor, the first of each class in ``pairs_official_subset.csv``) with dlib's ResNet and SFace,
plus the demo pairs explained per region cell (grid 2x2), into
``tests/data/reference_explanations.npz``. Without ``--write`` it recomputes them and prints each
entry that is not bit-identical (exit 1). ``tests/test_reference_explanations.py`` runs the same
check. The file was first written by the tree before the 0.2 restructure (commit ab0c0a2: the
modules moved, their code not changed).

Bit for bit needs the same FFTW plans: FFTW_MEASURE times candidate algorithms, and another
process (another venv, whose FFTW library path keys other wisdom) may pick one that rounds the
last bit differently. So the check plans with FFTW_ESTIMATE (no timing) in a cache folder of its
own, with no wisdom: ``planner="estimate"`` (older trees, whose Explainer has no ``planner``, get
it as ``mask_bands``' default) and ``$FREQXFR_CACHE_DIR`` set to a new temporary folder before
freqxfr is imported.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
from importlib.resources import files
from pathlib import Path

import numpy as np

if __name__ == "__main__":
    # No wisdom (see the module docstring): a cache folder of our own, before freqxfr is imported.
    os.environ["FREQXFR_CACHE_DIR"] = tempfile.mkdtemp(prefix="freqxfr-reference-")

import freqxfr

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO / "tests" / "data" / "reference_explanations.npz"
LFW_PAIRS = 20


def shared_data() -> Path:
    return Path(os.environ.get("FREQXFR_SHARED_DATA", REPO.parent / "shared" / "data"))


def demo_pairs() -> list[tuple[str, Path, Path]]:
    demo = files("freqxfr") / "demo_data"
    a, b, c = (
        Path(str(demo / f"{n}.jpg"))
        for n in ("frll_001_neutral", "frll_001_smiling", "frll_002_neutral")
    )
    return [("demo_genuine", a, b), ("demo_impostor", a, c)]


def lfw_pairs(data: Path) -> list[tuple[str, Path, Path]]:
    with (data / "lfw_aligned112" / "pairs_official_subset.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    picked = [r for r in rows if r["same"] == "1"][: LFW_PAIRS // 2]
    picked += [r for r in rows if r["same"] == "0"][: LFW_PAIRS // 2]
    return [(f"lfw{i:02d}", data / r["path1"], data / r["path2"]) for i, r in enumerate(picked)]


def explainer(model: str, **options: object) -> freqxfr.Explainer:
    """An explainer that plans FFTW by estimate (deterministic), on any freqxfr tree."""
    if hasattr(freqxfr, "ExplainerConfig"):  # 0.2: planner is one of the explainer's settings
        return freqxfr.Explainer(model, planner="estimate", **options)
    freqxfr.mask_bands.__kwdefaults__["planner"] = "estimate"  # before 0.2: the default
    return freqxfr.Explainer(model, **options)


def compute(data: Path) -> dict[str, np.ndarray]:
    """Every recorded number, by key ``<model>/<pair>/<what>``."""
    out: dict[str, np.ndarray] = {}
    for model in ("dlib_resnet", "sface"):
        model_explainer = explainer(model)
        pairs = demo_pairs() + lfw_pairs(data)
        for name, a, b in pairs:
            e = model_explainer.explain(a, b)
            out[f"{model}/{name}/score_ref"] = np.asarray(e.score_ref, np.float64)
            out[f"{model}/{name}/a"] = np.asarray(e.a.scores)
            out[f"{model}/{name}/b"] = np.asarray(e.b.scores)
    cells = explainer("dlib_resnet", regions="grid:2x2")
    for name, a, b in demo_pairs():
        e = cells.explain(a, b)
        out[f"dlib_resnet_grid2x2/{name}/score_ref"] = np.asarray(e.score_ref, np.float64)
        out[f"dlib_resnet_grid2x2/{name}/a"] = np.asarray(e.a.scores)
        out[f"dlib_resnet_grid2x2/{name}/b"] = np.asarray(e.b.scores)
    return out


def differences(reference: dict[str, np.ndarray], now: dict[str, np.ndarray]) -> list[str]:
    """The entries that are not bit-identical (shape, dtype and every bit of every value)."""
    problems = [f"{k}: missing now" for k in reference if k not in now]
    problems += [f"{k}: not in the reference" for k in now if k not in reference]
    for k in sorted(set(reference) & set(now)):
        r, n = reference[k], now[k]
        if r.shape != n.shape or r.dtype != n.dtype or r.tobytes() != n.tobytes():
            problems.append(
                f"{k}: {r.dtype}{r.shape} {r.ravel()[:4]} != {n.dtype}{n.shape} {n.ravel()[:4]}"
            )
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--write", action="store_true", help="record the reference instead of checking it"
    )
    args = parser.parse_args()
    now = compute(shared_data())
    if args.write:
        REFERENCE.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(REFERENCE, **now)
        print(f"wrote {len(now)} arrays to {REFERENCE}")
        return 0
    with np.load(REFERENCE) as f:
        reference = {k: f[k] for k in f.files}
    problems = differences(reference, now)
    print(f"{len(reference) - len(problems)} of {len(reference)} arrays bit-identical")
    for p in problems:
        print("  " + p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
