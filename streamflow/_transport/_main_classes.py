"""The classes of the caller's ``__main__``, sent once a run to its fresh workers.

::

    caller, as a run starts                          a fresh worker (spawn, warm, forkserver, Ray)
    -----------------------                          ---------------------------------------------
    MainClasses.collect(): __main__'s module-level   its job's edges carry them; taking an end of
      classes, each pickled by value once  ------->    one installs them into sys.modules["__main__"]

    a sender, per message: plain pickle names __main__?  covers() ? the plain pickle : by value

A fresh worker has no ``__main__`` of the caller, so a message whose plain
pickle names ``__main__.Event`` cannot be read there as it is; it used to go
by value with cloudpickle, its class with it, hundreds of microseconds a
hop.  With the run's classes installed in every fresh worker, plain
pickle's reference resolves there, and a sender keeps the plain pickle
whenever every ``__main__`` name in it is a class the run shipped
(``covers``).  Anything else, a function, a class defined after the run
started or redefined since, one that would not pickle by value, still goes
by value.  cloudpickle gives a class one identity across the pickles one
process makes, so in a worker the class a stage function brought along by
value and the one installed are the same class.
"""

from __future__ import annotations

import enum
import pickle
import pickletools
import sys
import types
from collections.abc import Iterator
from typing import Any

from ._serialize import by_value

__all__ = ["MainClasses"]

_MOST = 1 << 20  # bytes: a class larger by value, or holding more, stays out (its messages go by value)
_MOST_IN_ALL = 8 << 20  # bytes: what a run ships at most, to each of its workers
_SCAN = 512  # bytes of a pickle before its first ``__main__`` that ``_by_bytes`` reads; past them, ``_by_memo``
_MAIN = b"__main__"
_MEMOIZE, _FRAME, _SHORT_UNICODE, _STACK_GLOBAL = 0x94, 0x95, 0x8c, 0x93
_FIRST = 11  # the offset of a framed pickle's first opcode: past PROTO 5 and FRAME with its length
_GETS = [b"h" + bytes((index,)) for index in range(256)]  # BINGET of each memo entry that has one
_DATA = frozenset({str, bytes, bytearray, tuple, list, dict, set, frozenset})


def _steps() -> list[tuple[int, int] | None]:
    """For each opcode byte that may come before a pickle's first global: (fixed argument bytes,
    width of the length that precedes a counted argument); None for the others."""
    widths = {pickletools.TAKEN_FROM_ARGUMENT1: 1, pickletools.TAKEN_FROM_ARGUMENT4: 4,
              pickletools.TAKEN_FROM_ARGUMENT4U: 4, pickletools.TAKEN_FROM_ARGUMENT8U: 8}
    # Globals named some other way, and memo entries not numbered in order: not read here.
    unread = {"GLOBAL", "INST", "EXT1", "EXT2", "EXT4", "PUT", "BINPUT", "LONG_BINPUT", "PERSID", "BINPERSID"}
    steps: list[tuple[int, int] | None] = [None] * 256
    for op in pickletools.opcodes:
        if op.name in unread:
            continue
        size = 0 if op.arg is None else op.arg.n
        if size >= 0:
            steps[ord(op.code)] = (size, 0)
        elif size in widths:
            steps[ord(op.code)] = (0, widths[size])
    return steps


_STEPS = _steps()


class MainClasses:
    """The classes defined at module level of the caller's ``__main__`` (and the classes nested in
    them), pickled by value once a run, for the run's fresh workers.

    Built in the caller (``collect``) and carried by the edges that fresh
    workers read; a worker calls ``install`` as it takes an end of such an
    edge.  A class that cannot be pickled by value, or is too large, is left
    out: its messages go by value, one by one, as before.  Costs, measured
    on a 2-core machine: a dataclass with a method is about 2 kB by value
    and 0.4 ms of the caller's time a run; a worker installs 20 of them in
    about 2 ms.
    """

    __slots__ = ("_blobs", "_installed", "_named", "_ids", "_plain")

    def __init__(self, blobs: list[bytes], classes: dict[str, type] | None) -> None:
        """``classes``: the caller's own, by name; None in a worker, until ``install``."""
        self._blobs = blobs
        self._installed = classes is not None  # the caller's classes are where they belong
        self._index(classes or {})

    @classmethod
    def collect(cls) -> MainClasses:
        """This process's ``__main__`` classes, as they are now, pickled by value."""
        module = sys.modules.get("__main__")
        found = {
            name: value
            for name, value in list(vars(module).items() if module is not None else ())
            if isinstance(value, type) and getattr(value, "__module__", None) == "__main__"
            and getattr(value, "__qualname__", None) == name and not _holds_much(value)
        }
        if not found:
            return cls([], {})
        try:
            blob = by_value(found)  # one pickle: what the classes share is in it once
        except Exception:  # noqa: BLE001 - then one by one, to find those that can go
            blob = b""
        if 0 < len(blob) <= _MOST_IN_ALL:
            return cls([blob], found)
        blobs, shipped, total = [], {}, 0
        for name, value in found.items():
            try:
                blob = by_value({name: value})
            except Exception:  # noqa: BLE001 - its messages go by value, and say why if they cannot
                continue
            if len(blob) > _MOST or total + len(blob) > _MOST_IN_ALL:
                continue
            blobs.append(blob)
            shipped[name] = value
            total += len(blob)
        return cls(blobs, shipped)

    @property
    def names(self) -> frozenset[str]:
        """The qualified names of the classes shipped (in a worker: installed)."""
        return frozenset(qualname.decode() for qualname in self._named)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_in_worker, (self._blobs,))

    def install(self) -> None:
        """Put the classes into this process's ``__main__``, once; nothing in the caller.

        What an earlier run installed in this process (a Ray worker serves
        several) goes first: a name the run did not ship must not resolve.
        """
        if self._installed:
            return
        self._installed = True
        module = sys.modules["__main__"]
        for name in _installed:
            module.__dict__.pop(name, None)
        _installed.clear()
        classes: dict[str, type] = {}
        for blob in self._blobs:
            try:
                classes.update(pickle.loads(blob))
            except Exception:  # noqa: BLE001 - its messages go by value, and say why if they cannot
                continue
        for name, value in classes.items():
            setattr(module, name, value)
            _installed.add(name)
        self._index(classes)

    def _index(self, classes: dict[str, type]) -> None:
        named: dict[bytes, tuple[tuple[str, ...], type]] = {}  # qualified name -> (its parts, the class)
        for name, value in classes.items():
            for qualname, found in _with_nested(name, value):
                named[qualname.encode()] = (tuple(qualname.split(".")), found)
        self._named = named
        self._ids = frozenset(id(found) for _, found in named.values())
        self._plain = frozenset(id(found) for _, found in named.values() if _reduces_plainly(found))

    def covers(self, obj: Any, data: bytes) -> bool:
        """Whether a fresh worker of the run reads ``data``, ``obj`` pickled plainly, as it is:
        every ``__main__`` object it names is a class the run shipped, as it was shipped."""
        if not self._named:
            return False
        try:
            verdict = self._by_bytes(data)
        except IndexError:
            verdict = None
        return self._by_memo(obj) if verdict is None else verdict

    def _by_bytes(self, data: bytes) -> bool | None:
        """The verdict from the names after ``__main__`` in ``data``; None where it takes more.

        Protocol 5 names a global by pushing two strings, its module and its
        name, then STACK_GLOBAL; a string already pushed is pushed again as a
        memo get.  So with ``__main__`` written once, every ``__main__``
        global is that string, or a get of its memo entry, then a name.
        Raises ``IndexError`` where ``data`` ends early.
        """
        first = data.find(_MAIN)
        at = first - 2
        if not 0 <= at <= _SCAN or data[at] != _SHORT_UNICODE or data[at + 1] != 8 or data.find(_MAIN, first + 8) >= 0:
            return None
        # Also: ``at`` is an opcode's, not bytes inside some other value.  Most messages are an
        # object of a ``__main__`` class: the first global, right after PROTO and FRAME.
        index = 0 if at == _FIRST and data[2] == _FRAME else _memo_index(data, at)
        at = first + 8
        if index is None or data[at] != _MEMOIZE:
            return None
        get = _GETS[index] if index < 256 else b"j" + index.to_bytes(4, "little")
        named, module = self._named, sys.modules["__main__"]
        at += 1
        while True:  # at: where a name should be pushed, for STACK_GLOBAL
            if data[at] != _SHORT_UNICODE:
                return None
            end = at + 2 + data[at + 1]
            found = named.get(data[at + 2 : end])
            if found is None or data[end] != _MEMOIZE or data[end + 1] != _STACK_GLOBAL:
                return None
            target: Any = module
            for part in found[0]:
                target = getattr(target, part, None)
            if target is not found[1]:
                return False  # the caller's class was redefined since the run started
            at = data.find(get, end)
            if at < 0:
                return True
            at += len(get)

    def _by_memo(self, obj: Any) -> bool:
        """The verdict from what pickle memoized: every object named by module and name is."""
        pickler = pickle.Pickler(_NOWHERE, 5, buffer_callback=_out_of_band)
        try:
            pickler.dump(obj)
        except Exception:  # noqa: BLE001 - then it goes by value
            return False
        for _, value in pickler.memo.copy().values():
            kind = type(value)
            if kind in _DATA or id(value) in self._ids:
                continue
            # An instance of a shipped class that pickles the usual way names its class only.
            if getattr(value, "__module__", None) == "__main__" and id(kind) not in self._plain:
                return False
        return True


_installed: set[str] = set()  # the names ``install`` put into this process's ``__main__``
_NOWHERE = types.SimpleNamespace(write=len)  # a file for a pickle whose bytes are not wanted


def _out_of_band(buffer: pickle.PickleBuffer) -> None:
    """Keeps no buffer (a falsy answer: out of band)."""


def _in_worker(blobs: list[bytes]) -> MainClasses:
    return MainClasses(blobs, None)


def _holds_much(cls: type) -> bool:
    """Whether ``cls`` plainly holds more than ``_MOST`` bytes (an array, a table) in one attribute:
    seen before pickling it, which would cost as much, every run."""
    try:
        return any(sys.getsizeof(value, 0) > _MOST for value in list(vars(cls).values()))
    except Exception:  # noqa: BLE001 - an attribute whose size cannot be told: leave the class out
        return True


def _with_nested(qualname: str, cls: type) -> Iterator[tuple[str, type]]:
    yield qualname, cls
    for attribute, value in list(vars(cls).items()):
        if isinstance(value, type) and value.__module__ == "__main__" and value.__qualname__ == f"{qualname}.{attribute}":
            yield from _with_nested(value.__qualname__, value)


def _reduces_plainly(cls: type) -> bool:
    """Whether ``cls``'s instances pickle as their class and state (never as a name of their own)."""
    reduce_ex, reduce = getattr(cls, "__reduce_ex__", None), getattr(cls, "__reduce__", None)
    if reduce is not object.__reduce__:
        return False
    return reduce_ex is object.__reduce_ex__ or (issubclass(cls, enum.Enum) and reduce_ex is enum.Enum.__reduce_ex__)


def _memo_index(data: bytes, end: int) -> int | None:
    """How many objects the pickle ``data`` memoized before the opcode at offset ``end``;
    None if one before it is not one ``_STEPS`` reads, or ``end`` is no opcode's offset."""
    count, at = 0, 2  # past PROTO
    steps = _STEPS
    while at < end:
        op = data[at]
        if op == _MEMOIZE:
            count += 1
            at += 1
            continue
        step = steps[op]
        if step is None:
            return None
        fixed, width = step
        at += 1 + fixed + width
        if width:
            at += int.from_bytes(data[at - width : at], "little")
    return count if at == end else None
