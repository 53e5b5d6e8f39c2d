"""load_image on real photos, on every odd-but-valid kind of input, and on every bad one."""

from __future__ import annotations

import io
import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from freqxfr.common.errors import ImageError
from freqxfr.imaging.images import MAX_PIXELS, load_image


@pytest.fixture(scope="module")
def photo_path(data_dir: Path) -> Path:
    return data_dir / "frll" / "neutral" / "001_03.jpg"


@pytest.fixture(scope="module")
def photo(photo_path: Path) -> np.ndarray:
    """A real FRLL photo, downscaled and cropped to a non-square 180x240 (W x H) RGB array."""
    with Image.open(photo_path) as img:
        small = img.convert("RGB").resize((270, 270), Image.Resampling.BICUBIC)
    return np.asarray(small)[15:255, 45:225].copy()


def _png_bytes(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height RGB pixels, followed by a tiny IDAT."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        body = kind + payload
        return struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def _save(img: Image.Image, path: Path, **kwargs) -> Path:
    img.save(path, **kwargs)
    return path


# --- good inputs ---------------------------------------------------------------------------


@pytest.mark.model
def test_jpeg_file_loads_as_contiguous_rgb(photo_path: Path) -> None:
    out = load_image(photo_path)
    with Image.open(photo_path) as img:
        expected = np.asarray(img.convert("RGB"))
    assert out.shape == (1350, 1350, 3)
    assert out.dtype == np.uint8
    assert out.flags.c_contiguous
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(load_image(str(photo_path)), expected)


@pytest.mark.model
def test_rgb_array_is_copied_not_aliased(photo: np.ndarray) -> None:
    out = load_image(photo)
    np.testing.assert_array_equal(out, photo)
    out[0, 0] = 255 - out[0, 0]
    assert not np.array_equal(out[0, 0], photo[0, 0])


@pytest.mark.model
def test_non_contiguous_array_comes_back_contiguous(photo: np.ndarray) -> None:
    view = photo[:, ::-1]
    out = load_image(view)
    assert out.flags.c_contiguous
    np.testing.assert_array_equal(out, view)


@pytest.mark.model
def test_greyscale_file_becomes_three_equal_channels(photo: np.ndarray, tmp_path: Path) -> None:
    grey = Image.fromarray(photo).convert("L")
    out = load_image(_save(grey, tmp_path / "grey.png"))
    assert out.shape == (*photo.shape[:2], 3)
    for channel in range(3):
        np.testing.assert_array_equal(out[:, :, channel], np.asarray(grey))


@pytest.mark.model
@pytest.mark.parametrize("shape_suffix", [(), (1,)])
def test_greyscale_array(photo: np.ndarray, shape_suffix: tuple[int, ...]) -> None:
    grey = photo[:, :, 1].reshape(photo.shape[:2] + shape_suffix)
    out = load_image(grey)
    np.testing.assert_array_equal(out, np.repeat(photo[:, :, 1:2], 3, axis=2))


@pytest.mark.model
def test_rgba_is_composited_on_white(photo: np.ndarray, tmp_path: Path) -> None:
    alpha = np.full(photo.shape[:2], 255, np.uint8)
    alpha[:, :60] = 0  # transparent strip
    alpha[:, 60:120] = 128  # half-transparent strip
    rgba = np.dstack([photo, alpha])
    out = load_image(_save(Image.fromarray(rgba, "RGBA"), tmp_path / "rgba.png"))
    assert out.shape == photo.shape
    assert (out[:, :60] == 255).all()
    np.testing.assert_array_equal(out[:, 120:], photo[:, 120:])
    blended = np.rint(photo[:, 60:120] * (128 / 255) + 255 * (127 / 255))
    assert np.abs(out[:, 60:120].astype(float) - blended).max() <= 1
    np.testing.assert_array_equal(load_image(rgba), out)


@pytest.mark.model
def test_la_and_palette_with_transparency(photo: np.ndarray, tmp_path: Path) -> None:
    grey = Image.fromarray(photo).convert("L")
    alpha = Image.fromarray(
        np.where(np.arange(photo.shape[1]) < 50, 0, 255)
        .astype(np.uint8)[None]
        .repeat(photo.shape[0], 0)
    )
    la = Image.merge("LA", (grey, alpha))
    out = load_image(_save(la, tmp_path / "la.png"))
    assert (out[:, :50] == 255).all()
    np.testing.assert_array_equal(out[:, 50:, 0], np.asarray(grey)[:, 50:])

    palette = Image.fromarray(photo).quantize(16)
    transparent_index = np.asarray(palette)[0, 0]
    _save(palette, tmp_path / "p.png", transparency=int(transparent_index))
    out = load_image(tmp_path / "p.png")
    mask = np.asarray(palette) == transparent_index
    assert (out[mask] == 255).all()
    assert not (out[~mask] == 255).all()


@pytest.mark.model
def test_sixteen_bit_png_scales_to_eight_bits(photo: np.ndarray, tmp_path: Path) -> None:
    grey8 = np.asarray(Image.fromarray(photo).convert("L"))
    # v * 257 + 100 still rounds to v (65535 / 255 = 257); truncating division would not.
    grey16 = np.minimum(grey8.astype(np.int64) * 257 + 100, 65535).astype(np.uint16)
    path = _save(Image.fromarray(grey16), tmp_path / "grey16.png")
    with Image.open(path) as check:
        assert check.mode.startswith("I")  # it really is a 16-bit file
    out = load_image(path)
    np.testing.assert_array_equal(out[:, :, 0], grey8)
    np.testing.assert_array_equal(load_image(np.dstack([grey16] * 3)), np.dstack([grey8] * 3))


@pytest.mark.model
def test_float_arrays_in_unit_range(photo: np.ndarray) -> None:
    out = load_image(photo.astype(np.float32) / 255.0)
    np.testing.assert_array_equal(out, photo)
    np.testing.assert_array_equal(load_image(photo / 255.0 + 1e-4), photo)  # noise is clipped


@pytest.mark.model
def test_cmyk_jpeg_converts_to_rgb(photo: np.ndarray, tmp_path: Path) -> None:
    path = _save(Image.fromarray(photo).convert("CMYK"), tmp_path / "cmyk.jpg", quality=95)
    out = load_image(path)
    assert out.shape == photo.shape
    assert np.abs(out.astype(float) - photo).mean() < 4


@pytest.mark.model
@pytest.mark.parametrize(("orientation", "k"), [(3, 2), (6, -1), (8, 1)])
def test_exif_orientation_is_applied(
    photo: np.ndarray, tmp_path: Path, orientation: int, k: int
) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = _save(Image.fromarray(photo), tmp_path / "rotated.jpg", exif=exif, quality=95)
    with Image.open(path) as img:
        stored = np.asarray(img.convert("RGB"))  # the pixels as stored, not yet rotated
    out = load_image(path)
    np.testing.assert_array_equal(out, np.rot90(stored, k))
    if orientation != 3:
        assert out.shape[:2] == photo.shape[1::-1]  # 180x240 turned into 240x180
    with Image.open(path) as img:
        np.testing.assert_array_equal(load_image(img), out)


# --- bad files -----------------------------------------------------------------------------


def _bad_files(photo_path: Path, folder: Path) -> dict[str, Path]:
    jpeg = photo_path.read_bytes()
    buffer = io.BytesIO()
    with Image.open(photo_path) as img:
        img.convert("RGB").resize((200, 200)).save(buffer, "PNG")
    png = buffer.getvalue()
    damaged = bytearray(png)
    damaged[len(png) // 2 : len(png) // 2 + 64] = b"\0" * 64
    files = {
        "truncated.jpg": jpeg[: len(jpeg) // 2],
        "header-only.jpg": jpeg[:200],
        "truncated.png": png[: len(png) // 2],
        "corrupt.png": bytes(damaged),
        "bomb.png": _png_bytes(20_000, 20_000),  # above Pillow's own hard limit
        "big.png": _png_bytes(12_000, 12_000),  # 144 Mpx: above MAX_PIXELS only
        "zero.png": _png_bytes(0, 0),
        "text.jpg": b"this is not an image\n",
        "empty.png": b"",
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return {name: folder / name for name in files}


BAD_FILES = [
    "truncated.jpg",
    "header-only.jpg",
    "truncated.png",
    "corrupt.png",
    "bomb.png",
    "big.png",
    "zero.png",
    "text.jpg",
    "empty.png",
]


@pytest.mark.model
@pytest.mark.parametrize("bad", BAD_FILES)
def test_bad_file_raises_image_error_naming_it(photo_path: Path, tmp_path: Path, bad: str) -> None:
    path = _bad_files(photo_path, tmp_path)[bad]
    with pytest.raises(ImageError, match=re.escape(str(path))):
        load_image(path)


@pytest.mark.model
def test_big_png_is_refused_for_its_size(photo_path: Path, tmp_path: Path) -> None:
    assert 12_000 * 12_000 > MAX_PIXELS
    path = _bad_files(photo_path, tmp_path)["big.png"]
    with pytest.raises(ImageError, match="too large"):
        load_image(path)


@pytest.mark.model
def test_truncated_pil_image_raises(photo_path: Path, tmp_path: Path) -> None:
    path = _bad_files(photo_path, tmp_path)["truncated.jpg"]
    with Image.open(path) as img, pytest.raises(ImageError, match="truncated"):
        load_image(img)


@pytest.mark.unit
def test_missing_file_and_directory(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "face.jpg"
    with pytest.raises(ImageError, match=re.escape(f"{missing}: file not found")):
        load_image(missing)
    with pytest.raises(ImageError, match="is a folder"):
        load_image(tmp_path)


@pytest.mark.unit
def test_name_overrides_the_label(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match=r"^probe A: file not found"):
        load_image(tmp_path / "x.jpg", name="probe A")


# --- bad arrays ----------------------------------------------------------------------------

BAD_ARRAYS = {
    "1-d": np.zeros(10, np.uint8),
    "4-d": np.zeros((2, 4, 4, 3), np.uint8),
    "2 channels": np.zeros((4, 4, 2), np.uint8),
    "5 channels": np.zeros((4, 4, 5), np.uint8),
    "empty": np.zeros((0, 4, 3), np.uint8),
    "nan": np.full((4, 4, 3), np.nan, np.float32),
    "inf": np.full((4, 4, 3), np.inf, np.float64),
    "0..255 floats": np.full((4, 4, 3), 200.0, np.float32),
    "negative floats": np.full((4, 4, 3), -0.5, np.float32),
    "int64": np.zeros((4, 4, 3), np.int64),
    "bool": np.zeros((4, 4), bool),
}


@pytest.mark.unit
@pytest.mark.parametrize("kind", list(BAD_ARRAYS))
def test_bad_array_raises_image_error_naming_it(kind: str) -> None:
    with pytest.raises(ImageError, match=r"^my-input: "):
        load_image(BAD_ARRAYS[kind], name="my-input")


@pytest.mark.unit
def test_unsupported_source_type() -> None:
    with pytest.raises(ImageError, match="expected a file path"):
        load_image([[0, 1], [2, 3]])  # type: ignore[arg-type]
