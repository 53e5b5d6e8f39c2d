"""``freqxfr verify`` and ``freqxfr models``, run through the real command line entry point."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from freqxfr.cli import main
from freqxfr.model.cards import parse_card, preset

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", autouse=True)
def private_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("freqxfr-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FREQXFR_CACHE_DIR", str(root))
        yield root


def test_verify_json_on_raw_photos(data_dir, capsys):
    a = data_dir / "frll" / "neutral" / "005_03.jpg"
    b = data_dir / "frll" / "smiling" / "005_08.jpg"
    assert main(["verify", str(a), str(b), "--model", "sface", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["decision"] is True and record["model"] == "sface"
    assert record["threshold"] == 0.363 and record["score"] > 0.363
    assert record["provider"] == "CPUExecutionProvider"


@pytest.mark.dlib
def test_verify_text_with_the_default_model(data_dir, capsys):
    a = data_dir / "frll" / "neutral" / "005_03.jpg"
    b = data_dir / "frll" / "smiling" / "006_08.jpg"
    assert main(["verify", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    # One sign convention for every command: the score (negative distance), distance beside it.
    assert re.match(
        r"NO MATCH: score -(\d\.\d{4}), threshold -0\.6000 \(distance \1, "
        r"threshold distance 0\.6000\) \(dlib_resnet, euclidean, ",
        out,
    ), out


def test_verify_missing_file_is_one_line(capsys, tmp_path):
    assert main(["verify", str(tmp_path / "nope.jpg"), str(tmp_path / "nope2.jpg")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("freqxfr verify: error:") and "nope.jpg" in err and "\n" not in err


def test_models_convert_list_and_card(capsys):
    assert main(["models", "convert", "sface"]) == 0
    assert "sface: " in capsys.readouterr().out
    assert main(["models", "list", "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)["presets"]}
    assert set(rows) == {"arcface", "dlib_resnet", "sface"}
    assert rows["sface"]["converted"] and rows["sface"]["converted"][0]["valid"]
    assert rows["arcface"]["converted"] == []
    assert main(["models", "card", "arcface"]) == 0
    assert parse_card(capsys.readouterr().out) == preset("arcface")
    assert main(["models", "convert", "arcface"]) == 2
    assert "no converter" in capsys.readouterr().err
