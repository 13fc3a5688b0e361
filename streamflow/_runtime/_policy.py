"""Failure policies, once for every backend: retries, skips and per-item timeouts.

::

    input stream --> Feed --> stage function --> Resilient --> pump
                      ^  (the item put back        | an exception escaped:
                      |   for a retry)             |   retry (after a delay), skip (record it) or raise;
                      +----------------------------+   then call the function again on the rest

A stage without a policy runs without any of this (``Resilient`` is not
even built).  Under a policy, "the item" is the last input the function
pulled before it raised: the function is called again on the rest of its
input, starting with that item (retry) or after it (skip); outputs it
yielded before raising stay delivered.  A map stage's function is called
once per item, so there the item is exact, and there is nothing to
restart: ``each_resilient`` retries the call itself, at the cost of a
``try`` block an item.

``timeout`` is an interval timer (``SIGALRM``) that runs only while the
stage's own code runs on an item: it stops while the worker waits for
input or for room downstream, and starts afresh for each item.  Its
handler raises ``ItemTimeout`` in the stage's code, and only there; if it
rings while the runtime's code runs, the item fails as the stage resumes.
It needs the worker to be its process's main thread: the process and ray
backends; others reject ``timeout`` when the run starts.  Native code that
holds the interpreter cannot be interrupted: the alarm also writes a
deadline, ``OVERRUN_GRACE`` seconds later, to the worker's stats row, and
the supervisor ends a worker still running past it; it is replaced like
any that dies (``crash_error`` tells the two apart by that deadline).

Whether a failed item is retried, skipped or raised is ``_decide``'s, the
one rule that every path follows.  A worker that dies under a policy that
retries or skips is replaced by the supervisor; the item it held is
settled there (``Held``, ``crash_error``).
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from .._errors import ItemTimeout, OptionError
from .._plan import Node
from .._records import FailureEvent, PortableError
from .._stats import OVERRUN_AT
from .._transport import HOLE
from ._decide import decide

if TYPE_CHECKING:
    from ._body import Body

__all__ = ["OVERRUN_GRACE", "Alarm", "Count", "Feed", "Record", "Resilient", "alarm_for", "each_resilient"]

OVERRUN_GRACE = 1.0  # seconds past ``timeout`` before a worker stuck in native code is ended

Record = Callable[[FailureEvent], None]  # reports a skipped item to the caller
Count = Callable[[str, int], None]  # count("retries" | "skips" | "timeouts", times)


class Feed:
    """A stage's input under a policy: the stream, with a failed item put back first."""

    __slots__ = ("_items", "alarm", "item", "position", "attempts", "taken", "again")

    def __init__(self, items: Iterator[Any], alarm: Alarm | None) -> None:
        self._items = items
        self.alarm = alarm  # the per-item timeout, if any
        self.item: Any = None  # the last item handed to the function
        self.position = 0  # how many items the stream has given so far
        self.attempts = 0  # of ``item``, counting the one in progress
        self.taken = False  # whether the function pulled an item since it was last called
        self.again = False  # ``item`` goes to the function once more

    def __iter__(self) -> Feed:
        return self

    def __next__(self) -> Any:
        alarm = self.alarm
        if alarm is not None:
            alarm.stop()  # waiting for input is not the item's time
        if self.again:
            self.again = False
        else:
            self.item = next(self._items)
            self.position += 1
            self.attempts = 1
        self.taken = True
        if alarm is not None:
            alarm.renew()
            alarm.start()
        return self.item

    def put_back(self) -> None:
        """Give the current item to the function again, as its next input."""
        self.again = True
        self.attempts += 1

    def restarted(self) -> None:
        self.taken = False

    def finish(self) -> None:
        finish = getattr(self._items, "finish", None)
        if finish is not None:
            finish()


def each_resilient(
    node: Node, worker: int, body: Body, items: Iterator[Any], alarm: Alarm | None, record: Record, count: Count
) -> Iterator[Any]:
    """A map stage's outputs under ``node``'s failure policy: each call tried, retried or skipped.

    In a zip's branch (``node.holes``), a skipped item leaves a ``HOLE`` in its place, and a
    hole from upstream passes through, so that the branch keeps one output per input.
    """
    function, constants = body.per_item()
    options = node.options
    holes = node.holes
    for item in items:
        if holes and item is HOLE:
            yield HOLE
            continue
        attempts = 1
        while True:
            try:
                if alarm is not None:
                    alarm.renew()
                    alarm.start()
                try:
                    output = function(item, **constants)
                finally:
                    if alarm is not None:
                        alarm.stop()
            except Exception as error:  # noqa: BLE001 - the policy decides
                decision = decide(error, attempts, options)
                if decision.timed_out:
                    count("timeouts", 1)
                if decision.action == "retry":
                    count("retries", 1)
                    time.sleep(decision.delay)
                    attempts += 1
                    continue
                if decision.action == "raise":
                    raise
                count("skips", 1)
                record(FailureEvent(node.index, worker, item, PortableError(error), attempts))
                if holes:
                    yield HOLE
                break
            yield output
            break


class Resilient:
    """A stage's outputs under ``node``'s failure policy; the function is called again after a failure."""

    __slots__ = ("_node", "_worker", "_body", "_feed", "_record", "_count", "_alarm", "_outputs")

    def __init__(
        self,
        node: Node,
        worker: int,
        body: Body,
        feed: Feed,
        record: Record,
        count: Count,
    ) -> None:
        """``record`` reports a skipped item; ``count`` counts what the policy did."""
        self._node = node
        self._worker = worker
        self._body = body
        self._feed = feed
        self._record = record
        self._count = count
        self._alarm = feed.alarm
        self._outputs: Iterator[Any] = iter(body.call(feed))

    def __iter__(self) -> Resilient:
        return self

    def __next__(self) -> Any:
        alarm = self._alarm
        while True:
            try:
                if alarm is not None:
                    alarm.start()
                try:
                    return next(self._outputs)
                finally:
                    if alarm is not None:
                        alarm.stop()
            except StopIteration:
                raise
            except Exception as exc:  # noqa: BLE001 - the policy decides
                self._failed(exc)

    def _failed(self, error: Exception) -> None:
        """Retry, skip or raise ``error``; after a retry or a skip, call the function again."""
        feed = self._feed
        _close(self._outputs)
        decision = decide(error, feed.attempts, self._node.options)
        if decision.timed_out:
            self._count("timeouts", 1)
        if feed.position == 0 or not (feed.taken or feed.again):
            raise error  # not an item's failure: the function fails without input
        if decision.action == "retry":
            self._count("retries", 1)
            time.sleep(decision.delay)
            feed.put_back()
        elif decision.action == "skip":
            self._count("skips", 1)
            self._record(
                FailureEvent(self._node.index, self._worker, feed.item, PortableError(error), feed.attempts)
            )
        else:
            raise error
        feed.restarted()
        self._outputs = iter(self._body.call(feed))

    def close(self) -> None:
        _close(self._outputs)


def _close(outputs: Iterator[Any]) -> None:
    close = getattr(outputs, "close", None)
    if close is not None:
        try:
            close()
        except Exception:  # noqa: BLE001 - its error is not the item's
            pass


class Alarm:
    """A per-item budget of ``seconds`` of the stage's own time, enforced with ``SIGALRM``.

    Starting and stopping the clock costs a clock read and no system call:
    the interval timer is set only when none is pending, and a timer that
    rings before the item's deadline (the clock was stopped or renewed since
    it was set) is set again for what is left.  So a stage whose items stay
    within budget takes one signal per ``seconds``, not two system calls an
    item.  While the clock runs, the moment ``OVERRUN_GRACE`` seconds after
    the deadline is in ``row``: past it, the supervisor ends the worker
    (code the signal cannot interrupt), and can say why it died.
    """

    __slots__ = ("_seconds", "_left", "_deadline", "_running", "_pending", "_previous", "_row")

    def __init__(self, seconds: float, row: Any) -> None:
        if threading.current_thread() is not threading.main_thread():
            raise OptionError(
                f"timeout={seconds:g} needs each worker to be a process's main thread, and this "
                "one is not: run the stage on the process or ray backend"
            )
        self._seconds = seconds
        self._left = seconds  # of the current item's budget, while the clock is stopped
        self._deadline = 0.0  # when the budget runs out, while the clock runs
        self._running = False
        self._pending = False  # the interval timer is set
        self._row = row
        self._previous = signal.signal(signal.SIGALRM, self._ring)

    def _ring(self, signum: int, frame: Any) -> None:
        self._pending = False
        if not self._running:
            return  # the next ``start`` sets the timer again
        left = self._deadline - time.perf_counter()
        if left > 0:
            self._set(left)
            return
        self._running = False
        self._left = self._seconds  # this item is over; the next one starts afresh
        raise ItemTimeout(f"an item took longer than timeout={self._seconds:g} s")

    def _set(self, seconds: float) -> None:
        self._pending = True
        signal.setitimer(signal.ITIMER_REAL, max(seconds, _TICK))  # a zero would clear it

    def start(self) -> None:
        left = self._left
        if left <= 0:  # it ran out while the runtime's code ran: the item fails as the stage resumes
            self._left = self._seconds
            raise ItemTimeout(f"an item took longer than timeout={self._seconds:g} s")
        self._deadline = deadline = time.perf_counter() + left
        if self._row is not None:
            self._row[OVERRUN_AT] = deadline + OVERRUN_GRACE
        self._running = True
        if not self._pending:
            self._set(left)

    def stop(self) -> None:
        if self._running:
            self._running = False
            self._left = self._deadline - time.perf_counter()
        if self._row is not None:
            self._row[OVERRUN_AT] = 0.0

    def renew(self) -> None:
        self._left = self._seconds

    def close(self) -> None:
        self.stop()
        signal.setitimer(signal.ITIMER_REAL, 0)
        self._pending = False
        signal.signal(signal.SIGALRM, self._previous)


_TICK = 0.001  # the shortest timer ``Alarm`` sets, in seconds


def alarm_for(node: Node, row: Any = None) -> Alarm | None:
    """The alarm that enforces ``node``'s ``timeout``, if it has one; ``row``: the worker's stats."""
    timeout = node.options.timeout
    if timeout is None or node.is_async:  # an async stage's calls are cancelled instead (``_async``)
        return None
    return Alarm(timeout, row)
