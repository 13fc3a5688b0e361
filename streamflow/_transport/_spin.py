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

Spinning pays only while a core is free.  When the flow's processes (or
anyone's) outnumber the cores and some of them are busy, a waiter's yield
hands its core to a busy process for a whole time slice (milliseconds): the
hand-off it waits for arrives that much later, and the busy stages
downstream of it starve.  A sleeper, woken by the kernel, is scheduled at
once instead.  So a waiter times each yield: one that took longer than
``_CROWDED_NS`` gave the core away for a slice.  Where that is rare (one
spinning wait in ``_OFTEN`` or fewer lately: the machine busy for a moment), the
process stops spinning for ``_QUIET_PER_LOST`` times what the yield lost,
a few milliseconds; where it is common (a flow around CPU-bound stages,
on cores its processes outnumber), for ``_QUIET_CROWDED_NS``.  Measured on
two cores: a hand-off flow's spinners lose a slice about once in 100,000
yields, a CPU-bound flow's about once in 30 to 300 waits (and before this rule,
a flow of seven processes around a CPU-bound stage ran 20% slower than
unspun; see ``python -m benchmarks --only cpu-flow``).

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

_CROWDED_NS = 1_000_000  # a yield this long gave the core to someone busy: a time slice, not a hand-off
_OFTEN = 1000  # waits whose yield lost a slice, more often than one in this many: the cores are crowded
_QUIET_CROWDED_NS = 500_000_000  # then no spinning for this long
_QUIET_PER_LOST = 10  # a rare one: no spinning for this many times what it lost
_DECAY = 100_000  # spinning waits counted before the counts are halved

_now = time.perf_counter_ns  # the clock of ``Clock``, in nanoseconds
_yield = os.sched_yield


class _Crowding:
    """Whether this process's waiters should spin: not while the cores are crowded."""

    __slots__ = ("quiet_until", "spins", "lost")

    def __init__(self) -> None:
        self.quiet_until = 0  # ``_now()`` before which waits sleep at once
        self.spins = 0  # waits that spun, lately
        self.lost = 0  # of them, those whose yield gave the core away for a slice

    def crowded(self, now: int, lost: int) -> None:
        """A yield that ended at ``now`` lost ``lost`` nanoseconds to another process."""
        if self.spins > _DECAY:  # follow the flow's phases: what happened long ago counts half
            self.spins //= 2
            self.lost //= 2
        self.lost += 1
        often = self.lost > 1 and self.lost * _OFTEN > self.spins  # twice at least: one may be start-up
        self.quiet_until = now + (_QUIET_CROWDED_NS if often else lost * _QUIET_PER_LOST)


_crowding = _Crowding()


def _forget_crowding() -> None:
    """A forked worker starts with its own view of the cores (its parent's is not its)."""
    _crowding.quiet_until = _crowding.spins = _crowding.lost = 0


os.register_at_fork(after_in_child=_forget_crowding)


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
        crowding = _crowding
        if spin and budget > 0 and start >= crowding.quiet_until:
            crowding.spins += 1
            deadline = start + budget
            before = start
            while True:
                _yield()
                after = _now()
                lost = after - before > _CROWDED_NS  # someone busy had this core: sleeping is better
                if lost:
                    crowding.crowded(after, after - before)
                if acquire(False):
                    return True
                if lost or after >= deadline:
                    break
                before = after
        acquire(True)
        return budget > 0 and _now() - start <= _WORTH * budget
    finally:
        if clock is not None:
            clock.total += _now() / 1e9 - clock.since
            clock.since = 0.0
