"""A toy face-verification model whose embedding is a known linear function of the pixels.

Tests that are about *meaning* (which image an influence belongs to, which band, which order, which
setting) use it instead of a real network: with it every influence can be worked out by hand, so
an answer from the wrong side, band, domain or mode is wrong by a visible amount, not by a
statistical margin. It runs through the project's normal path: an ONNX graph built with the
``onnx`` helper API, a TOML card with ``source = "file:..."``, :func:`freqxfr.load_model`.

The graph: input ``x`` (N, 3, 16, 16) float32 (normalised, NCHW, the card's channel order),
output (N, 4)::

    e[c] = mean over pixels of x[c]           c = 0, 1, 2 (the model's channel order)
    e[3] = mean over pixels of x[0] · P(col)  P = cos(π col / 2) = 1, 0, -1, 0, 1, ...

The card: Euclidean metric (score = -‖e_a - e_b‖), no alignment.

The images (:func:`flat` and :func:`waved`): a constant colour has only the DC coefficient, which
lies in band 0 of every ring schedule; the wave P on the red channel is the single frequency
(0, ±4 cycles per image), which lies in band 1 of 4 rings at 16×16 (ρ = 4/√128 = 0.354). So with
4 rings, deleting band 2 or 3 of any of these images changes nothing, deleting band 1 removes the
wave exactly, and deleting band 0 leaves the wave alone (or nothing).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SIZE = 16
WAVE = np.tile([1, 0, -1, 0], SIZE // 4)  # P(col): 4 cycles per image, exactly representable


def weights() -> np.ndarray:
    """The (3·16·16, 4) matrix of the embedding, for input flattened as (c, row, col)."""
    n = SIZE * SIZE
    w = np.zeros((3, SIZE, SIZE, 4), np.float32)
    for c in range(3):
        w[c, :, :, c] = 1.0 / n
    w[0, :, :, 3] = WAVE[None, :] / n
    return w.reshape(3 * n, 4)


def write_model(
    folder: Path,
    *,
    name: str = "toy",
    threshold: float = -20.0,
    mean=(10.0, 20.0, 30.0),
    std=(2.0, 2.0, 2.0),
    value_range=(0.0, 255.0),
    channel_order: str = "RGB",
    card_name: str = "toy.toml",
) -> Path:
    """Write ``toy.onnx`` (once) and a card for it into ``folder``; returns the card's path."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    folder.mkdir(parents=True, exist_ok=True)
    onnx_path = folder / "toy.onnx"
    if not onnx_path.is_file():
        graph = helper.make_graph(
            [
                helper.make_node("Flatten", ["x"], ["flat"], axis=1),
                helper.make_node("MatMul", ["flat", "w"], ["embedding"]),
            ],
            "toy",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, SIZE, SIZE])],
            [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", 4])],
            [numpy_helper.from_array(weights(), "w")],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
        model.ir_version = 8
        onnx.checker.check_model(model)
        onnx.save(model, str(onnx_path))
    card = folder / card_name
    card.write_text(
        f'name = "{name}"\ninput_size = [{SIZE}, {SIZE}]\nlayout = "NCHW"\n'
        f'channel_order = "{channel_order}"\nvalue_range = {list(value_range)}\n'
        f"mean = {list(mean)}\nstd = {list(std)}\nembedding_size = 4\n"
        f'metric = "euclidean"\nthreshold = {threshold}\nalignment = "none"\n'
        'source = "file:toy.onnx"\n'
    )
    return card


def load(folder: Path, **card):
    """The toy model through :func:`freqxfr.load_model` (one CPU thread)."""
    from freqxfr.model.verifier import load_model

    return load_model(write_model(folder, **card), threads=1)


def flat(rgb) -> np.ndarray:
    """A 16×16 image of one colour."""
    return np.broadcast_to(np.asarray(rgb, np.uint8), (SIZE, SIZE, 3)).copy()


def waved(rgb, amplitude: int) -> np.ndarray:
    """:func:`flat` plus ``amplitude · P(col)`` on the red channel (stays within 0..255)."""
    image = flat(rgb).astype(np.int64)
    image[..., 0] += amplitude * WAVE[None, :]
    assert image.min() >= 0 and image.max() <= 255
    return image.astype(np.uint8)


def save(image: np.ndarray, path: Path) -> Path:
    """Write ``image`` losslessly (PNG)."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)
    return path
