"""Edges between processes: a ring of fixed slots in shared memory.

::

    producers                        one anonymous shared segment                    consumers
    ---------                        ----------------------------                    ---------
    free.acquire()  ---------->  | ctrl | free queue | ready queue | slot 0 | ... |
    pop free index, write slot         ^                                   |
    push ready index, ready.release() -+--> ready.acquire(), pop ready index, read slot
                                       <--- next(): push free index, free.release()

``free`` and ``ready`` are process-shared semaphores (C-level, futex-backed:
no system call unless someone waits), so a packet costs four semaphore
operations and two copies of its bytes.  A waiter retries for the edge's
spin budget before it sleeps (``_spin``): a sleeping peer costs a wake-up
far dearer than the packet itself.  With one producer and one consumer
(the common case) slots are used in ring order and the index queues are not
needed at all; with several workers on a side, the queues' indexes are
guarded by locks.  The segment is a memfd: it has no
name, so nothing can outlive the run, and it is sized with fallocate, so a
shortage of shared memory is a clean error, not a bus error.

Without ``max_message_size``, slots are small (64 KiB) and each one has an
overflow segment that grows to the largest message it has carried (named
``/sf-<pid>-<random>-<edge>-<slot>``, mode 0600, unlinked at the end of the
run, or by the workers if the caller dies).  Large messages then cost the
same two copies as fixed slots, into memory that stays mapped.
"""

from __future__ import annotations

import mmap
import os
import pickle
from collections.abc import Callable
from typing import Any

from .._errors import MessageTooLarge
from . import Aborted, DownstreamClosed, Held, Quiet
from ._clock import Clock
from ._main_classes import MainClasses
from ._memory import SharedBuffer, posixshmem, reserve
from ._sem import Semaphore
from ._serialize import HEAD as _HEAD
from ._serialize import Packed, Reader, pack_message, read, write
from ._spin import spin_budget, wait

__all__ = ["ShmEdge"]

DEFAULT_SLOT = 64 * 1024
_dumps, _loads = pickle.dumps, pickle.loads
_pack_head, _unpack_head, _HEAD_SIZE = _HEAD.pack_into, _HEAD.unpack_from, _HEAD.size
_ABORT, _CLOSED, _PRODUCERS, _CONSUMERS = 0, 1, 2, 3
_FREE_HEAD, _FREE_TAIL, _READY_HEAD, _READY_TAIL, _MOVED, _END, _RECEIVED = 4, 5, 6, 7, 8, 9, 10
_QUEUES = 16  # first index of the free queue
_PAGE = mmap.PAGESIZE
_OVERFLOW = 1
_SKIP = 2  # a slot a producer reserved but did not fill
_KIND = 1  # the head's second word (its buffers' count and flags): 0 for a plain pickle


class ShmEdge:
    """One edge of a process flow; picklable only while spawning workers.

    Build it in the parent; hand it to workers (inherited under fork,
    pickled with its file descriptor under spawn/forkserver); each worker
    takes a ``sender()`` or ``receiver()`` end.
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
        self.slot_size = _round_up(max_message_size or DEFAULT_SLOT, 64)
        self.ready_base = _QUEUES + capacity
        self.ready_size = capacity + consumers  # room for the end-of-stream marks
        self.recoverable = recoverable
        self.watched = watched
        # Per worker: the slot each consumer holds, the failed attempts at it
        # (nonzero: give it again), the slot each producer has reserved.
        self.held_base = self.ready_base + self.ready_size
        self.again_base = self.held_base + consumers
        self.reserved_base = self.again_base + consumers
        control = (self.reserved_base + producers) * 8
        self.data_offset = _round_up(control, _PAGE)
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
        ctrl[_PRODUCERS] = producers
        ctrl[_CONSUMERS] = consumers
        ctrl[_END] = -1  # ring mode: packets sent in all, once the producer closed
        # Ring mode: packets sent so far (``_MOVED``) and, on a recoverable edge,
        # received so far (``_RECEIVED``): where a new worker's end goes on from.
        for index in range(capacity):
            ctrl[_QUEUES + index] = index
        ctrl[_FREE_TAIL] = capacity
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
        self.heads = [slot[:_HEAD_SIZE].cast("q") for slot in self.slots]
        self.payloads = [slot[_HEAD_SIZE:] for slot in self.slots]

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in _VIEWS}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._map()

    def sender(self, endpoint: int) -> ShmSender:
        if self.shipped is not None:
            self.shipped.install()
        return ShmSender(self, endpoint)

    def receiver(self, endpoint: int) -> ShmReceiver | _Replaying:
        if self.shipped is not None:
            self.shipped.install()
        if self.ring and not self.recoverable:
            return _RingReceiver(self)
        receiver = ShmReceiver(self, endpoint)
        if self.recoverable and receiver._held >= 0 and self.ctrl[self.again_base + endpoint] > 0:
            return _Replaying(receiver, receiver._held)
        return receiver

    # -- taking over the ends of a dead worker (recoverable edges) --

    def held(self, endpoint: int) -> Held | None:
        """The packet consumer ``endpoint`` held as its worker died (read in the caller); on an edge
        that is not ``recoverable``, the attempts at it are not kept (0)."""
        index = int(self.ctrl[self.held_base + endpoint])
        if index < 0:
            return None
        return Held(self._peek(index), int(self.ctrl[self.again_base + endpoint]) if self.recoverable else 0)

    def again(self, endpoint: int, attempts: int) -> None:
        """The next receiver of ``endpoint`` takes its held packet first (0 or -1, skipped: it frees it)."""
        self.ctrl[self.again_base + endpoint] = attempts

    def _peek(self, index: int) -> Any:
        """A copy of the packet in slot ``index``, or what can be said of it."""
        size, count, flags = _HEAD.unpack_from(self.slots[index], 0)
        try:
            if not (count or flags):
                return _loads(self.payloads[index])
            if flags == _OVERFLOW:
                overflow = _Overflow(self)
                try:
                    with overflow.view(index, size, grow=False) as view:
                        return read(view, copy=True)
                finally:
                    overflow.close()
            return read(self.slots[index], True)
        except Exception as exc:  # noqa: BLE001 - described instead
            what = f"an item of {size:,} bytes" if count or flags else "an item"  # a plain pickle's size is not written
            return f"<{what} that cannot be read in the caller: {exc}>"

    def semaphores(self) -> list[Semaphore]:
        locks = (self.producer_lock, self.consumer_lock, self.end_lock)
        return [s for s in (self.free, self.ready, *locks) if s]

    def unlink(self) -> None:
        """Remove the semaphores' names, once every worker has opened them (or never will)."""
        for sem in self.semaphores():
            sem.unlink()

    def moved(self) -> int:
        """Packets sent so far: counted only on a ``watched`` edge, or one in ring mode that is ``recoverable``."""
        return int(self.ctrl[_MOVED])

    def aborted(self) -> bool:
        return bool(self.ctrl[_ABORT])

    def abort(self) -> None:
        """Wake every waiter on the edge with ``Aborted``; safe from any process."""
        self.ctrl[_ABORT] = 1
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


_VIEWS = ("ctrl", "data", "slots", "heads", "payloads")  # this process's views of the segment


def _never(item: Any, data: bytes) -> bool:
    return False


def _round_up(value: int, unit: int) -> int:
    return (value + unit - 1) // unit * unit


class ShmSender:
    """The producing end of an edge; the per-packet path is kept flat on purpose."""

    __slots__ = (
        "_edge", "_ctrl", "_slots", "_heads", "_payloads", "_free_acquire", "_free_lock", "_ready_release",
        "_ready_lock", "_ready_base", "_ready_size", "_capacity", "_checks_main", "_covers", "_index", "_room", "_buffers", "_keep",
        "_ring", "_counts", "_flat", "_next", "_after", "_sent", "_overflow", "_spin", "_spinning", "_reserved_at", "clock",
    )

    def __init__(self, edge: ShmEdge, endpoint: int = 0) -> None:
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
        self._checks_main = edge.reader.checks_main
        self._covers = _never if edge.shipped is None else edge.shipped.covers  # (item, its plain pickle)
        self._index = -1
        self._room = edge.slot_size - _HEAD_SIZE  # the largest pickle that goes in with its head alone
        self._buffers: list[pickle.PickleBuffer] = []  # a message's out-of-band buffers, while it is sent
        self._keep = self._buffers.append
        self._ring = edge.ring
        self._sent = int(self._ctrl[_MOVED]) if edge.ring else 0  # nonzero for a replacement
        self._next = self._sent % self._capacity  # ring mode: the slot to fill next
        self._after = edge.after
        self._overflow = _Overflow(edge)
        self._spin = edge.spin
        self._spinning = True
        self._reserved_at = edge.reserved_base + endpoint if edge.recoverable else -1
        self._counts = edge.watched or (edge.ring and edge.recoverable)  # keeps ``_MOVED``
        self._flat = edge.ring and not edge.recoverable  # sending is one step: the common case, inline
        if self._reserved_at >= 0 and self._ctrl[self._reserved_at] >= 0:
            # The worker this one replaces died with a slot reserved: pass it on empty.
            self._index = int(self._ctrl[self._reserved_at])
            self.unreserve()

    def reserve(self) -> None:
        if not self._free_acquire(False):
            self._spinning = wait(self._free_acquire, self._spin, self._spinning, self.clock)
        ctrl = self._ctrl
        if ctrl[_ABORT] or ctrl[_CLOSED]:
            self._edge.free.release()  # pass the wake-up on to the next waiter
            raise Aborted() if ctrl[_ABORT] else DownstreamClosed()
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
        position = ctrl[_FREE_HEAD]
        ctrl[_FREE_HEAD] = position + 1
        index: int = ctrl[_QUEUES + position % self._capacity]
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
            _pack_head(self._slots[self._index], 0, 0, 0, _SKIP)
            self._post()
        self._index = -1

    def send(self, item: Any) -> None:
        try:
            main: bytes | None = _dumps(item, 5, buffer_callback=self._keep)
        except Exception:  # noqa: BLE001 - retried by value in _send_packed
            main = None
        index = self._index
        # ``find``, not ``in``: ``bytes in bytes`` first tries the needle as an int and
        # clears the TypeError, which costs it twice find's instructions.
        if (
            main is not None
            and len(main) <= self._room
            and not self._buffers
            and not (self._checks_main and main.find(b"__main__") >= 0 and not self._covers(item, main))
        ):
            self._heads[index][_KIND] = 0  # a plain pickle
            self._payloads[index][: len(main)] = main
        else:
            self._send_packed(self._slots[index], item, main)
        self._sent += 1
        if self._flat:
            if self._counts:
                self._ctrl[_MOVED] = self._sent
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
                ctrl[_MOVED] = self._sent
        else:
            lock = self._ready_lock
            if lock is not None:
                lock.acquire()
            position = ctrl[_READY_TAIL]
            ctrl[self._ready_base + position % self._ready_size] = self._index
            ctrl[_READY_TAIL] = position + 1
            if lock is not None:
                lock.release()
            if self._counts:
                ctrl[_MOVED] += 1  # under no lock: a lost count still shows movement
        self._ready_release()

    def _send_packed(self, slot: memoryview, item: Any, main: bytes | None) -> None:
        """Send what the fast path cannot: out-of-band buffers, a message over the slot,
        or one that plain pickle cannot make for this edge's reader."""
        edge, buffers = self._edge, self._buffers
        try:
            if main is not None and not (self._checks_main and main.find(b"__main__") >= 0 and not self._covers(item, main)):
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
            _pack_head(slot, 0, packed.size, 0, _OVERFLOW)

    def close(self) -> None:
        edge = self._edge
        self._overflow.close()
        if self._ring:
            edge.ctrl[_END] = self._sent
            edge.ready.release()
            return
        with edge.end_lock:
            edge.ctrl[_PRODUCERS] -= 1
            last = edge.ctrl[_PRODUCERS] == 0
        if not last:
            return
        for _ in range(edge.consumers):
            if edge.producer_lock is None:
                edge._push(edge.ready_base, edge.ready_size, _READY_TAIL, -1)
            else:
                with edge.producer_lock:
                    edge._push(edge.ready_base, edge.ready_size, _READY_TAIL, -1)
            edge.ready.release()


class ShmReceiver:
    """The consuming end of an edge; asking for a packet frees the previous one."""

    __slots__ = (
        "_edge", "_ctrl", "_slots", "_heads", "_payloads", "_ready_acquire", "_ready_lock", "_free_release", "_free_lock",
        "_ready_base", "_ready_size", "_capacity", "_held", "_ended", "_finished", "_copy",
        "_ring", "_next", "_after", "_received", "_overflow", "_spin", "_spinning", "_held_at", "_slot_at", "clock",
        "position", "gap",
    )

    def __init__(self, edge: ShmEdge, endpoint: int = 0) -> None:
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
        self._received = int(self._ctrl[_RECEIVED]) if edge.ring else 0  # nonzero for a replacement
        self._next = self._received % self._capacity  # ring mode: the slot to read next
        self._after = edge.after
        self._overflow = _Overflow(edge)
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
        position = ctrl[_FREE_TAIL]
        ctrl[_QUEUES + position % self._capacity] = index
        ctrl[_FREE_TAIL] = position + 1
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
        if ctrl[_ABORT]:
            self._edge.ready.release()  # pass the wake-up on to the next waiter
            raise Aborted()
        if self._ring:
            if self._received == ctrl[_END]:
                self._ended = True
                raise StopIteration
            self._received += 1
            index = self._next
            self._next = self._after[index]
            ctrl[self._slot_at] = index
            if self._held_at >= 0:
                ctrl[_RECEIVED] = self._received
        else:
            index = self._take_ready()
        self._held = index
        if self._heads[index][_KIND]:
            return self._decode(index)
        return _loads(self._payloads[index])  # a plain pickle: the common case, inline

    def _take_ready(self) -> int:
        """Queue mode: the index of a ready slot; at the end of the stream, raises StopIteration."""
        ctrl, lock = self._ctrl, self._ready_lock
        if lock is not None:
            lock.acquire()
        position = ctrl[_READY_HEAD]
        ctrl[_READY_HEAD] = position + 1
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
        if flags == _SKIP:  # a slot its producer gave back unused
            if self.gap is not None:
                self.release()
                self.gap(self.position)
            return self.__next__()  # frees this slot, then waits for a real packet
        if flags == _OVERFLOW:
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
            edge.ctrl[_CONSUMERS] -= 1
            last = edge.ctrl[_CONSUMERS] == 0
        if last:
            edge.ctrl[_CLOSED] = 1
            for _ in range(edge.producers + 1):
                edge.free.release()


    def _forget_held(self) -> None:
        """Clear the record of the held slot before freeing it: dying in between loses the slot,
        never frees it twice."""
        self._ctrl[self._held_at] = -1
        self._ctrl[self._edge.again_base + self._held_at - self._edge.held_base] = 0


class _RingReceiver(ShmReceiver):
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
        if ctrl[_ABORT] or self._received == ctrl[_END]:
            return self._take()  # raises Aborted or StopIteration
        self._received += 1
        index = self._next
        self._next = self._after[index]
        self._held = index
        ctrl[self._slot_at] = index
        if self._heads[index][_KIND]:
            return self._decode(index)
        return _loads(self._payloads[index])


class _Replaying:
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

    def __iter__(self) -> _Replaying:
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


class _Overflow:
    """This process's mappings of an edge's per-slot overflow segments."""

    _GROWTH = 1 << 20  # grow in whole MiB, so that sizes that vary a little reuse one segment

    def __init__(self, edge: ShmEdge) -> None:
        self._edge = edge
        self._maps: dict[int, mmap.mmap] = {}

    def view(self, index: int, size: int, *, grow: bool) -> memoryview:
        """The first ``size`` bytes of slot ``index``'s segment, (re)mapped as needed.

        The producer grows the segment (``grow=True``); the consumer maps
        what the producer made.  Release the view before the next call.
        """
        memory = self._maps.get(index)
        if memory is None or len(memory) < size:
            memory = self._map(index, size, grow)
        return memoryview(memory)[:size]

    def _map(self, index: int, size: int, grow: bool) -> mmap.mmap:
        edge = self._edge
        name = f"/{edge.run_id}-{edge.index}-{index}"
        fd = posixshmem.shm_open(name, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            length = os.fstat(fd).st_size
            if grow and length < size:
                length = _round_up(size, self._GROWTH)
                os.ftruncate(fd, length)
                reserve(fd, length, f"a {size:,}-byte message of stage '{edge.name}'")
            memory = mmap.mmap(fd, length)
        finally:
            os.close(fd)
        old = self._maps.pop(index, None)
        if old is not None:
            old.close()
        self._maps[index] = memory
        return memory

    def close(self) -> None:
        for memory in self._maps.values():
            memory.close()
        self._maps.clear()
