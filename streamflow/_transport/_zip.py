"""An end that reads several edges: one item of each in turn, as one tuple (``sf.zip``'s join).

::

    branch 1's edge --+
    branch 2's edge --+--> ZipReceiver: next() takes one item from each, in branch order --> (a, b, ...)

The branches of a zip keep their inputs' order and give one output per
input, so the i-th item of every edge comes from the zip's i-th input.  A
branch that skipped an input sends a ``HOLE`` in its place: a tuple with a
hole is no tuple, and the receiver moves on to the next.  Consumers that
share the edges (several workers, or the stage's and nobody else's) take
a whole tuple under ``lock``, so that no two of them split one; a
consumer waiting for an item under it holds nothing another could use.

Waits: the receiver waits on one edge at a time, for the branch whose item
is next, and holds nothing while it waits: asking for a tuple first lets
go of every packet of the last one.  (Were it to keep the packet of one
branch while it waited for another, that branch could not take its next
input, its producer, a tee, could not send the next item, and the branch
waited for would never get it.)  The item it waits for comes from an
input already sent to every branch (``_fanout``), so its wait ends
whatever the others do: their edges fill and their producers wait for
this receiver, who reads them next.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from . import HOLE, Receiver
from ._fanout import Ends, Lock

__all__ = ["ZipReceiver"]


class ZipReceiver(Ends):
    """One tuple of one item from each of ``receivers`` at a time; tuples with a hole are left out."""

    __slots__ = ("_receivers", "_lock")

    def __init__(self, receivers: list[Receiver], lock: Lock | None = None) -> None:
        super().__init__(receivers)
        self._receivers = receivers
        self._lock = lock

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        lock = self._lock
        while True:
            self.release()  # let go of the last tuple's packets before waiting for any of the next
            items = []
            if lock is not None:
                lock.acquire()
            try:
                for receiver in self._receivers:  # StopIteration: every branch ended together
                    items.append(next(receiver))
            finally:
                if lock is not None:
                    lock.release()
            if not any(item is HOLE for item in items):  # identity: an item's own == may not say bool
                return tuple(items)  # a skipped input (a hole) gives none: on to the next

    def next_within(self, seconds: float) -> Any:
        """Not timed: the items of one tuple come from one input, so they are there or not long after."""
        return next(self)

    def release(self) -> None:
        """Free the slots of the tuple handed out last, on every edge at once."""
        for receiver in self._receivers:
            getattr(receiver, "release_now", receiver.release)()

    def finish(self) -> None:
        for receiver in self._receivers:
            receiver.finish()
