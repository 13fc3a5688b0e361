"""The overflow segments of an edge without ``max_message_size``: a message larger than its slot.

::

    slot i (64 KiB): | head: size, flags=OVERFLOW |          segment /sf-<run>-<edge>-<i>: | the message |

Each slot has one, named after the run, the edge and the slot (mode 0600),
grown in whole MiB by the producer to the largest message it has carried
and mapped again by the consumer as it grows; the run's sweep unlinks
them, whoever ends the run.
"""

from __future__ import annotations

import mmap
import os

from .._memory import posixshmem, reserve
from ._layout import Segment, round_up

__all__ = ["Overflow"]


class Overflow:
    """This process's mappings of an edge's per-slot overflow segments."""

    _GROWTH = 1 << 20  # grow in whole MiB, so that sizes that vary a little reuse one segment

    def __init__(self, edge: Segment) -> None:
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
                length = round_up(size, self._GROWTH)
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
