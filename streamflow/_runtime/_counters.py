"""A worker's counters: plain attributes on its path, written to the run's table by time.

::

    worker, per packet                      flusher thread, one a process       caller
    ------------------                      -----------------------------       ------
    counters.items_in += 1                  every 0.1 s: counters.write()  -->  StatsTable row
    (an end about to block:                 (a wait in progress counts           (shared memory for
      with counters.input: ...)               up to the moment of writing)        worker processes)

On its path a worker only updates attributes of its ``Counters``: no lock,
no shared memory, no clock read.  Its ends time the waits that block, on
the worker's two clocks (``_transport._clock``).  The process's flusher
writes every registered worker's row every ``INTERVAL`` seconds, so the
caller's numbers are never older than that, whatever the pace of the
stage; a worker writes its row once more as it ends.
"""

from __future__ import annotations

import os
import threading
from time import perf_counter
from typing import Any

from .._stats import BLOCKED, ITEMS_IN, ITEMS_OUT, RETRIES, SKIPS, TIMEOUTS, WAITING
from .._transport._clock import Clock

__all__ = ["INTERVAL", "Counters", "counting"]

INTERVAL = 0.1  # seconds between writes of the counters


class Counters:
    """What one worker has done, kept where it is cheap to update."""

    __slots__ = ("row", "items_in", "items_out", "input", "output", "retries", "skips", "timeouts")

    def __init__(self, row: Any) -> None:
        self.row = row
        self.items_in = int(row[ITEMS_IN])  # a worker taking over a row goes on counting
        self.items_out = int(row[ITEMS_OUT])
        self.input = Clock(row[WAITING])  # waiting for input
        self.output = Clock(row[BLOCKED])  # waiting for a free output slot
        self.retries = int(row[RETRIES])  # what the stage's failure policy did
        self.skips = int(row[SKIPS])
        self.timeouts = int(row[TIMEOUTS])

    def write(self) -> None:
        """Write the counters to the row, counting a wait in progress up to now."""
        now = perf_counter()
        row = self.row
        row[ITEMS_IN] = self.items_in
        row[ITEMS_OUT] = self.items_out
        row[WAITING] = self.input.read(now)
        row[BLOCKED] = self.output.read(now)
        row[RETRIES] = self.retries
        row[SKIPS] = self.skips
        row[TIMEOUTS] = self.timeouts


class _Flusher:
    """Writes the counters of this process's workers every ``INTERVAL`` seconds."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: list[Counters] = []
        self._stop: threading.Event | None = None  # the running thread's, set when no worker is left

    def add(self, counters: Counters) -> None:
        with self._lock:
            self._counters.append(counters)
            if self._stop is None:
                self._stop = threading.Event()
                thread = threading.Thread(target=self._run, args=(self._stop,), name="streamflow-counters", daemon=True)
                thread.start()

    def remove(self, counters: Counters) -> None:
        """Stop writing ``counters``, then write them a last time (no write of ours follows)."""
        with self._lock:
            self._counters.remove(counters)
            if not self._counters and self._stop is not None:
                self._stop.set()
                self._stop = None
        counters.write()

    def _run(self, stop: threading.Event) -> None:
        while not stop.wait(INTERVAL):
            with self._lock:
                for counters in self._counters:
                    counters.write()

    def forget(self) -> None:
        """In a forked child: the parent's workers and thread are not here."""
        self._lock = threading.Lock()
        self._counters = []
        self._stop = None


_flusher = _Flusher()
os.register_at_fork(after_in_child=_flusher.forget)


class counting:
    """Within this block, ``counters`` reach their row by time."""

    __slots__ = ("_counters",)

    def __init__(self, counters: Counters) -> None:
        self._counters = counters

    def __enter__(self) -> Counters:
        _flusher.add(self._counters)
        return self._counters

    def __exit__(self, *exc: object) -> None:
        _flusher.remove(self._counters)
