"""``freqxfr --version`` (the wheels' smoke test relies on it)."""

from __future__ import annotations

from importlib.metadata import version

import pytest

from freqxfr.cli import main

pytestmark = pytest.mark.integration


def test_version_prints_the_installed_distribution(capsys: pytest.CaptureFixture[str]) -> None:
    """Guards against a version string kept by hand that drifts from what pip installed."""
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"freqxfr {version('freqxfr')}"
