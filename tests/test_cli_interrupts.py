"""An interrupt that reaches the command line wrapped in another exception (issue 27).

A signal that lands while a native module initialises (onnxruntime's, imported when the first
model opens) surfaces as ``ImportError: initialization failed`` *caused by* the
``KeyboardInterrupt``. CI caught one such trial in ``test_signals``; this test replays it
deterministically with a stand-in command (a mock, named as one: the test is about how the
failure is handled).
"""

from __future__ import annotations

import gc
import signal
import subprocess
import sys
import time

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


def test_an_interrupt_inside_a_gc_callback_still_stops_the_command(monkeypatch, capsys):
    """A signal whose handler runs inside a gc callback (Dask registers one) raises where
    Python can only print "Exception ignored in ..."; CI caught that in test_dask_signals. The
    interrupt must still stop the command, with one line and no traceback."""
    finished = []

    def mock_verify_collecting_garbage(args):
        def callback(phase, info):
            if phase == "start":
                signal.raise_signal(signal.SIGINT)  # handled at the next bytecode: in here
                sum(range(1000))

        gc.callbacks.append(callback)
        try:
            gc.collect()
        finally:
            gc.callbacks.remove(callback)
        for _ in range(100):  # the interrupt arrives here at the latest
            time.sleep(0.01)
        finished.append(True)
        return 0

    monkeypatch.setattr(cli_models, "cmd_verify", mock_verify_collecting_garbage)
    assert main(["verify", "a.png", "b.png"]) == EXIT_INTERRUPTED
    err = capsys.readouterr().err
    assert err.splitlines() == ["freqxfr verify: interrupted"], err
    assert not finished


LATE_SIGNAL = """
import atexit, os, signal, sys, time
from freqxfr.cli import entry
sig = getattr(signal, sys.argv[1])
def late():  # an exit handler: the command is over, the process is on its way out
    os.kill(os.getpid(), sig)
    time.sleep(5)
atexit.register(late)
sys.argv = ["freqxfr", "models", "list"]
entry()
"""


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
def test_a_signal_after_the_command_ends_the_process_with_its_status(tmp_path, sig):
    """A signal after the command finished (in the exit handlers, the interpreter's teardown):
    once SIGTERM killed the process silently (status -15; seen in test_signals) and SIGINT printed
    "Exception ignored in atexit callback" with a KeyboardInterrupt traceback. Now the process
    ends at once with the command's own status, quietly."""
    script = tmp_path / "late_signal.py"
    script.write_text(LATE_SIGNAL)
    done = subprocess.run(
        [sys.executable, str(script), sig], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == "" and "dlib_resnet" in done.stdout
