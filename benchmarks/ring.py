"""Floors for small messages: a reference ring in pure Python, and streamflow's edges alone.

::

    source process --ring A--> pass-through process --ring B--> sink process
                   | head | tail | slot 0 | slot 1 | ... |   (one anonymous shared mmap a ring)

The same flow as the ``small`` workload, stripped to what a hand-off must
do: pickle, copy into a slot, publish a counter; poll the counter, unpickle.
Waiters poll with ``os.sched_yield()`` and never sleep, so it shows what
pure Python can reach on this machine when no hand-off pays a wake-up.  It
spins for as long as it waits (an idle ring burns a core), has no abort, no
crash detection and one producer and one consumer a ring, and relies on
x86's store order: a benchmark's floor, which the library cannot be.
``packets_in_flight`` keeps streamflow's meaning: a consumer frees a slot
when it asks for the next packet, so at 1 the producer is never more than
one packet ahead.

``run_edges`` runs the same three processes over streamflow's own
shared-memory edges, without the runtime around them (no worker loop,
counters or supervisor): between the two and a full flow, it tells the
transport's cost from the runtime's.
"""

from __future__ import annotations

import mmap
import multiprocessing
import os
import pickle
import struct
from collections.abc import Iterable, Iterator
from typing import Any

from streamflow._transport._memory import new_run_id, sweep
from streamflow._transport._serialize import Reader
from streamflow._transport._shm import ShmEdge

from .workloads import PASS, SINK, SOURCE, _time_stream, metered

__all__ = ["run_edges", "run_ring"]

_LENGTH = struct.Struct("q")
_HEAD, _TAIL = 0, 8  # int64 indexes into the control page; a cache line apart
_CONTROL = 128
_END = -1


class Ring:
    """A bounded ring of ``capacity`` slots between two forked processes."""

    def __init__(self, capacity: int, slot: int = 4096) -> None:
        self.capacity, self.slot = capacity, slot
        self.memory = mmap.mmap(-1, _CONTROL + capacity * slot)  # anonymous, shared with children
        self.view = memoryview(self.memory)
        self.ctrl = self.view[:_CONTROL].cast("q")

    def send_all(self, items: Iterable[Any], strict: bool = False) -> None:
        """Pickle each item into the next slot once it is free, then mark the end.

        ``strict``: take each item from ``items`` only once a slot is free, as
        streamflow does (a ``yield`` blocks until there is room).  Otherwise
        the next item is built and pickled while the ring is full: one packet
        more in flight than ``capacity``, and at capacity 1 no lockstep.
        """
        ctrl, view, capacity, slot = self.ctrl, self.view, self.capacity, self.slot
        dumps, pack, spin = pickle.dumps, _LENGTH.pack_into, os.sched_yield
        tail = 0
        # The two loops differ only in when they take the next item: each stays inline, as a floor should.
        if strict:
            pull = iter(items).__next__
            while True:
                while tail - ctrl[_HEAD] >= capacity:
                    spin()
                try:
                    data = dumps(pull(), 5)
                except StopIteration:
                    break
                offset = _CONTROL + tail % capacity * slot
                pack(view, offset, len(data))
                view[offset + 8 : offset + 8 + len(data)] = data
                tail += 1
                ctrl[_TAIL] = tail
        else:
            for item in items:
                data = dumps(item, 5)
                while tail - ctrl[_HEAD] >= capacity:
                    spin()
                offset = _CONTROL + tail % capacity * slot
                pack(view, offset, len(data))
                view[offset + 8 : offset + 8 + len(data)] = data
                tail += 1
                ctrl[_TAIL] = tail  # published after the bytes: x86 keeps stores in order
        while tail - ctrl[_HEAD] >= capacity:
            spin()
        pack(view, _CONTROL + tail % capacity * slot, _END)
        ctrl[_TAIL] = tail + 1

    def receive(self) -> Iterator[Any]:
        """Each item in turn; asking for the next frees the previous one's slot."""
        ctrl, view, capacity, slot = self.ctrl, self.view, self.capacity, self.slot
        loads, unpack, spin = pickle.loads, _LENGTH.unpack_from, os.sched_yield
        head = 0
        while True:
            while ctrl[_TAIL] == head:
                spin()
            offset = _CONTROL + head % capacity * slot
            (size,) = unpack(view, offset)
            if size == _END:
                return
            yield loads(view[offset + 8 : offset + 8 + size])
            head += 1
            ctrl[_HEAD] = head


def _source(out: Ring, n: int, meter: Any, strict: bool) -> None:
    out.send_all(({"index": i, "name": "item", "value": 0.5} for i in metered(range(n), meter, SOURCE)), strict)


def _pass(inp: Ring, out: Ring, meter: Any, strict: bool) -> None:
    out.send_all(metered(inp.receive(), meter, PASS), strict)


def _sink(inp: Ring, meter: Any) -> None:
    _time_stream(metered(inp.receive(), meter, SINK), meter)


def run_ring(n: int, capacity: int, meter: Any, strict: bool = False) -> None:
    """Run source -> pass-through -> sink over two rings in three forked processes
    (``strict``: with streamflow's backpressure, see ``Ring.send_all``)."""
    first, second = Ring(capacity), Ring(capacity)
    _run_three((_source, (first, n, meter, strict)), (_pass, (first, second, meter, strict)), (_sink, (second, meter)))
    for ring in (first, second):
        ring.ctrl.release()
        ring.view.release()
        ring.memory.close()


def _edge_source(out: ShmEdge, n: int, meter: Any) -> None:
    sender = out.sender(0)
    for i in metered(range(n), meter, SOURCE):
        sender.reserve()
        sender.send({"index": i, "name": "item", "value": 0.5})
    sender.close()


def _edge_pass(inp: ShmEdge, out: ShmEdge, meter: Any) -> None:
    sender = out.sender(0)
    for item in metered(inp.receiver(0), meter, PASS):
        sender.reserve()
        sender.send(item)
    sender.close()


def _edge_sink(inp: ShmEdge, meter: Any) -> None:
    _time_stream(metered(inp.receiver(0), meter, SINK), meter)


def run_edges(n: int, capacity: int, max_message_size: int | None, meter: Any) -> None:
    """Run source -> pass-through -> sink over two of streamflow's edges, without its runtime."""
    edges = [
        ShmEdge(
            name=name, capacity=capacity, producers=1, consumers=1, max_message_size=max_message_size,
            shared_buffer=False, run_id=new_run_id(), forked=True, reader=Reader.FORKED, watched=False,
        )
        for name in ("source", "pass")
    ]
    first, second = edges
    try:
        _run_three((_edge_source, (first, n, meter)), (_edge_pass, (first, second, meter)), (_edge_sink, (second, meter)))
    finally:
        for edge in edges:
            edge.close()
            sweep(edge.run_id)


def _run_three(*targets: tuple[Any, tuple[Any, ...]]) -> None:
    ctx = multiprocessing.get_context("fork")
    processes = [ctx.Process(target=target, args=args) for target, args in targets]
    for process in processes:
        process.start()
    for process in processes:
        process.join()
        if process.exitcode:
            raise RuntimeError(f"a floor's process failed with exit code {process.exitcode}")
