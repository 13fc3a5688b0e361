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

from collections.abc import Iterator
from typing import Any, Protocol

__all__ = ["Aborted", "DownstreamClosed", "Edge", "Receiver", "Sender", "Stop"]


class Stop(BaseException):
    """Control flow of the runtime, raised through user code; never surfaces.

    A BaseException so that a stage's ``except Exception`` does not swallow it.
    """


class Aborted(Stop):
    """The run is being torn down (an error elsewhere, or a cancel)."""


class DownstreamClosed(Stop):
    """Every consumer of the edge stopped reading; the producer should end."""


class Sender(Protocol):
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
    def __iter__(self) -> Iterator[Any]: ...

    def __next__(self) -> Any:
        """Release the previous packet's slot and wait for the next packet.

        Raises ``StopIteration`` at the end of the stream, ``Aborted`` on teardown.
        """

    def finish(self) -> None:
        """This consumer stops reading (at the end of its stream or early)."""


class Edge(Protocol):
    """One bounded stream between the workers of two stages (or a stage and the caller).

    ``endpoint`` numbers the producer or consumer worker that takes the end.
    """

    def sender(self, endpoint: int) -> Sender: ...

    def receiver(self, endpoint: int) -> Receiver: ...

    def abort(self) -> None:
        """Wake every waiter on the edge with ``Aborted``; safe from any thread."""

    def moved(self) -> int:
        """A count that changes whenever a packet is sent (for inactivity checks)."""

    def close(self) -> None:
        """Free what the edge holds; only its owner calls this, once every end is done."""
