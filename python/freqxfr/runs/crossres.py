"""Cross-resolution face recognition: how verification and band influence change as the probe
loses resolution.

For each pair (A, B) and each factor f, image B (the probe) is degraded by f
(:func:`~freqxfr.imaging.resolution.degrade`), A (the reference) stays as it is, and the pair is
explained as usual: both images, band by band. Per factor the run reports accuracy, FMR and FNMR
at the model's threshold, the band profiles of genuine and impostor pairs, and the *centroid*:
the influence-weighted mean band index of each explained image
(:func:`freqxfr.stats.profiles.centroid`), averaged over pairs. Low means the influence sits in low
frequencies. The headline centroid is the probe's (side ``b``); the reference's is reported too,
since it says which bands of a sharp photo matter when the other photo is blurred.

Intervals: a percentile bootstrap over identities (each with all of its pairs) when every pair's
reference identity is known (:mod:`freqxfr.stats.identities`), over pairs otherwise. The same resamples serve every factor, so the shift
of the mean centroid from the lowest factor (normally 1) is a paired difference; the share of
resamples whose shift has the sign of the point estimate says how stable that sign is.

Output folder: ``summary.json`` (see :func:`run_crossres`), ``pairs.csv`` (one row per pair and
factor), ``explanations.jsonl`` (the band influences of every pair at every factor, appended as
each finishes; the run resumes from it), ``run.json`` (the settings a restart must match) and
``images.npz`` (one aligned probe crop, which the report degrades by each factor). The PNG plots
and ``report.html`` are drawn from these files afterwards (:func:`freqxfr.reports.render_run`,
which the CLI calls).

Padding. Images that are not yet the model's input size are aligned (re-cut) first, and a re-cut
crop can reach beyond its photo: dlib's 150 chip cut from a tight 112 LFW crop does on every side.
``padding`` (:data:`freqxfr.imaging.align.PADDINGS`, default :data:`freqxfr.imaging.align.DEFAULT_PADDING`) says
what fills that part; the run records it, and the share of each image's crop that was padded
(``padded_a``/``padded_b`` in ``explanations.jsonl``, ``summary["alignment"]``). The degradation
itself resizes the whole crop and pads nothing.
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
from freqxfr.explanations.explainer import Explainer, Explanation
from freqxfr.explanations.pairs import Pair
from freqxfr.explanations.stream import Aligned, align_image, align_images, explain_pairs
from freqxfr.imaging.images import AlignedFace
from freqxfr.imaging.resolution import (
    DEFAULT_RESAMPLE,
    KERNEL_DESCRIPTIONS,
    check_factors,
    check_resample,
    degrade,
    low_resolution_size,
)
from freqxfr.runs.folder import SETTINGS_KEY, ResultsLog, explainer_settings, pair_list_settings
from freqxfr.runs.pair import write_images
from freqxfr.runs.scenario_common import EXPLANATIONS, checked, csv_text
from freqxfr.runs.skeleton import Run, execute, refused_pairs
from freqxfr.stats.bootstrap import (
    DEFAULT_LEVEL,
    DEFAULT_RESAMPLES,
    cluster_weights,
    percentile_ci,
    sign_stability,
    weighted_means,
)
from freqxfr.stats.identities import pair_clusters, resampling
from freqxfr.stats.profiles import centroid, profile
from freqxfr.stats.thresholds import accuracy, fmr_fnmr

DEFAULT_FACTORS = (1.0, 2.0, 4.0, 8.0)
SIDES = {"probe": "b", "reference": "a"}


# ---- the run -------------------------------------------------------------------------------------


def run_crossres(
    pairs: Sequence[Pair],
    out_dir: str | os.PathLike[str],
    explainer: Explainer,
    *,
    factors: Sequence[float] = DEFAULT_FACTORS,
    resample: str = DEFAULT_RESAMPLE,
    aligned: bool | None = None,
    padding: str | None = None,
    n_boot: int = DEFAULT_RESAMPLES,
    level: float = DEFAULT_LEVEL,
    seed: int = 0,
    pairs_file: str = "",
    root: str | os.PathLike[str] | None = None,
    allow_outside_root: bool = False,
    extra_settings: Mapping[str, Any] | None = None,
    progress: bool = False,
    report: bool = True,
    client: Any = None,
) -> dict[str, Any]:
    """Explain every pair at every downscaling factor of its probe; write and return the summary.

    The run is resumable like ``freqxfr dataset``: each (factor, pair) is appended to
    ``explanations.jsonl`` as it finishes, and calling again with the same settings explains
    only what is missing (including pairs whose images failed before). The summary, ``pairs.csv``
    and the report are computed from that file, so an interrupted and resumed run writes the
    same outputs as an uninterrupted one. A restart with other settings (model, bands, factors,
    kernel, root, pairs, ...) is refused; the bootstrap options only affect the summary and may
    change.

    Parameters
    ----------
    pairs : sequence of Pair
        Labelled pairs (``same`` known); image B of each pair is the probe that is degraded.
    out_dir : path-like
        Output folder (see the module docstring).
    explainer : Explainer
        Model, bands and masking options.
    factors : sequence of float
        Downscaling factors, each >= 1. The lowest is the baseline of the centroid shift.
    resample : {"bicubic", "area", "spectral"}
        How the probe is degraded (:mod:`freqxfr.imaging.resolution`).
    aligned : bool, optional
        Passed to ``Explainer.aligned_crop``: ``None`` takes crops of the model's input size as
        aligned and aligns anything else (e.g. LFW's 112 crops for dlib's 150 chips).
    padding : {"edge", "reflect", "black"}, optional
        What fills the part of a re-cut crop that lies beyond its photo
        (:data:`freqxfr.imaging.align.PADDINGS`); recorded in the settings and the summary. Default:
        the explainer's (``Explainer(padding=...)``); one given here replaces it.
    n_boot, level, seed
        Bootstrap resamples (of identities when known, else of pairs), interval level and seed.
    pairs_file : str
        Recorded in the summary and named in messages.
    root : path-like, optional
        The folder the pair list's paths are relative to. When given, a pair naming an image
        outside it (after resolving symlinks) fails without being read, unless
        ``allow_outside_root``.
    extra_settings : mapping, optional
        Further settings a caller knows (e.g. ``{"--limit": 200}``), checked on a restart.
    progress : bool
        Show a progress bar.
    report : bool
        Store what the report shows besides the JSON (``images.npz``: an example probe crop).
    client : dask.distributed.Client, optional
        Explain in chunks on this Dask cluster (:mod:`freqxfr.runs.distributed`); same outputs.

    Returns
    -------
    dict
        The ``summary.json`` content. ``factors`` is a list with one entry per factor holding
        ``factor``, ``accuracy``, ``fmr``, ``fnmr``, ``centroid``, ``centroid_ci``,
        ``centroid_shift``, ``centroid_shift_ci``, ``centroid_shift_same_sign``, ``reference``
        (the same centroid numbers for image A), ``by_class`` and ``profiles``. ``failed``
        lists the images that could not be prepared and the pairs refused by the root rule;
        their pairs are left out of every factor. ``alignment`` says which padding filled
        the part of a re-cut crop beyond its photo and how much of the crops it filled.

    Raises
    ------
    InputError
        Bad factors or kernel, unlabelled pairs, or no pair whose images could be prepared.
    """
    arguments = dict(locals())  # the run's, but for the folder and the cluster
    out_dir, client = arguments.pop("out_dir"), arguments.pop("client")
    return execute(CrossresRun(**arguments), out_dir, client=client)


@dataclasses.dataclass(eq=False, kw_only=True)
class CrossresRun(Run):
    """A cross-resolution run's steps for the run skeleton (:func:`freqxfr.runs.skeleton.execute`):
    the work is (factor, pair index); :func:`run_crossres` documents the arguments."""

    command = "crossres"
    results = EXPLANATIONS
    desc = "crossres"

    pairs: Sequence[Pair]
    factors: Sequence[float] = DEFAULT_FACTORS
    resample: str = DEFAULT_RESAMPLE
    padding: str | None = None
    n_boot: int = DEFAULT_RESAMPLES
    level: float = DEFAULT_LEVEL
    seed: int = 0
    pairs_file: str = ""
    extra_settings: Mapping[str, Any] | None = None
    report: bool = True

    def __post_init__(self) -> None:
        """Check the arguments (see :func:`run_crossres`'s ``Raises``)."""
        self.factors = check_factors(self.factors)
        check_resample(self.resample)
        if self.padding is not None:  # one padding for the crops and the recorded settings
            self.explainer = self.explainer.with_(padding=self.padding)
        pairs = self.pairs = list(self.pairs)
        if not pairs:
            raise InputError("the pair list is empty")
        unlabelled = [i for i, p in enumerate(pairs) if p.same is None]
        if unlabelled:
            raise InputError(
                f"cross-resolution needs labelled pairs (a 'same' column); pair "
                f"{unlabelled[0] + 1} ({pairs[unlabelled[0]].path_a}, "
                f"{pairs[unlabelled[0]].path_b}) has none"
            )
        self.settings = {
            **explainer_settings(self.explainer, self.aligned),
            **pair_list_settings(pairs, self.root, self.allow_outside_root),
            "--factors": list(self.factors),
            "--resample": self.resample,
            **dict(self.extra_settings or {}),
        }
        self.refused: dict[int, str] = {}
        self.missing: list[tuple[float, int]] = []

    def record(self) -> Mapping[str, Any]:
        return {"pairs_file": self.pairs_file, SETTINGS_KEY: self.settings}

    def key(self, record: dict[str, Any]) -> Any:
        return _record_key(record, self.factors, len(self.pairs))

    def total(self) -> int:
        return len(self.factors) * len(self.pairs)

    def plan(self, done: set[Any]) -> list[Any]:
        """Every (factor, pair index) not yet explained, but those the root rule refuses."""
        self.refused = refused_pairs(
            self.pairs, self.root, self.allow_outside_root, self.pairs_file
        )
        self.missing = [
            (factor, i)
            for factor in self.factors
            for i in range(len(self.pairs))
            if (factor, i) not in done and i not in self.refused
        ]
        return self.missing

    def stream(self, todo: list[Any]) -> Iterator[dict[str, Any]]:
        """Only the images of the missing pairs are aligned, each once; an image that fails is
        listed (``extras``) and its pairs are tried again by the next run."""
        wanted = sorted({i for _, i in todo})
        images = (p for i in wanted for p in (self.pairs[i].path_a, self.pairs[i].path_b))
        faces, failures = align_images(self.explainer, images, self.aligned, padded=True)
        self.extras += failures
        yield from _explanations(self.explainer, self.pairs, todo, faces, self.resample)

    def chunks(self, todo: list[Any]) -> tuple[list[Any], Any, dict[str, Any]]:
        items = [(f, i, self.pairs[i]) for f, i in todo]
        return items, _explain_chunk, {"resample": self.resample, "aligned": self.aligned}

    def summarise(self, out: Path, log: ResultsLog) -> dict[str, Any]:
        records = log.records()
        summary, example_index = _summary(
            self.explainer,
            self.pairs,
            self.factors,
            self.resample,
            records,
            self.failures(),
            self.n_boot,
            self.level,
            self.seed,
            self.pairs_file,
        )
        padding = self.explainer.padding
        summary["alignment"] = _alignment_summary(records, self.factors, padding)
        summary[SETTINGS_KEY] = self.settings
        write_output(out / "pairs.csv", csv_text(_csv_rows(self.pairs, self.factors, records)))
        write_json(out / "summary.json", summary)
        if self.report:
            example = self.pairs[example_index].path_b
            face = align_image(self.explainer, example, self.aligned, padded=True).face
            write_images(out, face.pixels[None])  # the report's degradation strip shows it
        return summary

    def failures(self) -> list[dict[str, Any]]:
        """This run's failures: each image that could not be aligned once, in the order its
        pairs name it (as the stream aligns them, on a cluster too), then the refused pairs."""
        by_path = {f["path"]: f for f in self.extras}
        wanted = sorted({i for _, i in self.missing})
        order = dict.fromkeys(
            str(p) for i in wanted for p in (self.pairs[i].path_a, self.pairs[i].path_b)
        )
        failures = [by_path[p] for p in order if p in by_path]
        failures += [
            {
                "index": i,
                "line": self.pairs[i].line,
                "path": str(self.pairs[i].path_a),
                "error": why,
            }
            for i, why in self.refused.items()
        ]
        return failures


def _record_key(record: dict[str, Any], factors: Sequence[float], n_pairs: int) -> Any:
    """``(factor, index)`` of a valid record, or ``None`` (a resume redoes an invalid line)."""
    index: Any = record.get("index")  # JSON values, checked next
    factor: Any = record.get("factor")
    if type(index) is not int or not 0 <= index < n_pairs:
        return None
    if type(factor) not in (int, float) or float(factor) not in {float(f) for f in factors}:
        return None
    return (float(factor), index)


def _explanations(
    explainer: Explainer,
    pairs: Sequence[Pair] | Mapping[int, Pair],
    items: Sequence[tuple[float, int]],
    faces: Mapping[Any, Aligned],
    resample: str,
) -> Iterator[dict[str, Any]]:
    """The ``explanations.jsonl`` records of the (factor, pair index) ``items`` whose two images
    are in ``faces``, factor by factor, streamed as they finish (through the pair stream)."""
    for factor in dict.fromkeys(f for f, _ in items):
        todo = [
            i
            for f, i in items
            if f == factor and pairs[i].path_a in faces and pairs[i].path_b in faces
        ]
        streamed = explain_pairs(
            explainer,
            (
                (
                    faces[pairs[i].path_a].face,
                    _degraded(faces[pairs[i].path_b].face, factor, resample),
                )
                for i in todo
            ),
        )
        for i, item in zip(todo, streamed, strict=True):
            padded = (faces[pairs[i].path_a].padded, faces[pairs[i].path_b].padded)
            yield _jsonl_record(factor, i, pairs[i], checked(item), padded)


def _explain_chunk(
    explainer: Explainer,
    chunk: Sequence[tuple[float, int, Pair]],
    *,
    resample: str,
    aligned: bool | None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """One Dask chunk of (factor, index, pair) items, on a worker: their records, and the
    images that could not be aligned (the single-process path's own steps; the padding is the
    explainer's)."""
    pairs = {i: pair for _, i, pair in chunk}
    images = (p for pair in pairs.values() for p in (pair.path_a, pair.path_b))
    faces, failures = align_images(explainer, images, aligned, padded=True)
    items = [(f, i) for f, i, _ in chunk]
    return list(_explanations(explainer, pairs, items, faces, resample)), failures


def _alignment_summary(
    records: list[dict[str, Any]], factors: Sequence[float], padding: str
) -> dict[str, Any]:
    """Which padding filled the crops beyond their photos, and how much of them (per image)."""
    padded: dict[str, float] = {}
    for r in records:
        if float(r["factor"]) == factors[0]:
            for side in ("a", "b"):
                padded[r[f"path_{side}"]] = float(r.get(f"padded_{side}", 0.0))
    values = np.array(list(padded.values()), dtype=np.float64)
    return {
        "padding": padding,
        "images": int(values.size),
        "images_padded": int((values > 0).sum()),
        "padded_fraction_mean": float(values.mean()) if values.size else 0.0,
        "padded_fraction_max": float(values.max()) if values.size else 0.0,
        "definition": "share of a crop's pixels whose sampling point lies outside its photo, "
        "filled by the padding; 0 for images already of the model's input size",
    }


def _degraded(face: AlignedFace, factor: float, resample: str) -> AlignedFace:
    """The probe as the model sees it at ``factor``, still under its own name."""
    return AlignedFace(degrade(face.pixels, factor, resample), face.name)


def _summary(
    explainer: Explainer,
    pairs: Sequence[Pair],
    factors: Sequence[float],
    resample: str,
    records: list[dict[str, Any]],
    failures: list[dict[str, Any]],
    n_boot: int,
    level: float,
    seed: int,
    pairs_file: str,
) -> tuple[dict[str, Any], int]:
    """The summary of every pair explained at every factor, from the records on disk.

    Computed from the file, never from the numbers in memory, so that a resumed run and an
    uninterrupted one give the same summary."""
    by_key = {(float(r["factor"]), int(r["index"])): r for r in records}
    kept = [i for i in range(len(pairs)) if all((f, i) in by_key for f in factors)]
    if not kept:
        first = failures[0]["error"] if failures else "none was explained"
        raise InputError(f"no pair could be explained at every factor; first failure: {first}")
    same = np.array([bool(pairs[i].same) for i in kept])
    scores = np.array([[by_key[f, i]["score"] for i in kept] for f in factors])
    directed = {
        side: np.array([[by_key[f, i][key]["directed"] for i in kept] for f in factors])
        for side, key in SIDES.items()
    }
    threshold = explainer.model.card.threshold
    side = explainer.model.card.input_size[0]
    clusters = pair_clusters([pairs[i].identities for i in kept])
    entries = summarise_factors(
        factors,
        same,
        scores,
        directed,
        threshold,
        n_boot=n_boot,
        level=level,
        seed=seed,
        clusters=clusters,
    )
    for entry in entries:
        f = entry["factor"]
        if resample == "spectral":
            entry["cutoff_cycles"] = side / (2.0 * f) if f > 1 else None
        else:
            entry["probe_size"] = low_resolution_size(side, f)
    summary = {
        "format": "freqxfr.crossres-summary/1",  # its version (no schema yet)
        "scenario": "crossres",
        "pairs_file": pairs_file,
        **explainer.settings(),
        "threshold": threshold,
        "input_size": list(explainer.model.card.input_size),
        "resample": resample,
        "kernel": KERNEL_DESCRIPTIONS[resample],
        "degraded_side": "b (probe)",
        "centroid_definition": "mean over pairs of the influence-weighted mean band index "
        "(absolute influence) of the probe; 'reference' is image a",
        "pairs": len(kept),
        "genuine": int(same.sum()),
        "impostor": int((~same).sum()),
        "failed": failures,
        "bootstrap": {
            "resamples": int(n_boot),
            "level": level,
            "seed": seed,
            **resampling(clusters, len(kept)),
            "shift_baseline_factor": factors[0],
        },
        "factors": entries,
    }
    return summary, kept[0]


def summarise_factors(
    factors: Sequence[float],
    same: np.ndarray,
    scores: np.ndarray,
    directed: dict[str, np.ndarray],
    threshold: float,
    *,
    n_boot: int = DEFAULT_RESAMPLES,
    level: float = DEFAULT_LEVEL,
    seed: int = 0,
    clusters: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """The per-factor entries of a cross-resolution summary from raw results.

    Parameters
    ----------
    factors : sequence of float, length F (ascending; the first is the shift's baseline)
    same : bool array, (n,)
    scores : array, (F, n)
        Comparison scores.
    directed : dict with ``"probe"`` and ``"reference"`` arrays, (F, n, K)
        Directed influences of image B and image A.
    threshold : float
        The model's threshold.
    n_boot, level, seed
        Bootstrap: the same resamples for every factor, so shifts are paired.
    clusters : sequence of str, optional
        Each pair's identity (:func:`freqxfr.stats.identities.pair_clusters`): resample
        identities with all of their pairs; default: resample pairs.
    """
    n = same.size
    weights = cluster_weights(n, n_boot, clusters=clusters, seed=seed)
    per_side = {}
    for name, values in directed.items():
        cents = centroid(np.abs(values))  # (F, n)
        boot = weighted_means(weights, cents.T).T  # (F, n_boot)
        per_side[name] = (cents, boot)

    entries = []
    for fi, factor in enumerate(factors):
        s = scores[fi]
        fmr, fnmr = fmr_fnmr(s, same, threshold)
        entry: dict[str, Any] = {
            "factor": factor,
            "accuracy": accuracy(s, same, threshold),
            "fmr": _finite(fmr),
            "fnmr": _finite(fnmr),
            "score_mean": {"genuine": _mean(s[same]), "impostor": _mean(s[~same])},
        }
        for name, (cents, boot) in per_side.items():
            numbers = _centroid_numbers(cents, boot, fi, level)
            if name == "probe":
                entry.update(numbers)
            else:
                entry["reference"] = numbers
        entry["by_class"] = {
            label: {
                "n_pairs": int(mask.sum()),
                "centroid": _mean(per_side["probe"][0][fi][mask]),
                "reference_centroid": _mean(per_side["reference"][0][fi][mask]),
            }
            for label, mask in (("genuine", same), ("impostor", ~same))
        }
        entry["profiles"] = {
            name: {
                label: profile(values[fi][mask])
                for label, mask in (("genuine", same), ("impostor", ~same))
                if mask.any()
            }
            for name, values in directed.items()
        }
        entries.append(entry)
    return entries


def _centroid_numbers(cents: np.ndarray, boot: np.ndarray, fi: int, level: float) -> dict[str, Any]:
    estimate = float(np.nanmean(cents[fi]))
    shift = estimate - float(np.nanmean(cents[0]))
    shift_boot = boot[fi] - boot[0]
    numbers = {
        "centroid": estimate,
        "centroid_ci": list(percentile_ci(boot[fi], level)),
        "centroid_shift": shift,
        "centroid_shift_ci": [0.0, 0.0] if fi == 0 else list(percentile_ci(shift_boot, level)),
        "centroid_shift_same_sign": None if fi == 0 else sign_stability(shift_boot, shift),
    }
    return numbers


# ---- records -------------------------------------------------------------------------------------


def _jsonl_record(
    factor: float,
    index: int,
    pair: Pair,
    explanation: Explanation,
    padded: tuple[float, float] = (0.0, 0.0),
) -> dict:
    return {
        "factor": factor,
        "index": index,
        "path_a": str(pair.path_a),
        "path_b": str(pair.path_b),
        "same": pair.same,
        "score": explanation.score_ref,
        "decision": explanation.decision,
        "a": {"directed": explanation.a.directed.tolist()},
        "b": {"directed": explanation.b.directed.tolist()},
        "padded_a": padded[0],
        "padded_b": padded[1],
    }


def _csv_rows(
    pairs: Sequence[Pair], factors: Sequence[float], records: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """One row per pair and factor, factor by factor, from the records on disk."""
    by_key = {(float(r["factor"]), int(r["index"])): r for r in records}
    rows = []
    for factor in factors:
        for i in range(len(pairs)):
            r = by_key.get((factor, i))
            if r is None:
                continue
            rows.append(
                {
                    "factor": factor,
                    "index": i,
                    "path_a": r["path_a"],
                    "path_b": r["path_b"],
                    "same": int(bool(r["same"])),
                    "score": r["score"],
                    "decision": int(r["decision"]),
                    "centroid_probe": float(centroid(np.abs(np.asarray(r["b"]["directed"])))),
                    "centroid_reference": float(centroid(np.abs(np.asarray(r["a"]["directed"])))),
                }
            )
    return rows


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def _mean(values: np.ndarray) -> float | None:
    values = values[np.isfinite(values)]
    return float(values.mean()) if values.size else None
