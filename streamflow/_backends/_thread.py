"""The thread backend: every worker a thread of the calling process.

::

    node 0 workers --LocalEdge 0--> node 1 workers --LocalEdge 1--> ... --> caller
         \\____________________ events (SimpleQueue) ____________________/
                                        |
                                  supervisor thread

Same semantics as the process backend; useful when stages release the GIL
(numpy, I/O) or for debugging with shared state.  A thread cannot be
killed: one stuck in user code past ``shutdown_timeout`` is left running as
a daemon thread, and the run ends without it.
"""

from __future__ import annotations

import time
from typing import Any

from .._options import RunConfig
from .._plan import Link, Plan
from .._transport._local import LocalEdge
from .._transport._memory import LocalBuffer
from .._transport._sem import Semaphore
from .._records import Job, Record
from . import ThreadWorkers, WorkerBackend

__all__ = ["BACKEND", "ThreadBackend"]


class ThreadBackend(WorkerBackend):
    stops_calls = False  # a thread cannot be interrupted in the middle of a call
    shares_memory = True  # threads share the process

    def __init__(self, plan: Plan, config: RunConfig) -> None:
        self._workers = ThreadWorkers()

    def edge(self, link: Link) -> LocalEdge:
        return LocalEdge(link.capacity, link.producers, link.consumers, numbered=link.consumer_ordered)

    def memory(self, size: int, what: str) -> LocalBuffer:
        return LocalBuffer(size)

    def semaphore(self, value: int) -> Semaphore:
        return Semaphore(value, prefix="sf-thread", inherited=True)  # C-level, no Python lock

    def start(self, job: Job) -> None:
        self._workers.start(job)

    def wait(self, timeout: float | None) -> list[Record]:
        return self._workers.events(timeout)

    def wake(self) -> None:
        self._workers.wake()

    def kill(self, node: int, worker: int) -> None:
        raise NotImplementedError("a thread cannot be ended from outside (and takes no timeout)")

    def stop(self, grace: float) -> None:
        self._workers.join(time.monotonic() + grace)

    def release(self) -> None:
        pass


BACKEND = ThreadBackend
