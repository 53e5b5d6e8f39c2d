"""Progress bars of long runs (tqdm, on stderr), one shape for every command.

A run that continues an interrupted one says first where it resumes ("resuming: 60 of 200
done"), so that a bar that starts part-way is not a surprise.
"""

from __future__ import annotations

import sys
from typing import Any

from tqdm import tqdm


def progress_bar(
    enabled: bool, total: int, *, done: int = 0, unit: str = "pair", desc: str = ""
) -> Any | None:
    """A tqdm bar over ``total`` items of which ``done`` are finished, or ``None`` if disabled.

    With ``done > 0`` it first prints ``"{desc}: resuming: {done} of {total} done"`` on stderr.
    """
    if not enabled:
        return None
    if done:
        print(f"{desc}: resuming: {done} of {total} {unit}s done", file=sys.stderr, flush=True)
    return tqdm(total=total, initial=done, unit=unit, desc=desc, dynamic_ncols=True)
