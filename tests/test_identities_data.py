"""Identities of the real pair lists freqxfr ships tests with (LFW, FRLL), against their index
files, and the resampling unit they give."""

from __future__ import annotations

import csv

import pytest

from freqxfr.explanations.pairs import read_pairs
from freqxfr.stats.identities import pair_clusters

pytestmark = pytest.mark.model


def _index(path):
    with open(path, encoding="utf-8") as handle:
        return {row["path"]: row["identity"] for row in csv.DictReader(handle)}


@pytest.mark.parametrize(
    ("pair_list", "index", "n_ids"),
    [
        ("lfw_aligned112/pairs_generated.csv", "lfw_aligned112/index.csv", 80),
        ("lfw_aligned112/pairs_official_subset.csv", "lfw_aligned112/index.csv", 80),
        ("frll/pairs.csv", "frll/index.csv", 40),
    ],
)
def test_identities_of_real_pair_lists_match_their_index(data_dir, pair_list, index, n_ids):
    truth = _index(data_dir / index)
    pairs = read_pairs(data_dir / pair_list, root=data_dir)
    for pair in pairs:
        want = tuple(truth[str(p.relative_to(data_dir))] for p in (pair.path_a, pair.path_b))
        assert pair.identities == want
        assert (pair.identities[0] == pair.identities[1]) is pair.same
    clusters = pair_clusters([p.identities for p in pairs])
    assert clusters is not None and len(set(clusters)) == n_ids


def test_lfw_view2_identities_are_the_names_of_its_lines(data_dir):
    pairs = read_pairs(
        data_dir / "lfw_aligned112" / "pairs.txt", root=data_dir / "lfw_aligned112" / "images"
    )
    assert pairs[0].identities == ("Abel_Pacheco", "Abel_Pacheco")
    assert pairs[-1].identities == ("Slobodan_Milosevic", "Sok_An")
    assert all((p.identities[0] == p.identities[1]) is p.same for p in pairs)
