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

import threading
import time
from queue import Empty, SimpleQueue
from typing import Any

from .._execution import Execution, Supervised
from .._plan import Node, Plan, RunConfig
from .._transport._local import LocalEdge
from .._stats import StatsTable
from .._worker import Outcome, run_worker

__all__ = ["start"]

_WAKE = Outcome(-1, -1, aborted=True)


def start(plan: Plan, config: RunConfig) -> Execution:
    """Run ``plan`` on threads."""
    return Supervised(plan, config, ThreadEngine(plan))


class ThreadEngine:
    def __init__(self, plan: Plan) -> None:
        self._plan = plan
        self._edges = [LocalEdge(e.capacity, e.producers, e.consumers) for e in plan.edges]
        self._outcomes: SimpleQueue[Outcome] = SimpleQueue()
        self._threads: list[threading.Thread] = []
        self.output = self._edges[-1].receiver() if plan.open else None
        names = plan.stat_names()
        self.stats = StatsTable(names, bytearray(StatsTable.size(names)))

    def launch(self) -> None:
        edges = self._edges
        for node in self._plan.nodes:
            for worker in range(node.workers):
                receiver = edges[node.index - 1].receiver() if node.index > 0 else None
                sender = edges[node.index].sender() if node.index < len(edges) else None
                thread = threading.Thread(
                    target=self._work,
                    args=(node, worker, receiver, sender),
                    name=f"streamflow-{node.name}-{worker}",
                    daemon=True,
                )
                self._threads.append(thread)
                thread.start()

    def _work(self, node: Node, worker: int, receiver: Any, sender: Any) -> None:
        row = self.stats.row(node.index, worker)
        self._outcomes.put(run_worker(node, worker, receiver, sender, row))

    def wait(self, timeout: float | None) -> list[Outcome]:
        try:
            first = self._outcomes.get(timeout=timeout)
        except Empty:
            return []
        outcomes = [first]
        while True:
            try:
                outcomes.append(self._outcomes.get_nowait())
            except Empty:
                break
        return [o for o in outcomes if o is not _WAKE]

    def wake(self) -> None:
        self._outcomes.put(_WAKE)

    def progress(self) -> int:
        return sum(edge.moved for edge in self._edges)

    def abort(self) -> None:
        for edge in self._edges:
            edge.abort()

    def stop(self, grace: float) -> None:
        deadline = time.monotonic() + grace
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))

    def release(self) -> None:
        pass
