"""The dataset report's headline numbers (AUC, EER, rates with bootstrap intervals) and the
templates every report renders through."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from freqxfr.reports import headline
from freqxfr.reports.html import Section, html_table, write_report

pytestmark = pytest.mark.unit


def _scores(n_gen: int, n_imp: int, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    scores = np.concatenate([rng.normal(1.0, 1.0, n_gen), rng.normal(-1.0, 1.0, n_imp)])
    labels = np.array([True] * n_gen + [False] * n_imp)
    return scores, labels


def test_headline_numbers_match_a_hand_computation():
    scores, labels = _scores(60, 140)
    numbers = {n.label: n for n in headline.verification_headline(scores, labels, 0.0, n_boot=200)}
    auc = numbers["AUC"]
    assert auc.value == pytest.approx(roc_auc_score(labels, scores))
    assert auc.interval[0] <= auc.value <= auc.interval[1]
    fnmr = numbers["FNMR at the model's threshold"]
    assert fnmr.value == pytest.approx(np.mean(scores[labels] < 0.0))
    acc = numbers["accuracy at the model's threshold"]
    assert acc.value == pytest.approx(np.mean((scores >= 0.0) == labels))
    # Hand EER: where the two rates are closest over every threshold.
    best = min(
        (abs(np.mean(scores[~labels] >= t) - np.mean(scores[labels] < t)), t)
        for t in np.unique(scores)
    )[1]
    eer = (np.mean(scores[~labels] >= best) + np.mean(scores[labels] < best)) / 2
    assert numbers["EER"].value == pytest.approx(eer, abs=1 / 60)
    # 140 impostor pairs allow FMR 1e-2 but not 1e-3, and the headline says so.
    assert numbers["FNMR at FMR 0.01"].interval is not None
    assert numbers["FNMR at FMR 0.001"].value is None
    assert "1000 impostor pairs" in numbers["FNMR at FMR 0.001"].note


def test_headline_with_one_class_states_only_what_it_can():
    scores, labels = _scores(10, 0)
    labels = labels[:10]
    names = [n.label for n in headline.verification_headline(scores, labels, 0.0, n_boot=50)]
    assert names == ["accuracy at the model's threshold", "FNMR at the model's threshold"]
    assert headline.verification_headline(np.array([]), np.array([], dtype=bool), 0.0) == []


def test_templates_escape_what_comes_from_the_input(tmp_path):
    evil = "<script>alert(1)</script>"
    page = write_report(
        tmp_path,
        f"title {evil}",
        [Section(f"section {evil}", html_table([evil], [[evil]], caption=evil))],
        kind="dataset",
        lead={"items": [{"label": evil, "value": evil, "interval": evil}], "note": evil},
    ).read_text(encoding="utf-8")
    assert evil not in page
    assert page.count("&lt;script&gt;") == 10  # title twice, section, table 3, lead 4
    assert page.count("<script>") == 1  # the image-check script only


# --- groups: chosen columns, identity-like columns refused, error rates per group ---------------


def _group_table(tmp_path):
    from freqxfr.explanations.pairs import Pair

    rows = ["path,identity,gender"]
    for k in range(12):  # 12 people, 2 photos each: identity is one group per person
        for j in range(2):
            rows.append(f"img/{k:02d}_{j}.jpg,person_{k:02d},{'female' if k % 2 else 'male'}")
    table = tmp_path / "index.csv"
    table.write_text("\n".join(rows) + "\n")
    pairs = [
        Pair(tmp_path / "img" / "00_0.jpg", tmp_path / "img" / "00_1.jpg", True),
        Pair(tmp_path / "img" / "01_0.jpg", tmp_path / "img" / "02_0.jpg", False),
    ]
    return table, pairs


def test_groups_by_chosen_columns_and_identity_like_ones_refused(tmp_path):
    from freqxfr.common.errors import InputError
    from freqxfr.explanations.pairs import attach_groups

    table, pairs = _group_table(tmp_path)
    # By default the identity-like column is left out; the population column stays.
    default = attach_groups(pairs, table, root=tmp_path)
    assert [p.groups for p in default] == [{"gender": "male"}, {"gender": "mixed"}]
    chosen = attach_groups(pairs, table, root=tmp_path, columns=["gender"])
    assert [p.groups for p in chosen] == [{"gender": "male"}, {"gender": "mixed"}]
    with pytest.raises(
        InputError, match=r"'identity' is identity-like \(12 groups for 24 images\)"
    ):
        attach_groups(pairs, table, root=tmp_path, columns=["gender", "identity"])
    with pytest.raises(InputError, match=r"no column 'age' \(it has identity, gender\)"):
        attach_groups(pairs, table, root=tmp_path, columns=["age"])


def test_group_rates_match_a_hand_count():
    records = []
    rng = np.random.default_rng(5)
    for k in range(80):
        same = k % 2 == 0
        score = rng.normal(0.8 if same else -0.8, 1.0)
        records.append(
            {"index": k, "same": same, "score_ref": score, "groups": {"g": "x" if k < 40 else "y"}}
        )
    records.append({"index": 80, "error": "unreadable"})
    rates = headline.group_rates(records, 0.0, n_boot=100)
    assert [row[0] for row in rates["g"]] == ["x", "y"]
    for row, part in zip(rates["g"], (records[:40], records[40:80]), strict=True):
        gen = np.array([r["score_ref"] for r in part if r["same"]])
        imp = np.array([r["score_ref"] for r in part if not r["same"]])
        assert row[1:3] == [gen.size, imp.size]
        assert row[3] == pytest.approx(np.mean(imp >= 0.0))
        assert row[4][0] <= row[3] <= row[4][1]
        assert row[5] == pytest.approx(np.mean(gen < 0.0))
        assert row[6][0] <= row[5] <= row[6][1]


def test_group_band_differences_name_the_band_that_differs():
    rng = np.random.default_rng(7)
    records = []
    for k in range(60):
        group = "x" if k % 2 else "y"
        sides = {}
        for s in ("a", "b"):
            d = rng.normal(0.0, 0.05, 4) + np.array([1.0, 0.3, 0.3, 0.3])
            d[2] += 0.4 if group == "x" else 0.0  # only band 2 differs between the groups
            sides[s] = {"directed": d.tolist()}
        records.append({"index": k, "same": True, "groups": {"g": group}, **sides})
    records.append({"index": 99, "same": True, "groups": {"g": "mixed"}, **sides})
    (found,) = headline.group_band_differences(records, n_boot=300)["g"]
    assert found == ("x", "y", 30, 30, [2])
