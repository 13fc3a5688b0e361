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

The parts: ``_layout`` (the segment: control words, queues, slots, and its
life), ``_sender`` and ``_receiver`` (the two ends, each a flat per-packet
path), ``_takeover`` (a new worker's end going on from a dead one's),
``_overflow`` (the segments of messages larger than a slot), ``_edge``
(``ShmEdge``: the segment with its ends).
"""

from ._edge import ShmEdge

__all__ = ["ShmEdge"]
