"""The time an end spends waiting, timed only when it waits.

A worker's statistics split its time into busy, waiting for input and
blocked on output.  Reading the clock around every packet costs more than
the rest of a small packet's trip through the worker loop, so each end
times only the waits that do block: its fast path (a packet is there, a
slot is free) reads no clock.  A worker hands its ends its own two clocks
(``Counters.input`` and ``Counters.output``); an end nobody counts (the
caller's) keeps one of its own that nobody reads.

::

    with self.clock:                 # only where the end is about to block
        acquire(True)

Ends between processes time their waits inside ``_spin.wait``, which
reads the same clock (``perf_counter``) as it spins anyway.
"""

from __future__ import annotations

from time import perf_counter

__all__ = ["Clock"]


class Clock:
    """Seconds spent waiting (``total``), and when the wait in progress began (``since``, 0.0: none)."""

    __slots__ = ("total", "since")

    def __init__(self, total: float = 0.0) -> None:
        self.total = total
        self.since = 0.0

    def __enter__(self) -> None:
        self.since = perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.total += perf_counter() - self.since
        self.since = 0.0

    def read(self, now: float) -> float:
        """The total, counting a wait in progress up to ``now`` (read from another thread)."""
        # In this order: a wait that ends in between is missed once, never counted twice;
        # one that began after ``now`` has nothing to count yet.
        total, since = self.total, self.since
        return total + (now - since if 0.0 < since < now else 0.0)
