"""Morphing-attack scenario on the real FRLL morphs: MMPMR, frequency morph score, errors."""

from __future__ import annotations

import csv
import json
from collections import defaultdict

import numpy as np
import pytest
from PIL import Image

from freqxfr.cli import main
from freqxfr.errors import InputError, NoFaceError
from freqxfr.explain import Explainer
from freqxfr.scenarios.morph import run_morph
from freqxfr.scenarios.morph_index import comparisons, read_morph_index
from freqxfr.verifier import load_model


@pytest.fixture(scope="module")
def index(data_dir):
    return data_dir / "frll_morphs" / "index.csv"


@pytest.fixture(scope="module")
def dlib_run(index, data_dir, tmp_path_factory):
    """The full index with the default model (dlib) and 16 bands, through the CLI."""
    out = tmp_path_factory.mktemp("morph_dlib")
    code = main(["morph", str(index), "--root", str(data_dir), "--out", str(out)])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    with (out / "comparisons.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    return out, summary, rows


def _index_rows(index):
    with index.open() as handle:
        return list(csv.DictReader(handle))


def _write_index(path, rows):
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


# ---- the index -----------------------------------------------------------------------------------


def test_comparisons_of_the_shared_index(index, data_dir):
    entries = read_morph_index(index, root=data_dir)
    cmps = comparisons(entries)
    morphs = [c for c in cmps if c.is_attack]
    bona_fide = [c for c in cmps if not c.is_attack]
    assert len(entries) == 20 and len(morphs) == 40
    # Each of the 20 people once: neutral photo against their own smiling probe.
    assert len(bona_fide) == 20 == len({c.probe_identity for c in bona_fide})
    assert all(
        c.enrolled.parent.name == "neutral" and c.probe.parent.name == "smiling" for c in bona_fide
    )
    assert all(c.probe_identity in c.identities and len(c.identities) == 2 for c in morphs)


def test_a_missing_bona_fide_source_is_named(index, data_dir, tmp_path):
    rows = _index_rows(index)
    rows[1]["bona_fide_b"] = "frll/neutral/999_03.jpg"
    broken = _write_index(tmp_path / "index.csv", rows)
    with pytest.raises(InputError) as info:
        read_morph_index(broken, root=data_dir)
    message = str(info.value)
    assert "row 3" in message and f"bona fide source of {rows[1]['identity_b']}" in message
    assert "999_03.jpg" in message and "not found" in message


def test_a_missing_morph_file_and_bad_columns_are_refused(index, data_dir, tmp_path):
    rows = _index_rows(index)
    rows[0]["path"] = "frll_morphs/nowhere.jpg"
    with pytest.raises(InputError, match=r"row 2.*morph .*nowhere\.jpg not found"):
        read_morph_index(_write_index(tmp_path / "a.csv", rows), root=data_dir)
    without_probe = [{k: v for k, v in r.items() if not k.startswith("probe_b")} for r in rows]
    with pytest.raises(InputError, match=r"missing column.*probe_b"):
        read_morph_index(_write_index(tmp_path / "b.csv", without_probe), root=data_dir)
    with pytest.raises(InputError, match="no such file"):
        read_morph_index(tmp_path / "none.csv")


def test_a_morph_without_a_face_gets_a_clear_error(index, data_dir, tmp_path):
    rng = np.random.default_rng(0)
    # A smooth grey-brown gradient with mild noise: a plausible photo with no face in it.
    ramp = np.linspace(90, 170, 600)[None, :, None] * np.ones((600, 1, 3))
    blank = np.clip(ramp + rng.normal(0, 4, ramp.shape), 0, 255).astype(np.uint8)
    Image.fromarray(blank).save(tmp_path / "blank.jpg")
    rows = _index_rows(index)[:2]
    rows[0]["path"] = str(tmp_path / "blank.jpg")  # absolute paths stay as they are
    entries = read_morph_index(_write_index(tmp_path / "index.csv", rows), root=data_dir)
    with pytest.raises(NoFaceError) as info:
        run_morph(entries, tmp_path / "out", Explainer(load_model("dlib_resnet"), 4))
    message = str(info.value)
    assert message.startswith("morph (morph index row 2)") and "blank.jpg" in message
    assert "no face" in message


# ---- the run (dlib) --------------------------------------------------------------------------------


def test_mmpmr_matches_a_hand_count(dlib_run):
    _, summary, rows = dlib_run
    threshold = summary["threshold"]
    accepted = defaultdict(list)
    for row in rows:
        if row["class"] == "morph":
            accepted[row["enrolled"]].append(float(row["score"]) >= threshold)
    assert len(accepted) == 20 and all(len(v) == 2 for v in accepted.values())
    hand = sum(all(v) for v in accepted.values()) / len(accepted)
    assert summary["mmpmr"] == pytest.approx(hand)
    # Measured: 17 of 20 morphs pass dlib's 0.6 distance threshold against both probes (0.85).
    assert 0.5 <= hand <= 1.0
    by_path = {m["path"]: m for m in summary["morphs"]}
    for path, decisions in accepted.items():
        morph = by_path[path]
        assert morph["accepted_both"] == all(decisions)
        assert morph["accepted_a"] == (morph["score_a"] >= threshold)
        assert morph["accepted_b"] == (morph["score_b"] >= threshold)


def test_frequency_morph_score_ranks_morphs_above_bona_fide(dlib_run):
    _, summary, rows = dlib_run
    morph = [float(r["morph_score"]) for r in rows if r["class"] == "morph"]
    bona_fide = [float(r["morph_score"]) for r in rows if r["class"] == "bona_fide"]
    assert (len(morph), len(bona_fide)) == (40, 20)
    # The AUC by direct pair counting from comparisons.csv agrees with the summary.
    wins = sum((m > b) + 0.5 * (m == b) for m in morph for b in bona_fide)
    auc = summary["auc"]["frequency"]
    assert auc == pytest.approx(wins / (40 * 20))
    # Measured (dlib, 16 bands, Mahalanobis, leave-one-identity-out): AUC 0.881, 95% bootstrap
    # interval over people [0.756, 0.983]; cosine distance gave 0.831. The bound below leaves
    # 0.13 for numerical drift across machines; the interval's lower end must clear chance.
    assert auc > 0.75
    assert summary["auc_ci"]["frequency"][0] > 0.5
    # The comparison score alone separates this small studio set perfectly (AUC 1.0).
    assert summary["auc"]["score"] > 0.95
    assert set(summary["auc"]) == {"score", "frequency", "combined"}


def test_summary_keys_profiles_and_files(dlib_run):
    out, summary, rows = dlib_run
    for key in (
        "mmpmr",
        "d_eer",
        "bpcer_at_apcer_10",
        "bpcer_at_apcer_5",
        "auc",
        "morphs",
        "detectors",
        "profiles",
    ):
        assert key in summary
    assert (
        0 <= summary["d_eer"] <= 1
        and summary["d_eer"] == summary["detectors"]["frequency"]["d_eer"]
    )
    assert summary["bpcer_at_apcer_5"] >= summary["bpcer_at_apcer_10"]
    # 20 people: a bona fide comparison is scored against the 19 others, a morph against 18.
    assert summary["reference_sizes"] == {"min": 18, "max": 19}
    prof = summary["profiles"]
    diff = np.subtract(prof["morph"]["directed_mean"], prof["bona_fide"]["directed_mean"])
    assert np.allclose(prof["difference"]["directed_mean"], diff)
    assert prof["morph"]["n_images"] == 40 and prof["bona_fide"]["n_images"] == 20
    assert len(rows) == 60 and {"class", "identity_a", "identity_b", "score", "morph_score"} <= set(
        rows[0]
    )
    assert len((out / "explanations.jsonl").read_text().splitlines()) == 60
    report = (out / "report.html").read_text()
    assert "MMPMR" in report and report.count("<img") == 4
    # The report states how the D-EER is read off the DET curve (interpolated crossing).
    assert "linearly interpolated between the two neighbouring operating points" in report


def test_cli_morph_error_is_one_line(index, tmp_path, capsys):
    # Without --root the index's paths resolve against its own folder, where they do not exist.
    assert main(["morph", str(index), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not found" in err[0] and "row 2" in err[0]


# ---- SFace (YuNet alignment) -------------------------------------------------------------------------


def test_sface_runs_on_two_morph_pairs(index, data_dir, tmp_path):
    rows = [r for r in _index_rows(index) if r["method"] == "full"][:2]
    entries = read_morph_index(_write_index(tmp_path / "index.csv", rows), root=data_dir)
    summary = run_morph(
        entries, tmp_path / "out", Explainer(load_model("sface"), 8), n_boot=200, report=False
    )
    assert summary["model"]["name"] == "sface"
    assert summary["comparisons"] == {"morph": 4, "bona_fide": 4}
    scores = [(m["score_a"], m["score_b"]) for m in summary["morphs"]]
    hand = np.mean([a >= summary["threshold"] and b >= summary["threshold"] for a, b in scores])
    assert summary["mmpmr"] == hand
    # Bona fide neutral vs smiling studio photos of one person: SFace accepts them all.
    assert summary["bona_fide_acceptance"] == 1.0
    assert summary["reference_sizes"] == {"min": 2, "max": 3}
