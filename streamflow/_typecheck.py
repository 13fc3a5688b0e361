"""Runtime link checks between stage annotations.

``is_subtype(src, dst, bindings)`` answers "can a value typed ``src`` be
consumed where ``dst`` is declared", the way mypy would, for the hints stage
signatures use in practice: classes and ABCs, the numeric tower, unions,
Optional, Literal, Annotated, NewType, generic containers with their variance,
tuples, Callable, ``type[X]``, Any/object and TypeVars.  TypeVars found on the
``dst`` side are bound in ``bindings`` (the chain carries them forward with
``substitute``); a TypeVar that would have to be two unrelated types at once
is a conflict.  Anything the relation cannot judge is accepted: a false
alarm at composition is worse than a miss that the stage itself reveals.
"""

from __future__ import annotations

import collections.abc as cabc
import types
import typing
from typing import Any, TypeVar, Union, get_args, get_origin

from typing_extensions import Annotated, Literal, Never, NoReturn, is_protocol

__all__ = ["TypeConflict", "element_type", "is_subtype", "show", "show_apart", "stream_item", "substitute"]

_NONE = type(None)
_UNION_TYPES: tuple[Any, ...] = (Union, types.UnionType)
_STREAM_ORIGINS = (cabc.Iterable, cabc.Iterator, cabc.AsyncIterable, cabc.AsyncIterator)
_PRODUCER_ORIGINS = (*_STREAM_ORIGINS, cabc.Generator, cabc.AsyncGenerator)
_NUMERIC_TOWER: dict[type, tuple[type, ...]] = {float: (int,), complex: (int, float)}

# Containers whose element types may change under mutation (and everything
# registered as one: deque, defaultdict, Counter, ...): their type arguments
# must match exactly (as in mypy), not just by subtyping.
_INVARIANT = (cabc.MutableSequence, cabc.MutableMapping, cabc.MutableSet)
# What the builtins that are not generic yield when iterated.
_ITEMS: dict[type, type] = {str: str, bytes: int, bytearray: int, memoryview: int, range: int}


class TypeConflict(Exception):
    """A TypeVar would have to be bound to two unrelated types."""

    def __init__(self, var: TypeVar, first: Any, second: Any) -> None:
        super().__init__(f"{var} bound to both {show(first)} and {show(second)}")
        self.var, self.first, self.second = var, first, second


def show(hint: Any, qualified: bool = False) -> str:
    """A hint written the way it appears in source code: ``list[Row]``, ``int | None``;
    ``qualified``: classes with their module (``app.models.Row``), to tell apart two of one name."""
    hint = _strip(hint)
    if hint is _NONE:
        return "None"
    if hint is Any:
        return "Any"
    if hint is Ellipsis:
        return "..."
    if isinstance(hint, (list, tuple)):  # a Callable's parameters
        return "[" + ", ".join(show(arg, qualified) for arg in hint) + "]"
    if isinstance(hint, typing.ForwardRef):
        return hint.__forward_arg__
    if isinstance(hint, (TypeVar, typing.NewType, typing.ParamSpec)):
        return str(hint.__name__)
    origin = get_origin(hint)
    if isinstance(hint, type) and origin is None:
        if hint.__module__ == "builtins":
            return hint.__name__
        return f"{hint.__module__}.{hint.__qualname__}" if qualified else hint.__qualname__
    if origin in _UNION_TYPES:
        return " | ".join(show(arg, qualified) for arg in get_args(hint))
    if origin is Literal:
        return "Literal[" + ", ".join(repr(arg) for arg in get_args(hint)) + "]"
    if origin is not None:
        args = get_args(hint)
        name = getattr(origin, "__name__", None) or str(origin).rpartition(".")[2]
        return f"{name}[{', '.join(show(arg, qualified) for arg in args)}]" if args else name
    return str(getattr(hint, "__name__", None) or repr(hint))


def show_apart(first: Any, second: Any) -> tuple[str, str]:
    """``show`` of two hints, qualified with their modules if they would read the same."""
    shown = show(first), show(second)
    if shown[0] == shown[1]:
        return show(first, qualified=True), show(second, qualified=True)
    return shown


def stream_item(hint: Any, *, producer: bool) -> tuple[bool, Any]:
    """Whether ``hint`` is a stream annotation, and its item type.

    Consumers declare ``Iterable[X]`` or ``Iterator[X]`` (``AsyncIterable[X]``
    or ``AsyncIterator[X]`` for async stages); producers may also return
    ``Generator[X, ...]`` (``AsyncGenerator[X, ...]``).  A bare ``Iterable``
    streams ``Any``.
    """
    hint = _strip(hint)
    origins = _PRODUCER_ORIGINS if producer else _STREAM_ORIGINS
    origin = get_origin(hint) or hint
    if origin in origins or (
        isinstance(origin, type)
        and origin in {typing.Iterable, typing.Iterator, typing.Generator, typing.AsyncIterable, typing.AsyncIterator}
    ):
        args = get_args(hint)
        return True, args[0] if args else Any
    return False, None


def substitute(hint: Any, bindings: dict[TypeVar, Any]) -> Any:
    """``hint`` with every bound TypeVar replaced by its binding."""
    if isinstance(hint, TypeVar):
        return bindings.get(hint, hint)
    if isinstance(hint, list):  # the parameters of a Callable
        return [substitute(arg, bindings) for arg in hint]
    args = get_args(hint)
    if not args or not bindings:
        return hint
    new_args = tuple(substitute(arg, bindings) for arg in args)
    if new_args == args:
        return hint
    origin = get_origin(hint)
    if origin is cabc.Callable:
        params, returns = new_args
        flat = (*params, returns) if isinstance(params, list) else new_args
        try:
            return hint.copy_with(flat)  # typing.Callable keeps its arguments flat
        except AttributeError:
            return cabc.Callable[new_args]
    if origin in _UNION_TYPES:
        return Union[new_args]
    if origin is Annotated:
        return Annotated[(new_args[0],) + args[1:]]
    try:
        return hint.copy_with(new_args)  # typing generics
    except AttributeError:
        return types.GenericAlias(origin, new_args)  # list[T] and friends


def is_subtype(src: Any, dst: Any, bindings: dict[TypeVar, Any] | None = None) -> bool:
    """Whether a value of type ``src`` may be passed where ``dst`` is expected.

    Raises ``TypeConflict`` when a TypeVar in ``dst`` would need two
    incompatible bindings.
    """
    return _subtype(_strip(src), _strip(dst), {} if bindings is None else bindings)


def _strip(hint: Any) -> Any:
    while True:
        if hint is None:
            return _NONE
        if get_origin(hint) is Annotated:
            hint = get_args(hint)[0]
        else:
            return hint


def _subtype(src: Any, dst: Any, bindings: dict[TypeVar, Any]) -> bool:
    if src is Any or dst is Any or dst is object:
        return True
    if src in (Never, NoReturn):
        return True
    if dst in (Never, NoReturn):
        return False
    if isinstance(dst, typing.NewType):
        # Only the NewType itself (or one derived from it) fits, not its base.
        while isinstance(src, typing.NewType) and src is not dst:
            src = _strip(src.__supertype__)
        return src is dst
    if isinstance(src, typing.NewType):
        return _subtype(_strip(src.__supertype__), dst, bindings)
    if isinstance(dst, TypeVar):
        return _bind(src, dst, bindings)
    if isinstance(src, TypeVar):
        return True  # an unbound generic output: judged by the stage itself
    src_origin, dst_origin = get_origin(src), get_origin(dst)
    if src_origin in _UNION_TYPES:
        return all(_subtype(_strip(arg), dst, bindings) for arg in get_args(src))
    if dst_origin in _UNION_TYPES:
        return _into_union(src, get_args(dst), bindings)
    if dst_origin is Literal:
        # By type too: Literal[1] is not Literal[True], though 1 == True.
        return src_origin is Literal and _literals(src) <= _literals(dst)
    if src_origin is Literal:
        return all(_subtype(type(value), dst, bindings) for value in get_args(src))
    if dst_origin is type or dst is type:
        return _into_type(src, dst, bindings)
    if dst_origin is cabc.Callable or dst is cabc.Callable:
        return _into_callable(src, dst, bindings)
    return _class_subtype(src, dst, bindings)


def _literals(hint: Any) -> set[tuple[type, Any]]:
    return {(type(value), value) for value in get_args(hint)}


def _into_callable(src: Any, dst: Any, bindings: dict[TypeVar, Any]) -> bool:
    if get_origin(src) is type or src is type:
        made = get_args(src)
        src = cabc.Callable[..., made[0] if made else Any]  # a class is called to build one
    elif not (get_origin(src) is cabc.Callable or src is cabc.Callable):
        cls = _runtime_class(src)
        return cls is None or any("__call__" in vars(base) for base in cls.__mro__)
    src_args, dst_args = get_args(src), get_args(dst)
    if not src_args or not dst_args:
        return True
    (src_params, src_returns), (dst_params, dst_returns) = src_args, dst_args
    if not _subtype(_strip(src_returns), _strip(dst_returns), bindings):
        return False
    if not (isinstance(src_params, list) and isinstance(dst_params, list)):
        return True  # ... or a ParamSpec on either side
    # Parameters are contravariant: the callee must accept what callers pass.
    return len(src_params) == len(dst_params) and all(
        _subtype(_strip(d), _strip(s), {}) for s, d in zip(src_params, dst_params)
    )


def _into_union(src: Any, members: tuple[Any, ...], bindings: dict[TypeVar, Any]) -> bool:
    plain = [_strip(m) for m in members if not isinstance(m, TypeVar)]
    if any(_subtype(src, member, dict(bindings)) for member in plain):
        for member in plain:  # commit the bindings of the member that fits
            trial = dict(bindings)
            if _subtype(src, member, trial):
                bindings.update(trial)
                return True
    variables = [m for m in members if isinstance(m, TypeVar)]
    return any(_bind(src, var, bindings) for var in variables)


def _into_type(src: Any, dst: Any, bindings: dict[TypeVar, Any]) -> bool:
    if not (get_origin(src) is type or src is type):
        return False
    src_args, dst_args = get_args(src), get_args(dst)
    if not src_args or not dst_args:
        return True
    return _subtype(_strip(src_args[0]), _strip(dst_args[0]), bindings)


def _bind(src: Any, var: TypeVar, bindings: dict[TypeVar, Any]) -> bool:
    if var.__bound__ is not None and not _subtype(src, _strip(var.__bound__), {}):
        return False
    if var.__constraints__:
        # A constrained TypeVar binds to the constraint, not to a subtype of it.
        fitting = [c for c in var.__constraints__ if _subtype(src, _strip(c), {})]
        if not fitting:
            return False
        src = _strip(fitting[0])
    if var not in bindings:
        bindings[var] = src
        return True
    bound = bindings[var]
    if _subtype(src, bound, {}):
        return True
    if _subtype(bound, src, {}):
        bindings[var] = src  # widen: the earlier use still fits
        return True
    raise TypeConflict(var, bound, src)


def _runtime_class(hint: Any) -> type | None:
    origin = get_origin(hint)
    candidate = origin if origin is not None else hint
    return candidate if isinstance(candidate, type) else None


def _class_subtype(src: Any, dst: Any, bindings: dict[TypeVar, Any]) -> bool:
    src_cls, dst_cls = _runtime_class(src), _runtime_class(dst)
    if src_cls is None or dst_cls is None:
        return True  # not something this relation can judge
    if is_protocol(dst_cls) and not getattr(dst_cls, "_is_runtime_protocol", False):
        # Annotated-only attributes (dataclass fields) count as members too.
        declared = {name for base in src_cls.__mro__ for name in vars(base).get("__annotations__", {})}
        return all(
            hasattr(src_cls, name) or name in declared for name in _protocol_members(dst_cls)
        )
    try:
        related = issubclass(src_cls, dst_cls)
    except TypeError:
        return True
    if not related:
        return any(issubclass(src_cls, base) for base in _NUMERIC_TOWER.get(dst_cls, ()))
    return _args_fit(src, src_cls, dst, dst_cls, bindings)


def _protocol_members(proto: type) -> set[str]:
    members: set[str] = set()
    for base in proto.__mro__:
        if base is object or base is typing.Generic or not is_protocol(base):
            continue
        members |= {name for name in vars(base) if not name.startswith("_")}
        members |= set(getattr(base, "__annotations__", {}))
    return members


def _args_fit(src: Any, src_cls: type, dst: Any, dst_cls: type, bindings: dict[TypeVar, Any]) -> bool:
    dst_args = get_args(dst)
    if not dst_args:
        return True
    src_args = _view_as(src, src_cls, dst_cls)
    if src_args is None:
        return True  # bare src (list) or a relation we cannot map: accept
    if dst_cls is tuple:
        return _tuple_fits(src_args, dst_args, bindings)
    if len(src_args) != len(dst_args):
        return True
    invariant, contravariant = _variance(dst_cls)
    for index, (s, d) in enumerate(zip(src_args, dst_args)):
        s, d = _strip(s), _strip(d)
        if index in invariant and not isinstance(d, TypeVar) and s is not Any:
            if not (_subtype(s, d, bindings) and _subtype(d, s, {})):
                return False
        elif index in contravariant and not isinstance(d, TypeVar):
            if not _subtype(d, s, {}):
                return False
        elif not _subtype(s, d, bindings):
            return False
    return True


def _variance(dst_cls: type) -> tuple[set[int], set[int]]:
    """The invariant and the contravariant type parameters of ``dst_cls``."""
    if issubclass(dst_cls, _INVARIANT):
        return {0, 1}, set()  # list, dict, deque, Counter, ...: mutable
    if issubclass(dst_cls, cabc.Mapping) and dst_cls.__module__ == "collections.abc":
        return {0}, set()  # Mapping is invariant in its key, covariant in its value
    if dst_cls is cabc.Generator:
        return set(), {1}  # what it is sent
    if dst_cls.__module__ in {"builtins", "collections", "collections.abc", "typing"}:
        return set(), set()
    params = [p for p in getattr(dst_cls, "__parameters__", ()) if isinstance(p, TypeVar)]
    return (
        {i for i, p in enumerate(params) if not (p.__covariant__ or p.__contravariant__)},
        {i for i, p in enumerate(params) if p.__contravariant__},
    )


def _view_as(src: Any, src_cls: type, dst_cls: type) -> tuple[Any, ...] | None:
    """``src``'s type arguments as ``dst_cls`` would see them, if known."""
    if src_cls is not dst_cls and "__orig_bases__" in vars(src_cls):
        return _view_through_bases(src, src_cls, dst_cls)
    args = get_args(src)
    if not args:
        item = _ITEMS.get(src_cls)
        if item is None or dst_cls is tuple or not issubclass(dst_cls, cabc.Iterable):
            return None
        return (item,)
    if src_cls is tuple:
        if dst_cls is tuple:
            return args
        elements = args[:1] if len(args) == 2 and args[1] is Ellipsis else args
        return (Union[elements] if elements else Never,)
    if dst_cls is tuple:
        return None
    if issubclass(src_cls, cabc.Mapping) and not issubclass(dst_cls, cabc.Mapping):
        return args[:1]  # iterating a mapping yields its keys
    if issubclass(src_cls, cabc.Generator) and not issubclass(dst_cls, cabc.Generator):
        return args[:1]
    return args


def _view_through_bases(src: Any, src_cls: type, dst_cls: type) -> tuple[Any, ...] | None:
    """A user class's arguments for ``dst_cls``, via the bases it was declared with.

    ``class IntBox(Box[int])`` is ``Box[int]``; ``class Named(Pair[str, V])``
    with ``Named[int]`` is ``Pair[str, int]``.
    """
    params = getattr(src_cls, "__parameters__", ())
    args = get_args(src)
    bindings = dict(zip(params, args)) if len(args) == len(params) else {}
    for base in vars(src_cls)["__orig_bases__"]:
        origin = get_origin(base) or base
        try:
            if origin is typing.Generic or not issubclass(origin, dst_cls):
                continue
        except TypeError:
            continue
        return _view_as(substitute(base, bindings), origin, dst_cls)
    return None


def _tuple_fits(src_args: tuple[Any, ...], dst_args: tuple[Any, ...], bindings: dict[TypeVar, Any]) -> bool:
    dst_var = len(dst_args) == 2 and dst_args[1] is Ellipsis
    src_var = len(src_args) == 2 and src_args[1] is Ellipsis
    if dst_var:
        elements = src_args[:1] if src_var else src_args
        return all(_subtype(_strip(s), _strip(dst_args[0]), bindings) for s in elements)
    if src_var or len(src_args) != len(dst_args):
        return False
    return all(_subtype(_strip(s), _strip(d), bindings) for s, d in zip(src_args, dst_args))


_SAMPLE = 1000  # items of a literal source whose types are read
_MOST_TYPES = 8  # distinct item types a literal source may have and still be checked


def element_type(items: Any) -> Any:
    """What iterating ``items`` yields, where that is cheap to know, else ``Any``.

    A range yields ``int``; a list, tuple, set or frozenset yields the union
    of the types of its first ``_SAMPLE`` items (an item beyond them that
    differs goes unseen, as it would with no check); a dict yields its keys.
    """
    if isinstance(items, range):
        return int
    if isinstance(items, dict):
        items = items.keys()
    elif not isinstance(items, (list, tuple, set, frozenset)):
        return Any
    seen: list[type] = []
    for index, item in enumerate(items):
        if index == _SAMPLE:
            break
        kind = type(item)
        if kind not in seen:
            seen.append(kind)
            if len(seen) > _MOST_TYPES:
                return Any
    if not seen:
        return Any
    union: Any = seen[0]
    for kind in seen[1:]:
        union = Union[union, kind]
    return union
