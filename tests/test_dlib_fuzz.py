"""Fuzzing the dlib ``.dat`` reader: truncations, byte flips, absurd size claims, empty and
foreign files are refused with ``ModelError``, allocate no more than the file's size and leave
nothing in the cache.

A flip inside weight data (or inside a training-only number such as a learning rate) cannot be
detected: dlib's format has no checksum, so such a file converts, unless the flip made a weight
NaN or infinite, which is refused. Every other flip must be refused. Cases are drawn from a
fixed seed, so each run checks the same files.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from freqxfr import ModelError
from freqxfr.model.converters import dlib_resnet
from freqxfr.model.converters._dlib_serialization import Reader

pytestmark = pytest.mark.model

# Fields whose value the converter does not use, besides the weights: training settings and
# the (empty) training state of each layer, whose zero-size shapes may read e.g. (255, 0, 0, 0).
UNCHECKED = (
    "lr_mult",
    "wd_mult",
    "bias_lr_mult",
    "bias_wd_mult",
    "loss margin",
    "sample_expansion_factor",
)
UNCHECKED_STATE = ("x_grad ", "cached_output ", "params_grad ", "grad_final ")


@pytest.fixture(scope="module")
def source() -> bytes:
    return dlib_resnet.source_path().read_bytes()


@pytest.fixture(scope="module")
def read_map(source: bytes) -> np.ndarray:
    """For every byte of the real file: 1 if the converter cannot check it (weight data,
    training settings), else 0; found by recording every read of a full parse."""
    unchecked = np.zeros(len(source), np.uint8)
    take = Reader.take

    def spy(self: Reader, count: int, what: str):
        if (
            what.startswith(("data of tensor", *UNCHECKED_STATE))
            or what.split(" (")[0] in UNCHECKED
        ):
            unchecked[self.offset : self.offset + count] = 1
        return take(self, count, what)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Reader, "take", spy)
        dlib_resnet.parse(source, "spy")
    return unchecked


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    root = tmp_path / "cache"
    monkeypatch.setenv("FREQXFR_CACHE_DIR", str(root))
    yield root
    # Nothing may be left in the cache by a refused file.
    assert not root.exists() or not [p for p in root.rglob("*") if p.is_file()]


def refused(data: bytes) -> str:
    """Parse ``data``; return the ModelError's message. Fails the test if it is accepted, raises
    anything else, or allocates more than the file's size (plus the reader's bookkeeping)."""
    tracemalloc.start()
    try:
        with pytest.raises(ModelError) as info:
            dlib_resnet.parse(data, "fuzzed.dat")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # The parsed tensors are copies of the file's bytes: never more than the file itself.
    assert peak <= len(data) + (1 << 20), f"peak {peak} for a file of {len(data)} bytes"
    message = str(info.value)
    assert "\n" not in message and message.startswith("fuzzed.dat: ")
    return message


def test_truncations_are_refused(source):
    """Guards against a cut file reading past its end or being taken as complete."""
    rng = np.random.default_rng(81)
    cuts = [0, 1, 2, 15, 16, 17, 40, 1000, len(source) - 1, len(source) - 4]
    cuts += rng.integers(0, len(source), 30).tolist()
    for cut in cuts:
        message = refused(source[:cut])
        assert "file ends inside" in message or "wrong magic" in message, (cut, message)


def test_byte_flips_outside_the_weights_are_refused(source, read_map):
    """Every flipped byte the converter reads as structure (header, tags, versions, shapes,
    geometry, state) is refused; flips in weight data either stay finite or are refused."""
    rng = np.random.default_rng(82)
    structural = np.flatnonzero(read_map == 0)
    weights = np.flatnonzero(read_map == 1)
    positions = rng.choice(structural, 60, replace=False).tolist()
    positions += structural[:40].tolist()  # the header, densely
    for pos in positions:
        data = bytearray(source)
        data[pos] ^= 0xFF
        refused(bytes(data))
    for pos in rng.choice(weights, 8, replace=False).tolist():
        data = bytearray(source)
        data[pos] ^= 0xFF
        try:
            net = dlib_resnet.parse(bytes(data), "fuzzed.dat")
        except ModelError as exc:
            assert "NaN or infinite" in str(exc)
        else:
            assert all(
                np.isfinite(layer.fields["params"]).all()
                for _, layer in net.layers
                if layer is not None and "params" in layer.fields
            )


def _int(value: int) -> bytes:
    """dlib's integer encoding: a control byte with the length, then the magnitude (LE)."""
    size = max(1, (value.bit_length() + 7) // 8)
    return bytes([size]) + value.to_bytes(size, "little")


def _first_read(source: bytes, label: str) -> tuple[int, int]:
    """(offset, length) of the first integer read whose label is ``label``."""
    found: list[tuple[int, int]] = []
    int_ = Reader.int_

    def spy(self: Reader, what: str) -> int:
        start = self.offset
        value = int_(self, what)
        if what == label and not found:
            found.append((start, self.offset - start))
        return value

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Reader, "int_", spy)
        dlib_resnet.parse(source, "spy")
    return found[0]


@pytest.mark.parametrize("claim", [2**31, 2**40, 2**62, 2**64 - 1])
def test_absurd_tensor_size_claims_are_refused_without_allocating_them(source, claim):
    """A tensor that claims more elements than the file has bytes is refused before anything of
    that size is allocated (the tracemalloc peak stays below the file's size)."""
    offset, length = _first_read(source, "con params dimension")
    data = source[:offset] + _int(claim) + source[offset + length :]
    assert "file ends inside data of tensor con params" in refused(data)


@pytest.mark.parametrize(
    ("label", "value", "expect"),
    [
        ("type tag of a con layer", 2**60, "found no dlib layer tag"),
        ("type tag of a con layer", 2**64 - 1, "found no dlib layer tag"),
        ("fc num_outputs", 2**63 - 1, "geometry"),
    ],
)
def test_absurd_lengths_and_counts_are_refused(source, label, value, expect):
    offset, length = _first_read(source, label)
    data = source[:offset] + _int(value) + source[offset + length :]
    assert expect in refused(data)


def test_bad_integer_encodings_are_refused(source):
    """Integer control bytes claiming 0 or more than 8 magnitude bytes."""
    offset, _ = _first_read(source, "con num_filters")
    for control in (0x00, 0x09, 0x0F, 0x8F):
        data = bytearray(source)
        data[offset] = control
        assert "bad integer control byte" in refused(bytes(data))


def test_empty_and_foreign_files_are_refused_and_leave_no_cache_entry(tmp_path, cache, data_dir):
    """Each refused through the public converter, with the cache checked empty afterwards."""
    from freqxfr.model.converters import sface

    jpeg = sorted((data_dir / "lfw_aligned112" / "images").rglob("*.jpg"))[0].read_bytes()
    foreign = {
        "empty.dat": b"",
        "text.dat": b"dlib_face_recognition_resnet_model_v1\n" * 10,
        "face.jpg.dat": jpeg,
        "sface.onnx.dat": sface.source_path().read_bytes(),
        "random.dat": np.random.default_rng(83).bytes(4096),
        "magic-only.dat": b"\x01\x01\x01\x0dloss_metric_2",
    }
    for name, data in foreign.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(ModelError, match=f"{name}: not dlib's face-recognition ResNet"):
            dlib_resnet.converted_path(path)
        assert refused(data)
