"""Where a run's work goes: one process, an existing Dask cluster, or a local one.

:func:`cluster_client` turns the command line's ``--scheduler ADDRESS`` / ``--workers N``
(``dataset``, ``crossres``, ``morph``; declared in :mod:`freqxfr.cli.options`) into a ``dask.distributed.Client`` (or
``None``: today's single-process path). Light on purpose: ``freqxfr --help`` imports it, and
Dask is imported only when a cluster is asked for. The distributed runs themselves are in
:mod:`freqxfr.runs.distributed`.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator
from typing import Any

from freqxfr.common.errors import FreqxfrError


class ClusterError(FreqxfrError):
    """The cluster cannot run this job (no Dask, no workers, other versions, another model)."""


@contextlib.contextmanager
def cluster_client(scheduler: str | None = None, workers: int | None = None) -> Iterator[Any]:
    """A Dask client for ``--scheduler``/``--workers``, or ``None`` (the single-process path).

    ``workers``: a LocalCluster of that many processes, one thread each, started here and
    closed on exit. Raises :class:`ClusterError` (one line) when Dask is missing or the
    scheduler cannot be reached."""
    if scheduler is None and workers is None:
        yield None
        return
    try:
        from distributed import Client, LocalCluster  # lazy: Dask is optional ([dask] extra)
    except ImportError:
        raise ClusterError(
            "--scheduler and --workers need Dask: pip install 'freqxfr[dask]'"
        ) from None
    if scheduler is not None:
        try:
            client = Client(scheduler)  # waits dask's distributed.comm.timeouts.connect
        except (OSError, TimeoutError) as exc:
            raise ClusterError(f"cannot reach the Dask scheduler {scheduler}: {exc}") from None
        with client:
            yield client
        return
    # dashboard ":0": any free port (None still binds the scheduler's HTTP server to 8787, and
    # warns when another cluster holds it). Started with SIGINT ignored, which the nanny and
    # worker processes inherit (Python and asyncio leave an ignored SIGINT alone): a Ctrl-C to
    # the process group then stops this process alone, with no KeyboardInterrupt tracebacks
    # from workers, and this block closes the cluster. SIGTERM waits while the cluster starts.
    with _children_deaf_to_signals():
        cluster = LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            # Worker-side errors reach this process as the tasks' exceptions; what workers log
            # at ERROR (a heartbeat to a scheduler that is closing, after a worker was killed
            # and replaced) is tracebacks that look like failure of a run that succeeded.
            silence_logs=logging.CRITICAL,
        )
        try:
            client = Client(cluster)
        except BaseException:
            cluster.close()
            raise
    with cluster, client:
        try:
            yield client
        except KeyboardInterrupt:
            # The run was stopped: what Dask logs while it cancels the work (the scheduler's
            # "Couldn't gather keys") is no news to the user, who gets one line.
            _quiet_dask_logs()
            raise


def _quiet_dask_logs() -> None:
    for name in list(logging.root.manager.loggerDict):
        if name == "distributed" or name.startswith("distributed."):
            logging.getLogger(name).disabled = True


@contextlib.contextmanager
def _children_deaf_to_signals() -> Iterator[None]:
    """For the block: SIGINT ignored (processes started inside inherit that; a Ctrl-C in the
    few seconds of the cluster's start is lost, press it again) and SIGTERM blocked in this
    thread (delivered when the block ends). Main thread only; the handlers come back after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
    previous_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous_int)
        signal.pthread_sigmask(signal.SIG_SETMASK, previous_mask)
