"""The masking backends on real faces: the C++ core against the numpy reference, and the contract."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import freqxfr
from freqxfr import BandSchedule, InputError, mask_bands

pytestmark = pytest.mark.unit

MODES = ["delete", "keep", "cumulative_delete", "cumulative_keep"]
DLIB_NORM = {"mean": (122.782, 117.001, 104.298), "std": 256.0}


def faces_at(face_like_images: np.ndarray, h: int, w: int, c: int, n: int = 2) -> np.ndarray:
    """Real faces resized (not cropped) to h×w, RGB or grayscale."""
    out = []
    for img in face_like_images[:n]:
        pil = Image.fromarray(img).resize((w, h), Image.BICUBIC)
        out.append(np.asarray(pil.convert("L"))[..., None] if c == 1 else np.asarray(pil))
    return np.stack(out)


def assert_close(actual: np.ndarray, expected: np.ndarray, rtol: float = 1e-4) -> None:
    """Relative to the result's scale: every element within rtol·max|expected|."""
    scale = float(np.abs(expected).max())
    np.testing.assert_allclose(actual, expected, rtol=0, atol=rtol * scale)


@pytest.mark.parametrize("size", [(112, 112), (150, 150), (111, 97), (112, 96)], ids=str)
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("mode", MODES)
def test_cpp_matches_numpy_reference(face_like_images, size, channels, mode):
    x = faces_at(face_like_images, *size, channels)
    schedule = BandSchedule.rings(8)
    order = [3, 0, 7, 1, 6, 2, 5, 4] if mode.startswith("cumulative") else None
    norm = {"mean": DLIB_NORM["mean"][:channels], "std": 64.0}
    for options in ({"domain": "pixel"}, {"domain": "normalised", "clip": True}):
        expected = mask_bands(x, schedule, mode, "numpy", order=order, **norm, **options)
        actual = mask_bands(x, schedule, mode, "cpp", order=order, **norm, **options)
        assert actual.shape == (2, 8, channels, *size)
        assert_close(actual, expected)


@pytest.mark.parametrize(
    "schedule",
    [BandSchedule.polar(4, 4), BandSchedule.log_rings(8), BandSchedule.rings(8, extent="nyquist")],
    ids=lambda s: s.kind,
)
def test_cpp_matches_numpy_for_other_schedules(face_like_images, schedule):
    x = face_like_images[:3]
    options = {"mean": DLIB_NORM["mean"], "std": (50.0, 60.0, 70.0), "channel_order": "BGR"}
    assert_close(
        mask_bands(x, schedule, "delete", "cpp", **options),
        mask_bands(x, schedule, "delete", "numpy", **options),
    )


@pytest.mark.parametrize("backend", ["scipy", "pyfftw"])
def test_python_peers_match_numpy_reference(face_like_images, backend):
    x = face_like_images[:2]
    schedule = BandSchedule.rings(16)
    for mode in ("delete", "cumulative_keep"):
        assert_close(
            mask_bands(x, schedule, mode, backend, **DLIB_NORM),
            mask_bands(x, schedule, mode, "numpy", **DLIB_NORM),
        )


@pytest.mark.parametrize("backend", ["cpp", "numpy"])
@pytest.mark.parametrize(
    "schedule", [BandSchedule.rings(16), BandSchedule.polar(4, 4)], ids=lambda s: s.kind
)
def test_keep_images_of_a_partition_sum_to_the_input(face_like_images, backend, schedule):
    x = face_like_images[:2]
    keep = mask_bands(x, schedule, "keep", backend)
    total = keep.sum(axis=1)  # (N, C, H, W)
    expected = np.moveaxis(x, -1, 1).astype(np.float64)
    np.testing.assert_allclose(total, expected, atol=2e-3)
    # And keeping every band cumulatively is the input itself.
    np.testing.assert_allclose(
        mask_bands(x, schedule, "cumulative_keep", backend)[:, -1], expected, atol=2e-3
    )


def test_delete_is_input_minus_keep(face_like_images):
    x = face_like_images[:2]
    schedule = BandSchedule.rings(16)
    delete = mask_bands(x, schedule, "delete")
    keep = mask_bands(x, schedule, "keep")
    expected = np.moveaxis(x, -1, 1)[:, None].astype(np.float32) - keep
    np.testing.assert_allclose(delete, expected, atol=2e-3)


def test_deleting_a_band_the_image_lacks_returns_the_input(face_like_images):
    # A real face, low-passed so that the outer half of the rings holds nothing.
    schedule = BandSchedule.rings(8)
    labels = schedule.resolve(112, 112).labels_full
    spectrum = np.fft.fft2(face_like_images[:1].astype(np.float64), axes=(1, 2))
    spectrum[:, labels >= 4, :] = 0
    low = np.fft.ifft2(spectrum, axes=(1, 2)).real.astype(np.float32)
    deleted = mask_bands(low, schedule, "delete", "cpp")
    np.testing.assert_allclose(deleted[:, 6], np.moveaxis(low, -1, 1), atol=1e-3)
    # ... while deleting a band it has changes it.
    assert np.abs(deleted[:, 1] - np.moveaxis(low, -1, 1)).max() > 1.0


@pytest.mark.parametrize("size", [(112, 112), (111, 97)], ids=str)
def test_band_limited_images_are_real(face_like_images, size):
    x = faces_at(face_like_images, *size, 3, n=1).astype(np.float64)
    labels = BandSchedule.polar(4, 4).resolve(*size).labels_full
    spectrum = np.fft.fft2(x, axes=(1, 2))
    for k in range(16):
        inverse = np.fft.ifft2(spectrum * (labels == k)[None, :, :, None], axes=(1, 2))
        assert np.abs(inverse.imag).max() < 1e-9 * max(1.0, np.abs(inverse.real).max())


def test_deleting_dc_leaves_black_in_pixel_domain_and_grey_in_normalised(face_like_images):
    x = face_like_images[:2]
    schedule = BandSchedule.rings(8)
    mean, std = (120.0, 110.0, 100.0), 50.0
    pixel = mask_bands(x, schedule, "delete", mean=mean, std=std, domain="pixel")[:, 0]
    normalised = mask_bands(x, schedule, "delete", mean=mean, std=std, domain="normalised")[:, 0]
    # Band 0 holds DC: the pixel-domain result has zero mean pixel value, i.e. -mean/std after
    # normalising; the normalised-domain result keeps the model's mean, i.e. 0 after normalising.
    np.testing.assert_allclose(
        pixel.mean(axis=(2, 3)), np.tile(-np.array(mean) / std, (2, 1)), atol=1e-3
    )
    np.testing.assert_allclose(normalised.mean(axis=(2, 3)), 0.0, atol=1e-3)


def test_results_do_not_depend_on_the_thread_count(face_like_images):
    schedule = BandSchedule.rings(16)
    for mode in ("delete", "cumulative_delete"):
        reference = mask_bands(face_like_images, schedule, mode, threads=1, **DLIB_NORM)
        for threads in (2, 3, 8):
            np.testing.assert_array_equal(
                mask_bands(face_like_images, schedule, mode, threads=threads, **DLIB_NORM),
                reference,
            )


def test_core_is_safe_from_several_python_threads(face_like_images):
    schedule = BandSchedule.rings(16)
    inputs = [np.roll(face_like_images, shift, axis=2) for shift in range(6)]
    expected = [mask_bands(x, schedule, threads=1) for x in inputs]
    results: dict[int, np.ndarray] = {}

    def work(i: int) -> None:
        results[i] = mask_bands(inputs[i], schedule, threads=2)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(inputs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, exp in enumerate(expected):
        np.testing.assert_array_equal(results[i], exp)


def test_out_buffer_can_be_a_slice_of_a_model_batch(face_like_images):
    x = face_like_images[:2]
    schedule = BandSchedule.rings(4)
    batch = np.zeros((2 + 2 * 4, 3, 112, 112), np.float32)
    view = batch[2:].reshape(2, 4, 3, 112, 112)
    result = mask_bands(x, schedule, "delete", out=view, **DLIB_NORM)
    assert result is view
    assert (batch[:2] == 0).all()
    np.testing.assert_array_equal(
        batch[2:].reshape(2, 4, 3, 112, 112), mask_bands(x, schedule, "delete", **DLIB_NORM)
    )


def test_nhwc_layout_is_a_transpose_of_nchw(face_like_images):
    x = face_like_images[:2]
    schedule = BandSchedule.rings(4)
    nchw = mask_bands(x, schedule, **DLIB_NORM)
    nhwc = mask_bands(x, schedule, layout="NHWC", **DLIB_NORM)
    np.testing.assert_array_equal(np.moveaxis(nhwc, -1, 2), nchw)


def test_non_contiguous_input_is_copied(face_like_images):
    x = face_like_images[:2]
    flipped = x[:, :, ::-1]
    assert not flipped.flags.c_contiguous
    schedule = BandSchedule.rings(4)
    np.testing.assert_array_equal(
        mask_bands(flipped, schedule), mask_bands(np.ascontiguousarray(flipped), schedule)
    )


@pytest.mark.parametrize(
    ("make_images", "kwargs", "message"),
    [
        (lambda x: x[0], {}, "4-D"),
        (lambda x: x.astype(np.float64), {}, "uint8 or float32"),
        (lambda x: x[:0], {}, "empty"),
        (
            lambda x: np.where(np.arange(112)[None, :, None, None] == 5, np.nan, x).astype(
                np.float32
            ),
            {},
            "NaN",
        ),
        (lambda x: np.full((1, 8, 8, 3), np.inf, np.float32), {}, "NaN or Inf"),
        (lambda x: np.concatenate([x, x[..., :1]], axis=-1), {}, "channels"),
        (lambda x: x.tolist(), {}, "numpy array"),
        (lambda x: x, {"out": np.zeros((2, 4, 3, 112, 111), np.float32)}, "shape"),
        (lambda x: x, {"out": np.zeros((2, 4, 3, 112, 112), np.float64)}, "float32"),
        (lambda x: x, {"backend": "fortran"}, "backend"),
        (lambda x: x, {"mode": "remove"}, "mode"),
        (lambda x: x, {"mode": "cumulative_delete", "order": [0, 1, 1, 2]}, "permutation"),
        (lambda x: x, {"order": [0, 1, 2, 3]}, "cumulative"),
        (lambda x: x, {"mean": [1.0, 2.0]}, "mean"),
        (lambda x: x, {"std": 0.0}, r"1e-06 <= \|std\|"),
        (lambda x: x, {"clip": (5, 1)}, "lo < hi"),
        (lambda x: x, {"threads": 0}, "threads"),
        (lambda x: x, {"domain": "log"}, "domain"),
        (lambda x: x[:, :4, :4], {"schedule": BandSchedule.rings(16)}, "distinct radii"),
    ],
)
def test_bad_input_raises_a_clear_value_error(face_like_images, make_images, kwargs, message):
    kwargs = {"schedule": BandSchedule.rings(4), **kwargs}
    with pytest.raises(ValueError, match=message) as info:
        mask_bands(make_images(face_like_images[:2]), **kwargs)
    assert isinstance(info.value, InputError)


def test_core_rejects_inconsistent_requests_without_crashing(face_like_images):
    core = freqxfr.core.fftw.compiled_core()
    x = face_like_images[:1]
    out = np.empty((1, 2, 3, 112, 112), np.float32)
    good = np.zeros((112, 57), np.int32)

    def options(**changes):
        opt = core.MaskOptions()
        opt.bands, opt.mean, opt.std, opt.threads = 2, [0.0] * 3, [1.0] * 3, 1
        for name, value in changes.items():
            setattr(opt, name, value)
        return opt

    with pytest.raises(ValueError, match="labels"):
        core.mask_bands(x, np.zeros((112, 56), np.int32), out, options())
    with pytest.raises(ValueError, match="out of range"):
        core.mask_bands(x, good + 5, out, options())
    with pytest.raises(ValueError, match="out must be"):
        core.mask_bands(x, good, out[:, :1], options())
    with pytest.raises(ValueError, match="permutation"):
        core.mask_bands(x, good, out, options(mode="cumulative_keep", order=[0, 0]))
    with pytest.raises(ValueError, match="unknown mode"):
        options(mode="erase")
    weights = np.ones((2, 112, 112), np.float32)
    with pytest.raises(ValueError, match="out must be"):  # K·R = 4 images, not 2
        core.mask_bands(x, good, out, options(), weights)
    with pytest.raises(ValueError, match=r"regions must have shape \(R, H, W\)"):
        core.mask_bands(
            x, good, np.empty((1, 4, 3, 112, 112), np.float32), options(), weights[:, :5]
        )
    with pytest.raises(ValueError, match=r"every band \(or cell\) once"):  # over K, not K·R cells
        core.mask_bands(
            x,
            good,
            np.empty((1, 4, 3, 112, 112), np.float32),
            options(mode="cumulative_delete", order=[0, 1]),
            weights,
        )


_FFTW_SCRIPT = """
import json, sys
import numpy as np
import freqxfr
from freqxfr.core import fftw
x = np.random.default_rng(0).integers(0, 256, (1, 48, 48, 3), dtype=np.uint8)
core = fftw.compiled_core()
imported = fftw._saved_wisdom is not None
cpp = freqxfr.mask_bands(x, freqxfr.BandSchedule.rings(5), planner="measure")
ref = freqxfr.mask_bands(x, freqxfr.BandSchedule.rings(5), backend="numpy")
print(json.dumps({"library": core.fftw_library_path(), "wisdom": str(fftw._wisdom_path()),
                  "imported": imported, "error": float(np.abs(cpp - ref).max())}))
"""


def _fftw_run(tmp_path, **env):
    """The core in a fresh process (FFTW is loaded once per process) with its own cache."""
    result = subprocess.run(
        [sys.executable, "-c", _FFTW_SCRIPT],
        capture_output=True,
        text=True,
        env={**os.environ, "FREQXFR_CACHE_DIR": str(tmp_path / "cache"), **env},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_fftw_comes_from_pyfftw_and_wisdom_is_saved_and_reused(tmp_path):
    """Wisdom goes to the cache (FREQXFR_CACHE_DIR here, so no state of the user cache counts)
    and the next process imports it."""
    first = _fftw_run(tmp_path)
    assert "pyfftw.libs" in first["library"] and "fftw3f" in first["library"]
    wisdom = Path(first["wisdom"])
    assert wisdom.parent == tmp_path / "cache" / "fftw" and first["imported"] is False
    assert "fftw" in wisdom.read_text()
    assert first["error"] < 1e-3
    second = _fftw_run(tmp_path)
    assert second["imported"] is True and second["wisdom"] == first["wisdom"]


def test_fftw_library_from_the_environment_variable(tmp_path):
    """README: FFTW comes from pyfftw's wheel, from $FREQXFR_FFTW_LIBRARY, or from the system. A
    copy of the wheel's library under another name, named by the variable, is the one loaded."""
    wheel = freqxfr.core.fftw.find_library()
    copy = tmp_path / "lib" / "libfftw3f-from-env.so"
    copy.parent.mkdir()
    shutil.copy(wheel, copy)
    run = _fftw_run(tmp_path, FREQXFR_FFTW_LIBRARY=str(copy))
    assert run["library"] == str(copy)
    assert run["error"] < 1e-3


def test_missing_fftw_library_is_reported(monkeypatch, tmp_path):
    monkeypatch.setenv("FREQXFR_FFTW_LIBRARY", str(tmp_path / "libfftw3f.so"))
    with pytest.raises(freqxfr.FreqxfrError, match="file not found"):
        freqxfr.core.fftw.find_library()
