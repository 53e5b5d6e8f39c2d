"""The 0.2 restructure changed no result: explanations of the demo pairs and 20 LFW pairs, with
both models, band by band and per region cell, are bit-identical to the reference recorded by the
tree before it (``tools/reference_explanations.py``)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

TOOL = Path(__file__).resolve().parents[1] / "tools" / "reference_explanations.py"


def _tool():
    spec = importlib.util.spec_from_file_location("reference_explanations", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.model
def test_explanations_are_bit_identical_to_the_reference(data_dir: Path) -> None:
    """In a process of its own: the tool plans FFTW without the user's wisdom (deterministic)."""
    with np.load(_tool().REFERENCE) as f:
        assert len(f.files) == 78  # 2 models x 22 pairs x 3 arrays + 2 cell pairs x 3
    env = {**os.environ, "FREQXFR_SHARED_DATA": str(data_dir)}
    run = subprocess.run(
        [sys.executable, str(TOOL)], capture_output=True, text=True, env=env, timeout=900
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "78 of 78 arrays bit-identical" in run.stdout


@pytest.mark.unit
def test_the_comparison_sees_a_last_bit_difference() -> None:
    tool = _tool()
    a = {"m/p/a": np.array([0.25, 0.5], np.float32)}
    b = {"m/p/a": np.nextafter(a["m/p/a"], np.float32(1))}
    assert len(tool.differences(a, b)) == 1
    assert tool.differences(a, {"m/p/a": a["m/p/a"].astype(np.float64)})  # dtype counts too
    assert tool.differences(a, a) == []
