"""Developer tasks: ``nox -s tests``, ``nox -s bench``, ``nox -s lint``, ``nox -s build``."""

from __future__ import annotations

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
