"""Developer tasks: ``nox -s tests``, ``nox -s bench``, ``nox -s lint``, ``nox -s build``."""

from __future__ import annotations

import re
from pathlib import Path

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = True
nox.options.default_venv_backend = "venv"

ROOT = Path(__file__).parent
RESULTS = ROOT / "benchmarks" / "results"


@nox.session
def tests(session: nox.Session) -> None:
    """Build the package (incrementally, in build/) and run the test suite on the real data."""
    session.install(".[cpu,test]")
    session.run("pytest", *session.posargs, env={"PYTHONFAULTHANDLER": "1"})


@nox.session
def bench(session: nox.Session) -> None:
    """Run the benchmarks; each writes JSON (with the machine described) into benchmarks/results/."""
    session.install(".[cpu,test,parquet]")
    RESULTS.mkdir(parents=True, exist_ok=True)
    wanted = session.posargs or sorted(p.stem for p in (ROOT / "benchmarks").glob("bench_*.py"))
    for name in wanted:
        session.run("python", f"benchmarks/{name}.py", "--json", str(RESULTS / f"{name[6:]}.json"))


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", "python", "tests", "benchmarks", "noxfile.py")


@nox.session
def build(session: nox.Session) -> None:
    """Build the sdist and the wheel into dist/."""
    session.install("build")
    session.run("python", "-m", "build", "--outdir", "dist")


@nox.session
def memcheck(session: nox.Session) -> None:
    """Run the core under valgrind's memcheck; fail on any invalid access inside freqxfr._core."""
    session.install(".[cpu]")
    log = ROOT / "build" / "memcheck.log"
    log.parent.mkdir(exist_ok=True)
    session.run("valgrind", "--tool=memcheck", "--error-limit=no", f"--log-file={log}",
                "python", "tools/memcheck_core.py", external=True)
    # Error reports are blocks of "==pid== ..." lines ending in an empty "==pid== " line. ld.so's
    # SSE strncmp trips memcheck while loading libraries; only blocks with our frames count.
    blocks, current = [], []
    for line in log.read_text().splitlines():
        if re.fullmatch(r"==\d+== ?", line):
            blocks.append("\n".join(current))
            current = []
        else:
            current.append(line)
    errors = [b for b in blocks if re.search(r"Invalid|uninitialised", b)]
    ours = [b for b in errors if "_core.cpython" in b or "band_masker" in b]
    session.log(f"memcheck: {len(errors)} error reports, {len(ours)} in freqxfr's core")
    if ours:
        session.error(f"invalid memory access in the core; see {log}")


@nox.session
def mutants(session: nox.Session) -> None:
    """Mutation testing (cosmic-ray) of the modules where meaning lives; see docs/mutants.md.

    ``nox -s mutants [-- GROUP ...]``; groups and scope in tools/mutants.toml. Slow (CPU-bound,
    one mutant at a time), so not part of the default sessions or CI.
    """
    # Editable, so that the sources cosmic-ray mutates in place are the ones the tests import.
    session.install("-e", ".[cpu,test]", "cosmic-ray==8.7.0")
    session.run("python", "tools/mutants.py", *session.posargs)
