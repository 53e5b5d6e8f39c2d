"""Padding of re-cut crops on real faces: dlib's 150 chip from tight 112 LFW crops reaches beyond
them, and ``padding`` says what fills that part (``freqxfr.imaging.align``)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from freqxfr.common.errors import InputError
from freqxfr.imaging.align import (
    DEFAULT_PADDING,
    PADDINGS,
    align,
    align_crop,
    card_crop,
    check_padding,
)
from freqxfr.imaging.images import load_image
from freqxfr.model.cards import preset

pytestmark = [pytest.mark.model, pytest.mark.dlib]

PADDING_GUIDE = (
    Path(__file__).resolve().parents[1] / "docs" / "guide" / "crossres.md"
)  # the padding guide


@pytest.fixture(scope="module")
def dlib():
    import dlib  # a hard dependency (dlib-bin)

    return dlib


@pytest.fixture(scope="module")
def crops(lfw_images) -> np.ndarray:
    """Real LFW crops with no pure-black pixel of their own, so that every black chip pixel is
    padding."""
    return np.maximum(lfw_images, 1)


def _black(chip: np.ndarray) -> np.ndarray:
    return (chip == 0).all(axis=2)


def test_padded_fraction_is_the_share_dlib_leaves_black(crops) -> None:
    """With black padding, dlib itself decides which chip pixels lie beyond the crop (it leaves
    them 0); the reported fraction must count exactly those. Guards the chip-to-photo geometry
    (rect corners, rotation about the centre, dlib's 0 <= x < W - 1 rule): an off-by-one or a
    wrong rotation sign miscounts the rim."""
    # ArcFace crops are upright and centred. Turned copies (grey corners, not black), cut off
    # centre, make dlib's chip turn and reach beyond the photo unevenly, so that the rotation's
    # sign and centre matter (a centred chip's mirror image pads the same share).
    turned = [
        np.ascontiguousarray(
            np.asarray(
                Image.fromarray(crop).rotate(angle, Image.Resampling.BILINEAR, fillcolor=(128,) * 3)
            )[:, 20:]
        )
        for crop, angle in zip(crops[:4], (12, -12, 20, -20), strict=True)
    ]
    for crop in [*crops, *turned]:
        result = align_crop(np.maximum(crop, 1), "dlib_chip", aligned=False, padding="black")
        black = _black(result.pixels)
        assert result.padding == "black"
        assert result.padded_fraction == pytest.approx(black.mean(), abs=1e-12)
        assert 0.02 < result.padded_fraction < 0.3  # the chip reaches beyond every tight crop


def test_a_chip_inside_the_photo_is_not_padded(data_dir) -> None:
    """On a studio photo the chip lies inside: nothing is padded and every padding gives dlib's
    own chip. Cutting the photo through the face makes the fraction grow with the cut."""
    photo = load_image(data_dir / "frll" / "neutral" / "001_03.jpg")
    chips = {p: align_crop(photo, "dlib_chip", padding=p) for p in PADDINGS}
    assert all(c.padded_fraction == 0.0 for c in chips.values())
    assert np.array_equal(chips["edge"].pixels, chips["black"].pixels)
    assert np.array_equal(chips["reflect"].pixels, chips["black"].pixels)
    # keep the photo's right part from a column left of the face's centre, and less of it
    fractions = []
    for left in (500, 560, 620):
        cut = np.ascontiguousarray(photo[:, left:])
        fractions.append(align_crop(cut, "dlib_chip", padding="black").padded_fraction)
    assert 0 < fractions[0] < fractions[1] < fractions[2] < 0.6


def test_edge_padding_leaves_no_black_where_black_padding_does(crops) -> None:
    """Edge and reflect padding fill the rim with the photo's own colours; inside the crop all
    three paddings give the same pixels (the photo is padded, dlib's sampler is unchanged)."""
    for crop in crops[:4]:
        black = align(crop, "dlib_chip", aligned=False, padding="black")
        rim = _black(black)
        assert rim.mean() > 0.02
        for padding in ("edge", "reflect"):
            chip = align(crop, "dlib_chip", aligned=False, padding=padding)
            assert not _black(chip).any(), padding
            np.testing.assert_array_equal(chip[~rim], black[~rim])


def test_edge_padding_is_dlibs_chip_of_the_edge_padded_photo(dlib, crops) -> None:
    """The edge/reflect chip is exactly what dlib cuts from the photo padded by numpy beforehand
    (landmarks moved with it), whatever margin the padding used."""
    _, _, predictor = __import__("freqxfr.imaging.align", fromlist=["_dlib_models"])._dlib_models()
    crop = np.ascontiguousarray(crops[0])
    from freqxfr.imaging.align import ARCFACE112_DLIB_BOX

    shape = predictor(crop, dlib.rectangle(*ARCFACE112_DLIB_BOX))
    from freqxfr.imaging.align import dlib_chip

    m = 80
    moved = dlib.full_object_detection(
        dlib.rectangle(shape.rect.left() + m, shape.rect.top() + m,
                       shape.rect.right() + m, shape.rect.bottom() + m),
        dlib.points([dlib.point(p.x + m, p.y + m) for p in shape.parts()]),
    )  # fmt: skip
    for padding, mode in (("edge", "edge"), ("reflect", "reflect")):
        padded = np.pad(crop, ((m, m), (m, m), (0, 0)), mode)
        expected = dlib.get_face_chip(padded, moved, size=150, padding=0.25)
        chip, fraction = dlib_chip(crop, shape, 150, padding)
        assert fraction > 0.02
        np.testing.assert_array_equal(chip, expected)


def test_arcface_crops_pad_too(data_dir) -> None:
    """The ArcFace warp pads as asked: a photo cut through the face gives a crop whose black
    share (black padding) matches the reported fraction; edge padding leaves no black."""
    photo = load_image(data_dir / "frll" / "neutral" / "001_03.jpg")
    cut = np.ascontiguousarray(np.maximum(photo[:, 560:], 1))
    black = align_crop(cut, "arcface112", padding="black")
    edge = align_crop(cut, "arcface112", padding="edge")
    assert black.padded_fraction == edge.padded_fraction > 0.05
    # bilinear/area blending makes the rim's last pixel dark rather than black: within a column
    assert abs(_black(black.pixels).mean() - black.padded_fraction) < 1.5 / 112
    assert not _black(edge.pixels).any()


def test_default_padding_is_the_one_the_readme_names(crops) -> None:
    """The guide (docs/guide/crossres.md) states the default padding; the code's default must be that one, and the
    default chip must be that padding's chip (no black rim on a tight crop)."""
    text = PADDING_GUIDE.read_text(encoding="utf-8")
    named = re.search(r"\(`--padding edge\|reflect\|black`, default `(\w+)`\)", text)
    assert named is not None, "docs/guide/crossres.md must name the default --padding"
    assert DEFAULT_PADDING == named.group(1) == "edge"
    default = align(crops[1], "dlib_chip", aligned=False)
    np.testing.assert_array_equal(
        default, align(crops[1], "dlib_chip", aligned=False, padding=named.group(1))
    )
    assert not _black(default).any()


def test_aligned_input_is_not_padded_and_bad_padding_is_refused(crops) -> None:
    crop = card_crop(crops[0], preset("sface"))
    assert crop.padded_fraction == 0.0 and np.array_equal(crop.pixels, crops[0])
    with pytest.raises(InputError, match=r"^padding: unknown padding 'grey'; choose one of "):
        align(crops[0], "dlib_chip", padding="grey")
    with pytest.raises(InputError, match="padding"):
        check_padding("zero")
