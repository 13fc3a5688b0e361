"""How packets move: bounded edges, their two ends, and the signals they raise.

An ``Edge`` is one bounded stream of ``capacity`` packets, written by one
or more producer workers and read by one or more consumer workers.  A
producer calls ``reserve()`` before it builds a packet (blocking until the
edge has a free slot), then ``send()`` it into that slot, and ``close()``
when its stream ends.  A consumer iterates a ``Receiver``: asking for the
next packet releases the slot of the previous one.  Every transport (threads'
queues, shared-memory rings, Ray channels) keeps exactly these semantics,
pinned once for all by ``tests/test_edges.py``; backends only choose which
one to build.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from ._clock import Clock

__all__ = [
    "HOLE", "Aborted", "DownstreamClosed", "Edge", "Held", "NumberingReceiver", "Receiver", "Quiet", "Sender", "Stop",
    "Unrecoverable", "carry",
]


class Stop(BaseException):
    """Control flow of the runtime, raised through user code; never surfaces.

    A BaseException so that a stage's ``except Exception`` does not swallow it.
    """


class Aborted(Stop):
    """The run is being torn down (an error elsewhere, or a cancel)."""


class Quiet(Exception):
    """No packet arrived within the time given to ``Receiver.next_within``."""


class DownstreamClosed(Stop):
    """Every consumer of the edge stopped reading; the producer should end."""


class Sender(Protocol):
    clock: Clock  # times the waits for a free slot that block (``_clock``)

    def reserve(self) -> None:
        """Block until the edge has a free slot and hold it.

        Raises ``Aborted`` or ``DownstreamClosed``.
        """

    def unreserve(self) -> None:
        """Give back the held slot unused (the stream ended)."""

    def send(self, item: Any) -> None:
        """Put ``item`` into the held slot; raises ``UnpicklableMessage`` or
        ``MessageTooLarge`` if it cannot travel."""

    def close(self) -> None:
        """This producer is finished; the last one to close ends the stream."""


class Receiver(Protocol):
    clock: Clock  # times the waits for a packet that block (``_clock``)

    def __iter__(self) -> Iterator[Any]: ...

    def __next__(self) -> Any:
        """Release the previous packet's slot and wait for the next packet.

        Raises ``StopIteration`` at the end of the stream, ``Aborted`` on teardown.
        """

    def next_within(self, seconds: float) -> Any:
        """``__next__``, waiting at most ``seconds`` for a packet; raises ``Quiet`` if none came."""

    def release(self) -> None:
        """Free the slot of the packet handed out last, before the next ``__next__`` would."""

    def finish(self) -> None:
        """This consumer stops reading (at the end of its stream or early)."""


class NumberingReceiver(Receiver, Protocol):
    """A receiver of a ``numbered`` edge: every packet has a number, counted across its consumers.

    Numbers follow the edge's own order, one a packet taken, with no two
    consumers given the same one: a stage that keeps its inputs' order can
    use them as they are, without a lock of its own.
    """

    # The number of the packet handed out last; at the end of the stream, a number after every
    # packet's (each consumer's end may have its own: the smallest is where the stream ends).
    position: int
    gap: Callable[[int], None] | None  # called with each number that came without a packet (a slot given back)


class _Hole:
    """What a zip's branch sends in place of an input it skipped; one object, in every process."""

    __slots__ = ()

    def __reduce__(self) -> str:
        return "HOLE"  # pickled by name: the module's own

    def __repr__(self) -> str:
        return "HOLE"


HOLE = _Hole()


@dataclasses.dataclass(frozen=True)
class Held:
    """The packet a dead consumer held: its item (or what can be said of it) and the attempts at it."""

    item: Any  # where it held several (``of``), the list of them
    attempts: int  # failed attempts at it before the one that just ended; -1: it was settled (skipped)
    of: int = 1  # packets it held, one of which it was working on (taken several at a time, on Ray)


class Edge(Protocol):
    """One bounded stream between the workers of two stages (or a stage and the caller).

    ``endpoint`` numbers the producer or consumer worker that takes the end.
    A ``recoverable`` edge lets a new worker take over the ends of one that
    died: the slot a dead producer had reserved goes on as an empty packet,
    and the packet a dead consumer held is given to its replacement first
    (``again``) or freed as the replacement starts.
    """

    recoverable: bool
    numbered: bool  # its receivers number their packets (``NumberingReceiver``)

    def sender(self, endpoint: int) -> Sender: ...

    def receiver(self, endpoint: int) -> Receiver: ...

    def abort(self) -> None:
        """Wake every waiter on the edge with ``Aborted``; safe from any thread."""

    def aborted(self) -> bool:
        """Whether ``abort()`` was called, from any worker (for waits the edge does not wake)."""

    def moved(self) -> int:
        """A count that changes whenever a packet is sent (for inactivity checks; a shared-memory
        edge keeps it only when built ``watched``)."""

    def close(self) -> None:
        """Free what the edge holds; only its owner calls this, once every end is done."""

    def held(self, endpoint: int) -> Held | None:
        """What consumer ``endpoint``, whose worker died, held; None if nothing (or not recoverable)."""

    def again(self, endpoint: int, attempts: int) -> None:
        """Give the packet consumer ``endpoint`` held to its next receiver first; ``attempts`` so far
        (-1: the packet was skipped, and the next receiver frees it)."""


class Unrecoverable:
    """Edges whose ends cannot be taken over: the workers on them are not replaced.

    Threads cannot die alone.
    """

    recoverable = False

    def held(self, endpoint: int) -> Held | None:
        return None

    def again(self, endpoint: int, attempts: int) -> None:
        raise NotImplementedError("this edge cannot hand a packet to a new worker")


def carry(receiver: Receiver, sender: Sender) -> None:
    """Pair one worker's input and output ends, on edges that need it.

    Where sending is asynchronous (Ray's hub), a receiver whose worker may
    be replaced, or whose stage is ordered, sends what ``sender`` has built
    along with each request for input (or word that an input is done), so
    that no input counts as done before its outputs are in.  On the other
    edges a sent packet is in the edge already: nothing to pair.
    """
    pair = getattr(receiver, "carry", None)
    if pair is not None:
        pair(sender)
