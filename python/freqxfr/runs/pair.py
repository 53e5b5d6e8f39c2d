"""One pair's outputs: explain it, write ``explanation.json`` and the pictures its report shows.

What ``freqxfr explain`` and ``freqxfr demo`` run, and what a dataset run stores for the pairs that
get their own page. The run side only: the report is drawn afterwards from these files by
:mod:`freqxfr.reports` (``freqxfr.write_pair_outputs`` composes the two), so a report can be drawn
again from the folder with no model at hand.

A pair folder holds:

- ``explanation.json``: :meth:`Explanation.to_dict` (and, with regions, ``regions`` and ``cells``;
  with faithfulness, ``faithfulness``), for ``explain`` and ``demo``; a dataset run keeps its
  records in ``results.jsonl`` instead;
- ``images.npz`` (:data:`IMAGES_NAME`): what the report shows that the JSON does not: ``faces``
  (the two aligned faces, (2, H, W, 3) uint8), ``views`` (the masked images, (2, K, H, W, 3)
  uint8, as :meth:`Explainer.masked_views` gives them) and, with regions, ``region_weights``
  ((R, H, W) float32).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

import numpy as np

from freqxfr.common.atomic import atomic_open, ensure_dir, write_output
from freqxfr.common.errors import InputError, OutputError
from freqxfr.explanations.region_explanations import band_explainer, cells_record
from freqxfr.imaging.images import ImageLike, source_label
from freqxfr.runs.folder import check_output_kind

EXPLANATION_NAME = "explanation.json"
#: The version of ``explanation.json`` (and of ``explain --json``), its ``format`` field; the
#: schema is ``freqxfr/schemas/explanation.schema.json``.
EXPLANATION_FORMAT = "freqxfr.explanation/1"
#: The ``format`` of a template explanation's ``explanation.json`` (``explain --template``).
TEMPLATE_EXPLANATION_FORMAT = "freqxfr.template-explanation/1"
IMAGES_NAME = "images.npz"
PAIR_PAGES = "pairs"  # the folder of a dataset run's per-pair pages
PAGE_CHOICES = ("errors", "all", "none")


@dataclass(frozen=True)
class PairOutputs:
    """What :func:`write_pair_outputs` wrote: the explanation and the files."""

    explanation: Any  # freqxfr.Explanation
    json_path: Path
    report_path: Path | None
    faithfulness: dict[str, Any] | None = None
    cells: Any = None  # freqxfr.explanations.region_explanations.RegionExplanation, with regions
    record: dict[str, Any] | None = None  # what explanation.json holds


def write_pair_outputs(
    explainer: Any,
    a: ImageLike,
    b: ImageLike,
    out_dir: str | os.PathLike[str],
    *,
    aligned: bool | None = None,
    same: bool | None = None,
    faithfulness: bool = False,
    seeds: int = 5,
    images: bool = True,
    overwrite: bool = False,
) -> PairOutputs:
    """Explain one pair and write ``explanation.json`` (and ``images.npz`` for its report).

    Parameters
    ----------
    explainer : Explainer
        The explainer to use. With regions, the bands are explained as without them and the
        region × band cells are added (``cells`` in ``explanation.json``).
    a, b : path, PIL image or array
        The two images; paths are named in the outputs as given.
    out_dir : path-like
        Output folder; created if needed.
    aligned : bool, optional
        As for :meth:`Explainer.explain`.
    same : bool, optional
        Ground truth (same person?), recorded in ``explanation.json``.
    faithfulness : bool
        Also compute deletion/insertion curves with ``seeds`` random orders.
    images : bool
        Also store what the report shows (``images.npz``); ``False`` writes the JSON only.
    overwrite : bool
        Replace the outputs of *another* pair found in ``out_dir``; by default that is refused
        (the same pair is always rewritten).

    Returns
    -------
    PairOutputs
        ``report_path`` is ``None``: drawing is :func:`freqxfr.reports.pair.render_pair`'s job.

    Raises
    ------
    OutputError
        If ``out_dir`` holds another pair's explanation and ``overwrite`` is false, or cannot be
        written.
    """
    check_pair_folder(out_dir, a, b, overwrite=overwrite)
    folder = ensure_dir(out_dir)
    # Aligned once; the faces keep the names the user gave, which the explanation reports.
    face_a, face_b = explainer.align(a, aligned), explainer.align(b, aligned)
    faces = np.stack([face_a.pixels, face_b.pixels])
    cells, weights = None, None
    if explainer.regions is not None:
        weights = explainer.regions.weights
        cells = explainer.explain(face_a, face_b, same=same)
        explainer = band_explainer(explainer)
    explanation = explainer.explain(face_a, face_b, same=same)
    curves = None
    if faithfulness:
        curves = explainer.faithfulness(
            face_a, face_b, seeds=seeds, explanation=explanation
        ).to_dict()
    plain = explanation.to_dict()
    if cells is not None:
        plain.update(regions=cells.regions.to_dict(), cells=cells_record(cells))
    record = explanation_record(plain)
    if curves is not None:
        record["faithfulness"] = curves
    if images:
        write_images(folder, faces, explainer.masked_views(faces), weights)
    else:
        (folder / IMAGES_NAME).unlink(missing_ok=True)  # a report of another run must not use it
    json_path = write_output(
        folder / EXPLANATION_NAME, json.dumps(record, indent=2, allow_nan=False) + "\n"
    )
    return PairOutputs(explanation, json_path, None, curves, cells, record)


def explanation_record(record: dict[str, Any]) -> dict[str, Any]:
    """``Explanation.to_dict()`` with its ``format`` first and the distances beside the scores
    for Euclidean models.

    Scores are "higher is more alike" for every model (a Euclidean score is the negative
    distance); ``distance_ref`` and ``distance_threshold`` spare a reader the sign flip.
    """
    record = {"format": EXPLANATION_FORMAT, **record}
    if (record.get("model") or {}).get("metric") == "euclidean":
        record = {
            **record,
            "distance_ref": -record["score_ref"],
            "distance_threshold": -record["threshold"],
        }
    return record


def check_pair_folder(
    out_dir: str | os.PathLike[str],
    a: ImageLike,
    b: ImageLike,
    *,
    overwrite: bool = False,
    hint: str = "choose another output folder, or overwrite=True",
) -> None:
    """Refuse an output folder that holds the explanation of a pair other than ``a``, ``b``.

    Raises
    ------
    OutputError
        Naming the folder, the pair it holds and ``hint``.
    """
    # Never a run or a comparison, even with ``overwrite``: that replaces only an explanation.
    check_output_kind(
        out_dir, "explanation", command="explain", hint="choose another output folder"
    )
    if overwrite:
        return
    path = Path(out_dir) / EXPLANATION_NAME
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
        old_sources = (str(old["a"]["source"]), str(old["b"]["source"]))
    except (FileNotFoundError, NotADirectoryError):
        return
    except (OSError, ValueError, KeyError, TypeError):
        old_sources = ("?", "?")  # unreadable: not ours to replace silently either
    if old_sources != (source_label(a), source_label(b)):
        names = " vs ".join(os.path.basename(s) for s in old_sources)
        raise OutputError(f"{path.parent} holds the explanation of another pair ({names}); {hint}")


def write_template_outputs(
    explainer: Any, probe: Any, template: Any, out: str | os.PathLike[str], *, aligned: bool | None
) -> Any:
    """Explain ``probe`` against a stored ``template`` (with the explainer's regions, if any) and
    write ``explanation.json`` and ``images.npz`` (the face; the region weights, with regions)
    into ``out``. Returns the :class:`~freqxfr.explanations.templates.TemplateExplanation`."""
    check_output_kind(out, "explanation", command="explain", hint="choose another output folder")
    folder = ensure_dir(out)
    # Aligned once; the face keeps the name the user gave, which the explanation reports.
    face = explainer.align(probe, aligned)
    result = explainer.explain_template(face, template)
    regions = explainer.regions
    write_images(folder, face.pixels[None], None, None if regions is None else regions.weights)
    write_output(
        folder / EXPLANATION_NAME,
        json.dumps(
            {"format": TEMPLATE_EXPLANATION_FORMAT, **result.to_dict()}, indent=2, allow_nan=False
        )
        + "\n",
    )
    return result


# --- the stored images ---------------------------------------------------------------------------


def write_images(
    folder: str | os.PathLike[str],
    faces: np.ndarray,
    views: np.ndarray | None = None,
    region_weights: np.ndarray | None = None,
) -> Path:
    """Store what a pair's report shows beside its JSON (``images.npz``, compressed, atomic)."""
    arrays: dict[str, Any] = {
        "faces": np.ascontiguousarray(faces, dtype=np.uint8)
    }  # np.savez's **kwds
    if views is not None:
        arrays["views"] = np.ascontiguousarray(views, dtype=np.uint8)
    if region_weights is not None:
        arrays["region_weights"] = np.ascontiguousarray(region_weights, dtype=np.float32)
    target = Path(folder) / IMAGES_NAME
    with atomic_open(target, "wb") as handle:
        np.savez_compressed(handle, **arrays)
    return target


class PairImages(TypedDict):
    """What :func:`read_images` returns (a plain dict)."""

    faces: np.ndarray
    views: np.ndarray | None
    region_weights: np.ndarray | None


def read_images(folder: str | os.PathLike[str]) -> PairImages:
    """The arrays of :func:`write_images`: ``faces``, ``views`` and ``region_weights`` (``None``
    where not stored).

    Raises
    ------
    InputError
        If the folder has no readable ``images.npz`` (naming it).
    """
    path = Path(folder) / IMAGES_NAME
    try:
        with np.load(path, allow_pickle=False) as data:
            stored = {k: data[k] for k in data.files}
    except (OSError, ValueError) as exc:
        raise InputError(
            f"{path}: cannot read the images the report shows ({exc}); run the command again "
            "to record them"
        ) from None
    if "faces" not in stored:
        raise InputError(f"{path}: no faces stored")
    return PairImages(
        faces=stored["faces"],
        views=stored.get("views"),
        region_weights=stored.get("region_weights"),
    )


def read_explanation(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """``explanation.json`` of a pair folder.

    Raises
    ------
    InputError
        If it is missing or not JSON (naming the file).
    """
    path = Path(folder) / EXPLANATION_NAME
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read the explanation ({exc})") from None


# --- a dataset run's pair pages --------------------------------------------------------------------


def wrongly_decided(record: Mapping[str, Any]) -> bool:
    """An explained pair whose decision disagrees with its ground truth."""
    return (
        "error" not in record
        and record.get("same") is not None
        and bool(record["decision"]) != bool(record["same"])
    )


def page_records(
    records: Iterable[Mapping[str, Any]], which: str = "errors"
) -> list[Mapping[str, Any]]:
    """The records of the pairs that get their own page: ``"errors"`` (wrongly decided and failed
    pairs), ``"all"`` or ``"none"``."""
    if which not in PAGE_CHOICES:
        raise InputError(f"which must be 'errors', 'all' or 'none', got {which!r}")
    if which == "none":
        return []
    return [r for r in records if which == "all" or "error" in r or wrongly_decided(r)]


def page_folder(out_dir: str | os.PathLike[str], index: int) -> Path:
    """``OUT/pairs/<index>``: the folder of a pair's page."""
    return Path(out_dir) / PAIR_PAGES / f"{int(index):06d}"


def write_page_images(
    out_dir: str | os.PathLike[str],
    explainer: Any,
    records: Sequence[Mapping[str, Any]],
    *,
    which: str = "errors",
    aligned: bool | None = None,
) -> list[int]:
    """Store what the pair pages of a dataset run show: a folder ``OUT/pairs/<index>`` per chosen
    pair (:func:`page_records`), holding ``images.npz`` for an explained pair (a failed pair's page
    needs only its record). Returns the chosen indices.

    A dataset run writes a page's images as its pair is explained, from the faces the stream
    aligned (:func:`write_page`); what is missing here (pairs explained by an earlier run or on
    a Dask cluster) is aligned again from the records' sources, as the explanation aligned them.
    """
    chosen = page_records(records, which)
    for record in chosen:
        folder = ensure_dir(page_folder(out_dir, record["index"]))
        if "error" in record or (folder / IMAGES_NAME).is_file():
            continue
        sources = (record["a"]["source"], record["b"]["source"])
        write_page(out_dir, explainer, record, [explainer.align(p, aligned) for p in sources])
    return [int(r["index"]) for r in chosen]


def write_page(
    out_dir: str | os.PathLike[str], explainer: Any, record: Mapping[str, Any], faces: Sequence[Any]
) -> Path:
    """``images.npz`` of one explained pair's page from its two aligned faces."""
    regions = getattr(explainer, "regions", None)
    weights = None if regions is None else regions.weights
    pixels = np.stack([face.pixels for face in faces])
    folder = ensure_dir(page_folder(out_dir, record["index"]))
    return write_images(folder, pixels, explainer.masked_views(pixels), weights)
