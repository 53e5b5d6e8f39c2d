"""Shared fixtures: the real face data in ``../shared/data`` (or ``$FREQXFR_SHARED_DATA``)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    return Path(os.environ.get("FREQXFR_SHARED_DATA", REPO.parent / "shared" / "data"))


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
