"""One run skeleton: plan → stream → record → summarise, in one locked, resumable run folder.

Dataset, cross-resolution and morph runs are :class:`Run` subclasses that fill in the steps;
:func:`execute` does the rest, the same for all of them:

1. **The folder** (:func:`run_folder`): locked for the whole run
   (:func:`~freqxfr.runs.folder.locked_folder`), image reads confined to the root, started over
   on ``--restart``, its settings recorded in ``run.json`` or checked against it
   (:func:`~freqxfr.runs.folder.check_settings`).
2. **Plan**: the results log (:class:`~freqxfr.runs.folder.ResultsLog`) is opened, which drops a
   crash's partial line and the failures (they are tried again); finished chunks a killed Dask
   client left behind (``OUT/parts``) are merged into it; :meth:`Run.plan` says what is left.
3. **Stream and record**: :meth:`Run.stream` explains what is left through the one pair stream
   (:mod:`freqxfr.explanations.stream`) and each record is appended as it finishes. On a Dask
   cluster (``client``) the same work goes through the other stream of the skeleton:
   :meth:`Run.chunks` splits it, :func:`freqxfr.runs.distributed.explain_chunks` runs the run's
   own chunk task on the workers and merges their parts into the log.
4. **Summarise**: :meth:`Run.summarise` writes the summary from the records on disk (never from
   numbers in memory, so that a resumed run writes what an uninterrupted one writes).

Interrupts (SIGINT, SIGTERM) end a run between two records: the lock is released and the next
run resumes from the log. The comparison of runs (:mod:`freqxfr.runs.comparison`) explains
nothing; it uses the folder step alone (:func:`run_folder` without a record).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from freqxfr.common.progress import progress_bar
from freqxfr.explanations.pairs import Pair, outside_root
from freqxfr.imaging.images import confined_reads
from freqxfr.runs import distributed
from freqxfr.runs.folder import (
    ResultsLog,
    check_output_kind,
    check_settings,
    clear_run_folder,
    locked_folder,
)

PathLike = str | os.PathLike[str]


@contextlib.contextmanager
def run_folder(
    out_dir: PathLike,
    *,
    command: str,
    record: Mapping[str, Any] | None = None,
    root: PathLike | None = None,
    allow_outside_root: bool = False,
    restart: bool | Callable[[Path], bool] = False,
    resumable: bool = True,
) -> Iterator[Path]:
    """The run folder of a command: locked, image reads confined to ``root`` (unless
    ``allow_outside_root``), emptied first if ``restart`` (or ``restart(folder)``) says so, and
    ``record`` written to ``run.json`` or checked against it (a restart with other settings is
    refused, naming each)."""
    with (
        locked_folder(out_dir, command=command, resumable=resumable) as out,
        confined_reads(root, allow_outside_root=allow_outside_root),
    ):
        if restart(out) if callable(restart) else restart:
            clear_run_folder(out)
        if record is not None:
            check_output_kind(out, "run", command=command, hint="choose another --out")
            check_settings(out / "run.json", record)
        yield out


def refused_pairs(
    pairs: Sequence[Pair], root: PathLike | None, allow_outside_root: bool, pairs_file: str
) -> dict[int, str]:
    """The pairs the root rule refuses, by position, with the reason (none without a root)."""
    if root is None or allow_outside_root:
        return {}
    return outside_root(pairs, root, pairs_file=pairs_file or "pair list")


@dataclasses.dataclass(eq=False, kw_only=True)
class Run:
    """The steps one kind of run fills in (see the module docstring); :func:`execute` runs them.

    A subclass is a dataclass of the run's arguments (those of its ``run_*`` function, but the
    folder and the cluster), with class attributes ``command`` (named in the lock), ``results``
    (the results log's file name), ``desc`` and ``unit`` (the progress bar's). :func:`execute`
    sets ``out`` (the locked run folder) before it plans; ``extras`` collects what the stream
    reports besides records (e.g. images that could not be aligned), in order."""

    command: ClassVar[str]
    results: ClassVar[str]
    desc: ClassVar[str]
    unit: ClassVar[str] = "pair"

    explainer: Any
    root: PathLike | None = None
    allow_outside_root: bool = False
    aligned: bool | None = None
    progress: bool = False
    out: Path = dataclasses.field(init=False)
    extras: list[Any] = dataclasses.field(init=False, default_factory=list)

    # -- what a run fills in --

    def record(self) -> Mapping[str, Any]:
        """The content of ``run.json`` (its ``settings`` are checked on a restart)."""
        raise NotImplementedError

    def starts_over(self, out: Path) -> bool:
        """Whether the folder's run is started over (``--restart``)."""
        return False

    def key(self, record: dict[str, Any]) -> Hashable | None:
        """The item a results record stands for, or ``None`` for an invalid record."""
        raise NotImplementedError

    def total(self) -> int:
        """Items of the whole run (for the progress bar)."""
        raise NotImplementedError

    def plan(self, done: set[Any]) -> list[Any]:
        """The items still to do, in order, given those ``done``."""
        raise NotImplementedError

    def prelude(self, todo: list[Any]) -> tuple[list[dict[str, Any]], list[Any]]:
        """Records that need no explaining (e.g. pairs refused by the root rule) and the items
        left to explain."""
        return [], todo

    def stream(self, todo: list[Any]) -> Iterator[dict[str, Any]]:
        """The records of ``todo`` in this process, in order, as each finishes."""
        raise NotImplementedError

    def chunks(self, todo: list[Any]) -> tuple[list[Any], Callable[..., Any], dict[str, Any]]:
        """``todo`` as Dask work: the items to split into chunks, the task
        ``task(explainer, chunk, **options) -> (records, extras)`` and its options."""
        raise NotImplementedError

    def summarise(self, out: Path, log: ResultsLog) -> dict[str, Any]:
        """Write the summary (and the other outputs) from the records on disk; return it."""
        raise NotImplementedError


def execute(run: Run, out_dir: PathLike, *, client: Any = None) -> dict[str, Any]:
    """Run ``run`` into ``out_dir``: folder → plan → stream → record → summarise (see the module
    docstring); on a Dask cluster with ``client``. Returns the summary."""
    with run_folder(
        out_dir,
        command=run.command,
        record=run.record(),
        root=run.root,
        allow_outside_root=run.allow_outside_root,
        restart=run.starts_over,
    ) as out:
        run.out = out
        with ResultsLog(out / run.results, key=run.key) as log:
            done = log.open()
            # Finished chunks of a killed cluster run count as done (failures are tried again).
            if distributed.Parts(out).merge_into(log, run.key, keep=lambda r: "error" not in r):
                log.close()
                done = log.open()
            todo = run.plan(done)
            total = run.total()
            bar = progress_bar(
                run.progress, total, done=total - len(todo), unit=run.unit, desc=run.desc
            )
            try:
                records, todo = run.prelude(todo)
                for record in records:
                    _append(log, record, bar)
                if client is None:
                    for record in run.stream(todo):
                        _append(log, record, bar)
                elif todo:  # the cluster's stream: parts merged into the log at the end
                    items, task, options = run.chunks(todo)
                    run.extras += distributed.explain_chunks(
                        client,
                        run.explainer,
                        items,
                        log,
                        key=run.key,
                        task=task,
                        bar=bar,
                        **options,
                    )
            finally:
                if bar is not None:
                    bar.close()
        return run.summarise(out, log)


def _append(log: ResultsLog, record: dict[str, Any], bar: Any) -> None:
    log.append(record)
    if bar is not None:
        bar.update(1)
