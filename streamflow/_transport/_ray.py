"""Edges between Ray workers: bounded channels kept by one small async actor, the hub.

::

    producers --reserve/send(key)--> hub: {key: Channel (free-slot count, FIFO of packets)} --next(key)--> consumers

The hub lives for the driver's Ray session and holds the edges of every
run, each under its own key (run, edge); starting a run costs a call per
edge, not a new actor.  Packets travel inside the calls, pickled by the
producer, or, for large arrays, as object references (``ray.put``), so they
go through Ray's object store without extra copies.  ``packets_in_flight``
is exact across every producer of an edge: the hub owns the one free-slot
count they all reserve from, and a consumer's ``next`` call returns its
previous slots.

On a ``recoverable`` edge a new worker can take over the end of one that
died (``held``, ``again``).  A consumer whose worker may be replaced takes
its packets one at a time, and the hub records the one it holds; with each
request it carries what its worker's output end built since the last
(``carry``), so that no input counts as done before its outputs are in
the hub.  A producer whose worker may be replaced sends synchronously,
and the hub counts the slots it has reserved, to free them if it dies.
That costs a round trip to the hub an item (about a millisecond on one
machine): fine for the work Ray is for, dear for tiny items.

An ordered stage with several workers keeps its order in the hub too
(``RayTurnstile``, with the face of ``_order.Turnstile``): its input edge
numbers packets as it hands them out, one at a time, and keeps the turn;
a worker asks the hub for its input's turn before the first output of
that input, and says it is done with it as it asks for the next one,
sending its outputs along, so that they are in the edge before the turn
moves on.
"""

from __future__ import annotations

import copy
import threading
import time
from collections import deque
from typing import Any

import ray

from . import Aborted, DownstreamClosed, Held, Quiet, Receiver, Sender
from ._clock import Clock
from ._hub import ABORTED, CLOSED, OK, QUIET, Key, Outgoing, hub
from ._main_classes import MainClasses
from ._serialize import Reader, dumps_message, loads

__all__ = ["HubSemaphore", "RayEdge", "RayReceiver", "RaySender", "RayTurnstile"]

_LARGE = 1 << 20  # bytes from which an array goes through the object store
_PICKLED = "pickled"
_BATCH = 256  # packets a producer sends in one call at most
_WAKE_EVERY = 0.25  # seconds a wait on Ray lasts before it checks for signals
_FLUSH = 0.005  # seconds a built packet may wait to be sent with others


def _get(ref: Any) -> Any:
    """``ray.get(ref)``, waking now and then so that the caller's signal handlers
    (Ctrl-C) run while it waits: a wait inside Ray does not return for them."""
    while True:
        try:
            return ray.get(ref, timeout=_WAKE_EVERY)
        except ray.exceptions.GetTimeoutError:
            continue


class RayEdge:
    """An edge kept by the session's hub; picklable to Ray workers."""

    def __init__(
        self, *, key: Key, name: str, capacity: int, producers: int, consumers: int, shared_buffer: bool,
        reader: Reader, producers_replaced: bool = False, consumers_replaced: bool = False,
        producers_ordered: bool = False, consumers_ordered: bool = False, shipped: MainClasses | None = None,
    ) -> None:
        """``producers_replaced``, ``consumers_replaced``: the workers at that end may be
        replaced if they die; their ends can then be taken over; ``producers_ordered``,
        ``consumers_ordered``: that end is an ordered stage's, with several workers (see the
        module's notes); ``shipped``: the caller's ``__main__`` classes, for a ``FRESH``
        reader: a worker installs them as it takes an end, and they go by name."""
        self.name = name
        self.recoverable = producers_replaced or consumers_replaced
        self.numbered = False
        self._producers_replaced = producers_replaced
        self._consumers_replaced = consumers_replaced
        self._producers_ordered = producers_ordered
        self._consumers_ordered = consumers_ordered
        self.hub = hub()
        self.key = key
        _get(self.hub.open.remote(key, capacity, producers, consumers))  # there before any worker asks
        # Each end takes at most its share of the slots at once, so that none hoards them.
        self._producer_share = max(1, capacity // producers)
        self._consumer_share = max(1, capacity // consumers)
        self._shared_buffer = shared_buffer
        self._reader = reader
        self._shipped = shipped
        self._asked = 0.0  # when the hub was last asked whether the edge was aborted
        self._aborted = False

    def sender(self, endpoint: int) -> RaySender:
        if self._shipped is not None:
            self._shipped.install()
        return RaySender(
            self.hub, self.key, self.name, self._producer_share, endpoint, self._reader,
            replaced=self._producers_replaced, synchronous=self._producers_replaced or self._producers_ordered,
            shipped=self._shipped,
        )

    def receiver(self, endpoint: int) -> RayReceiver:
        if self._shipped is not None:
            self._shipped.install()
        holder = endpoint if self._consumers_replaced else None
        return RayReceiver(
            self.hub, self.key, self._shared_buffer, self._consumer_share, holder, ordered=self._consumers_ordered,
            consumer=endpoint,
        )

    def turnstile(self) -> RayTurnstile:
        """The order of the ordered stage that reads this edge, kept in the hub."""
        return RayTurnstile(self.hub, self.key)

    def held(self, endpoint: int) -> Held | None:
        """The packet consumer ``endpoint`` held as its worker died (read in the caller); where its
        worker is not replaced, it took several at a time: one of them (``Held.of``)."""
        found = _get(self.hub.held.remote(self.key, endpoint))
        if found is None:
            return None
        boxes, attempts = found
        items = [_peek(box) for box in boxes]
        return Held(items[0] if len(items) == 1 else items, attempts, of=len(items))

    def again(self, endpoint: int, attempts: int) -> None:
        """The next worker of ``endpoint`` takes its held packet first (0 or -1: it is freed)."""
        _get(self.hub.again.remote(self.key, endpoint, attempts))

    def abort(self) -> None:
        self.hub.abort.remote(self.key)

    def aborted(self) -> bool:
        """Asked of the hub at most every ``_WAKE_EVERY`` seconds (only async stages ask, as they wait)."""
        now = time.monotonic()
        if now - self._asked >= _WAKE_EVERY:
            self._asked = now
            self._aborted = self._aborted or bool(_get(self.hub.aborted.remote(self.key)))
        return self._aborted

    def moved(self) -> int:
        moved: int = _get(self.hub.moved.remote(self.key))
        return moved

    def close(self) -> None:
        self.hub.close.remote(self.key)


class RaySender:
    """The producing end of a Ray edge.

    It takes free slots from the edge several at a time when several are
    free (never more than ``packets_in_flight`` in all), and sends packets
    in batches: when it runs out of slots (before it would wait for one),
    when a batch is full, or at the latest ``_FLUSH`` seconds after a packet
    was built.  With ``packets_in_flight=1`` every packet is sent as soon as
    it is built, so lockstep stays lockstep.

    If its worker may be replaced, or its stage is ordered
    (``synchronous``), it sends synchronously and never on a timer: its
    packets go along with its worker's requests for input, or word that an
    input is done (``outgoing``), or when it needs slots.  If its worker may
    be replaced (``replaced``), a new one takes over from a dead one's count.
    """

    def __init__(
        self, hub: Any, key: Key, stage: str, share: int, producer: Any, reader: Reader, *,
        replaced: bool = False, synchronous: bool = False, shipped: MainClasses | None = None,
    ) -> None:
        """``share``: the most slots this producer takes at once, its share of
        the edge's, so that one producer cannot hoard slots the others need."""
        self.clock = Clock()
        self._hub = hub
        self._key = key
        self._stage = stage
        self._reader = reader
        self._shipped = shipped
        self._share = share
        self._producer = producer
        self._synchronous = synchronous
        # A new worker frees the slots its dead predecessor reserved, and goes on from its count.
        self._sent = _get(hub.take_over.remote(key, producer)) if replaced else 0
        self._credit = 0  # slots taken from the edge and not used yet
        self._holding = False
        self._pending: deque[tuple[int, list[Any]]] = deque()  # appended here, drained by either thread
        self._closed = threading.Event()
        if not synchronous:
            flusher = threading.Thread(target=self._flush_often, name="streamflow-flush", daemon=True)
            flusher.start()

    def reserve(self) -> None:
        if self._credit == 0:
            self._flush()  # about to wait for a slot: what is built must go first
            with self.clock:
                state, taken = _get(self._hub.reserve.remote(self._key, self._producer, self._share))
            if state != OK:
                self._closed.set()  # nothing more will be sent: the flusher can stop
                raise Aborted() if state == ABORTED else DownstreamClosed()
            self._credit = taken
        self._credit -= 1
        self._holding = True

    def unreserve(self) -> None:
        if self._holding:
            self._credit += 1
            self._holding = False
        if self._credit:
            _get(self._hub.unreserve.remote(self._key, self._producer, self._credit))
            self._credit = 0

    def send(self, item: Any) -> None:
        # Large buffers go through the object store (no copy through the
        # edge); anything else travels inside the call, pickled here.
        box: list[Any]
        if getattr(item, "nbytes", 0) >= _LARGE:
            box = [ray.put(item)]
        else:
            box = [dumps_message(item, self._reader, self._stage, self._shipped), _PICKLED]
        self._pending.append((self._sent, box))
        self._sent += 1
        self._holding = False
        if self._credit == 0 or len(self._pending) >= _BATCH:
            self._flush()

    def flush(self) -> None:
        """Send what is built now, and wait until the hub has it (a zip's entry, under its lock)."""
        outgoing = self.outgoing()
        if outgoing is not None:
            _get(self._hub.send.remote(*outgoing))

    def _flush(self) -> None:
        outgoing = self.outgoing()
        if outgoing is not None:
            call = self._hub.send.remote(*outgoing)
            if self._synchronous:
                _get(call)  # in the hub before the worker goes on

    def outgoing(self) -> Outgoing | None:
        """The packets built and not yet sent, taken to be sent (by a request of the worker's input)."""
        boxes = []
        while True:
            try:
                boxes.append(self._pending.popleft())
            except IndexError:
                break
        return (self._key, self._producer, boxes) if boxes else None

    def _flush_often(self) -> None:
        while not self._closed.wait(_FLUSH):
            self._flush()

    def close(self) -> None:
        self._closed.set()
        self._flush()
        self.unreserve()
        _get(self._hub.producer_done.remote(self._key, self._producer, self._sent))


class RayReceiver:
    """The consuming end of a Ray edge.

    Fetches the packets already waiting in one call, and gives their slots
    back as it moves past them (with the next fetch).  Arrays come from the
    object store read-only; unless ``shared_buffer``, the consumer gets its
    own writable copy, as on the other backends.
    """

    def __init__(
        self, hub: Any, key: Key, shared_buffer: bool, share: int, holder: int | None = None, ordered: bool = False,
        consumer: int | None = None,
    ) -> None:
        """``share``: the most packets this consumer takes at once, its share
        of the edge's slots, so that one consumer cannot hoard packets;
        ``holder``: its endpoint, if its worker may be replaced (one packet at a
        time, recorded in the hub); ``ordered``: it reads for an ordered stage
        with several workers (one packet at a time: its number is ``seq``)."""
        self.clock = Clock()
        self._hub = hub
        self._key = key
        self._copy = not shared_buffer
        self._share = 1 if holder is not None or ordered else share
        self._holder = holder
        self._consumer = None if holder is not None else consumer  # the hub keeps its last packets
        self._ordered = ordered
        self._carried: RaySender | None = None
        self.seq = -1  # the number of the packet handed out last, in the edge's order
        self._next_seq = -1
        self._batch: deque[Any] = deque()
        self._done = 0  # packets finished with, whose slots the edge does not know are free
        self._held = False
        self._ended = False
        self._finished = False

    def __iter__(self) -> RayReceiver:
        return self

    def carry(self, sender: Sender) -> None:
        """Send what ``sender`` (this worker's output) built along with each request for input."""
        if (self._holder is not None or self._ordered) and isinstance(sender, RaySender):
            self._carried = sender

    def done(self, seq: int) -> None:
        """Input ``seq`` is done (an ordered stage's): its outputs go first, then the word."""
        outgoing = None if self._carried is None else self._carried.outgoing()
        self._hub.done.remote(self._key, seq, outgoing)

    def release(self) -> None:
        """Count the packet handed out last as done (the hub hears of it with the next call)."""
        if self._held:
            self._done += 1
            self._held = False

    def release_now(self) -> None:
        """Free the packet handed out last in the hub now: a zip's join waits on another edge next."""
        self.release()
        if self._done and not self._batch:
            self._hub.free.remote(self._key, self._done, self._holder)
            self._done = 0

    def __next__(self) -> Any:
        return self.next_within(None)

    def next_within(self, seconds: float | None) -> Any:
        if self._held:
            self.release()
        if self._ended:
            raise StopIteration
        if not self._batch:
            outgoing = None if self._carried is None else self._carried.outgoing()
            call = self._hub.next.remote(
                self._key, self._done, self._share, seconds, self._holder, outgoing, self._consumer
            )
            with self.clock:
                state, boxes, self._next_seq = _get(call)
            self._done = 0
            if state == QUIET:
                raise Quiet()
            if state == ABORTED:
                raise Aborted()
            if state == CLOSED:
                self._ended = True
                raise StopIteration
            self._batch.extend(boxes)
        box = self._batch.popleft()
        self._held = True
        self.seq, self._next_seq = self._next_seq, self._next_seq + 1
        return _unbox(box, self._copy)

    def finish(self) -> None:
        if not self._finished:
            self._finished = True
            release = self._done + self._held + len(self._batch)
            _get(self._hub.consumer_done.remote(self._key, release, self._ended, self._holder, self._consumer))
            self._held, self._done = False, 0
            self._batch.clear()


def _unbox(box: list[Any], writable: bool) -> Any:
    """The item a packet carries, pickled in the call or in the object store."""
    if len(box) == 2:
        return loads(box[0])
    # Ray hands numpy arrays out read-only from the object store: the
    # other backends give a writable copy.
    item = _get(box[0])
    return copy.deepcopy(item) if writable else item


def _peek(box: list[Any]) -> Any:
    """The item of a packet a dead worker held, or what can be said of it (read in the caller)."""
    try:
        return _unbox(box, False)
    except Exception as exc:  # noqa: BLE001 - described instead
        return f"<an item that cannot be read in the caller: {exc}>"


class RayTurnstile:
    """The order of an ordered stage's inputs on Ray, kept in the hub with the stage's input
    edge; the face of ``_order.Turnstile``, for ``InOrder`` and ``Numbered``.  Picklable."""

    def __init__(self, hub: Any, key: Key) -> None:
        self._hub = hub
        self._key = key
        self._receiver: RayReceiver | None = None  # this worker's, which says when an input is done
        self._passed = -2  # the input whose turn this worker saw come (the turn stays until it is done)

    def take(self, worker: int, receiver: Receiver) -> tuple[Any, int]:
        """The next input and its number in the edge; ``StopIteration`` at the end of the stream."""
        assert isinstance(receiver, RayReceiver)
        self._receiver = receiver
        item = next(receiver)
        return item, receiver.seq

    def gate(self, worker: int, seq: int) -> None:
        """Wait until outputs of input ``seq`` (-1: after the end) may leave."""
        if seq >= 0 and seq == self._passed:
            return
        if _get(self._hub.gate.remote(self._key, seq)) == ABORTED:
            raise Aborted()
        self._passed = seq

    def done(self, seq: int) -> None:
        """Every output of input ``seq`` has been built: they go to the hub, then the word."""
        assert self._receiver is not None
        self._receiver.done(seq)

    def abort(self) -> None:
        """Waiters wake as the edge is aborted (the engine aborts every edge)."""

    def close(self) -> None:
        """The state is the edge's, closed with it."""


class HubSemaphore:
    """A semaphore every worker of a run can use, kept in the hub (Ray workers share no memory).

    Each ``acquire`` and ``release`` is a round trip to the hub: for the rare
    waits that need one (several workers sharing a zip's entry or join).
    """

    def __init__(self, key: Key, value: int) -> None:
        self._hub = hub()
        self._key = key
        _get(self._hub.semaphore.remote(key, value))

    def acquire(self, block: bool = True) -> bool:
        acquired: bool = _get(self._hub.acquire.remote(self._key, block))
        return acquired

    def release(self) -> None:
        _get(self._hub.release.remote(self._key))

    def close(self) -> None:
        self._hub.forget_semaphore.remote(self._key)
