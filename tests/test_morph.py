"""Morphing-attack scenario on the real FRLL morphs: MMPMR, frequency morph score, errors."""

from __future__ import annotations

import csv
import json
import re
from collections import defaultdict

import numpy as np
import pytest
from PIL import Image

from freqxfr.cli import main
from freqxfr.common.errors import InputError, NoFaceError
from freqxfr.explanations.explainer import Explainer
from freqxfr.runs.morph import run_morph
from freqxfr.runs.morph_index import comparisons, read_morph_index


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


@pytest.mark.model
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


@pytest.mark.model
def test_a_missing_bona_fide_source_is_named(index, data_dir, tmp_path):
    rows = _index_rows(index)
    rows[1]["bona_fide_b"] = "frll/neutral/999_03.jpg"
    broken = _write_index(tmp_path / "index.csv", rows)
    with pytest.raises(InputError) as info:
        read_morph_index(broken, root=data_dir)
    message = str(info.value)
    assert "row 3" in message and f"bona fide source of {rows[1]['identity_b']}" in message
    assert "999_03.jpg" in message and "not found" in message


@pytest.mark.model
def test_a_missing_morph_file_and_bad_columns_are_refused(index, data_dir, tmp_path):
    rows = _index_rows(index)
    rows[0]["path"] = "frll_morphs/nowhere.jpg"
    with pytest.raises(InputError, match=r"row 2.*morph .*nowhere\.jpg not found"):
        read_morph_index(_write_index(tmp_path / "a.csv", rows), root=data_dir)
    without_probe = [{k: v for k, v in r.items() if not k.startswith("probe_b")} for r in rows]
    with pytest.raises(InputError, match=r"missing column.*probe_b"):
        read_morph_index(_write_index(tmp_path / "b.csv", without_probe), root=data_dir)
    with pytest.raises(InputError, match="file not found"):
        read_morph_index(tmp_path / "none.csv")


@pytest.mark.model
def test_a_morph_without_a_face_gets_a_clear_error(index, data_dir, tmp_path, dlib_model):
    rng = np.random.default_rng(0)
    # A smooth grey-brown gradient with mild noise: a plausible photo with no face in it.
    ramp = np.linspace(90, 170, 600)[None, :, None] * np.ones((600, 1, 3))
    blank = np.clip(ramp + rng.normal(0, 4, ramp.shape), 0, 255).astype(np.uint8)
    Image.fromarray(blank).save(tmp_path / "blank.jpg")
    rows = _index_rows(index)[:2]
    rows[0]["path"] = str(tmp_path / "blank.jpg")  # absolute paths stay as they are
    # The blank photo lies outside the data root, which the root rule refuses unless allowed.
    entries = read_morph_index(
        _write_index(tmp_path / "index.csv", rows), root=data_dir, allow_outside_root=True
    )
    with pytest.raises(NoFaceError) as info:
        run_morph(entries, tmp_path / "out", Explainer(dlib_model, 4))
    message = str(info.value)
    assert message.startswith("morph (morph index row 2)") and "blank.jpg" in message
    assert "no face" in message


# ---- the run (dlib) --------------------------------------------------------------------------------


@pytest.mark.integration
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


@pytest.mark.integration
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


@pytest.mark.integration
def test_summary_keys_profiles_and_files(dlib_run):
    out, summary, rows = dlib_run
    # The top-level D-EER and BPCER are the frequency detector's, recomputed here by a plain scan
    # of thresholds over comparisons.csv (README: measured D-EER 0.175, BPCER 0.55 / 0.80). The
    # D-EER is where the straight segment between the last operating point with APCER < BPCER and
    # the next one crosses APCER = BPCER.
    morph = np.array([float(r["morph_score"]) for r in rows if r["class"] == "morph"])
    bona_fide = np.array([float(r["morph_score"]) for r in rows if r["class"] == "bona_fide"])
    cuts = np.concatenate([[-np.inf], np.sort(np.concatenate([morph, bona_fide])), [np.inf]])
    rates = [(np.mean(morph < t), np.mean(bona_fide >= t)) for t in cuts]
    j = next(k for k, (a, b) in enumerate(rates) if a >= b)
    (a0, b0), (a1, b1) = rates[j - 1], rates[j]
    crossing = a1 if a1 == b1 else a0 + (a1 - a0) * (b0 - a0) / ((b0 - a0) - (b1 - a1))
    assert summary["d_eer"] == pytest.approx(crossing)
    assert summary["d_eer"] == summary["detectors"]["frequency"]["d_eer"]
    assert 0.1 < summary["d_eer"] < 0.25
    for key, bound in (("bpcer_at_apcer_10", 0.10), ("bpcer_at_apcer_5", 0.05)):
        assert summary[key] == pytest.approx(min(b for a, b in rates if a <= bound + 1e-12))
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
    # Four figures, and each morph beside its two contributors and two probes, as thumbnails
    # written into the run folder and linked by reference (not inlined).
    shown = min(summary["n_morphs"], 50)
    assert "MMPMR" in report and report.count("<img") == 4 + 5 * shown
    links = re.findall(r'<img src="(thumbs/[0-9a-f]{16}\.jpg)"', report)
    assert len(links) == 5 * shown and all((out / link).is_file() for link in links)
    spliced = summary["morphs"][0]
    assert spliced["bona_fide_a"] and spliced["probe_b"]
    # The report states how the D-EER is read off the DET curve (interpolated crossing).
    assert "linearly interpolated between the two neighbouring operating points" in report


@pytest.mark.integration
def test_cli_morph_error_is_one_line(index, tmp_path, capsys):
    # Without --root the index's paths resolve against its own folder, where they do not exist.
    assert main(["morph", str(index), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not found" in err[0] and "row 2" in err[0]


# ---- SFace (YuNet alignment) -------------------------------------------------------------------------


@pytest.mark.model
def test_sface_runs_on_two_morph_pairs(index, data_dir, tmp_path, sface_model):
    rows = [r for r in _index_rows(index) if r["method"] == "full"][:2]
    entries = read_morph_index(_write_index(tmp_path / "index.csv", rows), root=data_dir)
    # 4 bands: no assertion here depends on the bands (the scores are the unmasked images').
    summary = run_morph(entries, tmp_path / "out", Explainer(sface_model, 4), n_boot=200)
    assert summary["model"]["name"] == "sface"
    assert summary["comparisons"] == {"morph": 4, "bona_fide": 4}
    scores = [(m["score_a"], m["score_b"]) for m in summary["morphs"]]
    hand = np.mean([a >= summary["threshold"] and b >= summary["threshold"] for a, b in scores])
    assert summary["mmpmr"] == hand
    # Bona fide neutral vs smiling studio photos of one person: SFace accepts them all.
    assert summary["bona_fide_acceptance"] == 1.0
    assert summary["reference_sizes"] == {"min": 2, "max": 3}


# ---- exact cases on the toy model (tests/_toy_model.py) -------------------------------------------


@pytest.mark.unit
def test_combined_detector_ranks_a_low_comparison_score_as_morph_like():
    """README: every detector is oriented so that higher = more morph-like; the combined one is
    the mean of the ranks of the *negated* comparison score and the frequency score. Guards against
    ranking the comparison score the wrong way round (the ranks would then cancel to 2.5)."""
    from freqxfr.runs.morph import detector_inputs

    inputs = detector_inputs(np.array([0.9, 0.7, 0.5, 0.3]), np.array([0.1, 0.2, 0.3, 0.4]))
    assert inputs["score"].tolist() == [-0.9, -0.7, -0.5, -0.3]
    assert inputs["frequency"].tolist() == [0.1, 0.2, 0.3, 0.4]
    assert inputs["combined"].tolist() == [1.0, 2.0, 3.0, 4.0]
    mixed = detector_inputs(np.array([0.9, 0.3, 0.5]), np.array([3.0, 1.0, 2.0]))
    assert mixed["combined"].tolist() == [2.0, 2.0, 2.0]  # ranks (1, 3, 2) and (3, 1, 2)


@pytest.mark.unit
def test_morph_outcomes_at_the_threshold_by_hand():
    """A morph is accepted against a probe when score >= threshold (equality included); its two
    scores are matched to its subjects by the probe's identity, whatever the order of the
    comparisons (a bona fide comparison first here)."""
    from pathlib import Path

    from freqxfr.runs.morph import morph_outcomes
    from freqxfr.runs.morph_index import MorphComparison

    m, pa, pb = Path("m.png"), Path("pa.png"), Path("pb.png")
    cmps = [
        MorphComparison("bona_fide", Path("a.png"), pa, ("A",), "A"),
        MorphComparison("morph", m, pb, ("A", "B"), "B", "full", 2),
        MorphComparison("morph", m, pa, ("A", "B"), "A", "full", 2),
    ]
    (out,) = morph_outcomes(cmps, np.array([0.9, 0.4, 0.5]), 0.5)
    assert (out["identity_a"], out["identity_b"], out["row"], out["method"]) == (
        "A",
        "B",
        2,
        "full",
    )
    assert (out["score_a"], out["score_b"]) == (0.5, 0.4)
    assert (out["accepted_a"], out["accepted_b"], out["accepted_both"]) == (True, False, False)


# Four people, told apart by their red level r (G = 100, B = 150). Probes are flat; bona fide
# photos and morphs add a red wave of amplitude amp. Embedding (card mean (10, 20, 30), std 2):
# e = ((r - 10)/2, 40, 60, amp/4), so a comparison's score is -sqrt(Δe0² + e3²).
PEOPLE = {"p1": (60, 20), "p2": (100, 28), "p3": (140, 44), "p4": (180, 24)}  # r, bona fide amp
MORPHS = [
    ("m12_full", "p1", "p2", 80, "full"),
    ("m12_spliced", "p1", "p2", 64, "spliced"),
    ("m34_full", "p3", "p4", 160, "full"),
]  # name, subjects, r; amp 40


def _toy_scores_and_features(enrolled_r, probe_r, amp):
    """Comparison score and the enrolled image's directed influences (4 rings), by hand."""
    import _toy_model as toy  # noqa: F401  (the layout the formulas describe)

    u, v, w = (enrolled_r - 10) / 2, (probe_r - 10) / 2, amp / 4
    s_ref = -np.hypot(u - v, w)
    no_dc = -np.sqrt((5 + v) ** 2 + 50**2 + 75**2 + w**2)  # the bare wave: e = (-5, -10, -15, w)
    no_wave = -abs(u - v)
    return s_ref, np.array([s_ref - no_dc, s_ref - no_wave, 0.0, 0.0])


@pytest.fixture(scope="module")
def toy_morphs(tmp_path_factory):
    import _toy_model as toy

    root = tmp_path_factory.mktemp("toy_morphs")
    card = toy.write_model(root / "model")
    for person, (r, amp) in PEOPLE.items():
        toy.save(toy.flat((r, 100, 150)), root / "probe" / f"{person}.png")
        toy.save(toy.waved((r, 100, 150), amp), root / "bona_fide" / f"{person}.png")
    rows = []
    for name, pa, pb, r, method in MORPHS:
        toy.save(toy.waved((r, 100, 150), 40), root / "morphs" / f"{name}.png")
        rows.append(
            {
                "path": f"morphs/{name}.png",
                "identity_a": pa,
                "identity_b": pb,
                "alpha": "0.5",
                "method": method,
                "bona_fide_a": f"bona_fide/{pa}.png",
                "bona_fide_b": f"bona_fide/{pb}.png",
                "probe_a": f"probe/{pa}.png",
                "probe_b": f"probe/{pb}.png",
            }
        )
    index = _write_index(root / "index.csv", rows)

    def run(*extra):
        out = root / ("out" + "".join(extra).replace("-", "_"))
        args = [
            "morph",
            str(index),
            "--root",
            str(root),
            "--out",
            str(out),
            "--model",
            str(card),
            "--bands",
            "4",
            "--boot",
            "100",
            *extra,
        ]
        assert main(args) == 0
        with (out / "comparisons.csv").open() as handle:
            rows = list(csv.DictReader(handle))
        return json.loads((out / "summary.json").read_text()), rows, out

    return run


def _expected(rows):
    """Hand scores and enrolled-image features for the comparisons in comparisons.csv order."""
    scores, features = [], []
    for row in rows:
        probe_r = PEOPLE[row["probe_identity"]][0]
        if row["class"] == "bona_fide":
            r, amp = PEOPLE[row["probe_identity"]]
        else:
            r, amp = next(m[3] for m in MORPHS if row["enrolled"].endswith(f"{m[0]}.png")), 40
        s, f = _toy_scores_and_features(r, probe_r, amp)
        scores.append(s)
        features.append(f / np.abs(f).max())
    return np.array(scores), np.array(features)


@pytest.mark.unit
def test_toy_morph_mmpmr_split_and_hand_detector_numbers(toy_morphs):
    """MMPMR over all morphs and per method (README: full / spliced), and the comparison-score
    detector's AUC, D-EER and BPCER by hand. Scores: the full morphs sit 10 from both subjects in
    e0 (score -√200 = -14.14, accepted at -20 against both); the spliced one is 2 and 18 away
    (-10.20 accepted, -20.59 rejected). Bona fide scores are -amp/4 = -5, -7, -11, -6.
    Negated, attacks (10.20, 14.14 ×4, 20.59) beat bona fide (5, 6, 7, 11) in 23 of 24 pairs;
    at threshold 11 the operating point is (APCER 1/6, BPCER 1/4) and at 14.14 it is (1/6, 0), so
    the DET curve crosses APCER = BPCER at 1/6 (the old closest-point rule gave 5/24); APCER ≤ 10%
    forces APCER = 0, where BPCER is 1/4."""
    summary, rows, _ = toy_morphs()
    scores, _ = _expected(rows)
    np.testing.assert_allclose([float(r["score"]) for r in rows], scores, atol=1e-4)
    assert summary["mmpmr"] == pytest.approx(2 / 3)
    assert summary["mmpmr_by_method"] == {"full": 1.0, "spliced": 0.0}
    spliced = next(m for m in summary["morphs"] if m["method"] == "spliced")
    assert (spliced["accepted_a"], spliced["accepted_b"]) == (True, False)
    assert (spliced["identity_a"], spliced["identity_b"], spliced["row"]) == ("p1", "p2", 3)
    assert spliced["score_a"] == pytest.approx(-np.hypot(2, 10), abs=1e-4)
    assert spliced["score_b"] == pytest.approx(-np.hypot(18, 10), abs=1e-4)
    assert summary["bona_fide_acceptance"] == 1.0
    score = summary["detectors"]["score"]
    assert score["auc"] == pytest.approx(23 / 24)
    assert score["d_eer"] == pytest.approx(1 / 6)
    assert score["bpcer_at_apcer_10"] == score["bpcer_at_apcer_5"] == pytest.approx(0.25)


@pytest.mark.unit
def test_toy_morph_explains_the_enrolled_image(toy_morphs):
    """README: the explained image is the enrolled one (side a) and the morph score's feature is
    its normalised directed influence. Probes are flat, so a probe-side feature would be (1, 0, 0,
    0) for every comparison: zero spread and every morph score 0. Guards against taking the
    feature (or the profiles) from the probe's side, and against swapping a and b."""
    from freqxfr.stats.morph_score import leave_identity_out_scores

    summary, rows, out = toy_morphs()
    _, features = _expected(rows)
    records = [json.loads(line) for line in (out / "explanations.jsonl").read_text().splitlines()]
    assert [r["a"]["source"] for r in records] == [row["enrolled"] for row in rows]
    np.testing.assert_allclose(
        [r["a"]["directed_normalised"] for r in records], features, atol=1e-5
    )
    bona_fide = np.array([row["class"] == "bona_fide" for row in rows])
    prof = summary["profiles"]
    np.testing.assert_allclose(
        prof["bona_fide"]["directed_normalised_std"], features[bona_fide].std(axis=0), atol=1e-5
    )
    np.testing.assert_allclose(
        prof["morph"]["directed_normalised_mean"], features[~bona_fide].mean(axis=0), atol=1e-5
    )
    np.testing.assert_allclose(
        prof["difference"]["directed_normalised_mean"],
        features[~bona_fide].mean(axis=0) - features[bona_fide].mean(axis=0),
        atol=1e-5,
    )
    identities = [
        [row["identity_a"], row["identity_b"]] if row["identity_b"] else [row["identity_a"]]
        for row in rows
    ]
    expected, _ = leave_identity_out_scores(features, bona_fide, identities, "mahalanobis")
    np.testing.assert_allclose(
        [float(r["morph_score"]) for r in rows], expected, rtol=1e-4, atol=1e-6
    )
    assert summary["distance"] == "mahalanobis" and np.ptp(expected) > 0.1


@pytest.mark.unit
def test_cli_morph_distance_cosine_reaches_the_morph_score(toy_morphs):
    """README: ``--distance cosine``. The morph scores are 1 - cos(x, m) against the bona fide
    mean of other people, not the Mahalanobis distances."""
    from freqxfr.stats.morph_score import leave_identity_out_scores

    summary, rows, _ = toy_morphs("--distance", "cosine")
    _, features = _expected(rows)
    bona_fide = np.array([row["class"] == "bona_fide" for row in rows])
    identities = [
        [row["identity_a"], row["identity_b"]] if row["identity_b"] else [row["identity_a"]]
        for row in rows
    ]
    cosine, _ = leave_identity_out_scores(features, bona_fide, identities, "cosine")
    mahalanobis, _ = leave_identity_out_scores(features, bona_fide, identities, "mahalanobis")
    got = [float(r["morph_score"]) for r in rows]
    assert summary["distance"] == "cosine"
    np.testing.assert_allclose(got, cosine, rtol=1e-4, atol=1e-7)
    assert not np.allclose(got, mahalanobis, rtol=1e-2)


@pytest.mark.integration
@pytest.mark.browser
def test_morph_report_passes_the_screenshot_check(dlib_run, tmp_path):
    """In Chromium: every plot and thumbnail decodes and is not blank; no table widens the page."""
    from _report_browser import browser_or_skip, report_problems

    out, _, _ = dlib_run
    assert report_problems(browser_or_skip(), out / "report.html", tmp_path) == []
