"""Messages as bytes: pickle protocol 5 with out-of-band buffers.

A packed message is the pickle stream plus the raw buffers pickle handed out
of band (numpy arrays, bytearrays, PickleBuffers).  ``write`` lays them
into a slot, each buffer 64-byte aligned, so a buffer crosses with one copy
in; ``read`` rebuilds the object from the slot, over copies of the buffers
or, with ``copy=False``, over views of the slot itself.

Slot layout::

    | main_len u64 | n_buf u32 | pad u32 | buf_len u64 * n_buf | main | buf 0 | buf 1 | ...

Plain ``pickle`` is the fast path.  What it cannot pickle (lambdas, local
classes) and, under spawn/forkserver, anything referring to ``__main__``
(which worker processes do not import) is pickled by value with cloudpickle.
"""

from __future__ import annotations

import mmap
import pickle
import struct
from typing import Any

import cloudpickle

__all__ = ["Packed", "pack", "read", "write"]

_HEAD = struct.Struct("<QII")
_LEN = struct.Struct("<Q")
_ALIGN = 64
_LARGE = 1 << 20
_HUGEPAGE = getattr(mmap, "MADV_HUGEPAGE", None)


def _aligned(offset: int) -> int:
    return (offset + _ALIGN - 1) & ~(_ALIGN - 1)


class Packed:
    """A pickled message ready to be written: its stream, buffers and size."""

    __slots__ = ("main", "buffers", "size")

    def __init__(self, main: bytes, buffers: list[memoryview]) -> None:
        self.main = main
        self.buffers = buffers
        offset = _HEAD.size + _LEN.size * len(buffers) + len(main)
        for buf in buffers:
            offset = _aligned(offset) + buf.nbytes
        self.size = offset


def pack(obj: Any, main_by_value: bool) -> Packed:
    """Pickle ``obj``; raises ``pickle.PicklingError``/``TypeError`` if it cannot travel."""
    raw: list[pickle.PickleBuffer] = []
    try:
        main = pickle.dumps(obj, protocol=5, buffer_callback=raw.append)
        if not (main_by_value and b"__main__" in main):
            return Packed(main, [b.raw() for b in raw])
    except Exception:  # noqa: BLE001 - retried by value, which reports its own error
        pass
    raw = []
    main = cloudpickle.dumps(obj, protocol=5, buffer_callback=raw.append)
    return Packed(main, [b.raw() for b in raw])


def write(slot: memoryview, packed: Packed) -> None:
    """Lay ``packed`` into ``slot`` (which must hold ``packed.size`` bytes)."""
    buffers = packed.buffers
    _HEAD.pack_into(slot, 0, len(packed.main), len(buffers), 0)
    offset = _HEAD.size
    for buf in buffers:
        _LEN.pack_into(slot, offset, buf.nbytes)
        offset += _LEN.size
    end = offset + len(packed.main)
    slot[offset:end] = packed.main
    offset = end
    for buf in buffers:
        offset = _aligned(offset)
        end = offset + buf.nbytes
        slot[offset:end] = buf.cast("B") if buf.ndim != 1 or buf.format != "B" else buf
        offset = end


def _private_copy(view: memoryview) -> Any:
    """A writable copy of ``view`` that the reader owns.

    Large buffers go into an anonymous mapping backed by huge pages where
    the kernel allows: a fresh bytearray of tens of megabytes costs more in
    page faults than in copying.
    """
    if view.nbytes < _LARGE:
        return bytearray(view)
    memory = mmap.mmap(-1, view.nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    if _HUGEPAGE is not None:
        memory.madvise(_HUGEPAGE)
    target = memoryview(memory)
    target[:] = view
    return target


def read(slot: memoryview, copy: bool) -> Any:
    """The message in ``slot``; its buffers copied unless ``copy`` is False."""
    main_len, count, _ = _HEAD.unpack_from(slot, 0)
    offset = _HEAD.size
    lengths = []
    for _ in range(count):
        lengths.append(_LEN.unpack_from(slot, offset)[0])
        offset += _LEN.size
    main = slot[offset : offset + main_len]
    offset += main_len
    buffers: list[Any] = []
    for length in lengths:
        offset = _aligned(offset)
        view = slot[offset : offset + length]
        buffers.append(_private_copy(view) if copy else view)
        offset += length
    return pickle.loads(main, buffers=buffers)
