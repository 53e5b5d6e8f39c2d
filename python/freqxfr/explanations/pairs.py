"""Pair lists: LFW's ``pairs.txt`` (View 1 / View 2) and CSV files of image pairs.

CSV files have the columns ``path1,path2[,same][,group...]``. A header row is optional; with one,
the columns are found by name (``path1``/``path2`` or ``path_a``/``path_b``, ``same``, ``fold``)
optional identities (``identity1``/``identity2``, ``identity_a``/``identity_b``, or ``identity``
for both images; without them an identity comes from the path where freqxfr knows the data set:
:mod:`freqxfr.stats.identities`), and every other column becomes a group label (e.g. gender,
ethnicity). Paths are relative to ``root`` (default: the pair file's folder) unless absolute.
"""

from __future__ import annotations

import csv
import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

from freqxfr.common.errors import InputError, read_text
from freqxfr.imaging.images import checked_file
from freqxfr.stats.identities import pair_identities

_TRUE = {"1", "true", "yes", "same", "genuine", "match", "y", "t"}
_FALSE = {"0", "false", "no", "different", "impostor", "nonmatch", "non-match", "n", "f"}
_PATH_A = {"path1", "path_a", "patha", "image1", "a"}
_PATH_B = {"path2", "path_b", "pathb", "image2", "b"}
_IDENTITY_A = ("identity1", "identity_a", "identity")
_IDENTITY_B = ("identity2", "identity_b", "identity")


@dataclasses.dataclass(frozen=True)
class Pair:
    """One comparison: two image paths, whether they show the same person, and labels.

    Attributes
    ----------
    path_a, path_b : Path
        The two images (resolved against the pair list's root).
    same : bool or None
        ``True`` for a genuine (mated) pair, ``False`` for an impostor pair, ``None`` if unknown.
    fold : int or None
        Cross-validation fold (0-based), where the list defines folds.
    groups : dict of str to str
        Further labels from extra CSV columns (e.g. ``{"gender": "female"}``).
    line : int or None
        The line of the pair list that names the pair (for messages), if read from a file.
    identity_a, identity_b : str or None
        The people in the images, when the pair list names them; :attr:`identities` falls back
        to the paths.
    """

    path_a: Path
    path_b: Path
    same: bool | None = None
    fold: int | None = None
    groups: dict[str, str] = dataclasses.field(default_factory=dict)
    line: int | None = dataclasses.field(default=None, compare=False)
    identity_a: str | None = dataclasses.field(default=None, compare=False)
    identity_b: str | None = dataclasses.field(default=None, compare=False)

    @property
    def identities(self) -> tuple[str | None, str | None]:
        """The two images' identities: given by the pair list, else from the paths of a data set
        freqxfr knows (LFW, FRLL), else ``None`` (:mod:`freqxfr.stats.identities`)."""
        return pair_identities(self.path_a, self.path_b, (self.identity_a, self.identity_b))


def read_pairs(path: str | Path, root: str | Path | None = None) -> list[Pair]:
    """Read a pair list: LFW ``pairs.txt`` format or CSV, chosen by the file suffix.

    Parameters
    ----------
    path : str or Path
        A ``.txt`` file in LFW's format (first line ``folds n`` or ``n``, then ``n`` genuine lines
        ``name i j`` followed by ``n`` impostor lines ``name1 i name2 j`` per fold; images are
        ``root/Name/Name_000i.jpg``) or a ``.csv`` file (see the module docstring).
    root : str or Path, optional
        Folder the image paths are relative to; default the pair file's folder.

    Returns
    -------
    list of Pair

    Raises
    ------
    InputError
        The file is missing or unreadable, or a line is malformed (the message gives the file
        and the line number).
    """
    path = Path(path)
    root = Path(root) if root is not None else path.parent
    checked_file(path, label=f"pair list {path}")  # a regular file: no FIFO, folder, device
    text = read_text(path, f"pair list {path}", encoding="utf-8-sig")
    if path.suffix.lower() == ".csv":
        return _read_csv(text, path, root)
    return _read_lfw(text, path, root)


def _read_lfw(text: str, path: Path, root: Path) -> list[Pair]:
    lines = [(i + 1, line.split()) for i, line in enumerate(text.splitlines())]
    lines = [(num, fields) for num, fields in lines if fields]
    if not lines:
        raise InputError(f"pair list {path}: the file is empty")
    header_num, header = lines[0]
    try:
        counts = [int(v) for v in header]
    except ValueError:
        counts = []
    if len(counts) == 1:
        n_folds, per_side = 1, counts[0]
    elif len(counts) == 2:
        n_folds, per_side = counts
    else:
        raise InputError(
            f"{path}, line {header_num}: expected the LFW header 'folds n' or 'n', "
            f"got {' '.join(header)!r}"
        )
    if n_folds < 1 or per_side < 1:
        raise InputError(f"{path}, line {header_num}: fold count and pair count must be positive")
    body = lines[1:]
    expected = n_folds * 2 * per_side
    if len(body) != expected:
        raise InputError(
            f"pair list {path}: the header (line {header_num}) announces {n_folds} fold(s) of "
            f"{per_side} genuine and {per_side} impostor pairs ({expected} lines), "
            f"but the file has {len(body)}"
        )
    pairs = []
    for index, (num, fields) in enumerate(body):
        fold, position = divmod(index, 2 * per_side)
        genuine = position < per_side
        if genuine and len(fields) == 3:
            name_a, i, name_b, j = fields[0], fields[1], fields[0], fields[2]
        elif not genuine and len(fields) == 4:
            name_a, i, name_b, j = fields
        else:
            kind = "a genuine 'name i j'" if genuine else "an impostor 'name1 i name2 j'"
            raise InputError(
                f"{path}, line {num}: expected {kind} line (fold {fold + 1}), "
                f"got {' '.join(fields)!r}"
            )
        _check_no_nul(path, num, name_a, name_b)
        try:
            ia, ib = int(i), int(j)
        except ValueError:
            raise InputError(
                f"{path}, line {num}: image numbers must be integers, got {' '.join(fields)!r}"
            ) from None
        pairs.append(
            Pair(
                root / name_a / f"{name_a}_{ia:04d}.jpg",
                root / name_b / f"{name_b}_{ib:04d}.jpg",
                same=genuine,
                fold=fold if n_folds > 1 else None,
                line=num,
            )
        )
    return pairs


def _check_no_nul(path: Path, num: int, *names: str) -> None:
    """A path with a NUL byte cannot name a file (the OS refuses it): refuse the line."""
    if any("\0" in name for name in names):
        raise InputError(f"{path}, line {num}: an image path contains a NUL byte; fix the line")


def _parse_same(value: str, path: Path, num: int) -> bool | None:
    key = value.strip().lower()
    if key == "":
        return None
    if key in _TRUE:
        return True
    if key in _FALSE:
        return False
    raise InputError(f"{path}, line {num}: column 'same' must be 1/0 or true/false, got {value!r}")


def _read_csv(text: str, path: Path, root: Path) -> list[Pair]:
    rows = [
        (num, row)
        for num, row in enumerate(csv.reader(text.splitlines()), start=1)
        if row and any(cell.strip() for cell in row)
    ]
    if not rows:
        raise InputError(f"pair list {path}: the file is empty")
    first = [cell.strip().lower() for cell in rows[0][1]]
    if _PATH_A & set(first) and _PATH_B & set(first):
        columns = first
        rows = rows[1:]
    elif len(first) >= 2:
        columns = ["path1", "path2", "same"][: len(first)]
        columns += [f"group{k}" for k in range(1, len(first) - 2)]
    else:
        raise InputError(
            f"{path}, line {rows[0][0]}: expected at least two columns (path1,path2[,same]...)"
        )
    col_a = next(k for k, c in enumerate(columns) if c in _PATH_A)
    col_b = next(k for k, c in enumerate(columns) if c in _PATH_B)
    col_same = columns.index("same") if "same" in columns else None
    col_fold = columns.index("fold") if "fold" in columns else None
    col_ids = [
        next((columns.index(c) for c in names if c in columns), None)
        for names in (_IDENTITY_A, _IDENTITY_B)
    ]
    group_cols = [
        (k, c)
        for k, c in enumerate(columns)
        if k not in (col_a, col_b, col_same, col_fold, *col_ids)
    ]
    pairs = []
    for num, row in rows:
        if len(row) != len(columns):
            raise InputError(
                f"{path}, line {num}: expected {len(columns)} columns "
                f"({','.join(columns)}), got {len(row)}"
            )
        a, b = row[col_a].strip(), row[col_b].strip()
        if not a or not b:
            raise InputError(f"{path}, line {num}: both image paths must be given")
        _check_no_nul(path, num, a, b)
        fold = None
        if col_fold is not None:
            try:
                fold = int(row[col_fold])
            except ValueError:
                raise InputError(
                    f"{path}, line {num}: column 'fold' must be an integer, got {row[col_fold]!r}"
                ) from None
        same = _parse_same(row[col_same], path, num) if col_same is not None else None
        groups = {c: row[k].strip() for k, c in group_cols}
        ida, idb = (row[k].strip() or None if k is not None else None for k in col_ids)
        pairs.append(
            Pair(root / a, root / b, same, fold, groups, num, identity_a=ida, identity_b=idb)
        )
    if not pairs:
        raise InputError(f"pair list {path}: no pairs after the header")
    return pairs


#: A grouping column is identity-like, and refused, when it splits the table's images into more
#: than this many groups...
IDENTITY_LIKE_GROUPS = 5
#: ...of fewer than this many images on average (one person's photos, or one group per image).
IDENTITY_LIKE_MEAN = 3.0


def attach_groups(
    pairs: list[Pair],
    table: str | Path,
    root: str | Path | None = None,
    *,
    columns: Sequence[str] | None = None,
) -> list[Pair]:
    """Label pairs with per-image attributes from a CSV table (``path,attr1,attr2,...``).

    FRLL's ``index.csv`` is such a table (gender, ethnicity, ...). A pair gets an attribute's value
    when both images share it, and ``"mixed"`` when they differ, so that per-group band profiles
    compare like with like. Existing group labels of a pair are kept.

    ``columns`` chooses the grouping columns (the CLI's ``--by gender,ethnicity``); by default
    every column that is not identity-like. A column is identity-like when it splits the images
    into more than :data:`IDENTITY_LIKE_GROUPS` groups of fewer than :data:`IDENTITY_LIKE_MEAN`
    images on average (an identity, a file name): its groups say nothing about a population.

    Raises
    ------
    InputError
        The table is missing, has no ``path`` column, lacks a row for an image of a pair, lacks a
        chosen column, or a chosen column is identity-like.
    """
    table = Path(table)
    root = Path(root) if root is not None else table.parent
    checked_file(table, label=f"group table {table}")
    try:
        rows = list(csv.DictReader(table.read_text(encoding="utf-8-sig").splitlines()))
    except OSError as exc:
        raise InputError(f"group table {table}: cannot read it ({exc.strerror or exc})") from None
    if not rows or "path" not in rows[0]:
        raise InputError(f"group table {table}: expected a header with a 'path' column")
    available = [k for k in rows[0] if k and k != "path"]
    chosen = _grouping_columns(table, rows, available, columns)
    attributes = {(root / row["path"]).resolve(): {k: row[k] for k in chosen} for row in rows}
    labelled = []
    for pair in pairs:
        found = [attributes.get(Path(p).resolve()) for p in (pair.path_a, pair.path_b)]
        for p, attrs in zip((pair.path_a, pair.path_b), found, strict=True):
            if attrs is None:
                raise InputError(f"group table {table}: no row for image {p}")
        a, b = found
        assert a is not None and b is not None  # refused just above
        groups = {k: (a[k] if a[k] == b.get(k) else "mixed") for k in a}
        labelled.append(dataclasses.replace(pair, groups={**groups, **pair.groups}))
    return labelled


def identity_like(values: Sequence[str]) -> bool:
    """Whether a column's values (one per image) split the images like an identity does."""
    n_groups = len(set(values))
    return n_groups > IDENTITY_LIKE_GROUPS and len(values) / n_groups < IDENTITY_LIKE_MEAN


def _grouping_columns(
    table: Path, rows: list[dict[str, str]], available: list[str], columns: Sequence[str] | None
) -> list[str]:
    """The columns to group by: the chosen ones (checked), or every column not identity-like."""
    if columns is None:
        return [c for c in available if not identity_like([r[c] for r in rows])]
    missing = [c for c in columns if c not in available]
    if missing:
        raise InputError(
            f"group table {table}: no column {', '.join(map(repr, missing))} "
            f"(it has {', '.join(available) or 'none besides path'})"
        )
    for c in columns:
        values = [r[c] for r in rows]
        if identity_like(values):
            raise InputError(
                f"group table {table}: column {c!r} is identity-like ({len(set(values))} groups "
                f"for {len(values)} images); group by population columns instead"
                + "".join(
                    f", e.g. --by {','.join(ok)}"
                    for ok in [[x for x in available if not identity_like([r[x] for r in rows])]]
                    if ok
                )
            )
    return list(dict.fromkeys(columns))


def outside_root(
    pairs: Sequence[Pair], root: str | os.PathLike[str], *, pairs_file: str | Path = "pair list"
) -> dict[int, str]:
    """The pairs that name an image outside ``root``, by position, with the reason.

    The rule (see "Reliability" in docs/guide/datasets.md): after resolving symlinks and ``..``,
    every image path of a pair list must lie inside ``root``, however the list spells it
    (relative, absolute, through a symlink). A pair list is data, often from elsewhere, and
    should not make a run read arbitrary files. The CLI's ``--allow-outside-root`` skips the check.
    """
    base = Path(root).resolve()
    refused: dict[int, str] = {}
    for position, pair in enumerate(pairs):
        for path in (pair.path_a, pair.path_b):
            if not Path(path).resolve().is_relative_to(base):
                where = f"line {pair.line}" if pair.line is not None else f"pair {position + 1}"
                refused[position] = (
                    f"{pairs_file}, {where}: {path} is outside the root folder {base} "
                    "(after resolving symlinks); pass --allow-outside-root to read it"
                )
                break
    return refused


def spread(items: list, n: int) -> list:
    """``n`` items spread evenly over ``items`` (the first and the last included), in order.

    Pair lists often hold all genuine pairs first; a spread subset keeps both classes."""
    if n >= len(items):
        return list(items)
    if n == 1:
        return [items[0]]
    step = (len(items) - 1) / (n - 1)
    return [items[round(i * step)] for i in range(n)]
