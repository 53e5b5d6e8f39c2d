"""Shared fixtures and the test tiers.

Data: the real face data in ``../shared/data`` (or ``$FREQXFR_SHARED_DATA``).

Tiers: every test carries exactly one of the markers ``unit``, ``model`` and ``integration``
(declared in pyproject.toml), usually as one module-level ``pytestmark`` line; collection fails
for a test with none or with two. ``nox -s tests-fast`` runs ``-m unit``.

Memory: every explainer plans for :data:`SUITE_MEMORY_BUDGET` (``$FREQXFR_MEMORY_BUDGET``, which
the ``freqxfr`` commands the tests run inherit) unless a test gives its own budget.

Models: one dlib verifier, one SFace verifier and one SFace explainer per run (session fixtures);
between modules the freqxfr caches (kept explainers) are cleared and memory is freed, and idle
engine threads (which hold their models) exit after 1 s instead of 30 s.
"""

from __future__ import annotations

import ctypes
import gc
import os
import re
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
#: Every explainer of the suite (and every ``freqxfr`` command it runs) plans its memory for this
#: budget unless a test gives one: smaller model calls, the same results. With 1 GB SFace's calls
#: are 82 images; the pytest process peaked at 10.2 GB with 256-image calls and ONNX Runtime's arena.
SUITE_MEMORY_BUDGET = "512MB"
os.environ.setdefault("FREQXFR_MEMORY_BUDGET", SUITE_MEMORY_BUDGET)
TIERS = ("unit", "model", "integration")
_HEAVY_MODULES: set[str] = set()  # test modules with model or integration tests


def shared_data_dir() -> Path:
    return Path(os.environ.get("FREQXFR_SHARED_DATA", REPO.parent / "shared" / "data"))


# ---- tiers ----------------------------------------------------------------------------------------


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Refuse a test without a tier, or with more than one."""
    wrong = []
    for item in items:
        tiers = sorted({m.name for m in item.iter_markers() if m.name in TIERS})
        if len(tiers) != 1:
            wrong.append(f"{item.nodeid}: {', '.join(tiers) or 'no tier'}")
        elif tiers != ["unit"] and item.module is not None:
            _HEAVY_MODULES.add(item.module.__name__)
    if wrong:
        shown = "\n  ".join(wrong[:20]) + ("\n  ..." if len(wrong) > 20 else "")
        raise pytest.UsageError(
            f"{len(wrong)} test(s) need exactly one tier marker ({', '.join(TIERS)}):\n  {shown}"
        )


_FILE_TIER = re.compile(r"^pytestmark = \[?pytest\.mark\.(unit|model|integration)\b", re.M)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Under ``-m unit`` (nox -s tests-fast), skip importing test files whose one tier is another:
    importing them (Dask, plotting, model code) took a third of the unit tier's time."""
    if config.getoption("markexpr", "") != "unit" or collection_path.suffix != ".py":
        return None
    if not collection_path.name.startswith("test_"):
        return None
    match = _FILE_TIER.search(collection_path.read_text(encoding="utf-8"))
    return True if match and match.group(1) != "unit" else None


# ---- data -----------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = shared_data_dir()
    if not (path / "lfw_aligned112").is_dir():
        pytest.fail(f"shared face data not found at {path}; set FREQXFR_SHARED_DATA")
    return path


@pytest.fixture(scope="session")
def lfw_images(data_dir: Path) -> np.ndarray:
    """Eight real aligned LFW crops, (8, 112, 112, 3) uint8 RGB, in a fixed order."""
    from PIL import Image

    paths = sorted((data_dir / "lfw_aligned112" / "images").rglob("*.jpg"))[::48][:8]
    return np.stack([np.asarray(Image.open(p).convert("RGB")) for p in paths])


def synthetic_faces(n: int = 8, size: int = 112, seed: int = 0) -> np.ndarray:
    """``n`` photo-like images (n, size, size, 3) uint8 RGB without any shared data: a smooth
    light gradient plus per-channel noise with a natural image's 1/f amplitude spectrum, so that
    every band of every ring schedule holds energy and no two images or channels are alike."""
    rng = np.random.default_rng(seed)
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.fftfreq(size)[None, :]
    amplitude = 1.0 / np.maximum(np.hypot(fy, fx), 1.0 / size)
    yy, xx = np.mgrid[0:size, 0:size] / size
    out = np.empty((n, size, size, 3), np.uint8)
    for k in range(n):
        for c in range(3):
            phase = np.exp(2j * np.pi * rng.random((size, size)))
            noise = np.fft.ifft2(amplitude * phase).real
            noise = (noise - noise.mean()) / noise.std()
            light = 110 + 40 * np.sin(np.pi * (yy + (k + c) / 7)) * np.cos(np.pi * xx / 2)
            out[k, :, :, c] = np.clip(light + 30 * noise, 0, 255).astype(np.uint8)
    return out


@pytest.fixture(scope="session")
def face_like_images() -> np.ndarray:
    """Eight synthetic stand-ins for :func:`lfw_images` (same shape and dtype) for the unit tier:
    masking, bands and the core work on any image, and these need no shared data."""
    return synthetic_faces()


# ---- models: one of each per run ------------------------------------------------------------------


@pytest.fixture(scope="session")
def sface_model():
    """The SFace verifier (preset ``sface``), loaded once per run."""
    from freqxfr.model.verifier import load_model

    return load_model("sface")


@pytest.fixture(scope="session")
def dlib_model():
    """The dlib ResNet verifier (preset ``dlib_resnet``, the default), loaded once per run."""
    from freqxfr.model.verifier import load_model

    return load_model("dlib_resnet")


@pytest.fixture(scope="session")
def sface_explainer(sface_model):
    """An explainer of the SFace verifier with 8 ring bands, sized by the suite's memory budget
    (:data:`SUITE_MEMORY_BUDGET`).

    256-image calls made ONNX Runtime's memory arena of the session grow to about 5 GB in the
    cross-resolution tests (test_crossres.py alone peaked at 5.0 GB); results do not depend on
    the batch size (the rows of a batch are computed independently)."""
    from freqxfr.explanations.explainer import Explainer

    return Explainer(sface_model, 8, memory_budget=SUITE_MEMORY_BUDGET)


# ---- memory: free what a module left behind -------------------------------------------------------


def _clear_freqxfr_caches() -> None:
    """Clear every functools cache of a loaded freqxfr module (kept explainers hold models and
    their ONNX Runtime sessions; cached weights and schedules are cheap to rebuild)."""
    for name, module in list(sys.modules.items()):
        if not name.startswith("freqxfr") or module is None:
            continue
        for value in list(vars(module).values()):
            clear = getattr(value, "cache_clear", None)
            if callable(clear) and getattr(value, "__module__", None) == name:
                clear()


def _trim_malloc() -> None:
    """Give freed heap pages back to the system (glibc keeps them per thread arena otherwise:
    ONNX Runtime and the engines' threads allocate in many arenas)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def _short_lived_engine_threads() -> None:
    """An engine's idle thread exits after ``engine.IDLE_EXIT_S`` (30 s) and holds its engine, its
    model and the ONNX Runtime sessions of its lanes until then. A suite that loads a model in
    hundreds of tests kept dozens of finished tests' models alive that way; here an idle thread
    exits after 1 s (a new request starts a new one, as after any idle spell)."""
    from freqxfr.model import engine

    if getattr(engine, "IDLE_EXIT_S", None) not in (None, 1.0):
        engine.IDLE_EXIT_S = 1.0


@pytest.fixture(scope="module", autouse=True)
def _release_module_memory(request: pytest.FixtureRequest):
    """After each module with model or integration tests: clear freqxfr's caches, collect, and
    return freed memory (unit modules load no real model; a collection costs a tenth of a second)."""
    heavy = request.module.__name__ in _HEAVY_MODULES
    if heavy:
        _short_lived_engine_threads()
    yield
    if not heavy:
        return
    _clear_freqxfr_caches()
    gc.collect()
    _trim_malloc()
