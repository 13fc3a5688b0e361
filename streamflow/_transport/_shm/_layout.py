"""The segment of one shared-memory edge: where each word and slot lives, and its life.

::

    | ctrl words | free queue | ready queue | held | again | reserved | (page) slot 0 | slot 1 | ... |
      ABORT CLOSED PRODUCERS CONSUMERS FREE_HEAD FREE_TAIL READY_HEAD READY_TAIL MOVED END RECEIVED

    a slot: | head: size u64 | kind (buffers' count u32 | flags u32) | payload: a pickle, or a packed message |

The ends (``_sender``, ``_receiver``) read and write these words and slots;
only ``Segment`` makes, maps, pickles and frees them.
"""

from __future__ import annotations

import mmap
from typing import Any

from .._main_classes import MainClasses
from .._memory import SharedBuffer
from .._sem import Semaphore
from .._serialize import HEAD, Reader
from .._spin import spin_budget

__all__ = [
    "ABORT", "CLOSED", "CONSUMERS", "DEFAULT_SLOT", "END", "FREE_HEAD", "FREE_TAIL", "HEAD_SIZE", "KIND", "MOVED",
    "OVERFLOW", "PRODUCERS", "QUEUES", "READY_HEAD", "READY_TAIL", "RECEIVED", "SKIP", "Segment", "round_up",
]

DEFAULT_SLOT = 64 * 1024
HEAD_SIZE = HEAD.size
ABORT, CLOSED, PRODUCERS, CONSUMERS = 0, 1, 2, 3
FREE_HEAD, FREE_TAIL, READY_HEAD, READY_TAIL, MOVED, END, RECEIVED = 4, 5, 6, 7, 8, 9, 10
QUEUES = 16  # first index of the free queue
_PAGE = mmap.PAGESIZE
OVERFLOW = 1  # a slot's flags: the message is in the slot's overflow segment
SKIP = 2  # a slot a producer reserved but did not fill
KIND = 1  # the head's second word (its buffers' count and flags): 0 for a plain pickle
_VIEWS = ("ctrl", "data", "slots", "heads", "payloads")  # this process's views of the segment


def round_up(value: int, unit: int) -> int:
    return (value + unit - 1) // unit * unit


class Segment:
    """The shared memory of one edge and what lives in it: control words, index queues, slots.

    Picklable only while spawning workers (its file descriptor and semaphores
    go with it); ``ShmEdge`` adds the ends and the take-over of a dead one's.
    """

    def __init__(
        self,
        *,
        name: str,
        capacity: int,
        producers: int,
        consumers: int,
        max_message_size: int | None,
        shared_buffer: bool,
        run_id: str,
        forked: bool,
        reader: Reader,
        index: int = 0,
        spin: float | None = None,
        recoverable: bool = False,
        watched: bool = True,
        shipped: MainClasses | None = None,
    ) -> None:
        """``forked``: workers inherit the edge (else it is pickled to them);
        ``reader``: who unpickles its messages (the caller, for an open flow's last edge);
        ``shipped``: the caller's ``__main__`` classes, for a ``FRESH`` reader: a worker
        installs them as it takes an end, and they go by name;
        ``spin``: microseconds a waiter retries before it sleeps (0: never;
        ``None``: ``STREAMFLOW_SPIN_US`` as set in this process, or the default).
        ``recoverable``: a new worker can take over the end of one that died
        (``held``, ``again``); the edge then keeps, per worker, the slot it
        holds or has reserved, and in ring mode how far the consumer has read.
        ``watched``: someone reads ``moved()`` (an inactivity timeout); else
        the count of packets sent is kept only where a replacement needs it.
        Raises ``OptionError`` for a bad spin budget."""
        self.spin = spin_budget(spin)  # nanoseconds; travels to the workers inside the edge
        self.name = name
        self.index = index
        self.capacity = capacity
        self.producers = producers
        self.consumers = consumers
        self.limit = max_message_size
        self.shared_buffer = shared_buffer
        self.run_id = run_id
        self.reader = reader
        self.shipped = shipped
        self.slot_size = round_up(max_message_size or DEFAULT_SLOT, 64)
        self.ready_base = QUEUES + capacity
        self.ready_size = capacity + consumers  # room for the end-of-stream marks
        self.recoverable = recoverable
        self.watched = watched
        # Per worker: the slot each consumer holds, the failed attempts at it
        # (nonzero: give it again), the slot each producer has reserved.
        self.held_base = self.ready_base + self.ready_size
        self.again_base = self.held_base + consumers
        self.reserved_base = self.again_base + consumers
        control = (self.reserved_base + producers) * 8
        self.data_offset = round_up(control, _PAGE)
        self.total = self.data_offset + capacity * self.slot_size
        what = (
            f"edge '{name}' (packets_in_flight={capacity} x "
            f"{'max_message_size' if max_message_size else 'slot'}={self.slot_size:,} bytes)"
        )
        self.buffer = SharedBuffer(self.total, what)
        prefix = run_id
        self.free = Semaphore(capacity, prefix=prefix, inherited=forked)
        self.ready = Semaphore(0, prefix=prefix, inherited=forked)
        many = producers > 1 or consumers > 1
        self.ring = not many
        self.after = [*range(1, capacity), 0]  # ring mode: the slot that follows each
        self.numbered = many  # the ready queue numbers the packets: receivers tell each one's ``position``
        # Producers move FREE_HEAD and READY_TAIL, consumers FREE_TAIL and
        # READY_HEAD: a side needs a lock only when several workers share it.
        self.producer_lock = Semaphore(1, maxvalue=1, prefix=prefix, inherited=forked) if producers > 1 else None
        self.consumer_lock = Semaphore(1, maxvalue=1, prefix=prefix, inherited=forked) if consumers > 1 else None
        self.end_lock = Semaphore(1, maxvalue=1, prefix=prefix, inherited=forked)
        self._map()
        ctrl = self.ctrl
        ctrl[PRODUCERS] = producers
        ctrl[CONSUMERS] = consumers
        ctrl[END] = -1  # ring mode: packets sent in all, once the producer closed
        # Ring mode: packets sent so far (``MOVED``) and, on a recoverable edge,
        # received so far (``RECEIVED``): where a new worker's end goes on from.
        for index in range(capacity):
            ctrl[QUEUES + index] = index
        ctrl[FREE_TAIL] = capacity
        for index in range(consumers):
            ctrl[self.held_base + index] = -1
        for index in range(producers):
            ctrl[self.reserved_base + index] = -1

    def _map(self) -> None:
        view = memoryview(self.buffer.memory)
        self.ctrl = view[: self.data_offset].cast("q")
        self.data = view[self.data_offset :]
        size = self.slot_size
        self.slots = [self.data[i * size : (i + 1) * size] for i in range(self.capacity)]
        # A plain pickle (the common case) writes and reads only its head's kind word, 0,
        # and loads from the payload's view: pickle ignores the bytes past its end.
        self.heads = [slot[:HEAD_SIZE].cast("q") for slot in self.slots]
        self.payloads = [slot[HEAD_SIZE:] for slot in self.slots]

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in _VIEWS}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._map()

    def semaphores(self) -> list[Semaphore]:
        locks = (self.producer_lock, self.consumer_lock, self.end_lock)
        return [s for s in (self.free, self.ready, *locks) if s]

    def unlink(self) -> None:
        """Remove the semaphores' names, once every worker has opened them (or never will)."""
        for sem in self.semaphores():
            sem.unlink()

    def moved(self) -> int:
        """Packets sent so far: counted only on a ``watched`` edge, or one in ring mode that is ``recoverable``."""
        return int(self.ctrl[MOVED])

    def aborted(self) -> bool:
        return bool(self.ctrl[ABORT])

    def abort(self) -> None:
        """Wake every waiter on the edge with ``Aborted``; safe from any process."""
        self.ctrl[ABORT] = 1
        for _ in range(self.consumers + 1):
            self.ready.release()
        for _ in range(self.producers + 1):
            self.free.release()

    def close(self) -> None:
        """Unlink the names, unmap and close this process's view; the memory
        goes with the last process that maps it."""
        self.unlink()
        for name in ("heads", "payloads", "slots"):
            for view in self.__dict__.pop(name, []):
                view.release()
        for name in ("ctrl", "data"):
            view = self.__dict__.pop(name, None)
            if view is not None:
                view.release()
        self.buffer.close()

    # -- queue of slot indexes (called with the side's lock held, if any) --

    def _push(self, base: int, size: int, tail: int, value: int) -> None:
        ctrl = self.ctrl
        position = ctrl[tail]
        ctrl[base + position % size] = value
        ctrl[tail] = position + 1
