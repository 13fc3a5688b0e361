"""The consuming end of a shared-memory edge: take a packet, read it, free its slot on the next take.

::

    next():  free the slot of the last packet (ring: free.release(); queue: push its index, free.release())
             ready.acquire() (spinning, then sleeping) -> the next slot (ring) or the ready queue's index
             -> a plain pickle loaded from the slot in place, or a packed message read (copies or views)

A consumer notes in its endpoint's word the slot it holds (cleared before
it sleeps), so that the caller can name the item a dead worker held.  The
ring's receiver where no worker is taken over (``RingReceiver``) does a
packet in one frame.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any

from .. import Aborted, Quiet
from .._clock import Clock
from .._serialize import HEAD, read
from .._spin import wait
from ._layout import (
    ABORT, CLOSED, CONSUMERS, END, FREE_TAIL, KIND, OVERFLOW, QUEUES, READY_HEAD, RECEIVED, SKIP, Segment,
)
from ._overflow import Overflow

__all__ = ["RingReceiver", "ShmReceiver"]

_loads = pickle.loads
_unpack_head = HEAD.unpack_from


class ShmReceiver:
    """The consuming end of an edge; asking for a packet frees the previous one."""

    __slots__ = (
        "_edge", "_ctrl", "_slots", "_heads", "_payloads", "_ready_acquire", "_ready_lock", "_free_release", "_free_lock",
        "_ready_base", "_ready_size", "_capacity", "_held", "_ended", "_finished", "_copy",
        "_ring", "_next", "_after", "_received", "_overflow", "_spin", "_spinning", "_held_at", "_slot_at", "clock",
        "position", "gap",
    )

    def __init__(self, edge: Segment, endpoint: int = 0) -> None:
        self.clock = Clock()
        self.position = -1  # queue mode: the ready queue's position of the packet handed out last
        self.gap: Callable[[int], None] | None = None  # told the positions of slots given back empty
        self._edge = edge
        self._ctrl = edge.ctrl
        self._slots = edge.slots
        self._heads = edge.heads
        self._payloads = edge.payloads
        self._ready_acquire = edge.ready.acquire
        self._ready_lock = edge.consumer_lock
        self._free_release = edge.free.release
        self._free_lock = edge.consumer_lock  # consumers move the free queue's tail
        self._ready_base = edge.ready_base
        self._ready_size = edge.ready_size
        self._capacity = edge.capacity
        self._held = -1
        self._ended = False
        self._finished = False
        self._copy = not edge.shared_buffer
        self._ring = edge.ring
        self._received = int(self._ctrl[RECEIVED]) if edge.ring else 0  # nonzero for a replacement
        self._next = self._received % self._capacity  # ring mode: the slot to read next
        self._after = edge.after
        self._overflow = Overflow(edge)
        self._spin = edge.spin
        self._spinning = True
        # The word where this end notes the slot it holds, read by the caller if its worker dies:
        # on every edge, so that a crash names its item; a recoverable edge also hands it on.
        self._slot_at = edge.held_base + endpoint
        self._held_at = self._slot_at if edge.recoverable else -1
        if self._held_at >= 0:
            self._held = int(self._ctrl[self._held_at])  # the slot the worker this one replaces held

    def __iter__(self) -> ShmReceiver:
        return self

    def release(self) -> None:
        """Free the slot of the packet handed out last (the next ``__next__`` would)."""
        held = self._held
        if held < 0:
            return
        self._held = -1
        if self._held_at >= 0:
            self._forget_held()
        if self._ring:
            self._free_release()
        else:
            self._give_back(held)

    def _give_back(self, index: int) -> None:
        """Queue mode: put slot ``index`` on the free queue, and count it free."""
        ctrl, lock = self._ctrl, self._free_lock
        if lock is not None:
            lock.acquire()
        position = ctrl[FREE_TAIL]
        ctrl[QUEUES + position % self._capacity] = index
        ctrl[FREE_TAIL] = position + 1
        if lock is not None:
            lock.release()
        self._free_release()

    def __next__(self) -> Any:
        if self._held >= 0:
            self.release()
        if self._ended:
            raise StopIteration
        if not self._ready_acquire(False):
            self._ctrl[self._slot_at] = -1  # while it waits, it holds nothing
            self._spinning = wait(self._ready_acquire, self._spin, self._spinning, self.clock)
        return self._take()

    def next_within(self, seconds: float) -> Any:
        if self._held >= 0:
            self.release()
        if self._ended:
            raise StopIteration
        if not self._ready_acquire(False):
            self._ctrl[self._slot_at] = -1
            with self.clock:
                if not self._ready_acquire(True, max(0.0, seconds)):
                    raise Quiet()
        return self._take()

    def _take(self) -> Any:
        """The packet whose ``ready`` count was just taken."""
        ctrl = self._ctrl
        if ctrl[ABORT]:
            self._edge.ready.release()  # pass the wake-up on to the next waiter
            raise Aborted()
        if self._ring:
            if self._received == ctrl[END]:
                self._ended = True
                raise StopIteration
            self._received += 1
            index = self._next
            self._next = self._after[index]
            ctrl[self._slot_at] = index
            if self._held_at >= 0:
                ctrl[RECEIVED] = self._received
        else:
            index = self._take_ready()
        self._held = index
        if self._heads[index][KIND]:
            return self._decode(index)
        return _loads(self._payloads[index])  # a plain pickle: the common case, inline

    def _take_ready(self) -> int:
        """Queue mode: the index of a ready slot; at the end of the stream, raises StopIteration."""
        ctrl, lock = self._ctrl, self._ready_lock
        if lock is not None:
            lock.acquire()
        position = ctrl[READY_HEAD]
        ctrl[READY_HEAD] = position + 1
        self.position = position
        index: int = ctrl[self._ready_base + position % self._ready_size]
        if index >= 0:
            ctrl[self._slot_at] = index
        if lock is not None:
            lock.release()
        if index < 0:
            self._ended = True
            raise StopIteration
        return index

    def _decode(self, index: int) -> Any:
        self._held = index
        slot = self._slots[index]
        size, count, flags = _unpack_head(slot, 0)
        if not (count or flags):
            return _loads(self._payloads[index])
        if flags == SKIP:  # a slot its producer gave back unused
            if self.gap is not None:
                self.release()
                self.gap(self.position)
            return self.__next__()  # frees this slot, then waits for a real packet
        if flags == OVERFLOW:
            with self._overflow.view(index, size, grow=False) as view:
                return read(view, copy=True)
        return read(slot, self._copy)

    def finish(self) -> None:
        if self._finished:
            return
        self._finished = True
        self._overflow.close()
        edge = self._edge
        if self._held >= 0:
            if self._held_at >= 0:
                self._forget_held()
            if self._ring:
                edge.free.release()
            else:
                self._give_back(self._held)
            self._held = -1
        if self._ended:
            return
        with edge.end_lock:
            edge.ctrl[CONSUMERS] -= 1
            last = edge.ctrl[CONSUMERS] == 0
        if last:
            edge.ctrl[CLOSED] = 1
            for _ in range(edge.producers + 1):
                edge.free.release()


    def _forget_held(self) -> None:
        """Clear the record of the held slot before freeing it: dying in between loses the slot,
        never frees it twice."""
        self._ctrl[self._held_at] = -1
        self._ctrl[self._edge.again_base + self._held_at - self._edge.held_base] = 0


class RingReceiver(ShmReceiver):
    """The consuming end of a ring that no worker takes over (the common case): its packet path in one frame."""

    __slots__ = ()

    def __next__(self) -> Any:
        if self._held >= 0:
            self._held = -1
            self._free_release()
        if self._ended:
            raise StopIteration
        ctrl = self._ctrl
        if not self._ready_acquire(False):
            ctrl[self._slot_at] = -1  # while it waits, it holds nothing
            self._spinning = wait(self._ready_acquire, self._spin, self._spinning, self.clock)
        if ctrl[ABORT] or self._received == ctrl[END]:
            return self._take()  # raises Aborted or StopIteration
        self._received += 1
        index = self._next
        self._next = self._after[index]
        self._held = index
        ctrl[self._slot_at] = index
        if self._heads[index][KIND]:
            return self._decode(index)
        return _loads(self._payloads[index])
