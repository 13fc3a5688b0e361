"""``@sf.map``: a stage from a function of one item.

::

    @sf.map(workers=4, on_error="skip")
    def parse(doc: bytes, encoding: str = "utf-8") -> Record: ...

The first parameter is the item, the others are constants; each input
gives exactly one output, the return value.  On an ``async def`` the
return value is awaited, with up to ``concurrency`` calls in flight per
worker.  It is a ``Processor`` like
any other, typed at ``|`` and under mypy, with the same run options.  The
runtime calls it once per item, so a failure policy knows exactly which
item failed.
"""

from __future__ import annotations

import typing
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar, overload

from typing_extensions import Concatenate, ParamSpec, Unpack

from ._options import StageArgs
from ._shapes import AsyncMaps, Maps
from ._stage import Processor, _make

__all__ = ["map"]

P = ParamSpec("P")
T = TypeVar("T")
U = TypeVar("U")


class _MapDecorator(Protocol):
    @overload
    def __call__(self, fn: Callable[P, AsyncMaps[T, U]]) -> Processor[P, T, U]: ...
    @overload
    def __call__(self, fn: Callable[Concatenate[T, P], Awaitable[U]]) -> Processor[P, T, U]: ...
    @overload
    def __call__(self, fn: Callable[P, Maps[T, U]]) -> Processor[P, T, U]: ...
    @overload
    def __call__(self, fn: Callable[Concatenate[T, P], U]) -> Processor[P, T, U]: ...


@overload
def map(fn: Callable[P, AsyncMaps[T, U]], /) -> Processor[P, T, U]: ...
@overload
def map(fn: Callable[Concatenate[T, P], Awaitable[U]], /) -> Processor[P, T, U]: ...
@overload
def map(fn: Callable[P, Maps[T, U]], /) -> Processor[P, T, U]: ...
@overload
def map(fn: Callable[Concatenate[T, P], U], /) -> Processor[P, T, U]: ...
@overload
def map(**options: Unpack[StageArgs]) -> _MapDecorator: ...
def map(fn: Callable[..., Any] | None = None, /, **options: Unpack[StageArgs]) -> Any:  # noqa: A001
    """Make a function of one item (or a class called with one item) a stage.

    Use bare (``@sf.map``) or with run options (``@sf.map(workers=4)``, see
    ``StageArgs``).  Raises ``FlowTypeError`` for a function without an
    item parameter and ``OptionError`` for invalid options.
    """
    if fn is not None:
        return _make(fn, options, per_item=True)

    def decorate(fn: Callable[..., Any]) -> Processor[Any, Any, Any]:
        return typing.cast(Processor[Any, Any, Any], _make(fn, options, per_item=True))

    return decorate
