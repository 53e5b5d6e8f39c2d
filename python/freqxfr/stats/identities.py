"""Who is in a pair: identities of face images, and the cluster each pair is resampled in.

Pairs that share a person are not independent: the same face's quirks move every pair it is in.
Statistics over pairs (bootstrap intervals, sign tests) therefore resample *identities* when
they are known and take all of an identity's pairs with it (:mod:`freqxfr.stats.bootstrap`).

Where an identity comes from, first found wins:

1. the pair list: a CSV column ``identity1``/``identity2`` (or ``identity_a``/``identity_b``, or
   one ``identity`` column for both images), read by :func:`freqxfr.explanations.pairs.read_pairs`;
2. the path, for the data freqxfr knows (:func:`identity_from_path`): an LFW image
   ``Name/Name_NNNN.jpg`` is ``Name``; an FRLL photo ``NNN_03.jpg``/``NNN_08.jpg`` is
   ``frll_NNN`` (the names of FRLL's ``index.csv``);
3. otherwise unknown (``None``), and the statistics fall back to resampling pairs, saying so.

The cluster of a pair is the identity of its image A, the reference (Bolle, Ratha & Pankanti's
"subsets bootstrap", 2004: the comparisons of one enrolled subject are resampled together). A
genuine pair's two images are the same person, so its cluster is that person; an impostor pair
(A, B) goes with A's other pairs. Its dependence through B is not captured, so where B identities
repeat across clusters the intervals can still be somewhat too narrow.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import PurePath
from typing import Any

#: The resampling units a summary names.
IDENTITY = "identity"
PAIR = "pair"

_LFW_STEM = re.compile(r"^(?P<name>.+)_(?P<number>\d{4})$")
_FRLL_STEM = re.compile(r"^(?P<id>\d{3})_(?P<pose>\d{2})$")
_FRLL_FOLDERS = {"neutral", "smiling"}


def identity_from_path(path: str | os.PathLike[str]) -> str | None:
    """The identity a known data set's file name gives, or ``None``.

    LFW: ``.../Name/Name_0001.jpg`` (the folder and the file name agree) is ``Name``. FRLL:
    ``.../neutral/001_03.jpg`` or ``.../smiling/001_08.jpg`` (or any ``NNN_NN`` file under a
    folder whose name starts with ``frll``) is ``frll_001``. Anything else, a morph included
    (two people), is unknown.
    """
    p = PurePath(os.fspath(path))
    stem, folder = p.stem, p.parent.name
    lfw = _LFW_STEM.match(stem)
    if lfw and lfw.group("name") == folder:
        return folder
    frll = _FRLL_STEM.match(stem)
    if frll and (
        folder in _FRLL_FOLDERS or any(part.lower().startswith("frll") for part in p.parent.parts)
    ):
        return f"frll_{frll.group('id')}"
    return None


def pair_identities(
    path_a: str | os.PathLike[str],
    path_b: str | os.PathLike[str],
    given: Sequence[str | None] = (None, None),
) -> tuple[str | None, str | None]:
    """The identities of a pair's two images: those ``given`` (a pair list's columns), else
    those of their paths (:func:`identity_from_path`)."""
    a, b = (g if g else None for g in given)
    return (a or identity_from_path(path_a), b or identity_from_path(path_b))


def pair_clusters(
    identities: Sequence[Sequence[str | None] | None],
) -> list[str] | None:
    """The resampling cluster of each pair (the identity of its image A), or ``None`` when any
    pair's reference identity is unknown: then every statistic resamples pairs."""
    clusters = []
    for ids in identities:
        first = ids[0] if ids else None
        if not first:
            return None
        clusters.append(str(first))
    return clusters


def record_identities(record: dict[str, Any]) -> tuple[str | None, str | None]:
    """The identities of a result record: its ``identities`` field when it has one, else those
    of its images' ``source`` paths (records of runs written before identities were recorded)."""
    given = record.get("identities")
    if isinstance(given, list) and len(given) == 2:
        return (_label(given[0]), _label(given[1]))
    found: list[str | None] = []
    for side in ("a", "b"):
        image = record.get(side)
        source = image.get("source") if isinstance(image, dict) else None
        if not isinstance(source, str):
            source = record.get(f"path_{side}")
        found.append(identity_from_path(source) if isinstance(source, str) else None)
    return found[0], found[1]


def _label(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def resampling(clusters: Sequence[str] | None, n: int) -> dict[str, Any]:
    """What a summary says about its resampling unit: ``unit`` ("identity" or "pair"),
    ``n_units`` and, when falling back to pairs, a ``note`` saying why."""
    if clusters is None:
        return {
            "unit": PAIR,
            "n_units": int(n),
            "note": "identities unknown for some pairs: resampled pairs, which treats pairs "
            "that share a person as independent (intervals may be too narrow)",
        }
    return {"unit": IDENTITY, "n_units": len(set(clusters))}


def resampled_by(bootstrap: dict[str, Any] | None) -> str:
    """The "resampled by" line of a report, from a summary's bootstrap block (a summary of an
    older freqxfr, without ``unit``, resampled pairs)."""
    boot = bootstrap or {}
    unit = boot.get("unit", PAIR)
    n = boot.get("n_units")
    if unit == IDENTITY:
        return f"resampled by identity ({n} identities, each with all of its pairs)"
    count = f" ({n} pairs)" if n is not None else ""
    why = "identities unknown" if boot.get("note") or n is not None else "identities not recorded"
    return f"resampled by pair{count}: {why}, so pairs of one person count as independent"
