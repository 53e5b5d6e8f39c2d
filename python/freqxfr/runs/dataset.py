"""Dataset runs: explain every pair of a list, streaming results to disk, resumably.

Layout of ``OUT``:

- ``run.json``: what the run explains (pair list, model, bands, options); its ``settings`` are
  checked on a restart, and a restart with other settings is refused with a message naming each
  differing setting and both values, so that one results file never mixes two configurations.
- ``results.jsonl``: one line per pair, appended as each pair finishes (``Explanation.to_dict()``
  without the parts in ``run.json``, plus ``index``); a pair that failed gets ``{"index", "line",
  "path_a", "path_b", "error"}``. A line is written with one ``write`` call and flushed.
- ``summary.json``: written atomically when every pair has been tried; failed pairs are listed
  (``failures``).
- ``pairs/<index>/images.npz``: the aligned faces and masked images of the pairs that get their
  own page (:mod:`freqxfr.runs.pair`), so that ``report.html`` and the pages are drawn from the
  folder alone (:func:`freqxfr.reports.render_run`, which the CLI runs after the run).

With regions (``Explainer(regions=...)``, ``freqxfr dataset --regions``) each line also holds
``cells``: the pair's region × band explanation (:func:`freqxfr.explanations.region_explanations.cells_record`);
``run.json`` and ``summary.json`` name the regions (``regions``: names, areas, provenance), and
``summary.json["regions"]["by_class"]`` holds the mean region × band maps per class
(:func:`~freqxfr.explanations.region_explanations.region_summary`), which the report draws. A pair's images
are aligned once for its band explanation and its cells; on a Dask cluster (``client``) region
runs are split into chunks like band runs, with the same lines.

The folder is locked for the whole run (:mod:`freqxfr.runs.folder`). Running the same command
again continues an interrupted run: a partial last line from a crash is dropped and redone, and
failed pairs are tried again; finished pairs are neither redone nor lost, and every pair ends up
with exactly one line.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from freqxfr.common import atomic
from freqxfr.common.errors import InputError
from freqxfr.explanations.explainer import Explainer, Explanation, PairFailure
from freqxfr.explanations.pairs import Pair
from freqxfr.explanations.region_explanations import band_explainer, cells_record, region_summary
from freqxfr.explanations.stream import Streamed, stream_pairs
from freqxfr.runs.faithfulness import CurvesLog, run_faithfulness
from freqxfr.runs.folder import (
    SETTINGS_KEY,
    ResultsLog,
    explainer_settings,
    pair_list_settings,
    read_results,
)
from freqxfr.runs.pair import page_records, write_page, write_page_images
from freqxfr.runs.skeleton import Run, execute, refused_pairs
from freqxfr.stats.profiles import class_intervals, summarise

#: The versions of a dataset run's ``summary.json`` and of each ``results.jsonl`` line, their
#: ``format`` fields (schemas: ``freqxfr/schemas/summary.schema.json``, ``result.schema.json``).
SUMMARY_FORMAT = "freqxfr.summary/1"
RESULT_FORMAT = "freqxfr.result/1"


def run_config(
    explainer: Explainer,
    pairs_file: str,
    pairs: Sequence[Pair],
    *,
    root: str | os.PathLike[str] | None = None,
    allow_outside_root: bool = False,
    aligned: bool | None = None,
    extra_settings: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The content of ``run.json``: the run's description and its checked ``settings``."""
    regions = explainer.regions.to_dict() if explainer.regions is not None else None
    return {
        "pairs_file": pairs_file,
        "pairs": len(pairs),
        **explainer.settings(),
        "threshold": explainer.model.card.threshold,
        **({"regions": regions} if regions else {}),
        SETTINGS_KEY: {
            **explainer_settings(explainer, aligned),
            **pair_list_settings(pairs, root, allow_outside_root),
            **({"--regions": regions} if regions else {}),
            **dict(extra_settings or {}),
        },
    }


def run_dataset(
    pairs: Sequence[Pair],
    out_dir: str | os.PathLike[str],
    explainer: Explainer,
    *,
    pairs_file: str = "",
    root: str | os.PathLike[str] | None = None,
    allow_outside_root: bool = False,
    aligned: bool | None = None,
    extra_settings: Mapping[str, Any] | None = None,
    progress: bool = True,
    overlap: bool = True,
    report: bool = True,
    parquet: bool = False,
    faithfulness_seeds: int | None = None,
    pair_pages: str = "errors",
    client: Any = None,
    restart: bool = False,
) -> dict[str, Any]:
    """Explain every pair into ``out_dir`` (see the module docstring); returns the summary.

    An interrupted run continues where it stopped when called again with the same arguments;
    pairs that failed are tried again. With ``faithfulness_seeds`` every explained pair also gets
    deletion/insertion curves against that many random orders (:mod:`freqxfr.runs.faithfulness`),
    resumable the same way.

    Parameters
    ----------
    root : path-like, optional
        The folder the pair list's paths are relative to. When given, a pair naming an image
        outside it (after resolving symlinks) fails without being read, unless
        ``allow_outside_root``.
    aligned : bool, optional
        Passed to ``Explainer.aligned_crop`` (``None``: decide from the image size).
    extra_settings : mapping, optional
        Further settings a caller knows (e.g. ``{"--limit": 200}``), checked on a restart.
    report : bool
        Store what the report's pair pages show (``OUT/pairs/<index>/images.npz``). The report
        itself is drawn from the folder afterwards: :func:`freqxfr.reports.render_run` (the CLI
        calls it).
    pair_pages : {"errors", "all", "none"}
        Which pairs get their own explanation page in ``OUT/pairs/`` (linked from the report):
        wrongly decided and failed pairs (default), every pair, or none.
    client : dask.distributed.Client, optional
        Explain the pairs in chunks on this Dask cluster (:mod:`freqxfr.runs.distributed`); the
        results, summary and report are those of a single-process run.
    restart : bool
        Start the folder's run over (``--restart``): its files are removed, with its lock held.
        A folder in which no pair was explained yet (say every pair failed under a wrong
        ``--root``) is started over anyway, so the corrected command is not refused.

    Returns
    -------
    dict
        ``summary.json``: the run's description, the profiles (:func:`freqxfr.stats.profiles.summarise`),
        ``failed`` (the number of failed pairs) and ``failures`` (each with ``index``, ``line``,
        ``path_a``, ``path_b`` and ``error``).
    """
    arguments = dict(locals())  # the run's, but for the folder and the cluster
    out_dir, client = arguments.pop("out_dir"), arguments.pop("client")
    return execute(DatasetRun(**arguments), out_dir, client=client)


@dataclasses.dataclass(eq=False, kw_only=True)
class DatasetRun(Run):
    """A dataset run's steps for the run skeleton (:func:`freqxfr.runs.skeleton.execute`);
    :func:`run_dataset` documents the arguments."""

    command = "dataset"
    results = "results.jsonl"
    desc = "explaining"

    pairs: Sequence[Pair]
    pairs_file: str = ""
    extra_settings: Mapping[str, Any] | None = None
    progress: bool = True
    overlap: bool = True
    report: bool = True
    parquet: bool = False
    faithfulness_seeds: int | None = None
    pair_pages: str = "errors"
    restart: bool = False

    def __post_init__(self) -> None:
        self.pairs = list(self.pairs)
        self.config = run_config(
            self.explainer,
            self.pairs_file,
            self.pairs,
            root=self.root,
            allow_outside_root=self.allow_outside_root,
            aligned=self.aligned,
            extra_settings=self.extra_settings,
        )
        self.n_bands = len(self.config["bands"])

    def record(self) -> Mapping[str, Any]:
        return self.config

    def starts_over(self, out: Path) -> bool:
        # --restart; or nothing finished yet (e.g. every pair failed under a wrong --root):
        # nothing is lost by starting over, so other settings are not refused. A run.json
        # that is not ours to read is never replaced silently (check_settings names it).
        return self.restart or (_recorded_run(out) and not _explained_any(out / self.results))

    def key(self, record: dict[str, Any]) -> int | None:
        return record_index(record, len(self.pairs), self.n_bands)

    def total(self) -> int:
        return len(self.pairs)

    def plan(self, done: set[Any]) -> list[Any]:
        return [i for i in range(len(self.pairs)) if i not in done]

    def prelude(self, todo: list[Any]) -> tuple[list[dict[str, Any]], list[Any]]:
        refused = refused_pairs(self.pairs, self.root, self.allow_outside_root, self.pairs_file)
        failed = [_failure(i, self.pairs[i], refused[i]) for i in todo if i in refused]
        return failed, [i for i in todo if i not in refused]

    def stream(self, todo: list[Any]) -> Iterator[dict[str, Any]]:
        """The results lines, each pair's faithfulness curves and page images from the faces
        the stream aligned for its explanation (each image aligned once)."""
        curves = (
            CurvesLog(self.out, _band_only(self.explainer), self.faithfulness_seeds)
            if self.faithfulness_seeds
            else None
        )
        try:
            chunk = [(i, self.pairs[i]) for i in todo]
            for item, record in _streamed_lines(self.explainer, chunk, self.aligned, self.overlap):
                yield record  # appended to the results before its curves and page are added
                if item.faces is None:
                    continue
                if curves is not None:
                    curves.add(item.pair, item.faces, record)
                if self.report and page_records([record], self.pair_pages):
                    write_page(self.out, self.explainer, record, item.faces)
        finally:
            if curves is not None:
                curves.close()

    def chunks(self, todo: list[Any]) -> tuple[list[Any], Any, dict[str, Any]]:
        items = [(i, self.pairs[i]) for i in todo]
        return items, explain_chunk, {"aligned": self.aligned, "overlap": self.overlap}

    def summarise(self, out: Path, log: ResultsLog) -> dict[str, Any]:
        # In pair order, whatever the order of the lines (a resume appends retried pairs last):
        # the summary's sums then run in one order, bit for bit those of an uninterrupted run.
        records = pair_records(out / self.results, len(self.pairs), self.n_bands)
        summary = dataset_summary(
            self.config,
            records,
            self.explainer.regions is not None,
            identities=[p.identities for p in self.pairs],
        )
        if self.faithfulness_seeds:
            summary["faithfulness"] = run_faithfulness(
                self.pairs,
                out,
                _band_only(self.explainer),
                seeds=self.faithfulness_seeds,
                progress=self.progress,
                aligned=self.aligned,
            )
        atomic.write_json(out / "summary.json", summary)
        if self.parquet:
            write_parquet(out / self.results, out / "results.parquet")
        if self.report:
            # What the pages of the pairs a reviewer must look at (wrong or failed) show, where
            # the stream did not store it; the report is drawn from the folder afterwards
            # (freqxfr.reports.render_run).
            write_page_images(
                out, self.explainer, records, which=self.pair_pages, aligned=self.aligned
            )
        return summary


def dataset_summary(
    config: Mapping[str, Any],
    records: Sequence[dict[str, Any]],
    regions: bool,
    *,
    identities: Sequence[tuple[str | None, str | None]],
) -> dict[str, Any]:
    """``summary.json`` of a dataset run from its records in pair order (without faithfulness);
    ``identities[i]`` are pair i's people (``(None, None)`` where unknown), for the intervals."""
    failures = [r for r in records if "error" in r]
    explained = [r for r in records if "error" not in r]
    summary = {
        "format": SUMMARY_FORMAT,
        **{k: v for k, v in config.items() if k != SETTINGS_KEY},
        **summarise(explained),
        "failed": len(failures),
        "failures": sorted(failures, key=_by_index),
        "intervals": class_intervals(explained, (identities[r["index"]] for r in explained)),
        SETTINGS_KEY: config[SETTINGS_KEY],
    }
    if regions:
        # Names, areas and provenance of the weights, then the mean maps per class.
        summary["regions"] = {
            **config["regions"],
            **region_summary(r for r in records if "error" not in r),
        }
    return summary


def _by_index(record: dict[str, Any]) -> int:
    return int(record["index"])


#: The folder of a cluster run's finished chunks (:data:`freqxfr.runs.distributed.PARTS`), named
#: here so that a single-process run does not import the cluster module.
PARTS = "parts"


def _recorded_run(out: Path) -> bool:
    """Whether ``out/run.json`` is the readable record of a run (an unreadable one is reported
    by the settings check, never silently replaced)."""
    try:
        record = json.loads((out / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(record, dict) and isinstance(record.get(SETTINGS_KEY), dict)


def _explained_any(results: Path) -> bool:
    """Whether the run folder of ``results`` holds work to keep: a line of ``results`` that looks
    like an explained pair (not a failure), or finished parts of a cluster run (``parts/``, which
    a resume appends first). Summaries and reports are rewritten at the end anyway."""
    try:
        if any((results.parent / PARTS).iterdir()):
            return True
    except FileNotFoundError:
        pass
    except OSError:
        return True
    try:
        with results.open("rb") as handle:
            return any(b'"error"' not in line and b'"a"' in line for line in handle)
    except FileNotFoundError:
        return False
    except OSError:
        return True  # unreadable: let the resume report it rather than start over


def record_index(record: Any, n_pairs: int, n_bands: int) -> int | None:
    """The pair index of a valid ``results.jsonl`` record, or ``None`` for an invalid one.

    Valid: a dict whose ``index`` is an int in ``0..n_pairs-1`` and that is either a failure
    (``error`` a string) or an explanation (``score_ref`` a finite number, ``decision`` a bool,
    ``a`` and ``b`` each with ``scores``, ``absolute`` and ``directed`` lists of ``n_bands``
    numbers). A resume treats an invalid line as missing, so its pair is redone."""
    if not isinstance(record, dict):
        return None
    index = record.get("index")
    if type(index) is not int or not 0 <= index < n_pairs:
        return None
    if "error" in record:
        return index if isinstance(record["error"], str) else None
    score: Any = record.get("score_ref")  # a JSON value, checked next
    if type(score) not in (int, float) or score != score or abs(score) == float("inf"):
        return None
    if type(record.get("decision")) is not bool:
        return None
    for side in ("a", "b"):
        image = record.get(side)
        if not isinstance(image, dict):
            return None
        for field in ("scores", "absolute", "directed"):
            values = image.get(field)
            if (
                not isinstance(values, list)
                or len(values) != n_bands
                or not all(type(v) in (int, float) for v in values)
            ):
                return None
    return index


def pair_records(path: Path, n_pairs: int, n_bands: int) -> list[dict[str, Any]]:
    """The valid records of a results file, one per pair (the last one kept), in pair order."""
    by_index: dict[int, dict[str, Any]] = {}
    for record in read_results(path):
        index = record_index(record, n_pairs, n_bands)
        if index is not None:
            by_index[index] = record
    return [by_index[i] for i in sorted(by_index)]


def _failure(index: int, pair: Pair, error: str) -> dict[str, Any]:
    return {
        "format": RESULT_FORMAT,
        "index": index,
        "line": pair.line,
        "path_a": str(pair.path_a),
        "path_b": str(pair.path_b),
        "error": error,
    }


def _record(index: int, item: Explanation | PairFailure) -> dict[str, Any]:
    if isinstance(item, PairFailure):
        return _failure(index, item.pair, item.error)
    if isinstance(item, Explanation):
        # settings are in run.json
        return {"format": RESULT_FORMAT, "index": index, **item.to_dict(settings=False)}
    raise TypeError(item)


def explain_chunk(
    explainer: Explainer,
    chunk: Sequence[tuple[int, Pair]],
    *,
    aligned: bool | None,
    overlap: bool,
) -> tuple[list[dict[str, Any]], list[Any]]:
    """The results lines of ``chunk`` ((index, pair)s): one Dask task of a cluster run
    (:func:`freqxfr.runs.distributed.explain_chunks`), the single-process run's steps."""
    return [record for _, record in _streamed_lines(explainer, chunk, aligned, overlap)], []


def _streamed_lines(
    explainer: Explainer,
    chunk: Sequence[tuple[int, Pair]],
    aligned: bool | None,
    overlap: bool,
) -> Iterator[tuple[Streamed, dict[str, Any]]]:
    """Each (index, pair) of ``chunk`` through the pair stream, in order, with its results line.

    With regions a line holds the pair's band explanation (as without regions: the band
    profiles, pages and report stay as they are) and its region ``cells``; both use the same
    aligned faces (:func:`~freqxfr.explanations.stream.stream_pairs` with ``cells``)."""
    items = stream_pairs(
        explainer,
        (p for _, p in chunk),
        indices=[i for i, _ in chunk],
        aligned=aligned,
        overlap=overlap,
        cells=explainer.regions is not None,
    )
    for item in items:
        record = _with_identities(_record(item.index, item.result), item.pair)
        if item.cells is not None:
            record["cells"] = cells_record(item.cells)
        yield item, record


def _with_identities(record: dict[str, Any], pair: Pair) -> dict[str, Any]:
    """An explained pair's record with its images' ``identities`` when any is known (from the
    pair list or the paths), for the statistics that resample identities (``compare``)."""
    ids = pair.identities
    if "error" in record or not any(ids):
        return record
    return {**record, "identities": list(ids)}


def _band_only(explainer: Explainer) -> Explainer:
    """The explainer of the band part of the lines (the region explainer's band-only twin)."""
    if explainer.regions is None:
        return explainer

    return band_explainer(explainer)


def summarise_results(path: Path) -> dict[str, Any]:
    return summarise(r for r in read_results(path) if "error" not in r)


def write_parquet(results: Path, target: Path) -> None:
    """A tidy Parquet copy of the results (one row per pair × image × band); needs pyarrow."""
    try:
        # lazy: pyarrow is optional ([parquet] extra)
        import pyarrow as pa
        import pyarrow.parquet as pq  # lazy: as above
    except ImportError:
        raise InputError("a Parquet copy needs pyarrow: pip install 'freqxfr[parquet]'") from None
    rows: dict[str, list] = {
        k: []
        for k in (
            "pair",
            "image",
            "band",
            "score_ref",
            "score",
            "absolute",
            "directed",
            "decision",
            "same",
        )
    }
    for record in read_results(results):
        if "error" in record:
            continue
        for side in ("a", "b"):
            for band, (s, ab, di) in enumerate(
                zip(
                    record[side]["scores"],
                    record[side]["absolute"],
                    record[side]["directed"],
                    strict=True,
                )
            ):
                for key, value in zip(
                    rows,
                    (
                        record["index"],
                        side,
                        band,
                        record["score_ref"],
                        s,
                        ab,
                        di,
                        record["decision"],
                        record.get("same"),
                    ),
                    strict=True,
                ):
                    rows[key].append(value)
    with atomic.atomic_open(target, "wb") as handle:
        pq.write_table(pa.table(rows), handle)
