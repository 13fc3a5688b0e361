"""What a stage function's annotations say: its kind, its stream, its item types.

The first parameter is the stream iff it is annotated ``Iterable[X]`` or
``Iterator[X]``; a return of ``Iterator[Y]``, ``Iterable[Y]`` or
``Generator[Y, ...]`` makes the function produce a stream.  A source
produces and takes no stream, a processor takes and produces one, a sink
takes one and returns anything else.  Every other parameter is a constant.
"""

from __future__ import annotations

import dataclasses
import inspect
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, Literal

from ._errors import FlowTypeError
from ._typecheck import stream_item

__all__ = ["Kind", "Signature", "analyse", "plainly_contradicts", "short"]

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

    def missing(self, bound: Mapping[str, Any]) -> list[str]:
        """Required constants not in ``bound``."""
        return [
            p.name
            for p in self.constants
            if p.default is p.empty
            and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
            and p.name not in bound
        ]


def analyse(fn: Callable[..., Any]) -> Signature:
    """Read ``fn``'s kind and item types; raises ``FlowTypeError`` if its hints do not resolve."""
    sig = inspect.signature(fn)
    hints = _resolve_hints(fn)
    params = list(sig.parameters.values())
    stream_param = None
    input_type: Any = None
    if params and params[0].kind in (params[0].POSITIONAL_ONLY, params[0].POSITIONAL_OR_KEYWORD):
        is_stream, item = stream_item(hints.get(params[0].name), producer=False)
        if is_stream:
            stream_param, input_type = params[0].name, item
            params = params[1:]
    output_annotated = "return" in hints
    produces, item = stream_item(hints.get("return"), producer=True)
    if not output_annotated:
        produces, item = inspect.isgeneratorfunction(fn), None
    kind: Kind = "source" if stream_param is None else "processor" if produces else "sink"
    return Signature(
        kind=kind,
        stream_param=stream_param,
        constants=tuple(params),
        input_type=input_type,
        output_type=item if produces else hints.get("return"),
        input_annotated=stream_param is not None,
        output_annotated=output_annotated,
        hints=hints,
        where=where(fn),
    )


def where(fn: Callable[..., Any]) -> str:
    """Where ``fn`` was defined, for messages."""
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


def short(value: Any, limit: int = 40) -> str:
    """``repr(value)``, cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
