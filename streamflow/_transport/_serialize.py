"""How objects become bytes, for every transport: the one pickle policy.

Who reads the bytes decides how they are pickled (``Reader``):

- Plain ``pickle`` (protocol 5, with out-of-band buffers for arrays) is the
  fast path, and all a forked worker needs: its ``__main__`` is the caller's.
- A fresh interpreter (a spawned worker, a Ray actor) has no ``__main__``
  of the caller: what refers to it, and what plain pickle cannot do at all
  (lambdas, local classes), goes by value with cloudpickle.  Code keeps its
  real file name, so tracebacks and warnings name the user's file.  The
  exception: the classes a run shipped to its fresh workers, which they
  installed in their ``__main__`` (``_main_classes``), go by name.
- The caller has its own ``__main__``: classes and functions from it are
  sent by name, so that what comes back is an instance of the caller's own
  class (``except MyError:`` catches it), and the rest goes as above.

Jobs handed to new workers (``dumps_job``) may also carry multiprocessing
primitives, handed over as the worker starts, and name the functions that
their decorated stage shadows instead of copying them.

A packed message is written into a slot as::

    | main_len u64 | n_buf u32 | flags u32 | buf_len u64 * n_buf | main | buf 0 | buf 1 | ...

each buffer 64-byte aligned, so a buffer crosses with one copy in; ``read``
rebuilds the object over copies of the buffers or, with ``copy=False``,
over views of the slot itself.
"""

from __future__ import annotations

import enum
import importlib
import io
import mmap
import pickle
import struct
import sys
import types
from collections import ChainMap
from collections.abc import Callable
from multiprocessing.reduction import ForkingPickler
from typing import Any, Protocol

import cloudpickle

from .._errors import UnpicklableMessage



class Shipped(Protocol):
    """The caller's ``__main__`` classes installed where an edge's reader is (``_main_classes``)."""

    def covers(self, obj: Any, main: bytes) -> bool:
        """Whether every ``__main__`` name in ``main``, the plain pickle of ``obj``, is installed."""

__all__ = [
    "HEAD",
    "Packed",
    "Reader",
    "Serves",
    "Shipped",
    "by_value",
    "dumps",
    "dumps_job",
    "dumps_message",
    "loads",
    "pack",
    "pack_message",
    "read",
    "serves",
    "write",
]


class Reader(enum.Enum):
    """Who will unpickle: it decides what must go by value or by name."""

    FORKED = "forked"  # a forked worker: the caller's __main__ is there
    FRESH = "fresh"  # a spawned worker or a Ray actor: no __main__ of the caller
    CALLER = "caller"  # the caller's own process

    @property
    def checks_main(self) -> bool:
        """Whether plainly pickled bytes that name ``__main__`` must be redone."""
        return self is Reader.FRESH


# -- picklers -----------------------------------------------------------------------


def _code_reduce(code: types.CodeType) -> Any:
    """cloudpickle's reduction of ``code``, with the real file name kept."""
    rebuild, args = cloudpickle.cloudpickle._code_reduce(code)
    return rebuild, tuple(code.co_filename if arg == "<dynamic-code>" else arg for arg in args)


class _ByValue(cloudpickle.Pickler):  # type: ignore[misc]
    """cloudpickle, keeping code file names (it writes ``<dynamic-code>``) and the
    qualified names of nested classes (it gives ``Outer.Inner`` the name ``Inner``)."""

    dispatch_table = ChainMap({types.CodeType: _code_reduce}, cloudpickle.Pickler.dispatch_table)

    def reducer_override(self, obj: Any) -> Any:
        reduced = super().reducer_override(obj)
        if isinstance(obj, type) and isinstance(reduced, tuple) and len(reduced) == 6 and obj.__qualname__ != obj.__name__:
            rebuild, args, (state, slots), *rest = reduced  # a class by value: its state is set on the rebuilt one
            reduced = (rebuild, args, ({**state, "__qualname__": obj.__qualname__}, slots), *rest)
        return reduced


def _from_main(qualname: str) -> Any:
    target: Any = sys.modules["__main__"]
    try:
        for part in qualname.split("."):
            target = getattr(target, part)
    except AttributeError:
        raise pickle.UnpicklingError(
            f"'{qualname}' is not defined in the caller's __main__ any more"
        ) from None
    return target


class _ToCaller(_ByValue):
    """By value, except classes and functions of ``__main__``: by name."""

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, (type, types.FunctionType)) and getattr(obj, "__module__", None) == "__main__":
            qualname = getattr(obj, "__qualname__", "")
            if qualname and "<locals>" not in qualname:
                return _from_main, (qualname,)
        return super().reducer_override(obj)


def _unwrapped(module: str, qualname: str) -> Any:
    target: Any = importlib.import_module(module)
    for part in qualname.split("."):
        target = getattr(target, part)
    return target.__wrapped__


class _JobPickler(_ByValue):
    """By value, plus multiprocessing's reducers (pipes, locks, shared values),
    and functions that a decorated module attribute shadows, by name."""

    # A live view: multiprocessing registers reducers as objects are created.
    dispatch_table = ChainMap(getattr(ForkingPickler, "_extra_reducers"), _ByValue.dispatch_table)

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, types.FunctionType):
            module = sys.modules.get(getattr(obj, "__module__", None) or "")
            if module is not None and module.__name__ != "__main__":
                try:
                    named = _unwrapped(module.__name__, obj.__qualname__)
                except Exception:  # noqa: BLE001 - not a shadowed function
                    named = None
                if named is obj:
                    return _unwrapped, (module.__name__, obj.__qualname__)
        return super().reducer_override(obj)


def _pickle_with(cls: type[pickle.Pickler], obj: Any, buffer_callback: Callable[[Any], Any] | None) -> bytes:
    out = io.BytesIO()
    cls(out, protocol=5, buffer_callback=buffer_callback).dump(obj)
    return out.getvalue()


# -- whole objects --------------------------------------------------------------------


Serves = Callable[[Any, bytes], bool]  # (an object, its plain pickle): whether the reader can load it


def serves(reader: Reader, shipped: Shipped | None = None) -> Serves | None:
    """Whether a plain pickle of an object serves ``reader`` (None: it always does), the one rule
    of the fast path for every transport.

    A reader with the caller's ``__main__`` (or the caller) loads any plain
    pickle; a fresh interpreter loads one that names ``__main__`` only for
    the classes installed there (``shipped``).  ``find``, not ``in``:
    ``bytes in bytes`` first tries the needle as an int and clears the
    TypeError, which costs it twice find's instructions.
    """
    if not reader.checks_main:
        return None
    covers = shipped.covers if shipped is not None else None

    def served(obj: Any, main: bytes) -> bool:
        return main.find(b"__main__") < 0 or (covers is not None and covers(obj, main))

    return served


def _dumps(
    obj: Any,
    reader: Reader,
    buffer_callback: Callable[[pickle.PickleBuffer], None] | None,
    discard: Callable[[], None] = lambda: None,
    shipped: Shipped | None = None,
) -> bytes:
    try:
        main = pickle.dumps(obj, protocol=5, buffer_callback=buffer_callback)
        served = serves(reader, shipped)
        if served is None or served(obj, main):
            return main
    except Exception:  # noqa: BLE001 - redone below, which reports its own error
        pass
    discard()  # buffers of the first attempt
    return _pickle_with(_ToCaller if reader is Reader.CALLER else _ByValue, obj, buffer_callback)


def dumps(obj: Any, reader: Reader, shipped: Shipped | None = None) -> bytes:
    """``obj`` pickled for ``reader``, buffers in band; raises ``pickle.PicklingError``
    or ``TypeError`` if it cannot travel.  ``shipped``: the ``__main__`` classes a fresh
    reader has installed."""
    return _dumps(obj, reader, None, shipped=shipped)


def by_value(obj: Any) -> bytes:
    """``obj`` pickled by value with cloudpickle (code keeps its file names); raises if it cannot be."""
    return _pickle_with(_ByValue, obj, None)


def loads(data: bytes | memoryview) -> Any:
    return pickle.loads(data)


def dumps_job(obj: Any) -> bytes:
    """``obj`` pickled for a worker that is being started (see ``_JobPickler``)."""
    return _pickle_with(_JobPickler, obj, None)


# -- messages -------------------------------------------------------------------------


HEAD = struct.Struct("<QII")
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
        offset = HEAD.size + _LEN.size * len(buffers) + len(main)
        for buf in buffers:
            offset = _aligned(offset) + buf.nbytes
        self.size = offset


def pack(obj: Any, reader: Reader, shipped: Shipped | None = None) -> Packed:
    """Pickle ``obj`` for ``reader`` (``shipped``: as for ``dumps``); raises
    ``pickle.PicklingError``/``TypeError`` if it cannot travel."""
    raw: list[pickle.PickleBuffer] = []

    def collect(buffer: pickle.PickleBuffer) -> None:
        raw.append(buffer)

    main = _dumps(obj, reader, collect, raw.clear, shipped)
    return Packed(main, [b.raw() for b in raw])


def pack_message(item: Any, reader: Reader, stage: str, shipped: Shipped | None = None) -> Packed:
    """``pack`` for an item a stage yielded; raises ``UnpicklableMessage`` naming the stage."""
    try:
        return pack(item, reader, shipped)
    except Exception as exc:
        raise _unpicklable(item, reader, stage, exc) from exc


def dumps_message(item: Any, reader: Reader, stage: str, shipped: Shipped | None = None) -> bytes:
    """``dumps`` for an item a stage yielded; raises ``UnpicklableMessage`` naming the stage."""
    try:
        return dumps(item, reader, shipped)
    except Exception as exc:
        raise _unpicklable(item, reader, stage, exc) from exc


def _unpicklable(item: Any, reader: Reader, stage: str, error: Exception) -> UnpicklableMessage:
    to = "the caller" if reader is Reader.CALLER else "the next worker"
    return UnpicklableMessage(
        f"stage '{stage}' yielded a {type(item).__qualname__} that cannot be pickled to {to}: {error}"
    )


def write(slot: memoryview, packed: Packed) -> None:
    """Lay ``packed`` into ``slot`` (which must hold ``packed.size`` bytes)."""
    buffers = packed.buffers
    HEAD.pack_into(slot, 0, len(packed.main), len(buffers), 0)
    offset = HEAD.size
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
    main_len, count, _ = HEAD.unpack_from(slot, 0)
    offset = HEAD.size
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
