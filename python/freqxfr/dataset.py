"""Dataset runs: explain every pair of a list, streaming results to disk, resumably.

Layout of ``OUT``:

- ``run.json``: what the run explains (pair list, model, bands, options). A restart with other
  settings is refused, so that one results file never mixes two configurations.
- ``results.jsonl``: one line per pair, appended as each pair finishes (``Explanation.to_dict()``
  without the parts in ``run.json``, plus ``index``); a pair that failed gets ``{"index", "error"}``.
  A line is written with one ``write`` call and flushed; a crash can leave at most one partial
  last line, which a restart drops and redoes.
- ``summary.json``, ``report.html``: written atomically when every pair is done.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from . import atomic
from ._output import ensure_dir
from .errors import InputError, OutputError
from .explain import Explainer, Explanation, PairFailure
from .pairs import Pair
from .profiles import summarise

_STATIC_KEYS = ("model", "schedule", "bands", "backend", "mode", "domain", "clip", "freqxfr_version")


def run_config(explainer: Explainer, pairs_file: str, pairs: Sequence[Pair]) -> dict[str, Any]:
    listing = "\n".join(f"{p.path_a}\t{p.path_b}\t{p.same}" for p in pairs)
    return {
        "pairs_file": pairs_file,
        "pairs": len(pairs),
        "pairs_sha256": hashlib.sha256(listing.encode()).hexdigest(),
        "model": explainer.model_info(),
        "schedule": explainer.schedule.to_dict(),
        "bands": [b.to_dict() for b in explainer.bands],
        "backend": explainer.backend,
        "mode": explainer.mode,
        "domain": explainer.domain,
        "clip": explainer.clip,
        "threshold": explainer.model.card.threshold,
    }


def _comparable(config: dict[str, Any]) -> dict[str, Any]:
    # The provider and backend may differ between machines without changing the numbers' meaning.
    model = {k: v for k, v in config["model"].items() if k != "provider"}
    return {**{k: v for k, v in config.items() if k not in ("model", "backend")}, "model": model}


def run_dataset(
    pairs: Sequence[Pair],
    out_dir: str | os.PathLike[str],
    explainer: Explainer,
    *,
    pairs_file: str = "",
    progress: bool = True,
    overlap: bool = True,
    report: bool = True,
    parquet: bool = False,
    faithfulness_seeds: int | None = None,
) -> dict[str, Any]:
    """Explain every pair into ``out_dir`` (see the module docstring); returns the summary.

    An interrupted run continues where it stopped when called again with the same arguments.
    With ``faithfulness_seeds`` every explained pair also gets deletion/insertion curves against
    that many random orders (:mod:`freqxfr.faithfulness_run`), resumable the same way.
    """
    out = Path(out_dir)
    _prepare_folder(out)
    config = run_config(explainer, pairs_file, pairs)
    _check_or_write_config(out / "run.json", config)
    results = out / "results.jsonl"
    done = _finished_indices(results)
    todo = [i for i in range(len(pairs)) if i not in done]

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(pairs), initial=len(pairs) - len(todo), unit="pair",
                   desc="explaining", dynamic_ncols=True)
    try:
        with results.open("a", encoding="utf-8") as sink:
            stream = explainer.explain_pairs(
                (pairs[i] for i in todo), indices=todo, skip_errors=True, overlap=overlap
            )
            for index, item in zip(todo, stream, strict=True):
                sink.write(json.dumps(_record(index, item), allow_nan=False) + "\n")
                sink.flush()
                if bar is not None:
                    bar.update(1)
            os.fsync(sink.fileno())
    finally:
        if bar is not None:
            bar.close()

    summary = {**config, **summarise_results(results), "failed": _count_failures(results)}
    if faithfulness_seeds:
        from .faithfulness_run import run_faithfulness

        summary["faithfulness"] = run_faithfulness(pairs, out, explainer,
                                                   seeds=faithfulness_seeds, progress=progress)
    atomic.write_json(out / "summary.json", summary)
    if parquet:
        write_parquet(results, out / "results.parquet")
    if report:
        from .report import write_dataset_report

        write_dataset_report(out, summary)
    return summary


def _record(index: int, item: Explanation | PairFailure) -> dict[str, Any]:
    if isinstance(item, PairFailure):
        return {"index": index, "path_a": str(item.pair.path_a), "path_b": str(item.pair.path_b),
                "error": item.error}
    if isinstance(item, Explanation):
        record = {k: v for k, v in item.to_dict().items() if k not in _STATIC_KEYS}
        return {"index": index, **record}
    raise TypeError(item)


def read_results(path: Path) -> Iterator[dict[str, Any]]:
    """The complete records of a results file (a partial last line is ignored)."""
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if not line.endswith("\n"):
                return
            yield json.loads(line)


def summarise_results(path: Path) -> dict[str, Any]:
    return summarise(r for r in read_results(path) if "error" not in r)


def _count_failures(path: Path) -> int:
    return sum(1 for r in read_results(path) if "error" in r)


def _finished_indices(path: Path) -> set[int]:
    """Indices already in ``path``; drops a partial last line left by a crash."""
    if not path.exists():
        return set()
    done: set[int] = set()
    good_bytes = 0
    with path.open("rb") as handle:
        for line in handle:
            if not line.endswith(b"\n"):
                break
            try:
                done.add(int(json.loads(line)["index"]))
            except (ValueError, KeyError, TypeError):
                break
            good_bytes += len(line)
    if good_bytes != path.stat().st_size:
        with path.open("r+b") as handle:
            handle.truncate(good_bytes)
    return done


def _prepare_folder(out: Path) -> None:
    ensure_dir(out)
    try:
        probe = out / ".freqxfr-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise OutputError(f"output folder {out} can't be written: {exc.strerror or exc}") from None


def _check_or_write_config(path: Path, config: dict[str, Any]) -> None:
    if path.exists():
        try:
            previous = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise OutputError(f"{path} is unreadable ({exc}); use a new output folder") from None
        if _comparable(previous) != _comparable(config):
            changed = sorted(k for k in _comparable(config)
                             if _comparable(previous).get(k) != _comparable(config)[k])
            raise OutputError(
                f"{path.parent} holds a run with other settings ({', '.join(changed)} differ); "
                "use a new output folder or delete that one"
            )
        return
    atomic.write_json(path, config)


def write_parquet(results: Path, target: Path) -> None:
    """A tidy Parquet copy of the results (one row per pair × image × band); needs pyarrow."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise InputError("a Parquet copy needs pyarrow: pip install 'freqxfr[parquet]'") from None
    rows: dict[str, list] = {k: [] for k in ("pair", "image", "band", "score_ref", "score",
                                              "absolute", "directed", "decision", "same")}
    for record in read_results(results):
        if "error" in record:
            continue
        for side in ("a", "b"):
            for band, (s, ab, di) in enumerate(zip(record[side]["scores"], record[side]["absolute"],
                                                   record[side]["directed"], strict=True)):
                for key, value in zip(rows, (record["index"], side, band, record["score_ref"], s, ab,
                                             di, record["decision"], record.get("same")), strict=True):
                    rows[key].append(value)
    with atomic.atomic_open(target, "wb") as handle:
        pq.write_table(pa.table(rows), handle)
