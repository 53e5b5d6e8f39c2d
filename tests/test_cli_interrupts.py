"""An interrupt that reaches the command line wrapped in another exception (issue 27).

A signal that lands while a native module initialises (onnxruntime's, imported when the first
model opens) surfaces as ``ImportError: initialization failed`` *caused by* the
``KeyboardInterrupt``. CI caught one such trial in ``test_signals``; this test replays it
deterministically with a stand-in command (a mock, named as one: the test is about how the
failure is handled).
"""

from __future__ import annotations

import pytest

from freqxfr.cli import EXIT_INTERRUPTED, EXIT_TERMINATED, Terminated, main
from freqxfr.cli import models as cli_models

pytestmark = pytest.mark.unit


def mock_verify_interrupted_during_import(interrupt: KeyboardInterrupt):
    def command(args):
        try:
            raise interrupt
        except KeyboardInterrupt as exc:
            raise ImportError("initialization failed") from exc

    return command


@pytest.mark.parametrize(
    ("interrupt", "status", "word"),
    [
        (KeyboardInterrupt(), EXIT_INTERRUPTED, "interrupted"),
        (Terminated(), EXIT_TERMINATED, "terminated"),
    ],
)
def test_an_interrupt_behind_an_import_error_is_an_interrupt(
    monkeypatch, capsys, interrupt, status, word
):
    monkeypatch.setattr(cli_models, "cmd_verify", mock_verify_interrupted_during_import(interrupt))
    assert main(["verify", "a.png", "b.png"]) == status
    err = capsys.readouterr().err
    assert err.splitlines() == [
        f"freqxfr verify: {word}" + (" (SIGTERM)" if status == EXIT_TERMINATED else "")
    ]


def test_an_import_error_without_an_interrupt_is_not_hidden(monkeypatch):
    def mock_verify_broken_import(args):
        raise ImportError("initialization failed")

    monkeypatch.setattr(cli_models, "cmd_verify", mock_verify_broken_import)
    with pytest.raises(ImportError, match="initialization failed"):
        main(["verify", "a.png", "b.png"])
