"""A new worker's end, going on from where a dead one's stopped (recoverable edges).

::

    a consumer dies holding slot k  -->  the caller settles its item (``Edge.held``, ``again``)
    the new worker's receiver       -->  _Replaying: slot k first (retried), then the edge as usual

A producer's end that a new worker takes over passes on the slot its dead
predecessor had reserved, empty (``ShmSender``, at its start); a ring's
receiver goes on from the count of packets received (``RECEIVED``).
"""

from __future__ import annotations

from typing import Any

from .._clock import Clock
from ._receiver import ShmReceiver

__all__ = ["Replaying"]


class Replaying:
    """A new worker's receiver: the packet its dead predecessor held comes first, again."""

    __slots__ = ("_receiver", "_first")

    def __init__(self, receiver: ShmReceiver, index: int) -> None:
        self._receiver = receiver
        self._first = index

    @property
    def clock(self) -> Clock:
        return self._receiver.clock

    @clock.setter
    def clock(self, clock: Clock) -> None:
        self._receiver.clock = clock

    def __iter__(self) -> Replaying:
        return self

    def __next__(self) -> Any:
        index, self._first = self._first, -1
        if index >= 0:
            return self._receiver._decode(index)
        return next(self._receiver)

    def next_within(self, seconds: float) -> Any:
        index, self._first = self._first, -1
        if index >= 0:
            return self._receiver._decode(index)
        return self._receiver.next_within(seconds)

    def release(self) -> None:
        self._receiver.release()

    def finish(self) -> None:
        self._receiver.finish()
