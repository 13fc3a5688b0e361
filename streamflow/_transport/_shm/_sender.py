"""The producing end of a shared-memory edge: reserve a slot, write a packet into it, post it.

::

    reserve(): free.acquire() (spinning, then sleeping) -> the next slot (ring) or a free index (queue)
    send(x):   pickle x into the slot (its head's kind word 0), or pack it (buffers, overflow, by value)
               -> ring: ready.release(); queue: push the index on the ready queue, ready.release()
    close():   the last producer marks the end (ring: packets sent in all; queue: an end mark a consumer)

The per-packet path is kept flat on purpose: a plain pickle writes one
word of its slot's head and its bytes, and posts.
"""

from __future__ import annotations

import pickle
from typing import Any

from ..._errors import MessageTooLarge
from .. import Aborted, DownstreamClosed
from .._clock import Clock
from .._serialize import HEAD, Packed, pack_message, serves, write
from .._spin import wait
from ._layout import ABORT, CLOSED, END, FREE_HEAD, HEAD_SIZE, KIND, MOVED, OVERFLOW, PRODUCERS, QUEUES, READY_TAIL, SKIP, Segment
from ._overflow import Overflow

__all__ = ["ShmSender"]

_dumps = pickle.dumps
_pack_head = HEAD.pack_into


class ShmSender:
    """The producing end of an edge; the per-packet path is kept flat on purpose."""

    __slots__ = (
        "_edge", "_ctrl", "_slots", "_heads", "_payloads", "_free_acquire", "_free_lock", "_ready_release",
        "_ready_lock", "_ready_base", "_ready_size", "_capacity", "_serves", "_index", "_room", "_buffers", "_keep",
        "_ring", "_counts", "_flat", "_next", "_after", "_sent", "_overflow", "_spin", "_spinning", "_reserved_at", "clock",
    )

    def __init__(self, edge: Segment, endpoint: int = 0) -> None:
        self.clock = Clock()
        self._edge = edge
        self._ctrl = edge.ctrl
        self._slots = edge.slots
        self._heads = edge.heads
        self._payloads = edge.payloads
        self._free_acquire = edge.free.acquire
        self._free_lock = edge.producer_lock
        self._ready_release = edge.ready.release
        self._ready_lock = edge.producer_lock
        self._ready_base = edge.ready_base
        self._ready_size = edge.ready_size
        self._capacity = edge.capacity
        self._serves = serves(edge.reader, edge.shipped)  # None: a plain pickle always serves the reader
        self._index = -1
        self._room = edge.slot_size - HEAD_SIZE  # the largest pickle that goes in with its head alone
        self._buffers: list[pickle.PickleBuffer] = []  # a message's out-of-band buffers, while it is sent
        self._keep = self._buffers.append
        self._ring = edge.ring
        self._sent = int(self._ctrl[MOVED]) if edge.ring else 0  # nonzero for a replacement
        self._next = self._sent % self._capacity  # ring mode: the slot to fill next
        self._after = edge.after
        self._overflow = Overflow(edge)
        self._spin = edge.spin
        self._spinning = True
        self._reserved_at = edge.reserved_base + endpoint if edge.recoverable else -1
        self._counts = edge.watched or (edge.ring and edge.recoverable)  # keeps ``MOVED``
        self._flat = edge.ring and not edge.recoverable  # sending is one step: the common case, inline
        if self._reserved_at >= 0 and self._ctrl[self._reserved_at] >= 0:
            # The worker this one replaces died with a slot reserved: pass it on empty.
            self._index = int(self._ctrl[self._reserved_at])
            self.unreserve()

    def reserve(self) -> None:
        if not self._free_acquire(False):
            self._spinning = wait(self._free_acquire, self._spin, self._spinning, self.clock)
        ctrl = self._ctrl
        if ctrl[ABORT] or ctrl[CLOSED]:
            self._edge.free.release()  # pass the wake-up on to the next waiter
            raise Aborted() if ctrl[ABORT] else DownstreamClosed()
        if self._ring:
            index = self._next
            self._next = self._after[index]
        else:
            index = self._take_free()
        self._index = index
        if self._reserved_at >= 0:
            ctrl[self._reserved_at] = index

    def _take_free(self) -> int:
        """Queue mode: the index of a free slot (one is ours: ``free`` was acquired)."""
        ctrl, lock = self._ctrl, self._free_lock
        if lock is not None:
            lock.acquire()
        position = ctrl[FREE_HEAD]
        ctrl[FREE_HEAD] = position + 1
        index: int = ctrl[QUEUES + position % self._capacity]
        if lock is not None:
            lock.release()
        return index

    def unreserve(self) -> None:
        if self._ring:
            if self._reserved_at >= 0:
                self._ctrl[self._reserved_at] = -1
            self._next = self._index  # the slot stays next in line
            self._edge.free.release()
        else:
            # The free queue's tail is the consumers' side: hand the slot to
            # a consumer marked as empty, and it frees it as it would any other.
            _pack_head(self._slots[self._index], 0, 0, 0, SKIP)
            self._post()
        self._index = -1

    def send(self, item: Any) -> None:
        try:
            main: bytes | None = _dumps(item, 5, buffer_callback=self._keep)
        except Exception:  # noqa: BLE001 - retried by value in _send_packed
            main = None
        index = self._index
        # The fast path: a plain pickle that fits, has no out-of-band buffers and serves the
        # reader (``_serialize.serves``, the rule every transport follows).
        if (
            main is not None
            and len(main) <= self._room
            and not self._buffers
            and (self._serves is None or self._serves(item, main))
        ):
            self._heads[index][KIND] = 0  # a plain pickle
            self._payloads[index][: len(main)] = main
        else:
            self._send_packed(self._slots[index], item, main)
        self._sent += 1
        if self._flat:
            if self._counts:
                self._ctrl[MOVED] = self._sent
            self._ready_release()
        else:
            self._post()

    def _post(self) -> None:
        """Hand the reserved slot to the consumers."""
        ctrl = self._ctrl
        if self._reserved_at >= 0:
            ctrl[self._reserved_at] = -1  # dying from here on loses the slot, never doubles it
        if self._ring:
            if self._counts:
                ctrl[MOVED] = self._sent
        else:
            lock = self._ready_lock
            if lock is not None:
                lock.acquire()
            position = ctrl[READY_TAIL]
            ctrl[self._ready_base + position % self._ready_size] = self._index
            ctrl[READY_TAIL] = position + 1
            if lock is not None:
                lock.release()
            if self._counts:
                ctrl[MOVED] += 1  # under no lock: a lost count still shows movement
        self._ready_release()

    def _send_packed(self, slot: memoryview, item: Any, main: bytes | None) -> None:
        """Send what the fast path cannot: out-of-band buffers, a message over the slot,
        or one that plain pickle cannot make for this edge's reader."""
        edge, buffers = self._edge, self._buffers
        try:
            if main is not None and (self._serves is None or self._serves(item, main)):
                packed = Packed(main, [b.raw() for b in buffers])
            else:
                packed = pack_message(item, edge.reader, edge.name)
        finally:
            buffers.clear()
        if packed.size <= len(slot):
            write(slot, packed)
        elif edge.limit is not None:
            raise MessageTooLarge(
                f"stage '{edge.name}' yielded a message of {packed.size:,} bytes, over its "
                f"max_message_size={edge.limit:,}; raise max_message_size or leave it unset"
            )
        else:
            with self._overflow.view(self._index, packed.size, grow=True) as view:
                write(view, packed)
            _pack_head(slot, 0, packed.size, 0, OVERFLOW)

    def close(self) -> None:
        edge = self._edge
        self._overflow.close()
        if self._ring:
            edge.ctrl[END] = self._sent
            edge.ready.release()
            return
        with edge.end_lock:
            edge.ctrl[PRODUCERS] -= 1
            last = edge.ctrl[PRODUCERS] == 0
        if not last:
            return
        for _ in range(edge.consumers):
            if edge.producer_lock is None:
                edge._push(edge.ready_base, edge.ready_size, READY_TAIL, -1)
            else:
                with edge.producer_lock:
                    edge._push(edge.ready_base, edge.ready_size, READY_TAIL, -1)
            edge.ready.release()
