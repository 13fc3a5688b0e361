"""What mypy sees of class stages, and the types ``|`` gives for them.

mypy ignores what a class decorator returns: after ``@sf.map class Score``
the name ``Score`` is, to mypy, still the class, and ``Score(scale=2.0)``
an instance of it, though at run time both are stages.  The protocols here
describe such a class by its ``__call__``; the decorators use them to type
``sf.map(Score)``, and ``Composes`` (the ``|`` of a flow, a source and a
processor) to type a decorated class, bound or bare, on its right.  Only
the static types live here: at run time ``Composes`` is an empty base.
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, overload

if TYPE_CHECKING:
    from ._batch import Batch, Unbatch
    from ._flow import ClosedFlow, Flow
    from ._stage import Processor, Sink

__all__ = ["AsyncMaps", "Composes", "Maps", "Processes", "Sinks", "Sources"]

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


if TYPE_CHECKING:

    class ClassStageMismatch:
        """What ``|`` gives, to mypy, for a class whose instances do not take the items before it.

        Anything done with it is a mypy error, which names this class: a
        class on the right of ``|`` gives mypy no chance to say so there.
        """


class Composes(Generic[I, O]):
    """The static types of ``self | other`` for what consumes ``I`` and yields ``O``.

    A base of ``Flow``, ``Source`` and ``Processor``, listed before the
    class that does the composing at run time.
    """

    __slots__ = ()

    if TYPE_CHECKING:
        # Stages first: a Stage's own __call__ (binding constants) would
        # also fit the class protocols below.
        @overload
        def __or__(self, other: Batch) -> Flow[I, list[O]]: ...
        @overload
        def __or__(self: Composes[I, Iterable[T]], other: Unbatch) -> Flow[I, T]: ...
        @overload
        def __or__(self, other: Processor[Any, O, T]) -> Flow[I, T]: ...
        @overload
        def __or__(self, other: Sink[Any, O, T]) -> ClosedFlow[I, T]: ...
        @overload
        def __or__(self, other: Flow[O, T]) -> Flow[I, T]: ...
        @overload
        def __or__(self, other: ClosedFlow[O, T]) -> ClosedFlow[I, T]: ...
        # A decorated class, bare: its instances must fit.  Before the
        # instances, which a class object fits too, by its constructor.
        # Processors before sinks before maps: each shape also fits the next.
        @overload
        def __or__(self, other: type[Processes[O, T]]) -> Flow[I, T]: ...  # type: ignore[overload-overlap]
        @overload
        def __or__(self, other: type[Sinks[O, T]]) -> ClosedFlow[I, T]: ...
        @overload
        def __or__(self, other: type[AsyncMaps[O, T]]) -> Flow[I, T]: ...
        @overload
        def __or__(self, other: type[Maps[O, T]]) -> Flow[I, T]: ...
        # Any other class: without this, mypy would try the class as an
        # instance below, whose __call__ is the class's constructor.
        @overload
        def __or__(self, other: type[Any]) -> ClassStageMismatch: ...
        # A decorated class, bound: an instance.
        @overload
        def __or__(self, other: Processes[O, T]) -> Flow[I, T]: ...  # type: ignore[overload-overlap]
        @overload
        def __or__(self, other: Sinks[O, T]) -> ClosedFlow[I, T]: ...
        @overload
        def __or__(self, other: AsyncMaps[O, T]) -> Flow[I, T]: ...
        @overload
        def __or__(self, other: Maps[O, T]) -> Flow[I, T]: ...
        def __or__(self, other: Any) -> Any: ...
