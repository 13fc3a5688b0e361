"""Workers as threads of the caller's process, for any backend.

The thread backend runs every worker this way; the engine of every other
backend runs this way the sources that cannot travel (generators, open
files), which are read in the caller and fed to the flow.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from queue import Empty, SimpleQueue
from .._records import Job, Record

__all__ = ["ThreadWorkers"]


class ThreadWorkers:
    """Run jobs on daemon threads; collect what they report; join them."""

    def __init__(self, finished: Callable[[], None] = lambda: None) -> None:
        """``finished`` is called (in the worker's thread) after each worker's last report."""
        self._finished = finished
        self._events: SimpleQueue[Record | None] = SimpleQueue()  # None: a wake-up
        self._threads: list[threading.Thread] = []

    def start(self, job: Job) -> None:
        """Run ``job`` on a new thread."""

        def work() -> None:
            job.main(job, self._events.put)
            self._finished()

        thread = threading.Thread(target=work, name=job.label, daemon=True)
        self._threads.append(thread)
        thread.start()

    def events(self, timeout: float | None = 0.0) -> list[Record]:
        """What was reported so far, waiting up to ``timeout`` for a first one (None: forever)."""
        collected: list[Record | None] = []
        try:
            if timeout != 0.0:
                collected.append(self._events.get(timeout=timeout))
            while True:
                collected.append(self._events.get_nowait())
        except Empty:
            pass
        return [event for event in collected if event is not None]

    def wake(self) -> None:
        """Make a pending ``events`` call return now."""
        self._events.put(None)

    def join(self, deadline: float) -> None:
        """Wait for every thread until ``deadline`` (``time.monotonic``); a stuck one stays a daemon."""
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))
