"""Edges between threads of one process.

::

    producer threads --reserve--> slots (SimpleQueue of tokens, one per free slot)
                     --send-----> items (SimpleQueue)  --next--> consumer threads
                                                       <--next-- (returns a slot token)

Both queues are C-level ``SimpleQueue``s, so the per-packet path takes no
Python-level lock.  Control tokens (end, abort, downstream closed) travel
through the same queues; abort and close tokens are put back by whoever
reads them, so every waiter sees them.

An edge read by an ordered stage numbers its packets (``NumberingReceiver``):
a sender draws each packet's number and puts it in the queue in one step
(under a lock only where several producers share the edge), so numbers
follow the queue's order, and every consumer's end of the stream is
numbered after the last packet.  Numbered or not, the ends are one class
each: threads run every stage's ends through the same lines of code, and
the interpreter specializes a line for one class only (a subclass made the
ordered thread flow's ends look up their attributes by name each time).

An end alone on its side of the edge looks before it takes: what it sees
is its own, so only a wait that blocks reads the clock (``_clock``).  Ends
that share a side time every take: between the look and the take, another
could take what was seen.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from queue import Empty, SimpleQueue
from typing import Any

from . import Aborted, DownstreamClosed, Quiet, Unrecoverable
from ._clock import Clock

__all__ = ["LocalEdge"]

_SLOT = object()
_END = object()
_ABORT = object()
_CLOSED = object()


class LocalEdge(Unrecoverable):
    """A bounded stream of ``capacity`` packets between threads."""

    def __init__(self, capacity: int, producers: int, consumers: int, numbered: bool = False) -> None:
        """``numbered``: number the packets, for the workers of an ordered stage."""
        self._slots: SimpleQueue[object] = SimpleQueue()
        for _ in range(capacity):
            self._slots.put(_SLOT)
        self._items: SimpleQueue[Any] = SimpleQueue()
        self._producers = producers
        self._consumers = consumers
        self._shared_by_producers = producers > 1
        self._shared_by_consumers = consumers > 1
        self._consumers_left = consumers
        self.numbered = numbered
        self._numbers = itertools.count()  # numbered: the next packet's number
        self._numbering = threading.Lock() if numbered and producers > 1 else None  # drawn and put in one step
        self._end = -1  # numbered: the end's number, once the last producer closed
        self._lock = threading.Lock()  # taken only when a worker ends
        self._moved = 0  # packets sent; read by the inactivity watchdog
        self._aborted = False

    def sender(self, endpoint: int) -> LocalSender:
        return LocalSender(self)

    def receiver(self, endpoint: int) -> LocalReceiver:
        return LocalReceiver(self)

    def moved(self) -> int:
        return self._moved

    def aborted(self) -> bool:
        return self._aborted

    def close(self) -> None:
        pass  # queues go with their last reference

    def abort(self) -> None:
        """Wake every waiter on this edge with ``Aborted``."""
        self._aborted = True
        self._slots.put(_ABORT)
        self._items.put(_ABORT)

    def _producer_closed(self) -> None:
        with self._lock:
            self._producers -= 1
            last = self._producers == 0
        if last:
            self._end = next(self._numbers)  # after every packet's, which are all drawn by now
            for _ in range(self._consumers):
                self._items.put(_END)

    def _consumer_finished(self) -> None:
        with self._lock:
            self._consumers_left -= 1
            last = self._consumers_left == 0
        if last:
            self._slots.put(_CLOSED)


class LocalSender:
    """Puts packets; on a ``numbered`` edge, each with its number, in one step."""

    __slots__ = ("_edge", "_slots", "_items", "_alone", "_numbers", "_numbering", "clock")

    def __init__(self, edge: LocalEdge) -> None:
        self.clock = Clock()
        self._edge = edge
        self._slots = edge._slots
        self._items = edge._items
        self._alone = not edge._shared_by_producers  # a free slot it sees is its own
        self._numbers = edge._numbers if edge.numbered else None
        self._numbering = edge._numbering

    def reserve(self) -> None:
        if self._alone and not self._slots.empty():
            token = self._slots.get()
        else:
            with self.clock:
                token = self._slots.get()
        if token is not _SLOT:
            self._slots.put(token)
            raise Aborted() if token is _ABORT else DownstreamClosed()

    def unreserve(self) -> None:
        self._slots.put(_SLOT)

    def send(self, item: Any) -> None:
        numbers = self._numbers
        if numbers is None:
            self._items.put(item)
        elif self._numbering is None:
            self._items.put((next(numbers), item))
        else:
            with self._numbering:
                self._items.put((next(numbers), item))
        self._edge._moved += 1

    def close(self) -> None:
        self._edge._producer_closed()


class LocalReceiver:
    """Takes packets; on a ``numbered`` edge it tells each one's number (``position``, a
    ``NumberingReceiver``).  Threads give back no slot empty: ``gap`` is never called."""

    __slots__ = (
        "_edge", "_slots", "_items", "_held", "_ended", "_finished", "_alone", "_numbered", "clock", "position", "gap",
    )

    def __init__(self, edge: LocalEdge) -> None:
        self.clock = Clock()
        self._edge = edge
        self._slots = edge._slots
        self._items = edge._items
        self._alone = not edge._shared_by_consumers  # a packet it sees waiting is its own
        self._numbered = edge.numbered
        self._held = False
        self._ended = False
        self._finished = False
        self.position = -1
        self.gap: Callable[[int], None] | None = None

    def __iter__(self) -> LocalReceiver:
        return self

    def release(self) -> None:
        """Free the slot of the item handed out last (the next ``__next__`` would)."""
        if self._held:
            self._held = False
            self._slots.put(_SLOT)

    def __next__(self) -> Any:
        if self._held:
            self.release()
        if self._ended:
            raise StopIteration
        if self._alone and not self._items.empty():
            item = self._items.get()
        else:
            with self.clock:
                item = self._items.get()
        return self._took(item)

    def next_within(self, seconds: float) -> Any:
        if self._held:
            self.release()
        if self._ended:
            raise StopIteration
        if self._alone and not self._items.empty():
            item = self._items.get()
        else:
            with self.clock:
                try:
                    item = self._items.get(timeout=max(0.0, seconds))
                except Empty:
                    raise Quiet() from None
        return self._took(item)

    def _took(self, item: Any) -> Any:
        if item is _END:
            self._ended = True
            if self._numbered:
                self.position = self._edge._end  # the stream ends here
            raise StopIteration
        if item is _ABORT:
            self._items.put(_ABORT)
            raise Aborted()
        self._held = True
        if self._numbered:
            self.position, item = item
        return item

    def finish(self) -> None:
        if self._finished:
            return
        self._finished = True
        if self._held:
            self._held = False
            self._slots.put(_SLOT)
        if not self._ended:
            self._edge._consumer_finished()
