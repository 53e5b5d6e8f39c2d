"""A process that exits while its engine still runs a batch exits cleanly (issue 27).

Before, a script whose ``explain(..., deadline=0.05)`` raised ``DeadlineExceeded`` and then
exited aborted (``terminate called without an active exception``, exit 134) in most runs: the
engine's daemon threads were still inside ONNX Runtime while the interpreter tore down. Now
every engine is shut down at exit (it takes no more work, its running batch finishes, its
threads are joined). Each trial is a fresh process with the real dlib model on real photos; two
trials run at a time (most of a trial is the process's imports and model load, on one core).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

pytestmark = pytest.mark.integration

AT_ONCE = 2  # trials at a time

SCRIPT = textwrap.dedent(
    """
    import signal, sys
    from freqxfr import DeadlineExceeded, Explainer, load_model

    mode, a, b = sys.argv[1:4]
    # Python's own Ctrl-C behaviour, even when started from a shell's background job, which
    # hands SIGINT down ignored (Python then installs no handler for it).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if mode == "sigterm":  # as a program that cleans up on SIGTERM does (the CLI)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    model = load_model()  # dlib's ResNet
    explainer = Explainer(model, 16)
    faces = [explainer.align(a), explainer.align(b)]  # so that the deadline hits the engine
    if mode == "deadline":
        try:
            explainer.explain(*faces, deadline=0.05)
            print("finished in time", flush=True)
        except DeadlineExceeded:
            print("deadline", flush=True)
        print("in flight" if model.engine._busy else "idle", flush=True)
    else:
        print("ready", flush=True)
        while True:  # engine work until the signal comes
            explainer.explain(*faces, deadline=60)
    """
)


def write_script(tmp_path) -> None:
    """The trials' script, written before they start (they run it two at a time)."""
    (tmp_path / "exit_with_work_in_flight.py").write_text(SCRIPT)


def run_trial(tmp_path, data_dir, mode: str, delay: float = 0.0) -> tuple[int, str, str]:
    script = tmp_path / "exit_with_work_in_flight.py"
    frll = data_dir / "frll"
    args = [sys.executable, str(script), mode]
    args += [str(frll / "neutral" / "001_03.jpg"), str(frll / "smiling" / "001_08.jpg")]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        if mode != "deadline":
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert line == "ready\n", proc.communicate(timeout=60)[1]
            time.sleep(delay)
            proc.send_signal(signal.SIGINT if mode == "sigint" else signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:  # a trial that failed or hung leaves no process behind
            proc.kill()
            proc.communicate()
    return proc.returncode, out, err


def assert_clean(code: int, want: int, out: str, err: str) -> None:
    assert "terminate called" not in err and code != -signal.SIGABRT and code != 134, err
    assert code == want, (code, out, err)


@pytest.mark.dlib
def test_a_script_that_exits_with_engine_work_in_flight_never_aborts(tmp_path, data_dir):
    """20 trials: DeadlineExceeded while the batch runs, then exit: status 0 every time."""
    in_flight = 0
    write_script(tmp_path)
    with ThreadPoolExecutor(AT_ONCE) as pool:
        trials = list(pool.map(lambda _: run_trial(tmp_path, data_dir, "deadline"), range(20)))
    for code, out, err in trials:
        assert_clean(code, 0, out, err)
        assert "Traceback" not in err, err
        in_flight += "in flight" in out
    # Not vacuous: most trials exit while the batch is still inside ONNX Runtime.
    assert in_flight >= 10, in_flight


@pytest.mark.dlib
@pytest.mark.parametrize(("mode", "status"), [("sigint", -signal.SIGINT), ("sigterm", 143)])
def test_a_signal_during_engine_work_exits_cleanly(tmp_path, data_dir, mode, status):
    """SIGINT (an uncaught KeyboardInterrupt) and SIGTERM (turned into SystemExit, as the CLI
    does) at random points of a stream of engine calls: the expected status, no abort."""
    write_script(tmp_path)
    with ThreadPoolExecutor(AT_ONCE) as pool:
        trials = list(
            pool.map(lambda k: run_trial(tmp_path, data_dir, mode, delay=0.1 + 0.23 * k), range(5))
        )
    for code, out, err in trials:
        assert_clean(code, status, out, err)
