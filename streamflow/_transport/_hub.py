"""The hub: one small async actor a Ray session that keeps the state of every Ray edge.

::

    RaySender, RayReceiver, RayTurnstile (in the workers, ``_ray``)  --calls-->  _Hub: {(run, edge): Channel}

A ``Channel`` is one edge's state: its free-slot count, its FIFO of
packets, and, where needed, what each consumer that may be replaced holds,
the slots each producer has reserved, and the turn of the ordered stage
that reads it.  The hub's methods run on the actor's event loop, one at a
time between ``await``s, so no state here needs a lock.  See ``_ray`` for
the protocol the ends speak.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any

import ray

__all__ = ["ABORTED", "CLOSED", "OK", "QUIET", "Channel", "Key", "Outgoing", "forget_session", "hub", "session_actor"]

OK, ABORTED, CLOSED, QUIET = 0, 1, 2, 3  # what a call on a channel found

Key = tuple[str, int]  # (run, edge)
Outgoing = tuple[Key, Any, list[tuple[int, list[Any]]]]  # packets a producer sends along with a request


class Channel:
    """One edge: ``capacity`` slots shared by all producers and consumers."""

    def __init__(self, capacity: int, producers: int, consumers: int) -> None:
        self._free = capacity
        self._items: deque[Any] = deque()
        self._changed = asyncio.Event()
        self._producers = producers
        self._consumers = consumers
        self._aborted = False
        self._closed = False
        self._ended = False
        self._moved = 0
        # An async actor may run calls out of order: packets carry a number
        # per producer and are queued in that order.
        self._expected: dict[Any, int] = {}
        self._early: dict[tuple[Any, int], list[Any]] = {}
        self._totals: dict[Any, int] = {}
        # Taking over the ends of dead workers: the packet each consumer that
        # may be replaced holds, failed attempts at it, the consumers to hand
        # theirs out again; the slots each producer reserved and did not fill.
        self._holding: dict[int, list[Any]] = {}
        self._attempts: dict[int, int] = {}
        self._replay: set[int] = set()
        # What each consumer that is not replaced was handed last, to name a crash's item.
        self._handed: dict[int, list[Any]] = {}
        self._credit: dict[Any, int] = {}
        # Order (an ordered stage reads this edge): packets handed out so far (the
        # next one's number), the oldest input not done, inputs done out of turn.
        self._handed_count = 0
        self._turn = 0
        self._done_early: set[int] = set()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def reserve(self, producer: Any, most: int) -> tuple[int, int]:
        """Wait for a free slot; take up to ``most`` of the free ones."""
        while not (self._aborted or self._closed) and self._free == 0:
            await self._changed.wait()
        if self._aborted:
            return ABORTED, 0
        if self._closed:
            return CLOSED, 0
        taken = min(most, self._free)
        self._free -= taken
        self._credit[producer] = self._credit.get(producer, 0) + taken
        return OK, taken

    def unreserve(self, producer: Any, count: int) -> None:
        self._free += count
        self._credit[producer] = self._credit.get(producer, 0) - count
        self._notify()

    def take_over(self, producer: Any) -> int:
        """A new worker in place of ``producer``'s dead one: free the slots it reserved and did
        not fill; the number of its next packet (the new worker goes on counting from there)."""
        self._free += self._credit.pop(producer, 0)
        self._notify()
        return self._expected.get(producer, 0)

    def send(self, producer: Any, boxes: list[tuple[int, list[Any]]]) -> None:
        self._credit[producer] = self._credit.get(producer, 0) - len(boxes)
        for number, box in boxes:
            self._early[producer, number] = box
        expected = self._expected.get(producer, 0)
        while (producer, expected) in self._early:
            self._items.append(self._early.pop((producer, expected)))
            expected += 1
            self._moved += 1
        self._expected[producer] = expected
        self._finish_if_complete(producer)
        self._notify()

    def producer_done(self, producer: Any, total: int) -> None:
        self._totals[producer] = total
        self._finish_if_complete(producer)
        self._notify()

    def _finish_if_complete(self, producer: Any) -> None:
        if self._totals.get(producer) == self._expected.get(producer, 0):
            del self._totals[producer]
            self._producers -= 1
            if self._producers == 0:
                self._ended = True

    async def next(
        self, release: int, most: int, within: float | None = None, holder: int | None = None,
        consumer: int | None = None,
    ) -> tuple[int, list[Any], int]:
        """Free ``release`` slots, wait for a packet (at most ``within`` seconds: else
        ``QUIET``), take up to ``most`` of those waiting, and the number of the first in the
        edge's order.  ``holder``: the consumer, if its worker may be replaced (it takes one
        packet at a time, and the hub records it); ``consumer``: the consumer otherwise (the
        hub keeps what it was handed last, to name a crash's item)."""
        if holder is not None:
            if holder in self._replay:  # a new worker takes its dead predecessor's packet first
                self._replay.discard(holder)
                return OK, [self._holding[holder]], -1
            if release:
                self._holding.pop(holder, None)
                self._attempts.pop(holder, None)
        if release:
            self._free += release
            self._notify()
        deadline = None if within is None else time.monotonic() + within
        while not (self._aborted or self._items or self._ended):
            if deadline is None:
                await self._changed.wait()
                continue
            try:
                await asyncio.wait_for(self._changed.wait(), max(0.0, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                return QUIET, [], -1
        if self._aborted:
            return ABORTED, [], -1
        if self._items:
            count = min(most, len(self._items))
            boxes = [self._items.popleft() for _ in range(count)]
            if holder is not None:
                self._holding[holder] = boxes[-1]
            elif consumer is not None:
                self._handed[consumer] = boxes
            first, self._handed_count = self._handed_count, self._handed_count + count
            return OK, boxes, first
        return CLOSED, [], -1  # the end of the stream

    async def gate(self, seq: int) -> int:
        """Wait until outputs of input ``seq`` may leave: every older input is done (-1: every
        input, once the stream has ended)."""
        while not (self._aborted or self._turn == seq or (seq < 0 and self._all_done())):
            await self._changed.wait()
        return ABORTED if self._aborted else OK

    def _all_done(self) -> bool:
        return self._ended and not self._items and self._turn >= self._handed_count

    def done(self, seq: int) -> None:
        """Every output of input ``seq`` is in its edge: the turn moves past it, or it waits to be passed."""
        if seq != self._turn:
            self._done_early.add(seq)
            return
        turn = seq + 1
        while turn in self._done_early:
            self._done_early.remove(turn)
            turn += 1
        self._turn = turn
        self._notify()

    def held(self, holder: int) -> tuple[list[list[Any]], int] | None:
        """The packets consumer ``holder`` holds (its worker died: one, if it may be replaced;
        else those it was handed last, one of which it was working on), and failed attempts."""
        box = self._holding.get(holder)
        if box is not None:
            return [box], self._attempts.get(holder, 0)
        boxes = self._handed.get(holder)
        return None if not boxes else (boxes, 0)

    def again(self, holder: int, attempts: int) -> None:
        """Hand ``holder``'s packet to its next worker first (``attempts`` > 0), or free it."""
        if attempts > 0:
            self._attempts[holder] = attempts
            self._replay.add(holder)
        elif self._holding.pop(holder, None) is not None:
            self._attempts.pop(holder, None)
            self._free += 1
            self._notify()

    def free(self, release: int, holder: int | None = None) -> None:
        """A consumer is done with ``release`` packets, and asks for none yet (a zip's join)."""
        if holder is not None:
            self._holding.pop(holder, None)
            self._attempts.pop(holder, None)
        self._free += release
        self._notify()

    def consumer_done(self, release: int, ended: bool, holder: int | None = None, consumer: int | None = None) -> None:
        if consumer is not None:
            self._handed.pop(consumer, None)
        if holder is not None and release:
            self._holding.pop(holder, None)
            self._attempts.pop(holder, None)
        if release:
            self._free += release
        if not ended:
            self._consumers -= 1
            if self._consumers == 0:
                self._closed = True
        self._notify()

    def abort(self) -> None:
        self._aborted = True
        self._notify()

    def aborted(self) -> bool:
        return self._aborted

    def moved(self) -> int:
        return self._moved


class _Hub:
    """The edges of every run of a Ray session, each under its key.

    A call on an edge that was closed (a worker that outlived its run) finds
    it aborted.
    """

    def __init__(self) -> None:
        self._edges: dict[Key, Channel] = {}
        self._gone = Channel(0, 1, 1)
        self._gone.abort()
        self._semaphores: dict[Key, list[Any]] = {}  # key -> [count, changed event]

    def _edge(self, key: Key) -> Channel:
        return self._edges.get(key, self._gone)

    def open(self, key: Key, capacity: int, producers: int, consumers: int) -> None:
        self._edges[key] = Channel(capacity, producers, consumers)

    def close(self, key: Key) -> None:
        self._edges.pop(key, self._gone).abort()  # anyone still waiting on it wakes

    async def reserve(self, key: Key, producer: Any, most: int) -> tuple[int, int]:
        return await self._edge(key).reserve(producer, most)

    def unreserve(self, key: Key, producer: Any, count: int) -> None:
        self._edge(key).unreserve(producer, count)

    def take_over(self, key: Key, producer: Any) -> int:
        return self._edge(key).take_over(producer)

    def send(self, key: Key, producer: Any, boxes: list[tuple[int, list[Any]]]) -> None:
        self._edge(key).send(producer, boxes)

    def producer_done(self, key: Key, producer: Any, total: int) -> None:
        self._edge(key).producer_done(producer, total)

    async def next(
        self,
        key: Key,
        release: int,
        most: int,
        within: float | None = None,
        holder: int | None = None,
        outgoing: Outgoing | None = None,
        consumer: int | None = None,
    ) -> tuple[int, list[Any], int]:
        """``Channel.next``, after the packets in ``outgoing`` are in their own edge."""
        self._send_along(outgoing)
        return await self._edge(key).next(release, most, within, holder, consumer)

    async def gate(self, key: Key, seq: int) -> int:
        return await self._edge(key).gate(seq)

    def done(self, key: Key, seq: int, outgoing: Outgoing | None) -> None:
        """``Channel.done``, after the packets in ``outgoing`` are in their own edge."""
        self._send_along(outgoing)
        self._edge(key).done(seq)

    def _send_along(self, outgoing: Outgoing | None) -> None:
        if outgoing is not None:
            out_key, producer, boxes = outgoing
            self._edge(out_key).send(producer, boxes)

    def held(self, key: Key, holder: int) -> tuple[list[list[Any]], int] | None:
        return self._edge(key).held(holder)

    def again(self, key: Key, holder: int, attempts: int) -> None:
        self._edge(key).again(holder, attempts)

    def consumer_done(
        self, key: Key, release: int, ended: bool, holder: int | None = None, consumer: int | None = None
    ) -> None:
        self._edge(key).consumer_done(release, ended, holder, consumer)

    def free(self, key: Key, release: int, holder: int | None = None) -> None:
        self._edge(key).free(release, holder)

    def semaphore(self, key: Key, value: int) -> None:
        self._semaphores[key] = [value, asyncio.Event()]

    async def acquire(self, key: Key, block: bool) -> bool:
        state = self._semaphores[key]
        while state[0] == 0:
            if not block:
                return False
            state[1].clear()
            await state[1].wait()
        state[0] -= 1
        return True

    def release(self, key: Key) -> None:
        state = self._semaphores[key]
        state[0] += 1
        state[1].set()

    def forget_semaphore(self, key: Key) -> None:
        self._semaphores.pop(key, None)

    def abort(self, key: Key) -> None:
        self._edge(key).abort()

    def aborted(self, key: Key) -> bool:
        return self._edge(key).aborted()

    def moved(self, key: Key) -> int:
        return self._edge(key).moved()


# Ray's decorator types do not follow an actor class; the actor is used dynamically.
_remote: Any = ray.remote
HubActor: Any = _remote(num_cpus=0, max_concurrency=10_000)(_Hub)
_session: dict[tuple[str, str], Any] = {}  # (Ray job id, name) -> an actor of this session


def session_actor(name: str, actor: Any) -> Any:
    """The actor ``name`` of the current Ray session, started the first time it is needed.

    Not detached: Ray ends it with the driver.  A new session (``ray.shutdown``,
    then ``ray.init``) gets new ones.
    """
    job = ray.get_runtime_context().get_job_id()
    if (job, name) not in _session:
        for key in [key for key in _session if key[0] != job]:
            del _session[key]
        _session[job, name] = actor.options(name=f"streamflow-{name}-{job}").remote()
    return _session[job, name]


def forget_session() -> None:
    """Drop the actors of the session about to end (``ray.shutdown``): a new session, even
    one with the same job id, starts its own."""
    _session.clear()


def hub() -> Any:
    """The hub of the current Ray session."""
    return session_actor("hub", HubActor)
