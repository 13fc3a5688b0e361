"""Workers run as threads of the caller's process, for any backend.

The thread backend runs every worker this way; the process and Ray
backends run this way the sources that cannot travel (generators, open
files), which are read in the caller and fed to the flow.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from queue import Empty, SimpleQueue
from typing import Any

from .._plan import Node
from .._transport import Receiver, Sender
from .._worker import Outcome, run_worker

__all__ = ["WorkerThreads"]


class WorkerThreads:
    """Start workers as daemon threads; collect their outcomes; join them."""

    def __init__(self, finished: Callable[[], None] = lambda: None) -> None:
        """``finished`` is called (in the worker's thread) after each outcome is queued."""
        self._finished = finished
        self._outcomes: SimpleQueue[Outcome] = SimpleQueue()
        self._threads: list[threading.Thread] = []

    def start(
        self,
        node: Node,
        worker: int,
        ends: Callable[[], tuple[Receiver | None, Sender | None]],
        row: Any,
    ) -> None:
        """Run worker ``worker`` of ``node``; ``ends()`` makes its edge ends, in its thread."""

        def work() -> None:
            receiver, sender = ends()
            self._outcomes.put(run_worker(node, worker, receiver, sender, row))
            self._finished()

        thread = threading.Thread(target=work, name=f"streamflow-{node.name}-{worker}", daemon=True)
        self._threads.append(thread)
        thread.start()

    def outcomes(self, timeout: float | None = 0.0) -> list[Outcome]:
        """The outcomes queued so far, waiting up to ``timeout`` for a first one (None: forever)."""
        collected = []
        try:
            if timeout != 0.0:
                collected.append(self._outcomes.get(timeout=timeout))
            while True:
                collected.append(self._outcomes.get_nowait())
        except Empty:
            pass
        return collected

    def put(self, outcome: Outcome) -> None:
        """Queue ``outcome`` as if a worker had ended with it (to wake a waiter)."""
        self._outcomes.put(outcome)

    def join(self, deadline: float) -> None:
        """Wait for every thread until ``deadline`` (``time.monotonic``); a stuck one stays a daemon."""
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))
