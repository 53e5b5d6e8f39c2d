"""Identity-aware statistics: identities from pair lists and paths, and the cluster bootstrap.

Synthetic scores with identity effects: pairs of one person share that person's offset, so the
pairs are not independent and resampling identities must give wider intervals than resampling
pairs; with every identity once the two are the same bootstrap, draw for draw.
"""

from __future__ import annotations

import numpy as np
import pytest

from freqxfr.common.errors import InputError
from freqxfr.explanations.pairs import Pair, read_pairs
from freqxfr.runs.crossres import summarise_factors
from freqxfr.stats.bootstrap import (
    binomial_two_sided,
    cluster_sign_test,
    cluster_weights,
    percentile_ci,
    weighted_means,
)
from freqxfr.stats.identities import (
    identity_from_path,
    pair_clusters,
    record_identities,
    resampled_by,
    resampling,
)
from freqxfr.stats.profiles import class_intervals

pytestmark = pytest.mark.unit

N_IDS, PER_ID = 30, 8


def _clustered(seed: int = 1) -> tuple[np.ndarray, list[str]]:
    """Per pair a value: its identity's effect (sd 1) plus pair noise (sd 0.2)."""
    rng = np.random.default_rng(seed)
    effect = rng.normal(0.0, 1.0, N_IDS)
    ids = [f"person_{i:02d}" for i in range(N_IDS) for _ in range(PER_ID)]
    values = np.repeat(effect, PER_ID) + rng.normal(0.0, 0.2, N_IDS * PER_ID)
    return values, ids


def _width(values: np.ndarray, clusters: list[str] | None, seed: int = 0) -> float:
    w = cluster_weights(values.size, 2000, clusters=clusters, seed=seed)
    lo, hi = percentile_ci(weighted_means(w, values))
    return hi - lo


def test_identity_intervals_are_wider_than_pair_intervals_when_identities_repeat():
    values, ids = _clustered()
    by_pair, by_identity = _width(values, None), _width(values, ids)
    # 30 people, 8 pairs each, nearly all variance between people: the pair bootstrap acts as if
    # there were 240 independent values (width ~ 1/sqrt(240)), the identity one sees 30.
    assert by_identity > 2.0 * by_pair
    assert by_identity == pytest.approx(
        2 * 1.96 * values.reshape(N_IDS, PER_ID).mean(axis=1).std() / np.sqrt(N_IDS), rel=0.25
    )


def test_every_identity_once_gives_the_pair_bootstrap_draw_for_draw():
    values = np.random.default_rng(3).normal(size=50)
    ids = [f"p{i}" for i in range(50)]
    assert np.array_equal(
        cluster_weights(50, 300, clusters=ids, seed=7), cluster_weights(50, 300, seed=7)
    )
    assert _width(values, ids, seed=7) == _width(values, None, seed=7)


def test_cluster_weights_take_whole_clusters_and_are_seeded():
    ids = ["a", "a", "b", "c", "c", "c"]
    w = cluster_weights(6, 200, clusters=ids, seed=2)
    assert w.shape == (200, 6)
    assert (w[:, 0] == w[:, 1]).all() and (w[:, 3] == w[:, 4]).all() and (w[:, 4] == w[:, 5]).all()
    assert (w[:, [0, 2, 3]].sum(axis=1) == 3).all()  # three clusters drawn per resample
    assert np.array_equal(w, cluster_weights(6, 200, clusters=ids, seed=2))
    assert not np.array_equal(w, cluster_weights(6, 200, clusters=ids, seed=3))
    with pytest.raises(InputError, match="clusters must give one label per item"):
        cluster_weights(6, 10, clusters=["a"], seed=0)


def test_the_sign_test_counts_identities_not_pairs():
    # 3 people with 10 positive pairs each, 2 with 10 negative pairs: 30 vs 20 pairs looks like
    # evidence pair by pair, but it is 3 votes against 2.
    values = np.array([1.0] * 30 + [-1.0] * 20)
    ids = [f"p{i // 10}" for i in range(50)]
    by_id = cluster_sign_test(values, ids)
    assert (by_id["unit"], by_id["n"], by_id["positive"], by_id["negative"]) == (
        "identity",
        5,
        3,
        2,
    )
    assert by_id["p"] == pytest.approx(1.0)
    by_pair = cluster_sign_test(values)
    assert (by_pair["unit"], by_pair["n"]) == ("pair", 50)
    assert by_pair["p"] < by_id["p"]
    assert binomial_two_sided(0, 10) == pytest.approx(2 / 1024)
    assert binomial_two_sided(0, 0) is None


def test_crossres_summary_resamples_identities():
    values, ids = _clustered()
    n = values.size
    same = np.array([True, False] * (n // 2))
    scores = np.zeros((2, n))
    # centroid of a probe with weight on bands 0 and 4: 4 * t / (1 + t) ~ varies with identity
    t = np.exp(values)
    directed = np.zeros((2, n, 5))
    directed[:, :, 0], directed[1, :, 4] = 1.0, t
    directed[0, :, 4] = 0.5
    ref = np.zeros((2, n, 5))
    ref[:, :, 0] = 1.0
    both = {"probe": directed, "reference": ref}
    pairs = summarise_factors([1.0, 8.0], same, scores, both, 0.5, n_boot=500, seed=0)
    people = summarise_factors(
        [1.0, 8.0], same, scores, both, 0.5, n_boot=500, seed=0, clusters=ids
    )
    width = {
        name: s[1]["centroid_shift_ci"][1] - s[1]["centroid_shift_ci"][0]
        for name, s in (("pair", pairs), ("identity", people))
    }
    assert width["identity"] > 1.5 * width["pair"]
    assert pairs[1]["centroid_shift"] == people[1]["centroid_shift"]


def _record(directed_a, directed_b, same, source_a="x.jpg", source_b="y.jpg"):
    return {
        "a": {"directed": list(directed_a), "source": source_a},
        "b": {"directed": list(directed_b), "source": source_b},
        "same": same,
        "decision": same,
    }


def test_dataset_intervals_say_what_was_resampled():
    values, ids = _clustered()
    records = [
        _record([1.0, v, 0.1], [1.0, v, 0.2], bool(i % 2)) for i, v in enumerate(np.exp(values))
    ]
    known = class_intervals(records, [(p, p) for p in ids], n_boot=400)
    unknown = class_intervals(records, [(None, None)] * len(ids), n_boot=400)
    assert known["bootstrap"]["unit"] == "identity" and known["bootstrap"]["n_units"] == N_IDS
    assert (
        unknown["bootstrap"]["unit"] == "pair"
        and "identities unknown" in unknown["bootstrap"]["note"]
    )
    for cls in ("all", "genuine", "impostor"):
        lo, hi = known["classes"][cls]["centroid_ci"]
        plo, phi = unknown["classes"][cls]["centroid_ci"]
        assert lo <= known["classes"][cls]["centroid"] <= hi
        assert hi - lo > phi - plo
    once = class_intervals(records, [(f"p{i}", None) for i in range(len(ids))], n_boot=400)
    assert once["classes"] == unknown["classes"]  # every identity once: the pair bootstrap
    assert "resampled by identity (30 identities" in resampled_by(known["bootstrap"])
    assert "resampled by pair (240 pairs): identities unknown" in resampled_by(unknown["bootstrap"])


def test_identities_from_paths_of_the_data_sets_freqxfr_knows():
    assert identity_from_path("lfw/images/Ann_Veneman/Ann_Veneman_0003.jpg") == "Ann_Veneman"
    assert identity_from_path("Abel_Pacheco/Abel_Pacheco_0001.jpg") == "Abel_Pacheco"
    assert identity_from_path("frll/neutral/001_03.jpg") == "frll_001"
    assert identity_from_path("/data/frll/smiling/142_08.jpg") == "frll_142"
    assert identity_from_path("frll_morphs/morph_001_002_a50_full.jpg") is None
    assert identity_from_path("photos/Ann_Veneman_0003.jpg") is None  # folder does not agree
    assert identity_from_path("photos/001_03.jpg") is None  # not under an FRLL folder
    assert pair_clusters([("a", "a"), ("b", "c")]) == ["a", "b"]
    assert pair_clusters([("a", "a"), (None, "c")]) is None
    assert resampling(None, 4)["unit"] == "pair"
    assert record_identities({"identities": ["x", None]}) == ("x", None)
    assert record_identities(_record([], [], True, "A/A_0001.jpg", "frll/neutral/002_03.jpg")) == (
        "A",
        "frll_002",
    )


def test_a_pair_list_column_names_identities_and_wins_over_paths(tmp_path):
    (tmp_path / "pairs.csv").write_text(
        "path1,path2,same,identity1,identity2,gender\n"
        "Ann/Ann_0001.jpg,Ann/Ann_0002.jpg,1,subject_7,subject_7,f\n"
        "Ann/Ann_0001.jpg,Bob/Bob_0001.jpg,0,,,m\n"
    )
    first, second = read_pairs(tmp_path / "pairs.csv")
    assert first.identities == ("subject_7", "subject_7")
    assert second.identities == ("Ann", "Bob")  # empty cells: from the paths
    assert first.groups == {"gender": "f"}  # identity columns are not groups
    (tmp_path / "one.csv").write_text("path1,path2,identity\na.jpg,b.jpg,z\n")
    assert read_pairs(tmp_path / "one.csv")[0].identities == ("z", "z")
    assert Pair(tmp_path / "a.jpg", tmp_path / "b.jpg").identities == (None, None)
