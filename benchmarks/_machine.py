"""What every benchmark JSON records about the machine it ran on."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _pkg(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def machine_info(*packages: str) -> dict[str, Any]:
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    try:
        mem_gb = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        mem_gb = None
    return {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpus_usable": usable,
        "memory_gb": mem_gb,
        "python": sys.version.split()[0],
        "packages": {p: _pkg(p) for p in ("freqxfr", "numpy", *packages)},
    }


class PeakMemory:
    """Peak resident memory above the start of a block, via Linux's resettable VmHWM."""

    def __enter__(self) -> PeakMemory:
        self._reset()
        self.start = self._read("VmRSS")
        return self

    def __exit__(self, *exc: object) -> None:
        self.peak_extra_mb = (self._read("VmHWM") - self.start) / 1024

    @staticmethod
    def _reset() -> None:
        try:
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            pass

    @staticmethod
    def _read(field: str) -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])  # kB
        return 0


def rate(run: Callable[[], Any], batch: int, seconds: float, repeats: int) -> float:
    """Median images per second of ``run()`` (one batch per call), after one warm-up call."""
    run()
    rates = []
    for _ in range(repeats):
        calls, start = 0, time.perf_counter()
        while calls == 0 or time.perf_counter() - start < seconds:
            run()
            calls += 1
        rates.append(calls * batch / (time.perf_counter() - start))
    return statistics.median(rates)


#: The ``--smoke`` option's help, one wording for every benchmark.
SMOKE_HELP = "tiny inputs, seconds: checks that the benchmark still runs (the suite does)"


def add_smoke_option(parser: Any) -> None:
    """``--smoke``: tiny inputs, so that the suite runs every benchmark in seconds."""
    parser.add_argument("--smoke", action="store_true", help=SMOKE_HELP)


def write_result(path: Path | None, result: dict[str, Any]) -> None:
    """Write ``result`` as JSON to ``path`` (``--json``) atomically and say so; without a path,
    nothing."""
    if path:
        from freqxfr.common import atomic

        atomic.write_json(path, result)
        print(f"wrote {path}")
