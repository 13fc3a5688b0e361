"""What every parallel backend does alike, written once: the life of a run's workers.

::

    Engine                                     backend (mechanism)
    ------                                     -------------------
    edges: one a link  <--------------------   edge(link)
    stats: one row a worker  <--------------   memory(size)
    launch: a Job a worker  ---------------->  start(job)           (or a caller thread,
    wait: events and Outcomes  <------------   wait(timeout)         for one-shot sources)
    abort: every edge; stop; release  ------>  stop(grace), release()

Shutdown order: abort the edges (every blocked worker wakes), stop the
workers (grace, then force), then, once the caller has let go of the last
edge, release the edges, the statistics and the backend.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable
from typing import Any

from .._backends import Backend, Job, Memory
from .._backends._thread_workers import ThreadWorkers
from .._plan import Plan
from .._stats import StatsTable
from .._transport import Edge, Receiver
from ._relay import caller_settings
from ._signals import check_interrupt
from ._worker import run_job

__all__ = ["Engine"]


class Engine:
    """A plan's edges, statistics and workers on one backend."""

    def __init__(self, plan: Plan, backend: Backend) -> None:
        self._plan = plan
        self._backend = backend
        self._edges: list[Edge] = []
        self._memory: Memory | None = None
        self._released = False
        names = plan.stat_names()
        try:
            for link in plan.links:
                self._edges.append(backend.edge(link))
            self._memory = backend.memory(StatsTable.size(names), "the run's statistics")
        except BaseException:
            self.release()
            raise
        self.stats = StatsTable(names, self._memory.memory)
        # Not backend.wake itself: the engine must not keep itself alive through its threads.
        self._callers = ThreadWorkers(finished=_waker(backend))
        output = plan.output
        self.output: Receiver | None = None if output is None else self._edges[output.index].receiver(0)

    def launch(self) -> None:
        """Start every worker of every node; stops early on a held-back Ctrl-C."""
        assert self._memory is not None
        settings = caller_settings()
        for node in self._plan.nodes:
            for worker in range(node.workers):
                job = Job(
                    node=node,
                    worker=worker,
                    inputs=tuple(self._edges[i] for i in node.inputs),
                    outputs=tuple(self._edges[i] for i in node.outputs),
                    stats=self._memory,
                    row=self.stats.index(node.index, worker),
                    main=run_job,
                    settings=settings,
                )
                check_interrupt()
                (self._callers if node.in_caller else self._backend).start(job)

    def wait(self, timeout: float | None) -> list[Any]:
        """What workers reported within ``timeout`` seconds (events, then ``Outcome``s)."""
        return self._backend.wait(timeout) + self._callers.events()

    def wake(self) -> None:
        self._backend.wake()

    def progress(self) -> int:
        """A number that changes whenever a packet moves."""
        return 0 if self._released else sum(edge.moved() for edge in self._edges)

    def abort(self) -> None:
        """Wake every worker blocked on an edge with ``Aborted``."""
        if not self._released:
            for edge in self._edges:
                edge.abort()

    def stop(self, grace: float) -> None:
        """Wait up to ``grace`` seconds for workers to end, then force them."""
        deadline = time.monotonic() + grace
        self._backend.stop(grace)
        self._callers.join(deadline)

    def release(self) -> None:
        """Free the edges, the statistics and the backend; idempotent."""
        if self._released:
            return
        self._released = True
        for edge in self._edges:
            edge.close()
        if self._memory is not None:
            if hasattr(self, "stats"):
                self.stats.release()
            self._memory.close()
        self._backend.release()


def _waker(backend: Backend) -> Callable[[], None]:
    ref = weakref.ref(backend)

    def wake() -> None:
        target = ref()
        if target is not None:
            target.wake()

    return wake
