"""Morph index files: each morph with its two bona fide sources and a probe photo of each person.

The format is that of ``frll_morphs/index.csv``::

    path,identity_a,identity_b,alpha,method,bona_fide_a,bona_fide_b,probe_a_smiling,probe_b_smiling

``path`` is the morph; ``bona_fide_a``/``bona_fide_b`` are the photos it was made from (the
people's own enrolment-style photos); ``probe_a*``/``probe_b*`` are other photos of the same two
people (any column whose name starts with ``probe_a`` / ``probe_b``). ``alpha`` and ``method`` are
optional labels. Paths are relative to ``root`` unless absolute.

From an index, :func:`comparisons` builds the comparisons of a differential morphing-attack
analysis: every morph against each probe (attacks), and every person's bona fide photo against the
same person's probe (bona fide comparisons). The first image of a comparison is the *enrolled*
image (morph or bona fide photo), the second the probe, as at a border gate that compares a
passport photo with a live capture.
"""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

from freqxfr.common.errors import InputError
from freqxfr.imaging.images import checked_file

_REQUIRED = ("path", "identity_a", "identity_b", "bona_fide_a", "bona_fide_b")


@dataclasses.dataclass(frozen=True)
class MorphEntry:
    """One row of a morph index (paths resolved against the root)."""

    row: int  # line number in the file (the header is line 1)
    path: Path
    identity_a: str
    identity_b: str
    bona_fide_a: Path
    bona_fide_b: Path
    probe_a: Path
    probe_b: Path
    alpha: str = ""
    method: str = ""


@dataclasses.dataclass(frozen=True)
class MorphComparison:
    """One comparison of the analysis: an enrolled image against a probe.

    ``kind`` is ``"morph"`` (an attack: a morph against one of its subjects' probes) or
    ``"bona_fide"`` (a person's bona fide photo against the same person's probe). ``identities``
    holds every person whose face is in the comparison (both subjects for a morph).
    """

    kind: str
    enrolled: Path
    probe: Path
    identities: tuple[str, ...]
    probe_identity: str
    method: str = ""
    morph_row: int | None = None

    @property
    def is_attack(self) -> bool:
        return self.kind == "morph"


def read_morph_index(
    path: str | Path, root: str | Path | None = None, *, allow_outside_root: bool = False
) -> list[MorphEntry]:
    """Read and check a morph index; every file it names must exist inside ``root``.

    Parameters
    ----------
    path : str or Path
        The CSV file.
    root : str or Path, optional
        Folder the paths in it are relative to; default the index's folder.
    allow_outside_root : bool
        Accept files outside ``root``. By default a path that leads outside it (``..``, an
        absolute path, a symlink; checked after resolving symlinks) is refused, as in pair lists.

    Returns
    -------
    list of MorphEntry

    Raises
    ------
    InputError
        The file is missing, a column is missing, a row is incomplete, or a morph, bona fide
        source or probe file cannot be found or lies outside ``root`` (the message names the
        row, the role and the path).
    """
    path = Path(path)
    root = Path(root) if root is not None else path.parent
    base = root.resolve()
    checked_file(path, label=f"morph index {path}")  # a regular file: no FIFO, folder, device
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"morph index {path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"morph index {path}: cannot read it ({exc})") from None
    reader = csv.DictReader(text.splitlines())
    columns = [c.strip() for c in reader.fieldnames or []]
    reader.fieldnames = columns
    missing = [c for c in _REQUIRED if c not in columns]
    probe_a = next((c for c in columns if c.startswith("probe_a")), None)
    probe_b = next((c for c in columns if c.startswith("probe_b")), None)
    missing += [name for name, col in (("probe_a", probe_a), ("probe_b", probe_b)) if col is None]
    if missing:
        raise InputError(f"morph index {path}: missing column(s) {', '.join(missing)}")
    assert probe_a is not None and probe_b is not None  # refused just above
    entries = []
    for line, row in enumerate(reader, start=2):
        values = {k: (v or "").strip() for k, v in row.items() if k is not None}
        empty = [c for c in (*_REQUIRED, probe_a, probe_b) if not values.get(c)]
        if empty:
            raise InputError(f"morph index {path}, row {line}: empty {', '.join(empty)}")
        files = {
            "morph": values["path"],
            f"bona fide source of {values['identity_a']}": values["bona_fide_a"],
            f"bona fide source of {values['identity_b']}": values["bona_fide_b"],
            f"probe of {values['identity_a']}": values[probe_a],
            f"probe of {values['identity_b']}": values[probe_b],
        }
        resolved = {}
        for role, name in files.items():
            file = root / name
            if not file.is_file():
                raise InputError(
                    f"morph index {path}, row {line} (morph {values['path']}): {role} {file} "
                    f"not found (paths are relative to {root}; set the root folder if that is "
                    f"wrong)"
                )
            if not allow_outside_root and not file.resolve().is_relative_to(base):
                raise InputError(
                    f"morph index {path}, row {line} (morph {values['path']}): {role} {file} is "
                    f"outside the root folder {base} (after resolving symlinks); pass "
                    "--allow-outside-root to read it"
                )
            resolved[role] = file
        if values["identity_a"] == values["identity_b"]:
            raise InputError(
                f"morph index {path}, row {line}: identity_a and identity_b are both "
                f"{values['identity_a']!r}; a morph needs two people"
            )
        entries.append(
            MorphEntry(
                row=line,
                path=root / values["path"],
                identity_a=values["identity_a"],
                identity_b=values["identity_b"],
                bona_fide_a=root / values["bona_fide_a"],
                bona_fide_b=root / values["bona_fide_b"],
                probe_a=root / values[probe_a],
                probe_b=root / values[probe_b],
                alpha=values.get("alpha", ""),
                method=values.get("method", ""),
            )
        )
    if not entries:
        raise InputError(f"morph index {path}: no morphs listed")
    return entries


def comparisons(entries: list[MorphEntry]) -> list[MorphComparison]:
    """The attack comparisons (each morph against both probes), then the bona fide ones.

    Bona fide comparisons: for every person in the index, each distinct (bona fide photo, probe)
    pair named for them, once, in order of first appearance.
    """
    out = []
    for e in entries:
        subjects = (e.identity_a, e.identity_b)
        for probe, identity in ((e.probe_a, e.identity_a), (e.probe_b, e.identity_b)):
            out.append(MorphComparison("morph", e.path, probe, subjects, identity, e.method, e.row))
    seen = set()
    for e in entries:
        for identity, photo, probe in (
            (e.identity_a, e.bona_fide_a, e.probe_a),
            (e.identity_b, e.bona_fide_b, e.probe_b),
        ):
            if (identity, photo, probe) not in seen:
                seen.add((identity, photo, probe))
                out.append(MorphComparison("bona_fide", photo, probe, (identity,), identity))
    return out
