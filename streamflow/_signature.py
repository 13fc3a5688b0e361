"""What a stage function's annotations say: its kind, its stream, its item types.

The first parameter is the stream iff it is annotated ``Iterable[X]`` or
``Iterator[X]``; a return of ``Iterator[Y]``, ``Iterable[Y]`` or
``Generator[Y, ...]`` makes the function produce a stream.  A source
produces and takes no stream, a processor takes and produces one, a sink
takes one and returns anything else.  Every other parameter is a constant.

An ``async def`` stage streams through ``AsyncIterable[X]`` (or
``AsyncIterator[X]``) and yields as an async generator; an ``async def``
sink is a coroutine function.

Under ``@sf.map`` the first parameter is one item, and the return value the
one output (awaited, for an ``async def``).  A class can be a stage: its ``__init__`` takes the constants,
its ``__call__`` the stream (or the item), read as a function would be.
"""

from __future__ import annotations

import dataclasses
import inspect
import types
import typing
from collections import abc as cabc
from collections.abc import Callable, Mapping
from typing import Any, Literal

from ._errors import FlowTypeError
from ._typecheck import stream_item

__all__ = ["Kind", "Signature", "analyse", "plainly_contradicts"]

Kind = Literal["source", "processor", "sink"]


@dataclasses.dataclass(frozen=True)
class Signature:
    """A stage function's annotations, resolved once."""

    kind: Kind
    stream_param: str | None
    constants: tuple[inspect.Parameter, ...]
    input_type: Any  # item type consumed; None for sources
    output_type: Any  # item yielded (source/processor) or value returned (sink)
    input_annotated: bool
    output_annotated: bool
    hints: Mapping[str, Any]
    where: str
    per_item: bool = False  # one item in, one output out (``@sf.map``)
    factory: bool = False  # a class: one instance per worker, built with the constants
    is_async: bool = False  # an ``async def``: runs on its worker's event loop

    def missing(self, bound: Mapping[str, Any]) -> list[str]:
        """Required constants not in ``bound``."""
        return [
            p.name
            for p in self.constants
            if p.default is p.empty
            and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
            and p.name not in bound
        ]


def analyse(fn: Callable[..., Any], *, per_item: bool = False) -> Signature:
    """Read ``fn``'s kind and item types; raises ``FlowTypeError`` if its hints do not resolve.

    ``per_item``: ``fn`` takes one item and returns one output (``@sf.map``).
    """
    factory = isinstance(fn, type)
    call = _call_method(fn) if isinstance(fn, type) else fn
    params = list(inspect.signature(call).parameters.values())[1 if factory else 0 :]
    hints = _resolve_hints(call)
    positional = bool(params) and params[0].kind in (params[0].POSITIONAL_ONLY, params[0].POSITIONAL_OR_KEYWORD)
    is_async = inspect.iscoroutinefunction(call) or inspect.isasyncgenfunction(call)
    stream_param = None
    input_type: Any = None
    if per_item:
        if not positional:
            raise FlowTypeError(
                f"@sf.map needs a function whose first parameter is the item ({where(call)}); "
                f"'{getattr(fn, '__qualname__', fn)}' has none"
            )
        stream_param, input_type = params[0].name, hints.get(params[0].name)
        params = params[1:]
    elif positional:
        is_stream, item = stream_item(hints.get(params[0].name), producer=False)
        if is_stream:
            stream_param, input_type = params[0].name, item
            params = params[1:]
    output_annotated = "return" in hints
    if per_item:
        produces, item = True, hints.get("return")
    else:
        produces, item = stream_item(hints.get("return"), producer=True)
        if not output_annotated:
            produces, item = inspect.isgeneratorfunction(call) or inspect.isasyncgenfunction(call), None
        _check_async(call, hints, stream_param, produces, is_async)
    if per_item and inspect.isgeneratorfunction(call):
        raise FlowTypeError(
            f"@sf.map takes a function that returns one output per item; '{getattr(fn, '__name__', fn)}' "
            f"({where(call)}) is a generator function: to yield any number of outputs, make it an "
            f"@sf.stage over the stream, e.g. 'def {getattr(call, '__name__', 'stage')}(items: Iterable[X]) -> Iterator[Y]'"
        )
    if per_item and inspect.isasyncgenfunction(call):
        raise FlowTypeError(
            f"@sf.map takes a function that returns one output per item; '{getattr(fn, '__qualname__', fn)}' "
            f"({where(call)}) is an async generator: make it an @stage over AsyncIterable[X]"
        )
    if factory:  # the constants are the constructor's
        params = list(inspect.signature(fn).parameters.values())
        hints = {**_resolve_hints(fn.__init__), **hints} if "__init__" in vars(fn) else hints
    kind: Kind = "source" if stream_param is None else "processor" if produces else "sink"
    return Signature(
        kind=kind,
        stream_param=stream_param,
        constants=tuple(params),
        input_type=input_type,
        output_type=item if produces else hints.get("return"),
        input_annotated=stream_param is not None and stream_param in hints,
        output_annotated=output_annotated,
        hints=hints,
        where=where(call),
        per_item=per_item,
        factory=factory,
        is_async=is_async,
    )


def _check_async(
    call: Callable[..., Any], hints: Mapping[str, Any], stream: str | None, produces: bool, is_async: bool
) -> None:
    """Raise ``FlowTypeError`` where sync and async are mixed up in one stage's signature."""
    name = getattr(call, "__qualname__", repr(call))
    if stream is not None and stream in hints:
        origin = typing.get_origin(hints[stream]) or hints[stream]
        if is_async != (origin in (cabc.AsyncIterable, cabc.AsyncIterator)):
            want = "AsyncIterable[X]" if is_async else "Iterable[X]"
            raise FlowTypeError(
                f"'{name}' ({where(call)}) is {'an async' if is_async else 'a sync'} function, so its "
                f"stream parameter '{stream}' must be annotated {want}"
            )
    if produces and is_async and not inspect.isasyncgenfunction(call):
        raise FlowTypeError(
            f"'{name}' ({where(call)}) is a coroutine function annotated to return a stream; an async "
            "stage produces its stream by yielding (an async generator)"
        )
    if produces and not is_async and "return" in hints:
        origin = typing.get_origin(hints["return"]) or hints["return"]
        if origin in (cabc.AsyncIterable, cabc.AsyncIterator, cabc.AsyncGenerator):
            raise FlowTypeError(f"'{name}' ({where(call)}) returns an async stream, so it must be an async def")


def _call_method(cls: type) -> Callable[..., Any]:
    """A class stage's ``__call__``; raises ``FlowTypeError`` if it has none of its own."""
    call = getattr(cls, "__call__", None)
    if call is None or call is getattr(object, "__call__", None) or not inspect.isfunction(call):
        raise FlowTypeError(
            f"class '{cls.__qualname__}' cannot be a stage: it needs a __call__ method that "
            "takes the stream (or, under @sf.map, the item)"
        )
    return call


def where(fn: Callable[..., Any]) -> str:
    """Where ``fn`` was defined, for messages."""
    if isinstance(fn, type) and inspect.isfunction(getattr(fn, "__call__", None)):
        fn = fn.__call__
    code = getattr(fn, "__code__", None)
    if code is None:
        return f"in {getattr(fn, '__module__', '?')}"
    return f"defined at {code.co_filename}:{code.co_firstlineno}"


def _resolve_hints(fn: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(fn, include_extras=True)
    except Exception as exc:  # NameError for a forward reference, mostly
        name = getattr(fn, "__qualname__", repr(fn))
        raise FlowTypeError(
            f"cannot resolve the annotations of '{name}' ({where(fn)}): {exc}; "
            "annotate with names importable at module level"
        ) from exc


def plainly_contradicts(value: Any, hint: Any) -> bool:
    """Whether ``value`` is clearly not of the simple annotation ``hint``."""
    hint = typing.get_origin(hint) or hint
    if hint in (typing.Union, types.UnionType):
        return False
    if hint is float:
        return not isinstance(value, (int, float))  # bool is an int, as for mypy
    if hint is complex:
        return not isinstance(value, (int, float, complex))
    if hint in (int, str, bool, bytes, list, dict, tuple, set, frozenset):
        return not isinstance(value, hint)
    if isinstance(hint, type) and not getattr(hint, "_is_protocol", False):
        try:
            return not isinstance(value, hint)
        except TypeError:
            return False
    return False
