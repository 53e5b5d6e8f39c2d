"""What ``import freqxfr`` offers: the names users call, and nothing that leaks from imports."""

from __future__ import annotations

import subprocess
import sys

import pytest

import freqxfr

pytestmark = pytest.mark.unit


def test_namespace_holds_no_import_leftovers():
    """Guards against ``annotations`` (from ``from __future__``), ``version`` and
    ``PackageNotFoundError`` (from importlib.metadata) appearing as freqxfr's own API."""
    for leaked in ("annotations", "version", "PackageNotFoundError"):
        assert not hasattr(freqxfr, leaked), leaked


def test_result_types_and_documented_entry_points_are_exported():
    """Guards against results users receive (and must isinstance-check) that they cannot name."""
    for name in (
        "Comparison",
        "PairFailure",
        "Explanation",
        "Faithfulness",
        "SideCurves",
        "PairOutputs",
        "read_pairs",
        "write_pair_outputs",
    ):
        assert name in freqxfr.__all__, name
        assert getattr(freqxfr, name) is not None
    assert set(freqxfr.__all__) <= set(dir(freqxfr)) | {"PairOutputs", "write_pair_outputs"}
    assert "root" in freqxfr.read_pairs.__doc__ and "CSV" in freqxfr.read_pairs.__doc__
    from freqxfr.runs.pair import PairOutputs

    assert freqxfr.PairOutputs is PairOutputs


def test_import_stays_light():
    """Guards against ``import freqxfr`` (and so ``freqxfr --help``) loading matplotlib because
    the report writer is exported."""
    probe = "import sys, freqxfr; print('matplotlib' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.strip() == "False"


def test_cli_start_up_imports_neither_onnx_nor_matplotlib():
    """Guards against every ``freqxfr`` command (verify, models, a run with --no-report) paying
    for onnx (needed only to convert a model) or matplotlib (only to draw a report) at start-up."""
    probe = (
        "import sys, freqxfr.cli, freqxfr.model.loading, freqxfr.model.converters.dlib_resnet, "
        "freqxfr.model.converters.sface; "
        "print(sorted(m for m in ('onnx', 'matplotlib', 'freqxfr.reports') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.strip() == "[]"
