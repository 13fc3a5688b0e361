"""What mypy sees of class stages: their shapes, by their ``__call__``.

mypy ignores what a class decorator returns: after ``@sf.map class Score``
the name ``Score`` is, to mypy, still the class, and ``Score(scale=2.0)``
an instance of it, though at run time both are stages.  The protocols here
describe such a class by its ``__call__``; the decorators use them to type
``sf.map(Score)``, and ``_stage.Composes`` (the ``|`` of a flow, a source
and a processor) to type a decorated class, bound or bare, on its right.
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterable, Iterator
from typing import Any, Protocol, TypeVar

__all__ = ["AsyncMaps", "Maps", "Processes", "Sinks", "Sources"]

I = TypeVar("I", contravariant=True)  # noqa: E741 - what the flow so far consumes
O = TypeVar("O", covariant=True)  # what it yields
T = TypeVar("T")
T_contra = TypeVar("T_contra", contravariant=True)
U_co = TypeVar("U_co", covariant=True)


class _Object(Protocol):
    """An instance of a user's class: its attributes can be set.

    A ``Stage``'s cannot, and says so to mypy, so that a stage whose own
    ``__call__`` (binding constants) happens to take the items before it
    does not pass for an instance of a class stage.
    """

    def __setattr__(self, name: str, value: Any, /) -> None: ...


class Maps(_Object, Protocol[T_contra, U_co]):
    """An instance of a class map stage: called with one item."""

    def __call__(self, item: T_contra, /) -> U_co: ...


class AsyncMaps(_Object, Protocol[T_contra, U_co]):
    """An instance of a class map stage with an ``async def __call__``."""

    def __call__(self, item: T_contra, /) -> Awaitable[U_co]: ...


class Processes(_Object, Protocol[T_contra, U_co]):
    """An instance of a class processor stage: called with the stream."""

    def __call__(self, stream: Iterable[T_contra], /) -> Iterator[U_co]: ...


class Sinks(_Object, Protocol[T_contra, U_co]):
    """An instance of a class sink stage: called with the stream, returns the result."""

    def __call__(self, stream: Iterable[T_contra], /) -> U_co: ...


class Sources(_Object, Protocol[U_co]):
    """An instance of a class source stage: called with nothing."""

    def __call__(self) -> Iterator[U_co]: ...
