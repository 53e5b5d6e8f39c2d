"""Pair lists: LFW's pairs.txt and CSV files, real ones and malformed ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from freqxfr.common.errors import InputError
from freqxfr.explanations.pairs import Pair, read_pairs


@pytest.mark.model
def test_lfw_pairs_txt_view2(data_dir):
    path = data_dir / "lfw_aligned112" / "pairs.txt"
    root = data_dir / "lfw_aligned112" / "images"
    pairs = read_pairs(path, root=root)
    assert len(pairs) == 6000
    assert [p.fold for p in pairs[::600]] == list(range(10))
    # Each fold: 300 genuine lines, then 300 impostor lines.
    assert all(p.same for p in pairs[:300]) and not any(p.same for p in pairs[300:600])
    assert sum(p.same for p in pairs) == 3000
    # The first line after the header is "Abel_Pacheco 1 4".
    assert pairs[0] == Pair(
        root / "Abel_Pacheco" / "Abel_Pacheco_0001.jpg",
        root / "Abel_Pacheco" / "Abel_Pacheco_0004.jpg",
        same=True,
        fold=0,
    )
    # Line 302 is the first impostor pair: "Abdel_Madi_Shabneh 1 Dean_Barker 1".
    assert pairs[300].path_a.name == "Abdel_Madi_Shabneh_0001.jpg"
    assert pairs[300].path_b == root / "Dean_Barker" / "Dean_Barker_0001.jpg"


@pytest.mark.model
def test_csv_with_header_and_groups(data_dir):
    pairs = read_pairs(data_dir / "lfw_aligned112" / "pairs_generated.csv", root=data_dir)
    assert len(pairs) == 1500
    assert sum(p.same for p in pairs) == 750
    assert all(p.path_a.is_file() and p.path_b.is_file() for p in pairs[::50])
    official = read_pairs(data_dir / "lfw_aligned112" / "pairs_official_subset.csv", root=data_dir)
    assert len(official) == 251 and all(p.same for p in official)
    assert {p.fold for p in official} <= set(range(10))


@pytest.mark.unit
def test_csv_without_header_extra_columns_become_groups(tmp_path):
    csv = tmp_path / "pairs.csv"
    csv.write_text("a.jpg,b.jpg,1,female\nc.jpg,/abs/d.jpg,0,male\n")
    pairs = read_pairs(csv)
    assert pairs[0] == Pair(
        tmp_path / "a.jpg", tmp_path / "b.jpg", True, None, {"group1": "female"}
    )
    assert pairs[1].path_b == Path("/abs/d.jpg")
    assert pairs[1].same is False


@pytest.mark.unit
def test_csv_named_columns_in_any_order(tmp_path):
    csv = tmp_path / "p.csv"
    csv.write_text("gender,path_b,path_a,same\nf,x/b.png,x/a.png,\n")
    (pair,) = read_pairs(csv, root="/data")
    assert pair == Pair(Path("/data/x/a.png"), Path("/data/x/b.png"), None, None, {"gender": "f"})


@pytest.mark.unit
@pytest.mark.parametrize(
    ("name", "text", "match"),
    [
        (
            "p.txt",
            "1 2\nA 1 2\nB 1 2\nA 1 B 1\n",
            r"p\.txt: the header \(line 1\) announces .*\(4 lines\), but the file has 3",
        ),
        ("p.txt", "1 1\nA 1\nA 1 B 1\n", r"p\.txt, line 2: expected a genuine"),
        ("p.txt", "1 1\nA 1 2\nA 1 2\n", r"p\.txt, line 3: expected an impostor"),
        ("p.txt", "1 1\nA x 2\nA 1 B 1\n", r"line 2: image numbers must be integers"),
        ("p.txt", "ten\n", r"line 1: expected the LFW header"),
        ("p.csv", "path1,path2,same\na.jpg,b.jpg,maybe\n", r"p\.csv, line 2: column 'same'"),
        ("p.csv", "path1,path2,same\na.jpg,b.jpg\n", r"p\.csv, line 2: expected 3 columns"),
        ("p.csv", "fold,path1,path2\nx,a,b\n", r"line 2: column 'fold' must be an integer"),
        ("p.csv", "", r"p\.csv: the file is empty"),
    ],
)
def test_malformed_lines_are_named(tmp_path, name, text, match):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(InputError, match=match):
        read_pairs(path)


@pytest.mark.unit
def test_missing_file_is_named(tmp_path):
    with pytest.raises(InputError, match=r"nope\.csv: file not found"):
        read_pairs(tmp_path / "nope.csv")
