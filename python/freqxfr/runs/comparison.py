"""Compare dataset runs over the same pairs: two models, or one model with two settings.

``freqxfr compare RUN_A RUN_B [RUN_C ...] --out OUT`` reads the runs' ``run.json`` and
``results.jsonl`` (see :mod:`freqxfr.runs.dataset`). The runs must cover the same pair list (its
SHA-256 in ``run.json``) with the same bands (relative radii and angles; the models' input sizes
may differ). Pairs that failed in any run are left out of all of them.

Per band and class (``all``, ``genuine``, ``impostor`` by ground truth; ``match``, ``non_match`` by
each run's own decision):

- ``mean[run]``: the run's mean normalised absolute and directed influence over the explained
  images of its pairs in that class, computed as the run's own ``summary.json`` profiles are;
- ``diff[B - A]``: the mean over pairs of the paired difference (each pair's two images averaged),
  over the pairs in the class for both runs (for ``match``/``non_match`` the pairs both runs
  decided that way); for the ground-truth classes it equals ``mean[B] - mean[A]``;
- ``ci_lo``/``ci_hi``: a percentile bootstrap interval of ``diff``, with the same resamples for
  every band (and for the centroid); ``same_sign``: the share of pairs whose own difference has
  the sign of ``diff``. The bootstrap resamples identities (each with all of its pairs) when every
  pair's identities are known (recorded by the run, or from LFW/FRLL paths), pairs otherwise:
  ``bootstrap.unit`` says which (:mod:`freqxfr.stats.identities`). The centroid's ``sign_test``
  counts one vote per identity (:func:`freqxfr.stats.bootstrap.cluster_sign_test`).

The same for the influence-weighted centroid band (:func:`freqxfr.stats.profiles.centroid`), and per
pair of runs the agreement of the decisions and, for pairs decided differently, the bands whose
normalised directed influence differs most.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from freqxfr.common import atomic
from freqxfr.common.errors import InputError, read_text
from freqxfr.runs.folder import check_output_kind
from freqxfr.runs.skeleton import run_folder
from freqxfr.stats.bootstrap import (
    DEFAULT_LEVEL,
    DEFAULT_RESAMPLES,
    check_resamples,
    cluster_sign_test,
    percentile_ci,
    resample_indices,
)
from freqxfr.stats.identities import pair_clusters, record_identities, resampling
from freqxfr.stats.profiles import centroid, profile, relative_to_peak

CLASSES = ("all", "genuine", "impostor", "match", "non_match")
KINDS = ("absolute", "directed")
TOP_BANDS = 3


@dataclasses.dataclass(frozen=True)
class Run:
    """One dataset run as read from its folder."""

    name: str
    path: Path
    config: dict[str, Any]
    records: list[dict[str, Any]]  # explained pairs, in file order
    failed: frozenset[int]


def load_run(path: str | os.PathLike[str], name: str | None = None) -> Run:
    """Read a dataset-run folder; ``InputError`` naming the folder (or the file and line) if it
    is not one or a file of it is malformed."""
    folder = Path(path)
    run_json = folder / "run.json"
    if not folder.is_dir():
        raise InputError(f"{folder}: not a dataset run (not a folder)")
    text = read_text(run_json, str(run_json), missing=f"{folder}: not a dataset run (no run.json)")
    try:
        config = json.loads(text)
    except ValueError as exc:
        raise InputError(f"{run_json} is not valid JSON: {exc}") from None
    if not isinstance(config, dict):
        raise InputError(
            f"{run_json}: expected a JSON object (a dataset run's settings), "
            f"got a {type(config).__name__}"
        )
    n_bands = len(_band_geometry(config, run_json))
    results = folder / "results.jsonl"
    if not results.is_file():
        raise InputError(f"{folder}: the run has no results.jsonl yet")
    records = _read_records(results, n_bands)
    failed = frozenset(r["index"] for r in records if "error" in r)
    good = [r for r in records if "error" not in r]
    return Run(name or folder.resolve().name, folder, config, good, failed)


def _read_records(results: Path, n_bands: int) -> list[dict[str, Any]]:
    """Every record of ``results``, checked; a malformed line is an ``InputError`` naming the
    file and the line. A partial last line (a run that was stopped) is left out."""
    try:
        data = results.read_bytes()
    except OSError as exc:
        raise InputError(f"{results}: cannot read it ({exc.strerror or exc})") from None
    records: list[dict[str, Any]] = []
    seen: set[int] = set()
    lines = data.split(b"\n")
    for number, raw in enumerate(lines[:-1], start=1):  # the part after the last newline: partial
        where = f"{results}, line {number}"
        try:
            record = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise InputError(f"{where}: not UTF-8 text ({exc.reason})") from None
        except ValueError as exc:
            raise InputError(f"{where}: not valid JSON ({exc})") from None
        problem = _record_problem(record, n_bands)
        if problem:
            raise InputError(f"{where}: {problem}")
        if record["index"] in seen:
            raise InputError(f"{where}: pair {record['index']} is listed twice")
        seen.add(record["index"])
        records.append(record)
    return records


def _record_problem(record: Any, n_bands: int) -> str | None:
    """What is wrong with one results line, or ``None``."""
    if not isinstance(record, dict):
        return f"expected a JSON object (one pair's record), got a {type(record).__name__}"
    index = record.get("index")
    if type(index) is not int or index < 0:
        return f"'index' must be a pair number (an integer >= 0), got {index!r}"
    if "error" in record:
        return None
    for field in ("score_ref", "decision", "a", "b"):
        if field not in record:
            return f"pair {index} has no '{field}'"
    score = record["score_ref"]
    if type(score) not in (int, float):
        return f"pair {index}: 'score_ref' must be a number, got {score!r}"
    if not np.isfinite(score):
        return f"pair {index}: 'score_ref' is {score} (not a finite number); compare refuses it"
    if type(record["decision"]) is not bool:
        return f"pair {index}: 'decision' must be true or false, got {record['decision']!r}"
    for side in ("a", "b"):
        image = record[side]
        if not isinstance(image, dict):
            return f"pair {index}: '{side}' must be an object, got a {type(image).__name__}"
        values = image.get("directed")
        if not isinstance(values, list) or not all(type(v) in (int, float) for v in values):
            return f"pair {index}: '{side}.directed' must be a list of numbers"
        if len(values) != n_bands:
            return (
                f"pair {index}: '{side}.directed' has {len(values)} values, but run.json "
                f"names {n_bands} bands"
            )
        if not np.isfinite(values).all():
            return f"pair {index}: '{side}.directed' holds NaN or infinity; compare refuses it"
    return None


def check_comparable(runs: Sequence[Run]) -> None:
    """Refuse runs over different pair lists or with different bands."""
    first = runs[0]
    for run in runs[1:]:
        for what, value in (
            ("pair list", _pair_list(run)),
            ("pair count", run.config.get("pairs")),
        ):
            other = _pair_list(first) if what == "pair list" else first.config.get("pairs")
            if value != other:
                raise InputError(
                    f"{run.path} covers another pair list than {first.path} "
                    f"({what} {value} vs {other}); compare needs runs over the same pairs"
                )
        mine, theirs = _band_geometry(run.config), _band_geometry(first.config)
        if len(mine) != len(theirs):
            raise InputError(
                f"{run.path} has {len(mine)} bands and {first.path} {len(theirs)}; "
                "compare needs the same bands"
            )
        for k, (x, y) in enumerate(zip(mine, theirs, strict=True)):
            if not np.allclose(x, y, rtol=0, atol=1e-9):
                raise InputError(
                    f"band {k} differs between {run.path} and {first.path} "
                    f"(radius/angle {x} vs {y}); compare needs the same bands"
                )
        _check_sources(first, run)


def _pair_list(run: Run) -> Any:
    """What identifies a run's pair list: the hash recorded in its settings (``"N pairs, sha256
    H"``; older runs: ``pairs_sha256``), or ``None`` where the run recorded neither."""
    settings = run.config.get("settings")
    if isinstance(settings, dict) and "pairs" in settings:
        return settings["pairs"]
    return run.config.get("pairs_sha256")


def _check_sources(first: Run, run: Run) -> None:
    """Each pair that both runs explained must name the same two images (relative to each
    run's ``--root``, so that runs over copies of a dataset in other folders compare)."""
    mine = _sources(first)
    for record in run.records:
        theirs = _source_pair(run, record)
        expected = mine.get(record["index"])
        if expected is not None and theirs != expected:
            raise InputError(
                f"pair {record['index']} is {theirs[0]} / {theirs[1]} in {run.path} but "
                f"{expected[0]} / {expected[1]} in {first.path}: the runs cover other pairs; "
                "compare needs runs over the same pairs"
            )


def _sources(run: Run) -> dict[int, tuple[str, str]]:
    return {r["index"]: _source_pair(run, r) for r in run.records}


def _source_pair(run: Run, record: dict[str, Any]) -> tuple[str, str]:
    settings = run.config.get("settings")
    root = settings.get("--root") if isinstance(settings, dict) else None
    out = []
    for side in ("a", "b"):
        source = record[side].get("source")
        text = str(source)
        if isinstance(root, str) and os.path.isabs(text):
            text = os.path.relpath(text, root)
        out.append(text)
    return out[0], out[1]


def _band_geometry(config: dict[str, Any], where: Any = "run.json") -> list[list[float]]:
    bands = config.get("bands")
    if not isinstance(bands, list) or not bands:
        raise InputError(f"{where} has no bands")
    try:
        geometry = [
            [float(v) for v in (*b["radius"], *(b.get("angle") or (0.0, 0.0)))] for b in bands
        ]
    except (TypeError, KeyError, AttributeError, ValueError):
        geometry = []
    if not geometry or any(len(g) != 4 for g in geometry):
        raise InputError(
            f"{where}: 'bands' must be a list of bands, each with a 'radius' [lo, hi] "
            "(and an optional 'angle' [lo, hi])"
        )
    return geometry


def compare_runs(
    paths: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str] | None = None,
    *,
    names: Sequence[str] | None = None,
    n_boot: int = DEFAULT_RESAMPLES,
    level: float = DEFAULT_LEVEL,
    seed: int = 0,
) -> dict[str, Any]:
    """Compare the runs in ``paths`` (see the module docstring); writes ``OUT/summary.json``
    when ``out_dir`` is given (``report.html`` is drawn from it by
    :func:`freqxfr.reports.render_run`), and returns the summary."""
    if len(paths) < 2:
        raise InputError("compare needs at least two runs")
    check_resamples(n_boot, "--resamples")
    if not (isinstance(level, (int, float)) and 0.0 < float(level) < 1.0):
        raise InputError(f"--level must lie strictly between 0 and 1, got {level!r}")
    if names is not None:
        if len(names) != len(paths):
            raise InputError(f"give one name per run: {len(names)} names for {len(paths)} runs")
        empty = [i + 1 for i, n in enumerate(names) if not str(n).strip()]
        if empty:
            raise InputError(f"--names: name {empty[0]} is empty; give one non-empty name per run")
    if out_dir is not None:
        out = Path(out_dir).resolve()
        for p in paths:
            run = Path(p).resolve()
            if out == run:
                raise InputError(
                    f"--out {out_dir} is the input run {p}; compare would overwrite "
                    "that run's summary.json and report.html; choose another --out"
                )
    runs = [load_run(p, None if names is None else names[i]) for i, p in enumerate(paths)]
    _unique_names(runs)
    check_comparable(runs)
    if out_dir is None:
        return _compare(runs, n_boot, level, seed)
    # Locked like every output folder: a folder another run holds is refused at once.
    with run_folder(out_dir, command="compare", resumable=False) as out:
        check_output_kind(out, "comparison", command="compare", hint="choose another --out")
        summary = _compare(runs, n_boot, level, seed)
        atomic.write_json(out / "summary.json", summary)
    return summary


def _compare(runs: list[Run], n_boot: int, level: float, seed: int) -> dict[str, Any]:

    excluded = set().union(*(r.failed for r in runs))
    indices = set.intersection(*({int(r["index"]) for r in run.records} for run in runs)) - excluded
    if not indices:
        counts = ", ".join(f"{run.path}: {len(run.records)} explained" for run in runs)
        raise InputError(f"the runs share no explained pair ({counts})")
    common = sorted(indices)
    position = {i: n for n, i in enumerate(common)}
    k = len(runs[0].config["bands"])
    data = {run.name: _pair_arrays(run, position, k) for run in runs}
    first = data[runs[0].name]
    same = first["same"]
    for run in runs[1:]:
        if not _same_labels(data[run.name]["same"], same):
            raise InputError(f"{run.path} labels the pairs differently from {runs[0].path}")

    identities = {int(r["index"]): record_identities(r) for r in runs[0].records}
    clusters = pair_clusters([identities[i] for i in common])
    unit = np.array(clusters if clusters is not None else range(len(common)), dtype=object)
    keys = [(a.name, b.name) for a, b in itertools.combinations(runs, 2)]
    members = {name: _class_members(d["decision"], same) for name, d in data.items()}
    bands: list[dict[str, Any]] = [
        {"index": i, "radius": runs[0].config["bands"][i]["radius"]} for i in range(k)
    ]
    centroids: dict[str, Any] = {}
    n_pairs: dict[str, Any] = {}
    for cls in CLASSES:
        n_pairs[cls] = {name: int(members[name][cls].sum()) for name in data}
        means = {
            name: _run_means(runs_by_name(runs, name), position, members[name][cls])
            for name in data
        }
        cent: dict[str, dict[str, Any]] = {**_stat_tables(), "sign_test": {}}
        for name in data:
            sel = members[name][cls]
            cent["mean"][name] = _nanmean(data[name]["centroid"][sel])
            cent["mean_ci"][name] = _ci_of_mean(
                data[name]["centroid"][sel][:, None], unit[sel], n_boot, level, seed
            )[0]
        per_band = [{**_stat_tables(), "n_pairs": n_pairs[cls]} for _ in range(k)]
        for name in data:
            sel = members[name][cls]
            cis = {
                kind: _ci_of_mean(data[name][kind][sel], unit[sel], n_boot, level, seed)
                for kind in KINDS
            }
            for i in range(k):
                per_band[i]["mean"][name] = {kind: means[name][kind][i] for kind in KINDS}
                per_band[i]["mean_ci"][name] = {kind: cis[kind][i] for kind in KINDS}
        for a, b in keys:
            key = f"{b} - {a}"
            sel = members[a][cls] & members[b][cls]
            n_pairs[cls][key] = int(sel.sum())
            diffs = {kind: data[b][kind][sel] - data[a][kind][sel] for kind in KINDS}
            diffs["centroid"] = (data[b]["centroid"] - data[a]["centroid"])[sel][:, None]
            stats = _paired(diffs, unit[sel], n_boot, level, seed)
            cent["sign_test"][key] = cluster_sign_test(
                diffs["centroid"][:, 0], None if clusters is None else list(unit[sel])
            )
            for i in range(k):
                for field in ("diff", "ci_lo", "ci_hi", "same_sign"):
                    per_band[i][field][key] = {kind: stats[kind][field][i] for kind in KINDS}
            for field in ("diff", "ci_lo", "ci_hi", "same_sign"):
                cent[field][key] = stats["centroid"][field][0]
        for i in range(k):
            bands[i][cls] = per_band[i]
        centroids[cls] = cent

    decisions = {f"{b} - {a}": _decisions(data[a], data[b], a, b, common, runs[0]) for a, b in keys}
    summary = {
        "format": "freqxfr.comparison-summary/1",  # its version (no schema yet)
        "runs": [_describe(run, data[run.name], same) for run in runs],
        "pairs_file": runs[0].config.get("pairs_file"),
        "pairs_sha256": runs[0].config.get("pairs_sha256"),
        "n_pairs": len(common),
        "excluded_pairs": sorted(excluded),
        "differences": [{"key": f"{b} - {a}", "a": a, "b": b} for a, b in keys],
        "bootstrap": {
            "resamples": int(n_boot),
            "level": float(level),
            "seed": int(seed),
            **resampling(clusters, len(common)),
            "same_resamples_for_every_band": True,
        },
        "n_pairs_per_class": n_pairs,
        "bands": bands,
        "centroid": centroids,
        "decisions": decisions,
    }
    return summary


def _stat_tables() -> dict[str, dict[str, Any]]:
    """The empty tables of one class's numbers (the centroid's, or one band's), by run or pair
    of runs."""
    return {key: {} for key in ("mean", "mean_ci", "diff", "ci_lo", "ci_hi", "same_sign")}


def runs_by_name(runs: Sequence[Run], name: str) -> Run:
    return next(r for r in runs if r.name == name)


# ---- per-pair arrays ----------------------------------------------------------------------------


def _pair_arrays(run: Run, position: dict[int, int], k: int) -> dict[str, np.ndarray]:
    """Per common pair (in index order): the mean of its two images' normalised influences,
    the mean of their centroids, the decision, the score and the ground truth."""
    n = len(position)
    out = {
        "absolute": np.empty((n, k)),
        "directed": np.empty((n, k)),
        "centroid": np.empty(n),
        "decision": np.zeros(n, bool),
        "score": np.empty(n),
        "same": np.full(n, None),
    }
    for record in run.records:
        j = position.get(int(record["index"]))
        if j is None:
            continue
        directed = np.array([record["a"]["directed"], record["b"]["directed"]], np.float64)
        out["absolute"][j] = relative_to_peak(np.abs(directed)).mean(axis=0)
        out["directed"][j] = relative_to_peak(directed).mean(axis=0)
        out["centroid"][j] = _nanmean(centroid(np.abs(directed)))
        out["decision"][j] = bool(record["decision"])
        out["score"][j] = float(record["score_ref"])
        out["same"][j] = record.get("same")
    return out


def _same_labels(x: np.ndarray, y: np.ndarray) -> bool:
    return all(a == b for a, b in zip(x, y, strict=True))


def _class_members(decision: np.ndarray, same: np.ndarray) -> dict[str, np.ndarray]:
    known = np.array([s is not None for s in same])
    truth = np.array([bool(s) for s in same])
    return {
        "all": np.ones(decision.size, bool),
        "genuine": known & truth,
        "impostor": known & ~truth,
        "match": decision.copy(),
        "non_match": ~decision,
    }


def _run_means(run: Run, position: dict[int, int], selected: np.ndarray) -> dict[str, list]:
    """The run's mean normalised influences over the selected pairs' images, computed exactly as
    its summary's profiles are (file order, both sides of each record)."""
    rows = [
        [r["a"]["directed"], r["b"]["directed"]]
        for r in run.records
        if int(r["index"]) in position and selected[position[int(r["index"])]]
    ]
    if not rows:
        return {kind: [None] * len(run.config["bands"]) for kind in KINDS}
    prof = profile(np.concatenate([np.array(r, np.float64) for r in rows]))
    return {
        "absolute": prof["absolute_normalised_mean"],
        "directed": prof["directed_normalised_mean"],
    }


# ---- statistics ---------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4)
def _weights(units: tuple, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n) counts of each pair in each resample, from :func:`resample_indices`, drawing
    the pairs' ``units`` (identities, or the pairs themselves) with all of their pairs; the same
    seed and units give the same resamples, so every band and the centroid share them. With
    every unit once it is the pair bootstrap."""
    n = len(units)
    idx = resample_indices(n, n_boot, clusters=units, seed=seed)
    return np.stack([np.bincount(i, minlength=n) for i in idx]).astype(np.float64)


def _resample_means(values: np.ndarray, units: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, m) means over the rows of ``values`` in each resample; a resample's size varies
    when identities hold different numbers of pairs. Units are renumbered in row order, so that
    pairs that are their own units resample exactly as the pair bootstrap did."""
    w = _weights(_numbered(units), n_boot, seed)
    return w @ values / w.sum(axis=1, keepdims=True)


def _numbered(units: np.ndarray) -> tuple:
    numbers: dict[Any, int] = {}
    return tuple(numbers.setdefault(u, len(numbers)) for u in units)


def _ci_of_mean(
    values: np.ndarray, units: np.ndarray, n_boot: int, level: float, seed: int
) -> list:
    """Per column of ``values`` (n, m): the bootstrap interval of the mean over rows."""
    keep = np.isfinite(values).all(axis=1)
    values, units = values[keep], units[keep]
    if values.shape[0] == 0:
        return [None] * values.shape[1]
    means = _resample_means(values, units, n_boot, seed)
    return [list(percentile_ci(means[:, i], level)) for i in range(values.shape[1])]


def _paired(
    diffs: dict[str, np.ndarray], units: np.ndarray, n_boot: int, level: float, seed: int
) -> dict:
    """Mean paired difference, its bootstrap interval and the share of pairs with its sign."""
    out: dict[str, dict[str, list[Any]]] = {}
    for kind, d in diffs.items():
        m = d.shape[1]
        keep = np.isfinite(d).all(axis=1)
        if not keep.any():
            out[kind] = {f: [None] * m for f in ("diff", "ci_lo", "ci_hi", "same_sign")}
            continue
        d = d[keep]
        mean = d.mean(axis=0)
        boot = _resample_means(d, units[keep], n_boot, seed)
        cis = [percentile_ci(boot[:, i], level) for i in range(m)]
        out[kind] = {
            "diff": mean.tolist(),
            "ci_lo": [c[0] for c in cis],
            "ci_hi": [c[1] for c in cis],
            "same_sign": [float(np.mean(np.sign(d[:, i]) == np.sign(mean[i]))) for i in range(m)],
        }
    return out


def _nanmean(values: np.ndarray) -> float | None:
    finite = np.asarray(values, np.float64)
    finite = finite[np.isfinite(finite)]
    return float(finite.mean()) if finite.size else None


def _decisions(da: dict, db: dict, a: str, b: str, common: list[int], first: Run) -> dict:
    differ = da["decision"] != db["decision"]
    gap = np.abs(db["directed"] - da["directed"])  # per pair and band, normalised units
    paths = {int(r["index"]): (r["a"].get("source"), r["b"].get("source")) for r in first.records}
    pairs = []
    for j in np.flatnonzero(differ):
        top = np.argsort(-gap[j], kind="stable")[:TOP_BANDS]
        index = common[j]
        pairs.append(
            {
                "index": index,
                "paths": list(paths.get(index, (None, None))),
                "same": da["same"][j],
                "decision": {a: bool(da["decision"][j]), b: bool(db["decision"][j])},
                "score": {a: float(da["score"][j]), b: float(db["score"][j])},
                "bands_differing_most": [int(x) for x in top],
            }
        )
    mean_gap = gap[differ].mean(axis=0) if differ.any() else np.zeros(gap.shape[1])
    top = np.argsort(-mean_gap, kind="stable")[:TOP_BANDS] if differ.any() else np.zeros(0, int)
    return {
        "agreement": float(np.mean(~differ)),
        "n_disagree": int(differ.sum()),
        "bands_differing_most": [
            {"band": int(i), "mean_abs_directed_diff": float(mean_gap[i])} for i in top
        ],
        "pairs": pairs,
    }


def _describe(run: Run, arrays: dict, same: np.ndarray) -> dict[str, Any]:
    config = run.config
    known = np.array([s is not None for s in same])
    correct = arrays["decision"][known] == np.array([bool(s) for s in same[known]])
    return {
        "name": run.name,
        "path": str(run.path),
        "model": (config.get("model") or {}).get("name"),
        "metric": (config.get("model") or {}).get("metric"),
        "threshold": config.get("threshold"),
        "mode": config.get("mode"),
        "domain": config.get("domain"),
        "clip": config.get("clip"),
        "padding": config.get("padding"),  # None: a run of an older freqxfr (black padding)
        "schedule": (config.get("schedule") or {}).get("kind"),
        "failed_pairs": len(run.failed),
        "accuracy": float(correct.mean()) if correct.size else None,
    }


def _unique_names(runs: list[Run]) -> None:
    seen: dict[str, int] = {}
    for i, run in enumerate(runs):
        if run.name in seen:
            raise InputError(f"two runs are both called {run.name!r}; name them with --names")
        seen[run.name] = i
