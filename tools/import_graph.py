"""Check the shape of ``python/freqxfr``'s imports; ``nox -s lint`` runs it.

Two rules that the layers contract (import-linter, ``[tool.importlinter]`` in pyproject.toml)
does not state:

- no import cycle between the package's modules, counting every import (at module top, inside a
  function, under ``TYPE_CHECKING``): a cycle hidden in a function is still a cycle;
- an import inside a function only to keep a heavy optional dependency lazy. Every such import of
  a freqxfr module, or of a module outside the standard library, carries a ``# lazy: <reason>``
  comment on its line or the line above, and there are at most ``MAX_LAZY`` of them.

``python tools/import_graph.py`` prints the cycles and the unexplained or surplus lazy imports,
and exits 1 if there are any.
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "python" / "freqxfr"
MAX_LAZY = 15


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(node: ast.Import | ast.ImportFrom, modules: set[str]) -> list[str]:
    """The package's modules that ``node`` imports (``from a import b`` may name module a.b)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        if node.level:  # the package's imports are absolute; a relative one is resolved anyway
            return []
        base = node.module or ""
        names = [f"{base}.{alias.name}" for alias in node.names]
        names = [n if n in modules else base for n in names]  # a name, not a module: the base
    found = []
    for name in names:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        if name:
            found.append(name)
    return found


def is_stdlib(node: ast.Import | ast.ImportFrom) -> bool:
    names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
    return all(n.split(".")[0] in sys.stdlib_module_names for n in names)


def main() -> int:
    files = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
    modules = set(files)
    graph: dict[str, set[str]] = defaultdict(set)
    unexplained: list[str] = []
    lazy = 0
    for name, path in files.items():
        lines = path.read_text(encoding="utf-8").splitlines()
        tree = ast.parse("\n".join(lines))
        inner: set[int] = set()
        for func in ast.walk(tree):
            if isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
                inner.update(
                    id(n) for n in ast.walk(func) if isinstance(n, (ast.Import, ast.ImportFrom))
                )
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            # A module's own packages are imported implicitly (their __init__ runs first), not a
            # dependency: `from freqxfr.cli import options` inside freqxfr.cli.commands is no cycle.
            targets = [
                t
                for t in imported_modules(node, modules)
                if t != name and not name.startswith(t + ".")
            ]
            graph[name].update(targets)
            if id(node) in inner and not is_stdlib(node):
                lazy += 1
                context = " ".join(lines[max(0, node.lineno - 2) : node.lineno])
                if "# lazy:" not in context:
                    where = f"{path.relative_to(PACKAGE.parent.parent)}:{node.lineno}"
                    unexplained.append(f"{where}: `{ast.unparse(node)}` inside a function")
    cycles = find_cycles(graph)
    for cycle in cycles:
        print("import cycle: " + " -> ".join(cycle))
    for line in unexplained:
        print(line + " without a `# lazy: <reason>` comment")
    if lazy > MAX_LAZY:
        print(f"{lazy} imports inside functions; at most {MAX_LAZY}")
    print(
        f"{len(files)} modules, {sum(map(len, graph.values()))} imports, {len(cycles)} cycles, {lazy} lazy imports"
    )
    return 1 if cycles or unexplained or lazy > MAX_LAZY else 0


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [[*c, c[0]] for c in components]


if __name__ == "__main__":
    sys.exit(main())
