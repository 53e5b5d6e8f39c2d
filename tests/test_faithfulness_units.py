"""Sign tests of the faithfulness decision rules per identity: the two images of a pair and images
reused across pairs are not independent, so where identities are known each identity votes once
(a win where more than half of its images win, a loss where fewer, no vote at half)."""

from __future__ import annotations

import math

import pytest

from freqxfr.common.errors import InputError
from freqxfr.explanations.faithfulness import (
    VARIANTS,
    null_verdict,
    sign_test_p,
    summarise_faithfulness,
    summarise_null_tests,
    unit_vote,
    verdict,
)

pytestmark = pytest.mark.unit


def _test(beats: bool) -> dict:
    """A match image's null test that beats (or not) both nulls."""
    judged = {
        null: {
            "percentile": 0.9 if beats else 0.1,
            "p_value": 0.5,
            "effect_size": None,
            "beats": beats,
        }
        for null in ("random", "sanity")
    }
    return {"test": "area", "area": judged, "threshold": judged}


def _record(path: str, beats: bool) -> dict:
    area = {
        "deletion_auc": 0.0,
        "random_deletion_auc": 0.0,
        "insertion_auc": 0.0,
        "random_insertion_auc": 0.0,
        "beats_random": beats,
        "insertion_beats_random": beats,
    }
    return {
        "path": path,
        "same": True,
        "decision": True,
        "areas": dict.fromkeys(VARIANTS, area),
        "null_test": _test(beats),
    }


def _lfw(person: int, number: int) -> str:
    return f"lfw/Person_{person}/Person_{person}_{number:04d}.jpg"


# 8 people with 2 images each: 6 win with both, one with one of two (no vote), one with neither.
BEATS = [True] * 12 + [True, False] + [False, False]
PATHS = [_lfw(i // 2, 1 + i % 2) for i in range(16)]


def test_two_images_per_identity_halve_the_units_and_change_p():
    """By hand: images 13 of 16, p = (C(16,13) + C(16,14) + C(16,15) + 1) / 2^16 = 697/65536
    (holds); identities 6 wins, 1 loss, 1 tie: p = (C(7,6) + 1) / 2^7 = 1/16 (does not hold)."""
    ids = [p.split("/")[1] for p in PATHS]
    vote = unit_vote(BEATS, ids)
    assert vote == {
        "unit": "identity",
        "n_units": 8,
        "unit_wins": 6,
        "unit_ties": 1,
        "p_value": 1 / 16,
    }
    by_class = summarise_faithfulness([_record(p, b) for p, b in zip(PATHS, BEATS, strict=True)])
    entry = by_class["genuine"]["support"]
    assert entry["wins"] == 13 and entry["beats_random"] == 13 / 16  # per image, as before
    assert entry["image_p_value"] == pytest.approx(697 / 65536)
    assert entry["unit"] == "identity" and entry["n_units"] == 8 and entry["unit_wins"] == 6
    assert entry["p_value"] == pytest.approx(1 / 16) and not entry["holds"]
    assert "note" not in entry
    null = by_class["genuine"]["null_test"]
    assert null["unit"] == "identity" and null["n_units"] == 8
    for side in ("random", "sanity"):
        assert null[side]["wins"] == 13 and null[side]["unit_wins"] == 6
        assert null[side]["p_value"] == pytest.approx(1 / 16)
        assert null[side]["image_p_value"] == pytest.approx(697 / 65536)
    assert not null["holds"]
    assert "6 of 8 identities by majority (1 tied, no vote)" in verdict(entry, 16)
    assert "one vote per identity" in null_verdict(null)


def test_all_winning_pairs_of_one_person_count_once():
    """12 images of 6 people, all winning: 12 images would give p = 2^-12, 6 identities 2^-6."""
    tests = [_test(True) for _ in range(12)]
    ids = [f"frll_{i // 2:03d}" for i in range(12)]
    summary = summarise_null_tests(tests, ids)
    assert summary["n_units"] == 6 == summary["n_images"] / 2
    assert summary["random"]["p_value"] == pytest.approx(2.0**-6) and summary["holds"]
    assert summary["random"]["image_p_value"] == pytest.approx(2.0**-12)


def test_unique_identities_give_the_image_level_result():
    beats = [True, True, False, True, True, True, False, True]
    paths = [_lfw(i, 1) for i in range(len(beats))]
    records = [_record(p, b) for p, b in zip(paths, beats, strict=True)]
    by_identity = summarise_faithfulness(records)
    by_image = summarise_faithfulness(records, [None] * len(records))
    for name in VARIANTS:
        one, other = by_identity["genuine"][name], by_image["genuine"][name]
        assert one["unit"] == "identity" and other["unit"] == "image"
        assert one["n_units"] == other["n_units"] == 8
        assert one["unit_wins"] == other["unit_wins"] == one["wins"] == 6
        assert one["p_value"] == other["p_value"] == sign_test_p(6, 8)
        assert one["holds"] == other["holds"]
    one, other = by_identity["genuine"]["null_test"], by_image["genuine"]["null_test"]
    for side in ("random", "sanity"):
        assert one[side]["p_value"] == other[side]["p_value"] == sign_test_p(6, 8)
    assert one["holds"] == other["holds"]


def test_an_unknown_identity_falls_back_to_images_with_a_note():
    """A morph (two people) has no identity: then every image is a unit, as before."""
    paths = [*PATHS[:-1], "morphs/a_b_morph.png"]
    by_class = summarise_faithfulness([_record(p, b) for p, b in zip(paths, BEATS, strict=True)])
    entry = by_class["genuine"]["support"]
    assert entry["unit"] == "image" and entry["n_units"] == 16 and entry["unit_wins"] == 13
    assert entry["p_value"] == pytest.approx(697 / 65536) and entry["holds"]
    assert "unknown for some images" in entry["note"]
    null = by_class["genuine"]["null_test"]
    assert null["unit"] == "image" and "unknown" in null["note"] and null["holds"]
    # callers without identities (a list of tests): images, as before
    plain = summarise_null_tests([_test(b) for b in BEATS])
    assert plain["unit"] == "image" and "not given" in plain["note"]
    assert plain["random"]["p_value"] == sign_test_p(13, 16)


def test_an_identity_list_of_the_wrong_length_is_refused():
    with pytest.raises(InputError, match="identities: 3 given for 16 images"):
        summarise_null_tests([_test(b) for b in BEATS], ["a", "b", "c"])


def test_an_identity_without_a_vote_leaves_p_at_one():
    vote = unit_vote([True, False], ["x", "x"])
    assert vote["unit_ties"] == 1 and vote["p_value"] == 1.0 and not math.isnan(vote["p_value"])
