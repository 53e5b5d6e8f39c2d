"""Model cards: presets, TOML/JSON round trips, and validation errors that name file and field."""

from __future__ import annotations

import json

import pytest

from freqxfr.common.errors import ModelError
from freqxfr.model.cards import (
    ModelCard,
    card_to_toml,
    list_presets,
    load_card,
    parse_card,
    preset,
    save_card,
)

pytestmark = pytest.mark.unit


def test_presets_are_listed_and_valid():
    assert list_presets() == ["arcface", "dlib_resnet", "sface"]
    dlib, sface, arcface = preset("dlib_resnet"), preset("sface"), preset("arcface")
    assert (dlib.input_size, dlib.metric, dlib.threshold, dlib.alignment) == (
        (150, 150),
        "euclidean",
        -0.6,
        "dlib_chip",
    )
    assert dlib.std == (256.0, 256.0, 256.0)
    assert (sface.input_size, sface.metric, sface.threshold) == ((112, 112), "cosine", 0.363)
    assert (sface.mean, sface.std) == ((127.5,) * 3, (128.0,) * 3)
    assert (arcface.mean, arcface.std, arcface.embedding_size) == ((127.5,) * 3, (127.5,) * 3, 512)
    assert arcface.source == ""  # a card for a model the user brings


def test_dlib_preset_uses_the_converters_constants():
    from freqxfr.model.converters import dlib_resnet

    card = preset("dlib_resnet")
    assert card.mean == dlib_resnet.DLIB_MEAN_RGB
    assert card.std == (dlib_resnet.DLIB_STD,) * 3
    assert card.threshold == -dlib_resnet.DLIB_THRESHOLD
    assert card.input_size == (dlib_resnet.INPUT_SIZE,) * 2
    assert card.embedding_size == dlib_resnet.EMBEDDING_SIZE


def test_sface_preset_matches_the_converter():
    from freqxfr.model.converters import sface

    card = preset("sface")
    assert card.mean == (sface.MEAN,) * 3 and card.std == (sface.STD,) * 3
    assert (card.input_name, card.output_name) == (sface.INPUT_NAME, sface.OUTPUT_NAME)


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(ModelError, match="no model preset named 'facenet'; presets are arcface"):
        preset("facenet")


@pytest.mark.parametrize("suffix", [".toml", ".json"])
@pytest.mark.parametrize("name", ["dlib_resnet", "sface", "arcface"])
def test_roundtrip(tmp_path, name, suffix):
    card = preset(name).replace(notes='quotes " and \\ and ünïcode')
    path = save_card(card, tmp_path / f"card{suffix}")
    assert load_card(path) == card
    assert not list(tmp_path.glob(".*.tmp"))  # the atomic write cleaned up


def test_card_accepts_lists_and_exposes_input_shape():
    card = ModelCard(
        name="m",
        input_size=[112, 96],
        mean=[0, 0, 0],
        std=[1, 1, 1],
        embedding_size=512,
        metric="cosine",
        threshold=0.3,
        alignment="none",
        layout="NHWC",
    )
    assert card.input_size == (112, 96) and card.mean == (0.0, 0.0, 0.0)
    assert card.input_shape == (112, 96, 3)
    assert preset("sface").input_shape == (3, 112, 112)


def test_base_preset_is_extended(tmp_path):
    path = tmp_path / "w600k.toml"
    path.write_text(
        'base = "arcface"\nname = "w600k_r50"\nthreshold = 0.25\nsource = "file:w600k_r50.onnx"\n'
    )
    card = load_card(path)
    assert (card.name, card.threshold, card.embedding_size) == ("w600k_r50", 0.25, 512)
    assert card.mean == (127.5,) * 3


@pytest.mark.parametrize(
    ("change", "field", "problem"),
    [
        ({"metric": "manhattan"}, "metric", "must be one of"),
        ({"input_size": [112]}, "input_size", r"\[height, width\]"),
        ({"input_size": [112, 2]}, "input_size", "between 8 and 4096"),
        ({"std": [1, 0, 1]}, "std", "3 positive numbers"),
        ({"mean": [1, 2]}, "mean", "a list of 3 numbers"),
        ({"mean": ["a", 1, 2]}, "mean", "a number"),
        ({"threshold": 1.5}, "threshold", r"cosine similarity and must lie in \[-1, 1\]"),
        ({"threshold": "high"}, "threshold", "a number"),
        ({"layout": "CHW"}, "layout", "must be one of"),
        ({"channel_order": "GBR"}, "channel_order", "must be one of"),
        ({"alignment": "mtcnn"}, "alignment", "must be one of"),
        ({"embedding_size": 0}, "embedding_size", "positive integer"),
        ({"embedding_size": 1.5}, "embedding_size", "an integer"),
        ({"value_range": [1, 0]}, "value_range", "low < high"),
        ({"source": "http://x"}, "source", "converter:"),
    ],
)
def test_invalid_fields_are_named_with_the_file(tmp_path, change, field, problem):
    data = {**preset("sface").to_dict(), **change}
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ModelError, match=rf"model card .*bad\.json: field '{field}' .*{problem}"):
        load_card(path)


def test_euclidean_threshold_must_be_a_negative_distance():
    with pytest.raises(ModelError, match=r"field 'threshold' is a negative Euclidean distance"):
        preset("dlib_resnet").replace(threshold=0.6)


def test_missing_and_unknown_fields(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('name = "x"\ninput_size = [112, 112]\nthreshhold = 0.3\n')
    with pytest.raises(ModelError, match=r"c\.toml: unknown field\(s\) 'threshhold'"):
        load_card(path)
    path.write_text('name = "x"\ninput_size = [112, 112]\n')
    with pytest.raises(ModelError, match=r"c\.toml: missing field\(s\) 'mean', 'std'"):
        load_card(path)


def test_unreadable_and_malformed_files(tmp_path):
    with pytest.raises(ModelError, match=r"nothere\.toml: cannot read it"):
        load_card(tmp_path / "nothere.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("name = \n")
    with pytest.raises(ModelError, match=r"bad\.toml: not valid TOML"):
        load_card(bad)
    with pytest.raises(ModelError, match=r"card\.yaml: expected a \.toml or \.json file"):
        load_card(tmp_path / "card.yaml")
    with pytest.raises(ModelError, match="expected a table/object"):
        parse_card("[1, 2]", fmt="json")


def test_toml_text_is_flat_and_readable():
    text = card_to_toml(preset("dlib_resnet"))
    assert 'metric = "euclidean"' in text and "threshold = -0.6" in text
    assert parse_card(text) == preset("dlib_resnet")
