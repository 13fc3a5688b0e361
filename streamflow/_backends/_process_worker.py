"""A worker process's own side: how it starts, reports to its caller, and watches it.

::

    caller                                  worker process (forked, spawned, or from the fork server)
    ------                                  -------------------------------------------------------
    report pipe (read end)  <-- STARTED --  worker_main: ignores SIGINT, watches the caller's pidfd
                            <-- records --  job.main(job, report): each record pickled for the caller
    the caller dies  ----------(pidfd)--->  watchdog thread: sweeps the run's names, exits

Imported by the process backend, which starts workers with ``worker_main``,
and by the fork server, which imports it ahead so that its workers start
with it loaded.
"""

from __future__ import annotations

import multiprocessing.connection
import os
import pickle
import select
import signal
import threading
from typing import Any

from .._records import Job, Record
from .._transport._memory import sweep
from .._transport._serialize import Reader, dumps, dumps_job

__all__ = ["STARTED", "Shipped", "worker_main"]

STARTED = b"S"  # a worker that opened its edges' semaphores by name says so first


class Shipped:
    """A job on its way to a spawned worker, pickled by ``dumps_job``."""

    def __init__(self, job: Job) -> None:
        self.job = job

    def __reduce__(self) -> tuple[Any, ...]:
        return (pickle.loads, (dumps_job(self.job),))


def worker_main(
    job: Job, writer: multiprocessing.connection.Connection, announce: bool, run_id: str, caller: int
) -> None:
    """Entry point of a worker process; ``caller`` is the pid of the process that runs the flow."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the caller's to handle
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not a handler the caller had when it forked
    _watch_caller(caller, run_id)
    if announce:
        writer.send_bytes(STARTED)
    lock = threading.Lock()  # threads of the stage may log at once

    def report(event: Record) -> None:
        data = dumps(event, Reader.CALLER)
        with lock:
            writer.send_bytes(data)

    job.main(job, report)


def _watch_caller(caller: int, run_id: str) -> None:
    """Exit this worker as soon as the caller's process is gone (SIGKILL, SIGTERM).

    The caller cannot clean up after itself then; every worker sweeps the
    run's names on its way out, so none outlives the run.  The caller is
    the worker's parent, or, from a fork server, its grandparent: it is
    watched through a pidfd either way.
    """
    try:
        pidfd = os.pidfd_open(caller)
    except ProcessLookupError:
        sweep(run_id)
        os._exit(1)

    def watch() -> None:
        select.select([pidfd], [], [])
        sweep(run_id)
        os._exit(1)

    threading.Thread(target=watch, name="streamflow-watchdog", daemon=True).start()
