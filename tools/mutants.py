"""Run the mutation-testing groups of tools/mutants.toml with cosmic-ray and report the outcome.

Usage (from the repository root, in an environment with freqxfr installed *editable*, so that
the mutated sources are the ones imported; ``nox -s mutants`` sets that up)::

    python tools/mutants.py [GROUP ...] [--report-only]

Per group: ``cosmic-ray init`` over the group's files, every mutant outside the group's
functions marked as skipped, ``cosmic-ray baseline`` (the tests must pass unmutated), then
``cosmic-ray exec``. Sessions live in build/mutants/<group>.sqlite; a rerun continues a session
(cosmic-ray only runs the mutants without a result); delete build/mutants to start afresh.
``--report-only`` prints the outcome of the existing sessions; ``--retest-survivors`` runs the
survivors of existing sessions again (after adding tests). cosmic-ray mutates the files in
place: after interrupting a run, ``git checkout python/`` restores the one it was testing. The survivors are printed with file, line, operator and source line; each must
be killed by a test or listed as equivalent in docs/design/mutants.md.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "tools" / "mutants.toml"
WORK = ROOT / "build" / "mutants"


def function_spans(path: Path, names: list[str]) -> list[tuple[int, int]]:
    """Line ranges of the named functions (``f``, ``Class.method`` or ``Class``) of a file."""
    if names == ["*"]:
        return [(1, 10**9)]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    spans = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            spans[node.name] = (node.lineno, node.end_lineno)
        if isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    spans[f"{node.name}.{item.name}"] = (item.lineno, item.end_lineno)
    missing = [n for n in names if n not in spans]
    if missing:
        raise SystemExit(f"{path}: no function(s) {', '.join(missing)} (tools/mutants.toml)")
    return [spans[n] for n in names]


def cosmic_config(name: str, group: dict, timeout: float) -> Path:
    files = list(group["functions"])
    tests = shlex.join(group["tests"])
    command = f"{shlex.quote(sys.executable)} -m pytest -x -q -p no:cacheprovider {tests}"
    text = (
        "[cosmic-ray]\n"
        f"module-path = {json.dumps(files)}\n"
        f"timeout = {timeout}\n"
        "excluded-modules = []\n"
        f"test-command = {json.dumps(command)}\n\n"
        "[cosmic-ray.distributor]\n"
        'name = "local"\n'
    )
    path = WORK / f"{name}.toml"
    path.write_text(text)
    return path


def scope(db_path: Path, group: dict, operators: list[str]) -> tuple[int, int]:
    """Mark every pending mutant outside the group's functions, or made by an operator that none
    of ``operators`` (regular expressions) matches, as skipped; returns (kept, skipped)."""
    from cosmic_ray.work_db import use_db
    from cosmic_ray.work_item import WorkerOutcome, WorkResult

    spans = {
        str(Path(f)): function_spans(ROOT / f, names) for f, names in group["functions"].items()
    }
    skip, keep = [], 0
    with use_db(str(db_path)) as db:
        for item in db.pending_work_items:
            inside = all(
                any(
                    lo <= m.start_pos[0] <= hi for lo, hi in spans.get(str(Path(m.module_path)), [])
                )
                and any(re.match(op, m.operator_name) for op in operators)
                for m in item.mutations
            )
            if inside:
                keep += 1
            else:
                skip.append(item.job_id)
        if skip:
            db.set_multiple_results(
                skip,
                WorkResult(
                    output="outside the scope of tools/mutants.toml",
                    worker_outcome=WorkerOutcome.SKIPPED,
                ),
            )
    return keep, len(skip)


def outcome(db_path: Path) -> dict:
    """Counts and survivors of a session."""
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import TestOutcome, WorkerOutcome

    counts = {"killed": 0, "survived": 0, "incompetent": 0, "pending": 0}
    survivors = []
    with use_db(str(db_path), WorkDB.Mode.open) as db:
        for item, result in db.completed_work_items:
            if result.worker_outcome == WorkerOutcome.SKIPPED:
                continue
            if result.worker_outcome != WorkerOutcome.NORMAL:
                counts["incompetent"] += 1  # the mutant broke the import or the worker
            elif result.test_outcome == TestOutcome.SURVIVED:
                counts["survived"] += 1
                for m in item.mutations:
                    line = Path(m.module_path).read_text().splitlines()[m.start_pos[0] - 1]
                    survivors.append(
                        f"{m.module_path}:{m.start_pos[0]} {m.operator_name} "
                        f"#{m.occurrence}: {line.strip()}"
                    )
            elif result.test_outcome == TestOutcome.INCOMPETENT:
                counts["incompetent"] += 1
            else:
                counts["killed"] += 1
        counts["pending"] = sum(1 for _ in db.pending_work_items)
    return {"counts": counts, "survivors": survivors}


def forget_survivors(db_path: Path) -> int:
    """Drop the results of surviving mutants, so that the next exec tests them again."""
    import sqlite3

    with sqlite3.connect(db_path) as con:
        return con.execute("DELETE FROM work_results WHERE test_outcome = 'SURVIVED'").rowcount


def run_group(
    name: str, group: dict, timeout: float, operators: list[str], retest: bool = False
) -> None:
    config = cosmic_config(name, group, timeout)
    db = WORK / f"{name}.sqlite"
    if retest and db.exists():
        print(f"[{name}] testing {forget_survivors(db)} survivors again", flush=True)
    if not db.exists():
        subprocess.run(["cosmic-ray", "init", str(config), str(db)], check=True, cwd=ROOT)
        kept, skipped = scope(db, group, operators)
        print(f"[{name}] {kept} mutants in scope, {skipped} outside it skipped", flush=True)
        subprocess.run(["cosmic-ray", "baseline", str(config)], check=True, cwd=ROOT)
    subprocess.run(["cosmic-ray", "exec", str(config), str(db)], check=True, cwd=ROOT)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("groups", nargs="*", help="groups to run (default: all)")
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument(
        "--retest-survivors",
        action="store_true",
        help="run the surviving mutants of existing sessions again (new tests)",
    )
    args = parser.parse_args(argv)
    config = tomllib.loads(CONFIG.read_text())
    groups = config["groups"]
    wanted = args.groups or list(groups)
    unknown = [g for g in wanted if g not in groups]
    if unknown:
        parser.error(f"unknown group(s) {', '.join(unknown)}; groups are {', '.join(groups)}")
    WORK.mkdir(parents=True, exist_ok=True)
    total = {"killed": 0, "survived": 0, "incompetent": 0, "pending": 0}
    report = {}
    for name in wanted:
        if not args.report_only:
            run_group(
                name,
                groups[name],
                float(config.get("timeout", 120.0)),
                config["operators"],
                args.retest_survivors,
            )
        db = WORK / f"{name}.sqlite"
        if not db.exists():
            continue
        report[name] = outcome(db)
        for key, value in report[name]["counts"].items():
            total[key] += value
    for name, result in report.items():
        c = result["counts"]
        print(
            f"{name:>16}: killed {c['killed']}, survived {c['survived']}, "
            f"incompetent {c['incompetent']}, pending {c['pending']}"
        )
        for line in result["survivors"]:
            print(f"    survived: {line}")
    done = total["killed"] + total["survived"]
    rate = total["killed"] / done if done else float("nan")
    print(
        f"total: killed {total['killed']}, survived {total['survived']}, incompetent "
        f"{total['incompetent']}, pending {total['pending']}; killed {rate:.1%} of those run"
    )
    (WORK / "report.json").write_text(json.dumps({"total": total, "groups": report}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
