"""How many CPU cores this process may really use.

``os.sched_getaffinity`` sees a container's cpuset, but not a CFS quota: ``docker run --cpus=2``
on a 64-core host still shows 64 cores, and a model that starts 64 threads there runs slower than
with 2. The quota lives in cgroup v2's ``cpu.max`` (``"200000 100000"`` = 2 cores) or cgroup v1's
``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``. ``FREQXFR_THREADS`` overrides both.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

_CGROUP = Path("/sys/fs/cgroup")


def usable_cores() -> int:
    """The cores this process may use: ``$FREQXFR_THREADS``, else min(affinity, cgroup quota)."""
    env = os.environ.get("FREQXFR_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    quota = cgroup_quota()
    return max(1, min(cores, quota) if quota else cores)


def cgroup_quota(root: Path = _CGROUP) -> int | None:
    """Cores granted by a CFS quota (rounded up), or ``None`` when there is no quota."""
    try:
        text = (root / "cpu.max").read_text().split()
        if len(text) == 2 and text[0] != "max":
            return max(1, math.ceil(int(text[0]) / int(text[1])))
        if text:
            return None
    except (OSError, ValueError):
        pass
    try:  # cgroup v1
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        if quota > 0 and period > 0:
            return max(1, math.ceil(quota / period))
    except (OSError, ValueError):
        pass
    return None
