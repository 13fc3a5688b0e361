"""Ends that feed several edges: every packet down each (a tee), or down the one chosen for it.

::

    pump --reserve--> TeeSender --reserve--> branch 1's sender, branch 2's sender, ...   (all, before the item is built)
         --send(x)-->           --send(x)--> branch 1's edge,   branch 2's edge,   ...   (x in each)

    pump --send(x)--> ChoiceSender: choose(x) --> that branch's sender: reserve (may wait), send

Which waits on which, and why no cycle of waits forms with bounded edges
(the block's argument, see ``_runtime/_fanout``): a tee's producer holds
a slot on every branch before it builds an item, so an item is in every
branch before the next is built, and a branch waits only on its own
downstream.  A ``ChoiceSender`` knows its edge only once the item is
built: it then waits for a slot there, holding that one item (so a
route's producer holds at most one item more than its edges).  A tee
into a zip's branches with several producer workers sends each item to
every branch under ``lock`` (taken only once every slot is held, so no
wait happens under it): every branch's edge gets the items in one order,
and the zip pairs the i-th of each.

A branch whose consumers have all stopped reading (``DownstreamClosed``)
is dropped; the producer ends only when every branch has closed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from . import DownstreamClosed, Sender
from ._clock import Clock

__all__ = ["ChoiceSender", "Ends", "Lock", "TeeSender"]


class Lock(Protocol):
    def acquire(self, block: bool = True) -> bool: ...
    def release(self) -> None: ...


class Ends:
    """An end made of several: its waits are timed on one clock, which each of its parts shares."""

    __slots__ = ("_parts", "_clock")

    def __init__(self, parts: list[Any]) -> None:
        self._parts: list[Any] = parts
        self._clock = Clock()

    @property
    def clock(self) -> Clock:
        return self._clock

    @clock.setter
    def clock(self, clock: Clock) -> None:
        self._clock = clock
        for part in self._parts:
            part.clock = clock


class TeeSender(Ends):
    """One end over several: every item to every branch that still reads."""

    __slots__ = ("_senders", "_lock")

    def __init__(self, senders: list[Sender], lock: Lock | None = None) -> None:
        super().__init__(senders)
        self._senders = senders
        self._lock = lock

    def reserve(self) -> None:
        for sender in list(self._senders):
            try:
                sender.reserve()
            except DownstreamClosed:
                self._senders.remove(sender)  # nobody reads that branch any more
        if not self._senders:
            raise DownstreamClosed()

    def unreserve(self) -> None:
        for sender in self._senders:
            sender.unreserve()

    def send(self, item: Any) -> None:
        lock = self._lock
        if lock is None:
            for sender in self._senders:
                sender.send(item)
            return
        lock.acquire()
        try:
            for sender in self._senders:
                sender.send(item)
                flush = getattr(sender, "flush", None)  # where sending is deferred (Ray's), in the edge now
                if flush is not None:
                    flush()
        finally:
            lock.release()

    def close(self) -> None:
        for sender in self._senders:
            sender.close()


class ChoiceSender(Ends):
    """One end over several: each item to the one ``choose(item)`` names (None: to none)."""

    __slots__ = ("_choose", "_senders", "_closed")

    def __init__(self, choose: Callable[[Any], Sender | None], senders: list[Sender]) -> None:
        """``senders``: every one ``choose`` may name, to reserve with and close."""
        super().__init__(senders)
        self._choose = choose
        self._senders = senders
        self._closed: set[int] = set()  # ids of the senders whose consumers stopped reading

    def reserve(self) -> None:
        """Nothing: the edge is known once the item is; ``send`` waits for its slot."""
        if len(self._closed) == len(self._senders):
            raise DownstreamClosed()

    def unreserve(self) -> None:
        pass

    def send(self, item: Any) -> None:
        sender = self._choose(item)
        if sender is None or id(sender) in self._closed:
            return
        try:
            sender.reserve()
        except DownstreamClosed:
            self._closed.add(id(sender))
            return
        sender.send(item)

    def close(self) -> None:
        for sender in self._senders:
            sender.close()
