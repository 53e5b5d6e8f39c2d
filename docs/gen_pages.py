"""Generate the reference pages while MkDocs builds (run by the mkdocs-gen-files plugin).

- ``reference/api/``: a page per public name of ``freqxfr`` (its ``__all__``, read from the
  source without importing it) and for ``freqxfr.reports.render_run``; mkdocstrings renders each
  from its numpy-style docstring.
- ``reference/cli/``: a page per ``freqxfr`` command, the help of its argument parser
  (``freqxfr.cli.build_parser``; this one needs the package installed, as ``nox -s docs`` does).
- ``reference/formats.md``: the file formats, from the JSON Schemas in ``freqxfr/schemas``.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
from pathlib import Path

import mkdocs_gen_files

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "python" / "freqxfr"

# Names whose object lives elsewhere than ``freqxfr.<name>`` says to a static reader.
WHERE = {"PairOutputs": "freqxfr.runs.pair.PairOutputs"}  # lazy (module __getattr__)


def public_names() -> list[str]:
    tree = ast.parse((PACKAGE / "__init__.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            return [ast.literal_eval(e) for e in node.value.elts]
    raise SystemExit("freqxfr/__init__.py has no __all__")


def api_pages() -> None:
    names = [n for n in public_names() if n != "__version__"]
    entries = [(n, WHERE.get(n, f"freqxfr.{n}")) for n in names]
    entries.append(("render_run", "freqxfr.reports.render_run"))
    lines = [
        "# Python API",
        "",
        "Every public name of `freqxfr` (`freqxfr.__all__`; `freqxfr.__version__` is the version "
        "string) and `freqxfr.reports.render_run`, which draws any run's report from its folder.",
        "",
        "| name | what it is |",
        "|---|---|",
    ]
    for name, path in sorted(entries, key=lambda e: e[0].lower()):
        with mkdocs_gen_files.open(f"reference/api/{name}.md", "w") as page:
            page.write(f"# `{name}`\n\n::: {path}\n")
        lines.append(f"| [`{name}`]({name}.md) | `{path}` |")
    with mkdocs_gen_files.open("reference/api/index.md", "w") as page:
        page.write("\n".join(lines) + "\n")


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:  # argparse has no public way to list subparsers
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def cli_pages() -> None:
    os.environ["COLUMNS"] = "100"  # argparse wraps help at the terminal's width: fix it
    from freqxfr.cli import build_parser  # needs the installed package (its compiled core)

    parser = build_parser()
    index = [
        "# Command line",
        "",
        "`freqxfr COMMAND [options]`. One page per command, generated from the argument parser "
        "(the same text as `freqxfr COMMAND --help`).",
        "",
        "```text",
        parser.format_help().rstrip(),
        "```",
        "",
        "| command | help |",
        "|---|---|",
    ]
    commands = _subcommands(parser)
    for name, sub in commands.items():
        text = [f"# `freqxfr {name}`", "", "```text", sub.format_help().rstrip(), "```", ""]
        for child, subsub in _subcommands(sub).items():
            text += [f"## `freqxfr {name} {child}`", "", "```text"]
            text += [subsub.format_help().rstrip(), "```", ""]
        with mkdocs_gen_files.open(f"reference/cli/{name}.md", "w") as page:
            page.write("\n".join(text))
        summary = (sub.description or "").strip().split("\n")[0].replace("|", "\\|")
        index.append(f"| [`{name}`]({name}.md) | {summary} |")
    with mkdocs_gen_files.open("reference/cli/index.md", "w") as page:
        page.write("\n".join(index) + "\n")


def _type(spec: dict) -> str:
    if "const" in spec:
        return f"`{json.dumps(spec['const'])}`"
    if "enum" in spec:
        return " \\| ".join(f"`{json.dumps(v)}`" for v in spec["enum"])
    if "$ref" in spec:
        return spec["$ref"].rsplit("/", 1)[-1]
    if "allOf" in spec:
        return _type(spec["allOf"][0])
    kind = spec.get("type", "any")
    kind = " or ".join(kind) if isinstance(kind, list) else kind
    if kind == "array" and "items" in spec:
        return f"array of {_type(spec['items'])}"
    return kind


def _table(spec: dict, required: set[str]) -> list[str]:
    rows = ["| field | type | required | meaning |", "|---|---|---|---|"]
    for name, prop in spec.get("properties", {}).items():
        meaning = prop.get("description", "").replace("|", "\\|").replace("\n", " ")
        rows.append(
            f"| `{name}` | {_type(prop)} | {'yes' if name in required else ''} | {meaning} |"
        )
    return rows


def format_page() -> None:
    lines = [
        "# File formats",
        "",
        "Every JSON file freqxfr writes names its format and version in a `format` field "
        '(`"format": "freqxfr.explanation/1"`). The JSON Schemas (draft 2020-12) ship in the '
        "package, in `freqxfr/schemas/`, and the test suite validates every file a run writes "
        "against them:",
        "",
        "```python",
        "import json, importlib.resources",
        'schema = json.loads((importlib.resources.files("freqxfr") / "schemas" / '
        '"explanation.schema.json").read_text())',
        "```",
        "",
        "Within one major version fields may be added, never removed or changed in meaning. "
        "This page is generated from the schemas.",
        "",
        "Files that carry a `format` but have no schema yet: the `summary.json` of `crossres` "
        "(`freqxfr.crossres-summary/1`), `morph` (`freqxfr.morph-summary/1`) and `compare` "
        "(`freqxfr.comparison-summary/1`) runs, and the `explanation.json` of "
        "`explain --template` (`freqxfr.template-explanation/1`). Their fields are described in "
        "the guide pages of those commands.",
        "",
    ]
    for name in ("explanation", "run", "summary", "result"):
        schema = json.loads((PACKAGE / "schemas" / f"{name}.schema.json").read_text("utf-8"))
        lines += [f"## {schema['title']}", "", schema["description"], ""]
        lines += [f"Schema: `freqxfr/schemas/{name}.schema.json`.", ""]
        lines += _table(schema, set(schema.get("required", [])))
        lines.append("")
        for def_name, spec in schema.get("$defs", {}).items():
            if name != "explanation" and def_name not in ("profile",):
                continue  # shared parts are described once, under explanation.json
            lines += [f"### {def_name} ({name})", "", spec.get("description", ""), ""]
            if "properties" in spec:
                lines += _table(spec, set(spec.get("required", [])))
                lines.append("")
    with mkdocs_gen_files.open("reference/formats.md", "w") as page:
        page.write("\n".join(lines))


api_pages()
cli_pages()
format_page()
