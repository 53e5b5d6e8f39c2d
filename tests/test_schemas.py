"""Every JSON file freqxfr writes validates against the JSON Schema it names.

The schemas (draft 2020-12) ship in the package (``freqxfr/schemas``); each file carries its
``format`` (``"freqxfr.explanation/1"``, ``"freqxfr.run/1"``, ``"freqxfr.summary/1"``, and
``"freqxfr.result/1"`` on every ``results.jsonl`` line). The commands run for real (dlib's ResNet,
few bands, the bundled demo photos and real LFW pairs) and every file they write is checked.
"""

from __future__ import annotations

import importlib.resources
import json
from pathlib import Path

import jsonschema
import pytest

from freqxfr.cli import main

pytestmark = pytest.mark.integration

SCHEMAS = {
    name: json.loads(
        (importlib.resources.files("freqxfr") / "schemas" / f"{name}.schema.json").read_text(
            encoding="utf-8"
        )
    )
    for name in ("explanation", "run", "summary", "result")
}
# Which schema each file name is checked against (.jsonl: every line).
FILES = {
    "explanation.json": "explanation",
    "run.json": "run",
    "summary.json": "summary",
    "results.jsonl": "result",
}
# Files without a schema of their own yet: the per-pair faithfulness log of a dataset run.
UNSCHEMATISED = {"faithfulness.jsonl"}


def validate(document: object, name: str) -> None:
    schema = SCHEMAS[name]
    assert isinstance(document, dict), name
    assert document.get("format") == schema["properties"]["format"]["const"], document.get("format")
    jsonschema.Draft202012Validator(schema).validate(document)


def validate_folder(folder: Path) -> dict[str, int]:
    """Validate every JSON file under ``folder``; the number of documents checked per schema."""
    checked: dict[str, int] = {}
    for path in sorted(folder.rglob("*.json*")):
        if path.name in UNSCHEMATISED:
            continue
        assert path.name in FILES, f"{path}: a JSON file without a schema"
        name = FILES[path.name]
        text = path.read_text(encoding="utf-8")
        documents = (
            [json.loads(line) for line in text.splitlines()]
            if path.suffix == ".jsonl"
            else [json.loads(text)]
        )
        for document in documents:
            validate(document, name)
        checked[name] = checked.get(name, 0) + len(documents)
    return checked


def test_the_schemas_are_valid_draft_2020_12():
    for name, schema in SCHEMAS.items():
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema", name
        jsonschema.Draft202012Validator.check_schema(schema)
        assert "format" in schema["required"], name


def test_demo_and_explain_write_valid_explanations(tmp_path, capsys):
    """Guards against an explanation.json (plain, with regions and faithfulness, or printed by
    ``--json``) that drifts from its schema or loses its format field. The demo runs with 4
    bands, not its 16 (its faithfulness curves, ~46x the explanation's cost, shrink with the
    band count; the schema does not depend on it), and nothing draws a report (not JSON)."""
    demo = Path(importlib.resources.files("freqxfr")) / "demo_data"
    a, b = demo / "frll_001_neutral.jpg", demo / "frll_001_smiling.jpg"
    assert main(["demo", "--out", str(tmp_path / "demo"), "--bands", "4", "--quiet",
                 "--no-report"]) == 0  # fmt: skip
    assert main(["explain", str(a), str(b), "--bands", "4", "--regions", "grid:2x2",
                 "--faithfulness", "--out", str(tmp_path / "explain"), "--quiet",
                 "--no-report"]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["explain", str(a), str(b), "--bands", "4", "--json", "--quiet"]) == 0
    validate(json.loads(capsys.readouterr().out), "explanation")
    assert validate_folder(tmp_path) == {"explanation": 3}


def test_dataset_run_writes_valid_files(data_dir, tmp_path):
    """Guards against run.json, summary.json or a results.jsonl line (explained or failed, with
    regions and faithfulness) that drifts from its schema."""
    lines = (data_dir / "lfw_aligned112" / "pairs_generated.csv").read_text().splitlines()
    genuine = lines[1]
    impostor = next(line for line in lines[1:] if line.endswith(",0"))
    pairs = tmp_path / "pairs.csv"
    pairs.write_text(
        "\n".join(
            [
                lines[0],
                genuine,
                impostor,
                "lfw_aligned112/missing.jpg," + genuine.split(",")[1] + ",1",
            ]
        )
        + "\n"
    )
    status = main(["dataset", str(pairs), "--root", str(data_dir), "--bands", "4",
                   "--regions", "grid:2x2", "--faithfulness", "--seeds", "2",
                   "--out", str(tmp_path / "run"), "--quiet", "--no-report"])  # fmt: skip
    assert status == 3  # the missing image's pair failed, the others were explained
    assert validate_folder(tmp_path / "run") == {"run": 1, "summary": 1, "result": 3}
    failed = [
        json.loads(line)
        for line in (tmp_path / "run" / "results.jsonl").read_text().splitlines()
        if "error" in json.loads(line)
    ]
    assert len(failed) == 1
