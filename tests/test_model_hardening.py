"""Model files, cards and the model cache under hostile use: each mistake is one clear error.

Everything here converts into a private cache (``FREQXFR_CACHE_DIR`` = a tmp folder).
"""

from __future__ import annotations

import asyncio
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from freqxfr import BandSchedule, InputError, ModelCard, ModelError
from freqxfr.model.cards import parse_card, preset
from freqxfr.model.converters import _cache, dlib_resnet, sface
from freqxfr.model.converters._dlib_serialization import Reader
from freqxfr.model.loading import model_path
from freqxfr.model.verifier import load_model

SOURCE = dlib_resnet.source_path()


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    root = tmp_path / "cache"
    monkeypatch.setenv("FREQXFR_CACHE_DIR", str(root))
    yield root


@pytest.fixture(scope="module")
def source_bytes() -> bytes:
    return SOURCE.read_bytes()


def cache_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


# ---- defect 9: cards naming something that is not a converter ----------------------------------


@pytest.mark.model
@pytest.mark.parametrize(
    "module",
    ["_cache", "_packages", "_dlib_serialization", "_dlib_network", "_dlib_onnx", "_sface_onnx"],
)
def test_card_naming_a_private_module_as_converter_is_a_model_error(module):
    """Guards against ``source = "converter:_cache"`` ending in an AttributeError (the module
    exists but has no ``converted_path``)."""
    card = preset("dlib_resnet").replace(source=f"converter:{module}")
    with pytest.raises(ModelError, match=f"invalid converter name '{module}'"):
        model_path(card)


@pytest.mark.model
def test_card_naming_a_module_without_converter_is_a_model_error(monkeypatch):
    """A public module that is no converter (here a mock module, named as one) is refused."""
    import types

    fake = types.ModuleType(
        "freqxfr.model.converters.notaconverter"
    )  # mock: a module with no converter
    monkeypatch.setitem(sys.modules, "freqxfr.model.converters.notaconverter", fake)
    card = preset("dlib_resnet").replace(source="converter:notaconverter")
    with pytest.raises(ModelError, match="is not a model converter"):
        model_path(card)


@pytest.mark.model
def test_converter_module_is_the_one_lookup_for_cards_and_commands():
    """``model_loading.converter_module`` (what ``model_path`` and ``freqxfr models`` use) gives
    the converter of a converted preset, None for a card whose model you bring or name by file,
    and the same ModelError as model_path for a bad name."""
    from freqxfr.model.converters import dlib_resnet
    from freqxfr.model.loading import converter_module

    assert converter_module(preset("dlib_resnet")) is dlib_resnet
    assert converter_module(preset("arcface")) is None
    assert converter_module(preset("dlib_resnet").replace(source="file:model.onnx")) is None
    with pytest.raises(ModelError, match="invalid converter name '_cache'"):
        converter_module(preset("dlib_resnet").replace(source="converter:_cache"))


# ---- defect 9: one rule for thresholds, from a card or given at run time -----------------------


@pytest.mark.model
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 1.5, "0.3", True])
def test_threshold_rule_is_shared_by_cards_and_run_time_overrides(value):
    """Guards against ``verify --threshold nan`` being accepted while a card with a NaN
    threshold is refused: both go through ``threshold_problem``."""
    from freqxfr.model.cards import threshold_problem

    problem = threshold_problem(value, "cosine")
    assert problem
    text = f'base = "sface"\nthreshold = {value if not isinstance(value, str) else repr(value)}'
    text = text.replace("= True", "= true")
    with pytest.raises(ModelError, match="threshold"):
        parse_card(text)


@pytest.fixture(scope="module")
def sface_model(tmp_path_factory: pytest.TempPathFactory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FREQXFR_CACHE_DIR", str(tmp_path_factory.mktemp("sface-cache")))
        yield load_model("sface")


@pytest.mark.model
@pytest.mark.parametrize("value", [math.nan, math.inf, 2.0, np.float32("nan")])
def test_nan_threshold_at_run_time_is_refused_like_in_a_card(sface_model, value, data_dir):
    face = sorted((data_dir / "lfw_aligned112" / "images").rglob("*.jpg"))[0]
    with pytest.raises(InputError, match=r"threshold for model 'sface' .*must"):
        sface_model.compare(face, face, threshold=value)
    # The awaitable version refuses it too, before reading an image (a missing file is not read).
    with pytest.raises(InputError, match=r"threshold for model 'sface' .*must"):
        asyncio.run(sface_model.compare_async(data_dir / "missing.jpg", face, threshold=value))
    with pytest.raises(InputError, match="threshold"):
        sface_model.decide(0.5, threshold=value)
    assert sface_model.decide(0.5, threshold=0.4) is True  # a valid override still works


@pytest.mark.integration
def test_cli_verify_refuses_threshold_nan_with_status_2(data_dir, private_cache):
    face = sorted((data_dir / "lfw_aligned112" / "images").rglob("*.jpg"))[0]
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "freqxfr",
            "verify",
            str(face),
            str(face),
            "--model",
            "sface",
            "--threshold",
            "nan",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ},
    )
    assert run.returncode == 2, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "threshold" in lines[0] and "finite" in lines[0], run.stderr


@pytest.mark.model
def test_loading_a_cached_conversion_does_not_import_onnx():
    """Guards against every command paying onnx's import (~0.5 s) to find a conversion that is
    already cached: only building one needs onnx."""
    cached = [model_path(preset(name)) for name in ("dlib_resnet", "sface")]  # this test's cache
    probe = (
        "import sys; from freqxfr.model.cards import preset; "
        "from freqxfr.model.loading import model_path; "
        "print([str(model_path(preset(n))) for n in ('dlib_resnet', 'sface')], "
        "'onnx' in sys.modules)"
    )
    done = subprocess.run(  # the same cache folder: the environment is inherited
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.strip() == f"{[str(p) for p in cached]} False", done.stderr


# ---- defect 9: dlib weights that are not finite -------------------------------------------------


def tensor_data_ranges(data: bytes) -> list[tuple[int, int, str]]:
    """(offset, bytes, what) of every non-empty tensor's data, found by parsing ``data``."""
    ranges: list[tuple[int, int, str]] = []
    take = Reader.take

    def spy(self: Reader, count: int, what: str):
        if what.startswith("data of tensor") and count:
            ranges.append((self.offset, count, what))
        return take(self, count, what)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Reader, "take", spy)
        dlib_resnet.parse(data, "spy")
    return ranges


@pytest.mark.unit
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_dlib_file_with_non_finite_weights_is_refused(source_bytes, tmp_path, private_cache, bad):
    """Guards against a .dat with NaN/Inf weights converting and yielding NaN embeddings."""
    offset, _, _ = tensor_data_ranges(source_bytes)[5]
    data = bytearray(source_bytes)
    data[offset + 4 * 7 : offset + 4 * 8] = np.float32(bad).tobytes()
    path = tmp_path / "nan.dat"
    path.write_bytes(bytes(data))
    with pytest.raises(ModelError, match=r"holds NaN or infinite values \(first at element 7\)"):
        dlib_resnet.converted_path(path)
    assert cache_files(private_cache) == []


# ---- defect 9: model sources that are not regular files -----------------------------------------


@pytest.mark.unit
@pytest.mark.parametrize("converter", [dlib_resnet.converted_path, sface.converted_path])
def test_device_file_is_refused_without_reading_it(converter, private_cache):
    """Guards against ``converted_path('/dev/zero')`` reading until memory runs out."""
    with pytest.raises(ModelError, match=r"/dev/zero: .*must be a regular file, not a device"):
        converter(Path("/dev/zero"))
    assert cache_files(private_cache) == []


@pytest.mark.unit
def test_fifo_and_folder_are_refused_without_blocking(tmp_path):
    fifo = tmp_path / "model.dat"
    os.mkfifo(fifo)  # opening it for reading would block until a writer came
    with pytest.raises(ModelError, match="must be a regular file, not a device, FIFO or socket"):
        dlib_resnet.converted_path(fifo)
    with pytest.raises(ModelError, match="not a folder"):
        dlib_resnet.converted_path(tmp_path)


@pytest.mark.unit
def test_huge_file_is_refused_by_its_size(tmp_path):
    """A (sparse) file larger than any model is refused from its size, before reading 1 GiB."""
    big = tmp_path / "big.dat"
    with open(big, "wb") as handle:
        handle.truncate(_cache.MAX_SOURCE_BYTES + 1)
    with pytest.raises(ModelError, match=r"big.dat: .*has 1073741825 bytes"):
        dlib_resnet.converted_path(big)


@pytest.mark.unit
def test_error_messages_are_one_line_naming_the_file(tmp_path):
    for path in (Path("/dev/zero"), tmp_path / "missing.dat", tmp_path):
        with pytest.raises(ModelError) as info:
            dlib_resnet.converted_path(path)
        assert "\n" not in str(info.value) and str(path) in str(info.value)


# ---- defect 8: only model conversion needs the cache --------------------------------------------


@pytest.mark.unit
def test_conversion_without_a_usable_cache_names_freqxfr_cache_dir(tmp_path, monkeypatch):
    """Guards against a raw NotADirectoryError/PermissionError when converting into a cache
    folder that cannot be created; the error says that conversion needs it."""
    regular = tmp_path / "file"
    regular.write_text("x")
    monkeypatch.setenv("FREQXFR_CACHE_DIR", str(regular / "cache"))
    with pytest.raises(ModelError) as info:
        dlib_resnet.converted_path()
    message = str(info.value)
    assert "converting a model needs a writable cache folder" in message
    assert "FREQXFR_CACHE_DIR" in message and str(regular / "cache") in message
    assert "Errno" not in message and "\n" not in message
    assert _cache.cached_models() == []  # listing works (and creates nothing)


@pytest.mark.integration
def test_cli_with_unusable_cache_prints_one_line_not_a_raw_oserror(tmp_path, data_dir):
    regular = tmp_path / "file"
    regular.write_text("x")
    face = sorted((data_dir / "lfw_aligned112" / "images").rglob("*.jpg"))[0]
    run = subprocess.run(
        [sys.executable, "-m", "freqxfr", "verify", str(face), str(face)],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "FREQXFR_CACHE_DIR": str(regular / "cache")},
    )
    assert run.returncode == 2, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert "FREQXFR_CACHE_DIR" in lines[0]
    for raw in ("NotADirectoryError", "PermissionError", "Traceback", "Errno"):
        assert raw not in lines[0]


@pytest.mark.model
def test_card_with_threshold_from_mapping_uses_the_same_rule():
    with pytest.raises(ModelError, match="field 'threshold' must be a finite number, got nan"):
        ModelCard.from_dict({**preset("sface").to_dict(), "threshold": math.nan})


# ---- defect 1, as reported: Explainers with different band counts on one model ----------------


@pytest.mark.model
def test_explainers_with_different_band_counts_in_threads_match_the_reference(
    sface_model, data_dir
):
    """Guards against the plan-cache race's reported trigger: Explainers with different K on one
    model, each made and used in its own thread, so that one thread's new plans are inserted
    while another masks. Each must equal the same explanation masked by the numpy reference."""
    import threading

    from freqxfr import Explainer

    faces = sorted((data_dir / "lfw_aligned112" / "images").rglob("*.jpg"))[:2]
    counts = (5, 7, 9, 11)  # band counts no other test in this process plans at 112×112
    expected = {
        k: Explainer(sface_model, BandSchedule.log_rings(k, 0.03), backend="numpy").explain(*faces)
        for k in counts
    }
    results, errors = {}, []

    def work(k: int) -> None:
        try:
            explainer = Explainer(sface_model, BandSchedule.log_rings(k, 0.03), threads=2)
            results[k] = explainer.explain(*faces)
        except BaseException as exc:  # reported below
            errors.append(exc)

    pool = [threading.Thread(target=work, args=(k,)) for k in counts]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert not errors, errors
    for k in counts:
        for side in ("a", "b"):
            np.testing.assert_allclose(
                getattr(results[k], side).directed, getattr(expected[k], side).directed, atol=2e-3
            )
