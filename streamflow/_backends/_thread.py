"""The thread backend: every worker a thread of the calling process.

::

    node 0 workers --LocalEdge 0--> node 1 workers --LocalEdge 1--> ... --> caller
         \\_____________________ Outcome SimpleQueue ____________________/
                                        |
                                  supervisor thread

Same semantics as the process backend; useful when stages release the GIL
(numpy, I/O) or for debugging with shared state.  A thread cannot be
killed: one stuck in user code past ``shutdown_timeout`` is left running as
a daemon thread, and the run ends without it.
"""

from __future__ import annotations

import time

from .._execution import Execution, Supervised
from .._plan import Plan, RunConfig
from .._transport._local import LocalEdge
from .._stats import StatsTable
from .._worker import Outcome
from ._threads import WorkerThreads

__all__ = ["start"]

_WAKE = Outcome(-1, -1, aborted=True)


def start(plan: Plan, config: RunConfig) -> Execution:
    """Run ``plan`` on threads."""
    return Supervised(plan, config, ThreadEngine(plan))


class ThreadEngine:
    def __init__(self, plan: Plan) -> None:
        self._plan = plan
        self._edges = [LocalEdge(e.capacity, e.producers, e.consumers) for e in plan.edges]
        self._workers = WorkerThreads()
        self.output = self._edges[-1].receiver() if plan.open else None
        names = plan.stat_names()
        self.stats = StatsTable(names, bytearray(StatsTable.size(names)))

    def launch(self) -> None:
        edges = self._edges
        for node in self._plan.nodes:
            for worker in range(node.workers):
                receiver = edges[node.index - 1].receiver() if node.index > 0 else None
                sender = edges[node.index].sender() if node.index < len(edges) else None
                ends = (lambda r=receiver, s=sender: (r, s))
                self._workers.start(node, worker, ends, self.stats.row(node.index, worker))

    def wait(self, timeout: float | None) -> list[Outcome]:
        return [o for o in self._workers.outcomes(timeout) if o is not _WAKE]

    def wake(self) -> None:
        self._workers.put(_WAKE)

    def progress(self) -> int:
        return sum(edge.moved for edge in self._edges)

    def abort(self) -> None:
        for edge in self._edges:
            edge.abort()

    def stop(self, grace: float) -> None:
        self._workers.join(time.monotonic() + grace)

    def release(self) -> None:
        pass
