"""The fixed LFW subset (``lfw_aligned112/pairs_generated.csv``, 1,500 pairs of 383 aligned 112×112
crops) and model scores on it, computed once per test run and shared by the test modules."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from freqxfr.explanations.pairs import Pair, read_pairs
from freqxfr.imaging.images import load_image


@functools.cache
def pairs(data_dir: Path) -> tuple[list[Pair], list[Path], np.ndarray]:
    """The pairs, the distinct image paths (sorted), and the images (N, 112, 112, 3) uint8."""
    listed = read_pairs(data_dir / "lfw_aligned112" / "pairs_generated.csv", root=data_dir)
    paths = sorted({p.path_a for p in listed} | {p.path_b for p in listed})
    return listed, paths, np.stack([load_image(p) for p in paths])


def first(listed: list[Pair], n: int) -> list[Pair]:
    """The first ``n / 2`` genuine and the first ``n / 2`` impostor pairs (200 pairs: 134 images,
    a fifth of the embedding work of all 1,500)."""
    return [p for p in listed if p.same][: n // 2] + [p for p in listed if not p.same][: n // 2]


@functools.cache
def scores(
    data_dir: Path, model: str, crops: str = "as_is", n_pairs: int | None = None, verifier=None
) -> tuple[np.ndarray, np.ndarray]:
    """Scores and labels of every pair (or of ``n_pairs`` of them, see :func:`first`) for a
    preset model (or ``verifier``, an already loaded one).

    ``crops``: ``"as_is"`` feeds the 112 crops unchanged; ``"dlib_chip"`` re-aligns each crop with
    dlib's landmarks (freqxfr.imaging.align); ``"resized"`` resizes it naively (bicubic) to the input size.
    """
    from PIL import Image

    from freqxfr.imaging.align import align
    from freqxfr.model.verifier import load_model

    if n_pairs is None:
        listed, paths, images = pairs(data_dir)
    else:  # read only the images of the chosen pairs
        listed = first(
            read_pairs(data_dir / "lfw_aligned112" / "pairs_generated.csv", root=data_dir), n_pairs
        )
        paths = sorted({p.path_a for p in listed} | {p.path_b for p in listed})
        images = np.stack([load_image(p) for p in paths])
    verifier = verifier if verifier is not None else load_model(model)
    side = verifier.card.input_size[0]
    if crops == "dlib_chip":
        images = np.stack([align(img, "dlib_chip", side, aligned=False) for img in images])
    elif crops == "resized":
        images = np.stack(
            [
                np.asarray(Image.fromarray(img).resize((side, side), Image.Resampling.BICUBIC))
                for img in images
            ]
        )
    emb = verifier.embed(images)
    index = {p: k for k, p in enumerate(paths)}
    a = emb[[index[p.path_a] for p in listed]]
    b = emb[[index[p.path_b] for p in listed]]
    return verifier.score(a, b), np.array([p.same for p in listed])
