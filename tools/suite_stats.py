"""Run the test suite (or a tier of it) once and print the number of tests, the wall time and
the pytest process's peak resident memory.

    .nox/tests/bin/python tools/suite_stats.py                 # the full suite (nox -s tests)
    .nox/tests/bin/python tools/suite_stats.py -m unit         # the fast tier
    .nox/tests/bin/python tools/suite_stats.py --json out.json -- tests/test_bands.py

Arguments after the options (or after ``--``) go to pytest. The peak RSS is the child's
``ru_maxrss`` (Linux: kB), read with ``resource.getrusage(RUSAGE_CHILDREN)`` after it exits, the
number ``/usr/bin/time -v`` prints as "Maximum resident set size". Budgets (issue 23): the full
suite under 10 minutes on a quiet 2-core machine and under 4 GB; the unit tier under 60 s.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-m", dest="marker", help="a pytest -m expression (e.g. unit)")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    parser.add_argument("pytest_args", nargs="*", help="more pytest arguments")
    args = parser.parse_args()
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    if args.marker:
        command += ["-m", args.marker]
    command += args.pytest_args
    env = {**os.environ, "PYTHONFAULTHANDLER": "1"}
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    sys.stdout.write(done.stdout[-4000:])
    sys.stderr.write(done.stderr[-4000:])
    # The last line of -q: "812 passed, 5 skipped, 3 deselected in 601.2s (0:10:01)".
    tail = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    counts = {
        k: int(n)
        for n, k in re.findall(r"(\d+) (passed|failed|skipped|xfailed|xpassed|errors?)", tail)
    }
    result = {
        "command": " ".join(command[1:]),
        "exit_code": done.returncode,
        "tests": sum(counts.values()),
        "outcomes": counts,
        "wall_s": round(wall, 1),
        "peak_rss_mb": round(peak_kb / 1024, 1),
        "load_average": [round(v, 2) for v in os.getloadavg()],
    }
    print(
        f"\n{result['tests']} tests ({', '.join(f'{n} {k}' for k, n in counts.items())}) in "
        f"{wall:.1f} s; pytest peak RSS {peak_kb / 1024 / 1024:.2f} GB; exit code {done.returncode}"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return done.returncode


if __name__ == "__main__":
    raise SystemExit(main())
