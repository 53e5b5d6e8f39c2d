"""How the padding of a re-cut dlib chip disturbs its spectrum, its explanation and its score.

dlib's 150 chip (padding 0.25) cut from a tight 112×112 ArcFace crop reaches beyond the crop on
every side; ``freqxfr.imaging.align`` fills that part as ``padding`` says (edge, reflect or black). This
benchmark measures, for each padding, how far the re-cut chip is from a chip that has no border
artefact, on real faces.

The reference (FRLL, the part beyond the crop known). LFW's crops have no pixels beyond the
crop, so nothing says what the chip *should* hold there. The FRLL studio photos (1350×1350) do:
for each photo we cut, with the ArcFace alignment ``freqxfr.imaging.align`` uses (YuNet landmarks,
similarity warp, supersampled), a *context crop* of side 112 + 2·MARGIN whose central 112×112
window is exactly the tight ArcFace crop (same transform, shifted by whole pixels). dlib's
landmarks are found on the tight crop, as on LFW; the chip re-cut from the tight crop with each
padding is compared with the chip cut by the same landmarks (shifted) from the context crop, where
the real surroundings of the face fill the part beyond the tight crop. Both chips are sampled
identically inside the tight crop, so every difference is the padding's.

Measured per padding:
- band energies: for each of the 16 equal-width rings (the explainer's default schedule) at
  150×150, the spectral energy (|FFT|², summed over RGB) of the re-cut chip against the
  reference's, as 10·log10(E_padded / E_reference) dB; the mean |dB| over rings and photos, and
  per ring;
- explanations and scores: 40 genuine FRLL pairs (neutral vs smiling) and 40 impostor pairs
  (neutral i vs smiling i+1) explained with dlib's ResNet (16 rings, defaults) on re-cut chips
  and on reference chips: mean |Δscore|, the L1 distance between the per-image normalised
  absolute band influences (``absolute_relative``, so 0 = identical profile, 2 = disjoint), and
  the decisions that flip.
- LFW (no reference beyond the crop): on PAIRS_LFW pairs spread over
  ``lfw_aligned112/pairs_generated.csv``, the padded share of each chip, the verification
  accuracy at the model's threshold per padding, and how far each padding's scores and band
  influences lie from the black padding's (what the choice changes on the data the issue names).

Runs in about two minutes on 2 cores (80 FRLL photos, 80 FRLL pairs × 4 chip variants, 100 LFW
pairs × 3 paddings for scores, the first 30 of them explained):

    python benchmarks/bench_padding.py --json benchmarks/results/padding.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import add_smoke_option, machine_info

from freqxfr.common import atomic
from freqxfr.core.bands import BandSchedule
from freqxfr.explanations.explainer import Explainer
from freqxfr.explanations.pairs import read_pairs, spread
from freqxfr.imaging import align as A
from freqxfr.imaging.images import AlignedFace, load_image

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
MARGIN = 64  # context beyond the tight crop on each side (the chip reaches ~35 px beyond)
PAIRS_LFW = 100
EXPLAIN_LFW = 30
FRLL_LIMIT: int | None = None  # FRLL photos (--smoke)
RINGS = 16
CHIP = 150


# ---- chips --------------------------------------------------------------------------------------


def context_crop(photo: np.ndarray, landmarks: np.ndarray, margin: int) -> np.ndarray:
    """The ArcFace 112 crop with ``margin`` pixels of real surroundings on every side: the same
    supersampled similarity warp as ``align._warp_to_template``, with the template moved by
    ``margin`` (so its central 112×112 window is the tight crop)."""
    cv2 = A._cv2()
    side = 112 + 2 * margin
    template = A.ARCFACE_TEMPLATE_112 + margin
    matrix = A._similarity(landmarks, template)
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    assert scale < A._SUPERSAMPLE_BELOW, "FRLL faces are large: the supersampled path"
    k = A._SUPERSAMPLE
    big = A._similarity(landmarks, k * (template + 0.5) - 0.5)
    pixels = photo
    if k * scale < A._SUPERSAMPLE_BELOW:
        pixels, big = A._area_shrink(cv2, photo, big, k * scale)
    wide = A._warp(cv2, pixels, big, k * side, "black")
    return cv2.resize(wide, (side, side), interpolation=cv2.INTER_AREA)


def yunet_landmarks(photo: np.ndarray, label: str) -> np.ndarray:
    work, scale = A._detection_copy(photo)
    faces = A._yunet_detect(work, label)
    largest = faces[np.argmax(faces[:, 2] * faces[:, 3])]
    return A._to_photo(largest[4:14].reshape(5, 2), scale)


def dlib_shape(pixels: np.ndarray) -> Any:
    """dlib's 5 landmarks on a tight crop, as ``align`` finds them (detector chain + fallback)."""
    dlib, _, predictor = A._dlib_models()
    boxes, _ = A._dlib_detect(pixels)
    if boxes:
        rect = max(boxes, key=lambda b: b.width() * b.height())
    else:
        rect = dlib.rectangle(*A.ARCFACE112_DLIB_BOX)
    return predictor(pixels, rect)


def shifted(shape: Any, by: int) -> Any:
    dlib, _, _ = A._dlib_models()
    r = shape.rect
    rect = dlib.rectangle(r.left() + by, r.top() + by, r.right() + by, r.bottom() + by)
    return dlib.full_object_detection(
        rect, dlib.points([dlib.point(p.x + by, p.y + by) for p in shape.parts()])
    )


# ---- measures -----------------------------------------------------------------------------------


def band_energies(chip: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Energy per band: |FFT|² summed over the RGB channels and the band's coefficients."""
    spectrum = np.fft.fft2(chip.astype(np.float64), axes=(0, 1))
    power = (np.abs(spectrum) ** 2).sum(axis=2)
    return np.bincount(labels.ravel(), weights=power.ravel(), minlength=labels.max() + 1)


def profile_l1(p: np.ndarray, q: np.ndarray) -> float:
    return float(np.abs(p - q).sum())


def explain_pairs(explainer: Explainer, chips: dict[str, np.ndarray], pairs: list) -> list:
    stream = explainer.explain_pairs(
        (AlignedFace(chips[a], a), AlignedFace(chips[b], b)) for a, b, _ in pairs
    )
    return list(stream)


def compare_explanations(ref: list, other: list, same: list[bool], threshold: float) -> dict:
    dscore = [abs(o.score_ref - r.score_ref) for r, o in zip(ref, other, strict=True)]
    l1 = [
        profile_l1(getattr(r, s).absolute_relative, getattr(o, s).absolute_relative)
        for r, o in zip(ref, other, strict=True)
        for s in ("a", "b")
    ]
    flips = sum(int(r.decision != o.decision) for r, o in zip(ref, other, strict=True))
    correct = sum(int(o.decision == s) for o, s in zip(other, same, strict=True))
    return {
        "mean_abs_score_change": float(np.mean(dscore)),
        "max_abs_score_change": float(np.max(dscore)),
        "score_change_over_threshold": float(np.mean(dscore) / abs(threshold)),
        "mean_band_profile_l1": float(np.mean(l1)),
        "decision_flips": flips,
        "accuracy": correct / len(same),
    }


# ---- the two data sets --------------------------------------------------------------------------


def frll(explainer: Explainer, labels: np.ndarray) -> dict[str, Any]:
    index = [
        line.split(",")[0] for line in (DATA / "frll" / "index.csv").read_text().splitlines()[1:]
    ][:FRLL_LIMIT]
    chips: dict[str, dict[str, np.ndarray]] = {v: {} for v in ("reference", *A.PADDINGS)}
    fractions, ref_fractions, interior = [], [], []
    db = {p: [] for p in A.PADDINGS}
    for rel in index:
        photo = load_image(DATA / rel)
        ctx = context_crop(photo, yunet_landmarks(photo, rel), MARGIN)
        tight = np.ascontiguousarray(ctx[MARGIN : MARGIN + 112, MARGIN : MARGIN + 112])
        shape = dlib_shape(tight)
        ref, ref_fraction = A.dlib_chip(ctx, shifted(shape, MARGIN), CHIP, "black")
        ref_fractions.append(ref_fraction)
        chips["reference"][rel] = ref
        e_ref = band_energies(ref, labels)
        for padding in A.PADDINGS:
            chip, fraction = A.dlib_chip(tight, shape, CHIP, padding)
            chips[padding][rel] = chip
            db[padding].append(10 * np.log10(band_energies(chip, labels) / e_ref))
            if padding == "black":
                fractions.append(fraction)
                inside = ~(chip == 0).all(axis=2)  # the unpadded pixels
                interior.append(int(np.abs(chip.astype(int) - ref)[inside].max()))
    people = sorted({rel.split("/")[-1][:3] for rel in index})
    genuine = [(f"frll/neutral/{p}_03.jpg", f"frll/smiling/{p}_08.jpg", True) for p in people]
    impostor = [
        (f"frll/neutral/{p}_03.jpg", f"frll/smiling/{q}_08.jpg", False)
        for p, q in zip(people, people[1:] + people[:1], strict=True)
    ]
    pairs = genuine + impostor
    same = [s for _, _, s in pairs]
    threshold = explainer.model.card.threshold
    started = time.perf_counter()
    ref_expl = explain_pairs(explainer, chips["reference"], pairs)
    per_padding = {}
    for padding in A.PADDINGS:
        expl = explain_pairs(explainer, chips[padding], pairs)
        d = np.array(db[padding])  # (photos, rings)
        per_padding[padding] = {
            "band_energy_mean_abs_db": float(np.abs(d).mean()),
            "band_energy_db_per_ring_mean": [round(float(v), 3) for v in d.mean(axis=0)],
            "band_energy_mean_abs_db_rings_1_up": float(np.abs(d[:, 1:]).mean()),
            **compare_explanations(ref_expl, expl, same, threshold),
        }
    return {
        "photos": len(index),
        "pairs": {"genuine": len(genuine), "impostor": len(impostor)},
        "margin_px": MARGIN,
        "padded_fraction_mean": float(np.mean(fractions)),
        "padded_fraction_range": [float(np.min(fractions)), float(np.max(fractions))],
        "reference_padded_fraction_max": float(np.max(ref_fractions)),
        "interior_max_abs_difference": int(np.max(interior)),
        "reference_accuracy": compare_explanations(ref_expl, ref_expl, same, threshold)["accuracy"],
        "explain_seconds": time.perf_counter() - started,
        "per_padding": per_padding,
    }


def lfw(explainer: Explainer, labels: np.ndarray) -> dict[str, Any]:
    pairs = spread(
        read_pairs(DATA / "lfw_aligned112" / "pairs_generated.csv", root=DATA), PAIRS_LFW
    )
    paths = list(dict.fromkeys(p for pair in pairs for p in (pair.path_a, pair.path_b)))
    chips: dict[str, dict[str, np.ndarray]] = {p: {} for p in A.PADDINGS}
    fractions = []
    black_pixels = {p: [] for p in A.PADDINGS}
    db = {p: [] for p in A.PADDINGS}
    for path in paths:
        shape = dlib_shape(load_image(path))
        pixels = load_image(path)
        e_black = None
        for padding in A.PADDINGS[::-1]:  # black first: the baseline
            chip, fraction = A.dlib_chip(pixels, shape, CHIP, padding)
            chips[padding][str(path)] = chip
            black_pixels[padding].append(float((chip == 0).all(axis=2).mean()))
            e = band_energies(chip, labels)
            if padding == "black":
                fractions.append(fraction)
                e_black = e
            db[padding].append(10 * np.log10(e / e_black))
    triples = [(str(p.path_a), str(p.path_b), bool(p.same)) for p in pairs]
    same = [s for *_, s in triples]
    threshold = explainer.model.card.threshold
    model = explainer.model
    scores = {}
    for padding in A.PADDINGS:
        emb = {
            k: v
            for k, v in zip(
                chips[padding], model.embed(np.stack(list(chips[padding].values()))), strict=True
            )
        }
        scores[padding] = np.array([float(model.score(emb[a], emb[b])) for a, b, _ in triples])
    black_expl = explain_pairs(explainer, chips["black"], triples[:EXPLAIN_LFW])
    per_padding = {}
    for padding in A.PADDINGS:
        s = scores[padding]
        expl = explain_pairs(explainer, chips[padding], triples[:EXPLAIN_LFW])
        cmp = compare_explanations(black_expl, expl, same[:EXPLAIN_LFW], threshold)
        d = np.array(db[padding])
        per_padding[padding] = {
            "accuracy": float(np.mean((s >= threshold) == np.array(same))),
            "mean_abs_score_change_vs_black": float(np.mean(np.abs(s - scores["black"]))),
            "mean_band_profile_l1_vs_black": cmp["mean_band_profile_l1"],
            "band_energy_db_vs_black_per_ring_mean": [round(float(v), 3) for v in d.mean(axis=0)],
            "black_pixel_fraction_mean": float(np.mean(black_pixels[padding])),
        }
    return {
        "pairs": len(pairs),
        "genuine": int(sum(same)),
        "images": len(paths),
        "explained_pairs": min(EXPLAIN_LFW, len(pairs)),
        "padded_fraction_mean": float(np.mean(fractions)),
        "padded_fraction_range": [float(np.min(fractions)), float(np.max(fractions))],
        "per_padding": per_padding,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    add_smoke_option(parser)
    args = parser.parse_args()
    global PAIRS_LFW, EXPLAIN_LFW, FRLL_LIMIT
    if args.smoke:
        PAIRS_LFW, EXPLAIN_LFW, FRLL_LIMIT = 4, 2, 4
    started = time.perf_counter()
    labels = BandSchedule.rings(RINGS).resolve(CHIP, CHIP).labels_full
    explainer = Explainer()  # dlib's ResNet, 16 rings, the defaults
    result = {
        "benchmark": "padding",
        "machine": machine_info("onnxruntime", "dlib-bin", "opencv-python-headless"),
        "default_padding": A.DEFAULT_PADDING,
        "settings": {"rings": RINGS, "chip": CHIP, "model": "dlib_resnet", "dlib_padding": 0.25},
        "frll": frll(explainer, labels),
        "lfw": lfw(explainer, labels),
    }
    result["seconds"] = time.perf_counter() - started
    text = json.dumps(result, indent=2)
    print(text)
    if args.json is not None:
        atomic.write_json(args.json, result)


if __name__ == "__main__":
    main()
