"""``sf.batch(size, max_wait)`` and ``sf.unbatch()``: ready-made stages that group and ungroup items.

::

    items ... --> batch(size=32, max_wait=0.05) --> [32 items] or [what came within 50 ms]

A generator can batch by size, but only the runtime can flush a partial
batch while upstream sends nothing: the stream a stage gets from the
runtime has ``next_within(seconds)``, a wait for the next item that gives
up (``Quiet``) when the time is over.  ``batch`` uses it to emit its
pending list ``max_wait`` seconds after the list's first item arrived.  On
the inline backend no clock runs while the caller's chain waits on
upstream: there ``max_wait`` is checked as each item arrives.

Both are generic in the item type: at ``|`` the runtime check binds ``T``
from the stage before, and mypy types ``flow | sf.batch(8)`` as a flow of
``list[X]`` (see ``Flow.__or__``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

from ._errors import OptionError
from ._options import StageOptions
from ._stage import Batch, Unbatch
from ._transport import Quiet

__all__ = ["batch", "unbatch"]

T = TypeVar("T")


def _batch(items: Iterable[T], size: int, max_wait: float | None = None) -> Iterator[list[T]]:
    """Lists of ``size`` items; a shorter one ``max_wait`` seconds after its first item, and at the end."""
    pending: list[T] = []
    deadline = math.inf
    within = getattr(items, "next_within", None) if max_wait is not None else None
    stream = iter(items)
    while True:
        try:
            if pending and within is not None:
                item = within(deadline - time.monotonic())
            else:
                item = next(stream)
        except StopIteration:
            break
        except Quiet:
            yield pending
            pending = []
            continue
        if not pending and max_wait is not None:
            deadline = time.monotonic() + max_wait
        pending.append(item)
        if len(pending) >= size or time.monotonic() >= deadline:
            yield pending
            pending = []
    if pending:
        yield pending


def _unbatch(batches: Iterable[Iterable[T]]) -> Iterator[T]:
    """Every item of every batch, in order."""
    for group in batches:
        yield from group


def batch(size: int, max_wait: float | None = None) -> Batch:
    """A stage that emits lists of ``size`` items (``T -> list[T]``).

    A list goes out once it holds ``size`` items, once ``max_wait`` seconds
    have passed since its first item arrived (even while upstream sends
    nothing), and, shorter, when the stream ends.  Raises ``OptionError``
    for a size below 1 or a ``max_wait`` that is not a positive number.
    Set its run options with ``.options(...)`` as for any stage.
    """
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise OptionError(f"batch size={size!r} must be an int >= 1")
    if max_wait is not None and (isinstance(max_wait, bool) or not isinstance(max_wait, (int, float)) or not 0 < max_wait < math.inf):
        raise OptionError(f"batch max_wait={max_wait!r} must be None or seconds > 0")
    return Batch(_batch, StageOptions(name="batch"), {"size": size, "max_wait": max_wait})


def unbatch() -> Unbatch:
    """A stage that yields every item of each iterable it receives (``Iterable[T] -> T``)."""
    return Unbatch(_unbatch, StageOptions(name="unbatch"))
