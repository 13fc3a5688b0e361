"""Waiting for a hand-off: retry for a moment, yielding the CPU, then sleep.

A hand-off to a process that sleeps in the kernel costs a wake-up: tens of
microseconds on virtual machines whose idle vCPUs halt (about 38 us on the
development machine), more than the rest of a small packet's trip.  A
waiter that keeps retrying without blocking sees the hand-off within a
microsecond instead.  So a waiter first retries for a bounded budget, then
sleeps as it would have.  Between tries it calls ``os.sched_yield()``: with
more processes than cores, a waiter that does not yield takes the core its
producer needs and makes everything slower.

Like glibc's adaptive mutexes, a waiter learns from its last wait: one
much longer than the budget (a CPU-bound producer, a slow source) means
spinning would have been wasted, so the next wait sleeps at once; spinning
resumes after a wait short enough to have been worth it.  So a stage that
waits on a slow producer spends at most one budget, not a core, and
spinners take no CPU from CPU-bound stages.  ``STREAMFLOW_SPIN_US`` sets
the budget (microseconds; 0 turns spinning off, for machines where idle
CPU matters more than latency).

Only edges between processes spin.  Between threads a waiter must take the
GIL for every try, from the very thread it waits for: measured, that made
the thread backend faster on some runs and slower on others.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from .._errors import OptionError
from ._clock import Clock

__all__ = ["DEFAULT_SPIN_US", "SPIN_ENV", "spin_budget", "wait"]

SPIN_ENV = "STREAMFLOW_SPIN_US"
DEFAULT_SPIN_US = 50.0  # in lockstep here 5 us caught no hand-off, 10-20 us most, 50 us all (100-200 us: the same)
_WORTH = 4  # a wait up to this many budgets long (a sleeper's wake-up included) was worth spinning for

_now = time.perf_counter_ns  # the clock of ``Clock``, in nanoseconds
_yield = os.sched_yield


def spin_budget(spin: float | None = None) -> int:
    """The spin budget in nanoseconds, from ``spin`` microseconds.

    ``None`` reads ``STREAMFLOW_SPIN_US`` (unset or empty: ``DEFAULT_SPIN_US``).
    Call it where the edge is built, in the caller: workers get the number
    inside the edge, whatever their environment.  Raises ``OptionError``.
    """
    if spin is not None:
        return _nanoseconds(spin, f"spin={spin!r}")
    text = os.environ.get(SPIN_ENV, "").strip()
    if not text:
        return _nanoseconds(DEFAULT_SPIN_US, "")
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    return _nanoseconds(value, f"{SPIN_ENV}={text!r}")


def _nanoseconds(microseconds: float, given: str) -> int:
    if not 0 <= microseconds < float("inf"):
        raise OptionError(
            f"{given} is not a spin budget; give microseconds >= 0 "
            f"(0 turns spinning off; the default is {DEFAULT_SPIN_US:g})"
        )
    return round(microseconds * 1000)


def wait(acquire: Callable[[bool], bool], budget: int, spin: bool = True, clock: Clock | None = None) -> bool:
    """Acquire a semaphore after ``acquire(False)`` failed; return whether the next wait should spin.

    Retries ``acquire(False)`` for ``budget`` nanoseconds (if ``spin``),
    yielding the CPU between tries, then blocks in ``acquire()`` until it
    succeeds.  No wake-up can be lost: the count lives in the semaphore and
    changes atomically, so a release made while we spin is seen by the next
    try, and one made after the last try is seen by the blocking acquire,
    which looks at the count before it sleeps.

    A wait far longer than the budget says the producer is slow (a
    CPU-bound stage, an idle source): the next wait sleeps at once, and
    spinning resumes after a wait short enough to have been worth it.

    ``clock`` times the wait, as ``with clock:`` would, on the clock reads
    the wait makes anyway: in lockstep every packet waits, at both ends.
    """
    start = _now()
    if clock is not None:
        clock.since = start / 1e9
    try:
        if spin and budget > 0:
            deadline = start + budget
            while True:
                _yield()
                if acquire(False):
                    return True
                if _now() >= deadline:
                    break
        acquire(True)
        return budget > 0 and _now() - start <= _WORTH * budget
    finally:
        if clock is not None:
            clock.total += _now() / 1e9 - clock.since
            clock.since = 0.0
