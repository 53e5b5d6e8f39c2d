"""Face-morphing attacks: attack success at the model's threshold, band profiles of morph and bona
fide comparisons, and an unsupervised frequency-based differential morphing-attack detector.

The comparisons (:mod:`.morph_index`): every morph against the probe of each of its two subjects
(attacks), and every subject's own bona fide photo against their probe (bona fide). Each
comparison is explained; its *enrolled* image (the morph, or the bona fide photo: image ``a``) is
the one whose band influences feed the frequency morph score (:mod:`.morph_score`).

Numbers:

- MMPMR (mated morph presentation match rate): the share of morphs whose scores against *both*
  probes reach the model's threshold.
- Three differential detectors, each scored so that higher = more morph-like: the comparison score
  alone (its negative), the frequency morph score alone, and both combined as the mean of their
  ranks over all comparisons (unsupervised; nothing is fitted to labels).
  For each: AUC (Mann-Whitney), D-EER, BPCER at APCER = 10% and 5%, and its DET curve
  (:mod:`freqxfr.stats.mad`). The top-level ``d_eer`` and ``bpcer_at_apcer_*`` of the summary are
  the frequency detector's. Bootstrap intervals resample people, stratified by class: a morph's
  comparisons (both morphs of a pair of subjects, against both probes) move together.

Output folder: ``summary.json``, ``comparisons.csv`` (one row per comparison),
``explanations.jsonl`` (every comparison's full explanation, appended as each finishes, with its
position ``comparison``; the run resumes from it), ``run.json`` (the settings a restart must
match). The PNG plots and ``report.html`` are drawn from ``summary.json`` afterwards
(:func:`freqxfr.reports.render_run`, which the CLI calls).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from freqxfr.common.atomic import write_json, write_output
from freqxfr.common.errors import InputError
from freqxfr.explanations.explainer import Explainer
from freqxfr.explanations.pairs import Pair
from freqxfr.explanations.stream import align_images, explain_pairs
from freqxfr.imaging.images import AlignedFace
from freqxfr.runs.folder import SETTINGS_KEY, ResultsLog, explainer_settings
from freqxfr.runs.morph_index import MorphComparison, MorphEntry, comparisons
from freqxfr.runs.scenario_common import EXPLANATIONS, checked, csv_text
from freqxfr.runs.skeleton import Run, execute
from freqxfr.stats.bootstrap import DEFAULT_LEVEL, DEFAULT_RESAMPLES
from freqxfr.stats.mad import average_ranks, evaluate_detector
from freqxfr.stats.morph_score import DEFAULT_DISTANCE, leave_identity_out_scores
from freqxfr.stats.profiles import centroid, profile


@dataclasses.dataclass(frozen=True)
class _Role:
    """Why an image is in the analysis, for error messages."""

    text: str
    row: int | None


# ---- the run -------------------------------------------------------------------------------------


def _comparison_key(record: dict[str, Any], n: int) -> int | None:
    """The comparison number of a valid record, or ``None`` (a resume redoes an invalid line)."""
    k = record.get("comparison")
    return k if type(k) is int and 0 <= k < n else None


def run_morph(
    entries: Sequence[MorphEntry],
    out_dir: str | os.PathLike[str],
    explainer: Explainer,
    *,
    index_file: str = "",
    root: str | os.PathLike[str] | None = None,
    allow_outside_root: bool = False,
    distance: str = DEFAULT_DISTANCE,
    aligned: bool | None = None,
    n_boot: int = DEFAULT_RESAMPLES,
    level: float = DEFAULT_LEVEL,
    seed: int = 0,
    progress: bool = False,
    client: Any = None,
) -> dict[str, Any]:
    """Explain every morph and bona fide comparison of a morph index; write and return the summary.

    The run is resumable like ``freqxfr dataset``: each comparison is appended to
    ``explanations.jsonl`` as it finishes, and calling again with the same settings explains
    only the missing ones. Everything else is computed from that file, so an interrupted and
    resumed run writes the same outputs as an uninterrupted one. A restart with other settings
    (model, bands, index content, root, ...) is refused; the distance and the bootstrap options
    only affect the summary and may change.

    Parameters
    ----------
    entries : sequence of MorphEntry
        From :func:`~freqxfr.runs.morph_index.read_morph_index`.
    out_dir : path-like
        Output folder (see the module docstring).
    explainer : Explainer
        Model, bands and masking options; photos are aligned with the model's own alignment.
    index_file : str
        Recorded in the summary.
    root, allow_outside_root
        The root the index was read with (:func:`~.morph_index.read_morph_index`, which applies
        the root rule), recorded as settings.
    distance : {"mahalanobis", "cosine"}
        Distance of the frequency morph score (:mod:`.morph_score`).
    aligned : bool, optional
        Passed to ``Explainer.aligned_crop`` (``None``: align anything not of the input size).
    n_boot, level, seed
        Bootstrap resamples, interval level and seed.
    client : dask.distributed.Client, optional
        Explain in chunks on this Dask cluster (:mod:`freqxfr.runs.distributed`); same outputs.

    Returns
    -------
    dict
        The ``summary.json`` content: ``mmpmr``, ``morphs`` (each morph's two scores), ``d_eer``,
        ``bpcer_at_apcer_10``, ``bpcer_at_apcer_5``, ``auc`` (``score``, ``frequency``,
        ``combined``), ``auc_ci``, ``detectors`` (every number and DET curve per detector) and
        ``profiles`` (``bona_fide``, ``morph`` and their ``difference``).

    Raises
    ------
    NoFaceError
        No face was found in an image; the message says which morph or photo and its index row.
    InputError
        Too few bona fide comparisons for the leave-one-identity-out reference.
    """
    arguments = dict(locals())  # the run's, but for the folder and the cluster
    out_dir, client = arguments.pop("out_dir"), arguments.pop("client")
    return execute(MorphRun(**arguments), out_dir, client=client)


@dataclasses.dataclass(eq=False, kw_only=True)
class MorphRun(Run):
    """A morph run's steps for the run skeleton (:func:`freqxfr.runs.skeleton.execute`): the
    work is the numbered comparisons; :func:`run_morph` documents the arguments."""

    command = "morph"
    results = EXPLANATIONS
    desc = "morph"
    unit = "comparison"

    entries: Sequence[MorphEntry]
    index_file: str = ""
    distance: str = DEFAULT_DISTANCE
    n_boot: int = DEFAULT_RESAMPLES
    level: float = DEFAULT_LEVEL
    seed: int = 0

    def __post_init__(self) -> None:
        self.entries = list(self.entries)
        if not self.entries:
            raise InputError("the morph index lists no morphs")
        self.cmps = comparisons(self.entries)
        self.settings = {
            **explainer_settings(self.explainer, self.aligned),
            "--root": os.path.abspath(self.root) if self.root is not None else None,
            "--allow-outside-root": bool(self.allow_outside_root),
            "comparisons": _listing(self.cmps, self.root),
        }

    def record(self) -> Mapping[str, Any]:
        return {"index_file": self.index_file, SETTINGS_KEY: self.settings}

    def key(self, record: dict[str, Any]) -> int | None:
        return _comparison_key(record, len(self.cmps))

    def total(self) -> int:
        return len(self.cmps)

    def plan(self, done: set[Any]) -> list[Any]:
        return [k for k in range(len(self.cmps)) if k not in done]

    def stream(self, todo: list[Any]) -> Iterator[dict[str, Any]]:
        faces = _align_faces(
            self.explainer, self.entries, self.aligned, [self.cmps[k] for k in todo]
        )
        yield from _records(self.explainer, [(k, self.cmps[k]) for k in todo], faces)

    def chunks(self, todo: list[Any]) -> tuple[list[Any], Any, dict[str, Any]]:
        items = [(k, self.cmps[k]) for k in todo]
        return items, _explain_chunk, {"entries": self.entries, "aligned": self.aligned}

    def summarise(self, out: Path, log: ResultsLog) -> dict[str, Any]:
        by_comparison = {int(r["comparison"]): r for r in log.records()}
        summary, rows = _summarise(
            self.explainer,
            self.entries,
            self.cmps,
            [by_comparison[k] for k in range(len(self.cmps))],
            self.index_file,
            self.distance,
            self.n_boot,
            self.level,
            self.seed,
        )
        summary[SETTINGS_KEY] = self.settings
        write_output(out / "comparisons.csv", csv_text(rows))
        write_json(out / "summary.json", summary)
        return summary


def _records(
    explainer: Explainer,
    items: Sequence[tuple[int, MorphComparison]],
    faces: Mapping[Path, AlignedFace],
) -> Iterator[dict[str, Any]]:
    """The ``explanations.jsonl`` records of the numbered comparisons, streamed as they finish."""
    # Every comparison is mated: the probe's person is in the enrolled image.
    streamed = explain_pairs(
        explainer,
        # An aligned face stands in for each path: the stream takes either.
        (Pair(faces[c.enrolled], faces[c.probe], same=True) for _, c in items),  # type: ignore[arg-type]
    )
    for (k, c), item in zip(items, streamed, strict=True):
        record = checked(item).to_dict()
        yield {"comparison": k, **record, "class": c.kind, "identities": list(c.identities)}


def _explain_chunk(
    explainer: Explainer,
    chunk: Sequence[tuple[int, MorphComparison]],
    *,
    entries: Sequence[MorphEntry],
    aligned: bool | None,
) -> tuple[list[dict[str, Any]], list[Any]]:
    """One Dask chunk of numbered comparisons, on a worker: their records (the single-process
    path's own steps)."""
    faces = _align_faces(explainer, entries, aligned, [c for _, c in chunk])
    return list(_records(explainer, chunk, faces)), []


def _listing(cmps: Sequence[MorphComparison], root: str | os.PathLike[str] | None) -> str:
    """The comparisons a run explains, as a setting: their count and a digest of their files."""
    import hashlib

    base = os.path.abspath(root) if root is not None else None
    text = "\n".join(
        "\t".join(
            [
                c.kind,
                *(
                    os.path.relpath(p, base) if base else os.path.abspath(p)
                    for p in (c.enrolled, c.probe)
                ),
                ",".join(c.identities),
                c.probe_identity,
                c.method,
            ]
        )
        for c in cmps
    )
    return f"{len(cmps)} comparisons, sha256 {hashlib.sha256(text.encode()).hexdigest()[:16]}"


def _summarise(
    explainer: Explainer,
    entries: Sequence[MorphEntry],
    cmps: Sequence[MorphComparison],
    records: Sequence[dict[str, Any]],
    index_file: str,
    distance: str,
    n_boot: int,
    level: float,
    seed: int,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Scores, detectors, profiles and the rows of ``comparisons.csv`` from the records on disk
    (one per comparison, in order), never from numbers in memory: a resumed run gives the same
    files."""
    explanations = [_Recorded.of(r) for r in records]
    threshold = explainer.model.card.threshold
    scores = np.array([e.score_ref for e in explanations])
    features = np.stack([e.a.directed_relative for e in explanations])
    is_attack = np.array([c.is_attack for c in cmps])
    morph_scores, ref_sizes = leave_identity_out_scores(
        features, ~is_attack, [c.identities for c in cmps], distance
    )
    detector_scores = detector_inputs(scores, morph_scores)
    clusters = [_cluster(c) for c in cmps]
    detectors = {
        name: evaluate_detector(
            values, is_attack, clusters=clusters, n_boot=n_boot, level=level, seed=seed
        )
        for name, values in detector_scores.items()
    }
    morphs = morph_outcomes(cmps, scores, threshold)
    directed = np.stack([e.a.directed for e in explanations])
    frequency = detectors["frequency"]
    summary = {
        "format": "freqxfr.morph-summary/1",  # its version (no schema yet)
        "scenario": "morph",
        "index_file": index_file,
        **explainer.settings(),
        "threshold": threshold,
        "explained_side": "a: the enrolled image (the morph, or the person's bona fide photo), "
        "explained against the probe",
        "feature": "directed_normalised of the enrolled image",
        "distance": distance,
        "combination": "mean of the ranks of the negated comparison score and the frequency "
        "morph score",
        "n_morphs": len(entries),
        "comparisons": {"morph": int(is_attack.sum()), "bona_fide": int((~is_attack).sum())},
        "mmpmr": float(np.mean([m["accepted_both"] for m in morphs])),
        "mmpmr_by_method": _rate_by(morphs, "method"),
        "bona_fide_acceptance": float(np.mean(scores[~is_attack] >= threshold)),
        "morphs": morphs,
        "d_eer": frequency["d_eer"],
        "d_eer_ci": frequency["d_eer_ci"],
        "bpcer_at_apcer_10": frequency["bpcer_at_apcer_10"],
        "bpcer_at_apcer_5": frequency["bpcer_at_apcer_5"],
        "auc": {name: d["auc"] for name, d in detectors.items()},
        "auc_ci": {name: d["auc_ci"] for name, d in detectors.items()},
        "detectors": detectors,
        "reference_sizes": {"min": int(ref_sizes.min()), "max": int(ref_sizes.max())},
        "profiles": class_profiles(directed, features, is_attack),
        "bootstrap": {
            "resamples": int(n_boot),
            "level": level,
            "seed": seed,
            "unit": "person (morphs: their pair of subjects), stratified by class",
        },
    }
    rows = [
        _csv_row(c, e, s, d, threshold)
        for c, e, s, d in zip(
            cmps, explanations, morph_scores, detector_scores["combined"], strict=True
        )
    ]
    return summary, rows


@dataclasses.dataclass(frozen=True)
class _Side:
    directed: np.ndarray
    directed_relative: np.ndarray  # JSON: directed_normalised

    @property
    def absolute(self) -> np.ndarray:
        return np.abs(self.directed)


@dataclasses.dataclass(frozen=True)
class _Recorded:
    """What the summary needs of one explanation, as read back from ``explanations.jsonl``."""

    score_ref: float
    a: _Side

    @classmethod
    def of(cls, record: dict[str, Any]) -> _Recorded:
        a = record["a"]
        return cls(
            float(record["score_ref"]),
            _Side(np.asarray(a["directed"], float), np.asarray(a["directed_normalised"], float)),
        )


#: What each detector of :func:`detector_inputs` is, as reports and the CLI name it.
DETECTOR_NAMES = {
    "score": "comparison score alone",
    "frequency": "frequency morph score alone",
    "combined": "both (mean rank)",
}


def detector_inputs(scores: np.ndarray, morph_scores: np.ndarray) -> dict[str, np.ndarray]:
    """The three detectors' scores, each higher = more morph-like (see the module docstring)."""
    negated = -np.asarray(scores, dtype=np.float64)
    frequency = np.asarray(morph_scores, dtype=np.float64)
    combined = 0.5 * (average_ranks(negated) + average_ranks(frequency))
    return {"score": negated, "frequency": frequency, "combined": combined}


def morph_outcomes(
    cmps: Sequence[MorphComparison], scores: np.ndarray, threshold: float
) -> list[dict[str, Any]]:
    """Each morph's scores against the probe of subject A and of subject B, and the decisions."""
    by_morph: dict[Path, dict[str, Any]] = {}
    # Each person's bona fide photo: the morph's contributors, which the report shows beside it.
    bona_fide = {c.probe_identity: str(c.enrolled) for c in cmps if not c.is_attack}
    for c, score in zip(cmps, scores, strict=True):
        if not c.is_attack:
            continue
        item = by_morph.setdefault(
            c.enrolled,
            {
                "path": str(c.enrolled),
                "row": c.morph_row,
                "method": c.method,
                "identity_a": c.identities[0],
                "identity_b": c.identities[1],
            },
        )
        side = "a" if c.probe_identity == c.identities[0] else "b"
        item[f"probe_{side}"] = str(c.probe)
        item[f"bona_fide_{side}"] = bona_fide.get(c.probe_identity)
        item[f"score_{side}"] = float(score)
        item[f"accepted_{side}"] = bool(score >= threshold)
    for item in by_morph.values():
        item["accepted_both"] = item["accepted_a"] and item["accepted_b"]
    return list(by_morph.values())


def class_profiles(
    directed: np.ndarray, features: np.ndarray, is_attack: np.ndarray
) -> dict[str, Any]:
    """Band profiles of the enrolled images of each class, and morph minus bona fide."""
    out: dict[str, Any] = {}
    for name, mask in (("bona_fide", ~is_attack), ("morph", is_attack)):
        prof = profile(directed[mask])
        prof["directed_normalised_std"] = features[mask].std(axis=0).tolist()
        prof["centroid_mean"] = float(np.nanmean(centroid(np.abs(directed[mask]))))
        out[name] = prof
    out["difference"] = {
        key: (np.asarray(out["morph"][key]) - np.asarray(out["bona_fide"][key])).tolist()
        for key in ("absolute_mean", "directed_mean", "directed_normalised_mean")
    }
    return out


# ---- inputs --------------------------------------------------------------------------------------


def _align_faces(
    explainer: Explainer,
    entries: Sequence[MorphEntry],
    aligned: bool | None,
    needed: Sequence[MorphComparison],
) -> dict[Path, AlignedFace]:
    """Align every distinct image of the ``needed`` comparisons once; a failure names the
    image's role and index row."""
    roles: dict[Path, _Role] = {}
    for e in entries:
        for path, text in (
            (e.path, "morph"),
            (e.bona_fide_a, f"bona fide photo of {e.identity_a}"),
            (e.bona_fide_b, f"bona fide photo of {e.identity_b}"),
            (e.probe_a, f"probe of {e.identity_a}"),
            (e.probe_b, f"probe of {e.identity_b}"),
        ):
            roles.setdefault(path, _Role(text, e.row))
    wanted = {p for c in needed for p in (c.enrolled, c.probe)}
    faces, _ = align_images(
        explainer,
        (path for path in roles if path in wanted),
        aligned,
        describe=lambda path: f"{roles[path].text} (morph index row {roles[path].row})",
    )
    return {path: aligned_face.face for path, aligned_face in faces.items()}


def _cluster(c: MorphComparison) -> str:
    return f"{c.kind}:{'+'.join(sorted(c.identities))}"


# ---- outputs -------------------------------------------------------------------------------------


def _csv_row(
    c: MorphComparison, e: _Recorded, morph_score: float, combined: float, threshold: float
) -> dict[str, Any]:
    return {
        "class": c.kind,
        "enrolled": str(c.enrolled),
        "probe": str(c.probe),
        "identity_a": c.identities[0],
        "identity_b": c.identities[1] if len(c.identities) > 1 else "",
        "probe_identity": c.probe_identity,
        "method": c.method,
        "score": e.score_ref,
        "accepted": int(e.score_ref >= threshold),
        "morph_score": float(morph_score),
        "combined_rank": float(combined),
        "centroid": float(centroid(e.a.absolute)),
    }


def _rate_by(morphs: list[dict[str, Any]], key: str) -> dict[str, float]:
    groups: dict[str, list[bool]] = {}
    for m in morphs:
        groups.setdefault(str(m[key]), []).append(m["accepted_both"])
    return {name: float(np.mean(values)) for name, values in groups.items()}
