"""``@stage`` and the Stage classes: what users write.

A stage is a generator function (or a sink function) plus its bound
constants and run options.  Its kind comes from its annotations: the first
parameter is the stream iff annotated ``Iterable[X]``/``Iterator[X]``; a
return of ``Iterator[Y]``/``Iterable[Y]``/``Generator[Y, ...]`` makes it
produce a stream.  The runtime class (``Source``, ``Processor``, ``Sink``)
follows the kind, so mypy and the runtime agree on what may be composed.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar, overload

from typing_extensions import Concatenate, Never, ParamSpec, Self

from ._errors import FlowTypeError, OptionError
from ._typecheck import show, stream_item

if TYPE_CHECKING:
    from ._flow import ClosedFlow, Flow

__all__ = ["Processor", "Sink", "Source", "Stage", "StageOptions", "source", "stage"]

P = ParamSpec("P")
P2 = ParamSpec("P2")
I = TypeVar("I", contravariant=True)  # noqa: E741 - the item a stage consumes
O = TypeVar("O", covariant=True)  # the item a stage yields
R = TypeVar("R", covariant=True)  # a sink's return value
T = TypeVar("T")
U = TypeVar("U")
X = TypeVar("X")

Kind = Literal["source", "processor", "sink"]


@dataclasses.dataclass(frozen=True)
class StageOptions:
    """How a stage runs; validated on construction.

    ``packets_in_flight`` bounds the packets on the stage's output edge
    (built, buffered or being consumed); it defaults to ``2 * workers``.
    """

    workers: int = 1
    packets_in_flight: int | None = None
    max_message_size: int | None = None
    shared_buffer: bool = False
    name: str | None = None
    resources: tuple[tuple[str, float], ...] | None = None  # per worker, for cluster backends

    def validated(self, stage_name: str) -> StageOptions:
        """This, checked, with ``packets_in_flight`` resolved; raises ``OptionError``."""
        where = f"for stage '{stage_name}'"
        if not isinstance(self.workers, int) or isinstance(self.workers, bool) or self.workers < 1:
            raise OptionError(f"workers={self.workers!r} {where} must be an int >= 1")
        pif = 2 * self.workers if self.packets_in_flight is None else self.packets_in_flight
        if not isinstance(pif, int) or isinstance(pif, bool) or pif < 1:
            raise OptionError(f"packets_in_flight={pif!r} {where} must be an int >= 1")
        if pif < self.workers:
            raise OptionError(
                f"packets_in_flight={pif} is below workers={self.workers} {where}; "
                "set packets_in_flight >= workers"
            )
        size = self.max_message_size
        if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size <= 0):
            raise OptionError(
                f"max_message_size={size!r} {where} must be None or an int > 0 (bytes)"
            )
        if self.shared_buffer and size is None:
            raise OptionError(
                f"shared_buffer=True {where} requires max_message_size; "
                "set max_message_size to the largest message in bytes"
            )
        if self.name is not None and (not isinstance(self.name, str) or not self.name):
            raise OptionError(f"name={self.name!r} {where} must be a non-empty str")
        resources = self.resources
        if isinstance(resources, Mapping):
            resources = tuple(sorted(resources.items()))
        for key, amount in resources or ():
            if not isinstance(key, str) or not _is_amount(amount):
                raise OptionError(
                    f"resources={dict(resources or ())!r} {where} must map names (num_cpus, "
                    "num_gpus, memory, or a custom resource) to amounts >= 0"
                )
        return dataclasses.replace(self, packets_in_flight=pif, resources=resources)


def _is_amount(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0


@dataclasses.dataclass(frozen=True)
class _Signature:
    """What a stage function's annotations say, resolved once."""

    kind: Kind
    stream_param: str | None
    constants: tuple[inspect.Parameter, ...]
    input_type: Any  # item type consumed; None for sources or when unannotated
    output_type: Any  # item yielded (source/processor) or value returned (sink)
    input_annotated: bool
    output_annotated: bool
    hints: Mapping[str, Any]
    where: str


def _resolve_hints(fn: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(fn, include_extras=True)
    except Exception as exc:  # NameError for a forward reference, mostly
        name = getattr(fn, "__qualname__", repr(fn))
        raise FlowTypeError(
            f"cannot resolve the annotations of '{name}' ({_where(fn)}): {exc}; "
            "annotate with names importable at module level"
        ) from exc


def _where(fn: Callable[..., Any]) -> str:
    code = getattr(fn, "__code__", None)
    if code is None:
        return f"in {getattr(fn, '__module__', '?')}"
    return f"defined at {code.co_filename}:{code.co_firstlineno}"


def _analyse(fn: Callable[..., Any]) -> _Signature:
    sig = inspect.signature(fn)
    hints = _resolve_hints(fn)
    params = list(sig.parameters.values())
    stream_param = None
    input_type: Any = None
    input_annotated = False
    if params and params[0].kind in (params[0].POSITIONAL_ONLY, params[0].POSITIONAL_OR_KEYWORD):
        is_stream, item = stream_item(hints.get(params[0].name), producer=False)
        if is_stream:
            stream_param, input_type, input_annotated = params[0].name, item, True
            params = params[1:]
    output_annotated = "return" in hints
    produces, item = stream_item(hints.get("return"), producer=True)
    if not output_annotated:
        produces = inspect.isgeneratorfunction(fn)
        item = None
    kind: Kind
    if stream_param is None:
        kind = "source"
    else:
        kind = "processor" if produces else "sink"
    output_type = item if produces else hints.get("return")
    return _Signature(
        kind=kind,
        stream_param=stream_param,
        constants=tuple(params),
        input_type=input_type,
        output_type=output_type,
        input_annotated=input_annotated,
        output_annotated=output_annotated,
        hints=hints,
        where=_where(fn),
    )


def _plainly_contradicts(value: Any, hint: Any) -> bool:
    """Whether ``value`` is clearly not of the simple annotation ``hint``."""
    hint = typing.get_origin(hint) or hint
    if hint in (typing.Union, getattr(__import__("types"), "UnionType", None)):
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


class Stage(Generic[P, I, O]):
    """A stage function with bound constants and run options; immutable.

    Call it to bind constants (``parse(encoding="latin-1")``), ``options()``
    to change how it runs, ``|`` to compose it into a flow.  ``fn`` is the
    undecorated function.
    """

    __slots__ = ("fn", "_options", "_bound", "_sig")

    fn: Callable[..., Any]
    _options: StageOptions
    _bound: Mapping[str, Any]
    _sig: _Signature

    def __init__(
        self,
        fn: Callable[..., Any],
        options: StageOptions | None = None,
        bound: Mapping[str, Any] | None = None,
        *,
        _sig: _Signature | None = None,
    ) -> None:
        if not callable(fn):
            raise FlowTypeError(f"@stage needs a function, got {type(fn).__name__}")
        object.__setattr__(self, "fn", fn)
        object.__setattr__(self, "_sig", _sig or _analyse(fn))
        base_name = getattr(fn, "__name__", type(fn).__name__)
        opts = (options or StageOptions()).validated((options and options.name) or base_name)
        object.__setattr__(self, "_options", opts)
        object.__setattr__(self, "_bound", dict(bound or {}))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Stage is immutable; use .options() or call it to bind constants")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("Stage is immutable; use .options() or call it to bind constants")

    # -- what it is ---------------------------------------------------------

    @property
    def name(self) -> str:
        """The stage's name in errors, reprs and reports."""
        fallback: str = getattr(self.fn, "__name__", "stage")
        return self._options.name or fallback

    @property
    def kind(self) -> Kind:
        """``"source"``, ``"processor"`` or ``"sink"``."""
        return self._sig.kind

    @property
    def workers(self) -> int:
        return self._options.workers

    @property
    def packets_in_flight(self) -> int:
        assert self._options.packets_in_flight is not None
        return self._options.packets_in_flight

    @property
    def max_message_size(self) -> int | None:
        return self._options.max_message_size

    @property
    def shared_buffer(self) -> bool:
        return self._options.shared_buffer

    @property
    def run_options(self) -> StageOptions:
        """All run options, resolved."""
        return self._options

    @property
    def constants(self) -> Mapping[str, Any]:
        """The constants bound so far (defaults not included)."""
        return dict(self._bound)

    @property
    def input_type(self) -> Any:
        """The item type consumed, ``None`` for a source."""
        return self._sig.input_type

    @property
    def output_type(self) -> Any:
        """The item type yielded, or a sink's return type."""
        return self._sig.output_type

    @property
    def where(self) -> str:
        """Where the stage function was defined, for messages."""
        return self._sig.where

    # -- making variants ----------------------------------------------------

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Self:
        """A copy with constants bound; raises ``FlowTypeError`` on a bad name or type."""
        names = [p.name for p in self._sig.constants]
        bound = dict(self._bound)
        positional = [p for p in self._sig.constants if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        if len(args) > len(positional):
            raise FlowTypeError(
                f"stage '{self.name}' takes {len(positional)} positional constant(s) "
                f"({', '.join(p.name for p in positional) or 'none'}), got {len(args)}"
            )
        pairs = [(p.name, value) for p, value in zip(positional, args)] + list(kwargs.items())
        twice = [p.name for p in positional[: len(args)] if p.name in kwargs]
        if twice:
            raise FlowTypeError(
                f"constant {twice[0]!r} of stage '{self.name}' is given twice, by position and by name"
            )
        accepts_any = any(p.kind is p.VAR_KEYWORD for p in self._sig.constants)
        for name, value in pairs:
            param = next((p for p in self._sig.constants if p.name == name), None)
            if param is None or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                if accepts_any and name != self._sig.stream_param:
                    bound[name] = value
                    continue
                raise FlowTypeError(
                    f"stage '{self.name}' has no constant {name!r}; "
                    f"its constants are: {', '.join(n for n in names) or 'none'}"
                )
            if param.kind is param.POSITIONAL_ONLY and name in kwargs:
                raise FlowTypeError(f"constant {name!r} of stage '{self.name}' is positional-only")
            hint = self._sig.hints.get(name)
            if hint is not None and _plainly_contradicts(value, hint):
                raise FlowTypeError(
                    f"constant {name}={_short(value)} of stage '{self.name}' is "
                    f"{type(value).__name__}, but it is annotated {show(hint)} ({self.where})"
                )
            bound[name] = value
        return self._copy(bound=bound)

    def options(
        self,
        *,
        workers: int | None = None,
        packets_in_flight: int | None = None,
        max_message_size: int | None = None,
        shared_buffer: bool | None = None,
        name: str | None = None,
        resources: Mapping[str, float] | None = None,
    ) -> Self:
        """A copy with other run options; options not given keep their value.

        ``resources`` (per worker: ``num_cpus``, ``num_gpus``, ``memory`` in
        bytes, or custom resources) is used by the Ray backend.

        Raises ``OptionError`` for invalid values.
        """
        current = self._options
        changes: dict[str, Any] = {}
        if workers is not None:
            changes["workers"] = workers
            if packets_in_flight is None and current.packets_in_flight == 2 * current.workers:
                changes["packets_in_flight"] = None  # keep following the default
        if packets_in_flight is not None:
            changes["packets_in_flight"] = packets_in_flight
        if max_message_size is not None:
            changes["max_message_size"] = max_message_size
        if shared_buffer is not None:
            changes["shared_buffer"] = shared_buffer
        if name is not None:
            changes["name"] = name
        if resources is not None:
            changes["resources"] = tuple(sorted(resources.items()))
        return self._copy(options=dataclasses.replace(current, **changes))

    def _copy(self, *, options: StageOptions | None = None, bound: Mapping[str, Any] | None = None) -> Self:
        return type(self)(
            self.fn,
            options if options is not None else self._options,
            bound if bound is not None else self._bound,
            _sig=self._sig,
        )

    # -- checks used by composition ----------------------------------------

    def missing_constants(self) -> list[str]:
        """Required constants not bound yet."""
        return [
            p.name
            for p in self._sig.constants
            if p.default is p.empty
            and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
            and p.name not in self._bound
        ]

    def check_complete(self) -> None:
        """Raise ``FlowTypeError`` if a required constant is unbound."""
        missing = self.missing_constants()
        if missing:
            listed = ", ".join(missing)
            raise FlowTypeError(
                f"stage '{self.name}' needs constant(s) {listed} ({self.where}); "
                f"bind them by calling it: {self.name}({', '.join(m + '=...' for m in missing)})"
            )

    def call(self, stream: Iterable[Any] | None) -> Any:
        """Run the function on ``stream`` (ignored for sources) with the constants."""
        kwargs = dict(self._bound)
        if self._sig.stream_param is None:
            return self.fn(**kwargs)
        return self.fn(stream, **kwargs)

    # -- composition --------------------------------------------------------

    def __or__(self, other: Any) -> Any:
        from ._flow import compose

        return compose(self, other)

    def __ror__(self, other: Any) -> Any:
        from ._flow import compose

        return compose(other, self)

    # -- identity, pickling, display ---------------------------------------

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Stage):
            return NotImplemented
        return (self.fn, self._options, dict(self._bound)) == (other.fn, other._options, dict(other._bound))

    def __hash__(self) -> int:
        return hash((self.fn, self._options))

    def __reduce__(self) -> tuple[Any, ...]:
        module, qualname = getattr(self.fn, "__module__", None), getattr(self.fn, "__qualname__", "")
        try:
            target: Any = importlib.import_module(module) if module else None
            for part in qualname.split("."):
                target = getattr(target, part)
        except Exception:
            target = None
        if module != "__main__" and isinstance(target, Stage) and target.fn is self.fn:
            # The decorated name shadows the function: pickle it by name.
            return (_rebuild_named, (module, qualname, self._options, dict(self._bound)))
        # By value (cloudpickle): the annotations travel resolved, since the
        # names they use may not exist where the function is rebuilt.
        return (_rebuild, (type(self), self.fn, self._options, dict(self._bound), self._sig))

    def __repr__(self) -> str:
        if self.fn is _iterate:
            return f"source({_short(self._bound['items'])})"
        text = getattr(self.fn, "__name__", self.name)  # a name option shows below
        if self._bound:
            text += "(" + ", ".join(f"{k}={_short(v)}" for k, v in self._bound.items()) + ")"
        defaults = StageOptions().validated(self.name)
        changed = []
        for field in dataclasses.fields(StageOptions):
            value = getattr(self._options, field.name)
            default = getattr(defaults, field.name)
            if field.name == "packets_in_flight":
                default = 2 * self._options.workers
            if field.name == "name":
                continue
            if value != default:
                changed.append(f"{field.name}={value!r}")
        if self._options.name is not None:
            changed.append(f"name={self._options.name!r}")
        if changed:
            text += ".options(" + ", ".join(changed) + ")"
        return text


def _rebuild(
    cls: type[Stage[Any, Any, Any]],
    fn: Callable[..., Any],
    options: StageOptions,
    bound: Mapping[str, Any],
    sig: _Signature,
) -> Stage[Any, Any, Any]:
    return cls(fn, options, bound, _sig=sig)


def _rebuild_named(module: str, qualname: str, options: StageOptions, bound: Mapping[str, Any]) -> Stage[Any, Any, Any]:
    target: Any = importlib.import_module(module)
    for part in qualname.split("."):
        target = getattr(target, part)
    return target._copy(options=options, bound=bound)  # type: ignore[no-any-return]


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class Source(Stage[P, Never, O]):
    """A stage that produces a stream from its constants alone."""

    __slots__ = ()

    if TYPE_CHECKING:

        @overload
        def __or__(self, other: Processor[P2, O, T]) -> Flow[Never, T]: ...
        @overload
        def __or__(self, other: Sink[P2, O, T]) -> ClosedFlow[Never, T]: ...
        @overload
        def __or__(self, other: Flow[O, T]) -> Flow[Never, T]: ...
        @overload
        def __or__(self, other: ClosedFlow[O, T]) -> ClosedFlow[Never, T]: ...
        def __or__(self, other: Any) -> Any: ...
        def __ror__(self, other: Never) -> Never: ...


class Processor(Stage[P, I, O]):
    """A stage that turns a stream into another stream."""

    __slots__ = ()

    if TYPE_CHECKING:

        @overload
        def __or__(self, other: Processor[P2, O, T]) -> Flow[I, T]: ...
        @overload
        def __or__(self, other: Sink[P2, O, T]) -> ClosedFlow[I, T]: ...
        @overload
        def __or__(self, other: Flow[O, T]) -> Flow[I, T]: ...
        @overload
        def __or__(self, other: ClosedFlow[O, T]) -> ClosedFlow[I, T]: ...
        def __or__(self, other: Any) -> Any: ...
        def __ror__(self, other: Iterable[I]) -> Flow[Never, O]: ...


class Sink(Stage[P, I, O]):
    """A stage that consumes a stream and returns a value (``O`` is that value)."""

    __slots__ = ()

    if TYPE_CHECKING:

        def __or__(self, other: Never) -> Never: ...
        def __ror__(self, other: Iterable[I]) -> ClosedFlow[Never, O]: ...


_CLASSES: dict[Kind, type[Stage[Any, Any, Any]]] = {
    "source": Source,
    "processor": Processor,
    "sink": Sink,
}


def _make(fn: Callable[..., Any], options: StageOptions) -> Stage[Any, Any, Any]:
    if isinstance(fn, Stage):
        return fn._copy(options=dataclasses.replace(fn.run_options, **{
            f.name: getattr(options, f.name)
            for f in dataclasses.fields(options)
            if getattr(options, f.name) != getattr(StageOptions(), f.name)
        }))
    sig = _analyse(fn)
    return _CLASSES[sig.kind](fn, options, _sig=sig)


class _Decorator(typing.Protocol):
    @overload
    def __call__(self, fn: Callable[Concatenate[Iterable[T], P], Iterator[U]]) -> Processor[P, T, U]: ...  # type: ignore[overload-overlap]
    @overload
    def __call__(self, fn: Callable[Concatenate[Iterator[T], P], Iterator[U]]) -> Processor[P, T, U]: ...  # type: ignore[overload-overlap]
    @overload
    def __call__(self, fn: Callable[Concatenate[Iterable[T], P], Iterable[U]]) -> Processor[P, T, U]: ...  # type: ignore[overload-overlap]
    @overload
    def __call__(self, fn: Callable[Concatenate[Iterable[T], P], X]) -> Sink[P, T, X]: ...
    @overload
    def __call__(self, fn: Callable[Concatenate[Iterator[T], P], X]) -> Sink[P, T, X]: ...
    @overload
    def __call__(self, fn: Callable[P, Iterator[U]]) -> Source[P, U]: ...
    @overload
    def __call__(self, fn: Callable[P, Iterable[U]]) -> Source[P, U]: ...


@overload
def stage(fn: Callable[Concatenate[Iterable[T], P], Iterator[U]], /) -> Processor[P, T, U]: ...  # type: ignore[overload-overlap]
@overload
def stage(fn: Callable[Concatenate[Iterator[T], P], Iterator[U]], /) -> Processor[P, T, U]: ...  # type: ignore[overload-overlap]
@overload
def stage(fn: Callable[Concatenate[Iterable[T], P], Iterable[U]], /) -> Processor[P, T, U]: ...  # type: ignore[overload-overlap]
@overload
def stage(fn: Callable[Concatenate[Iterable[T], P], X], /) -> Sink[P, T, X]: ...
@overload
def stage(fn: Callable[Concatenate[Iterator[T], P], X], /) -> Sink[P, T, X]: ...
@overload
def stage(fn: Callable[P, Iterator[U]], /) -> Source[P, U]: ...
@overload
def stage(fn: Callable[P, Iterable[U]], /) -> Source[P, U]: ...
@overload
def stage(
    *,
    workers: int = 1,
    packets_in_flight: int | None = None,
    max_message_size: int | None = None,
    shared_buffer: bool = False,
    name: str | None = None,
) -> _Decorator: ...
def stage(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    workers: int = 1,
    packets_in_flight: int | None = None,
    max_message_size: int | None = None,
    shared_buffer: bool = False,
    name: str | None = None,
) -> Any:
    """Make a generator function (or sink function) a composable stage.

    Use bare (``@stage``) or with run options (``@stage(workers=4)``).
    Raises ``OptionError`` for invalid options, at decoration time.
    """
    options = StageOptions(workers, packets_in_flight, max_message_size, shared_buffer, name)
    if fn is not None:
        return _make(fn, options)

    def decorate(fn: Callable[..., Any]) -> Stage[Any, Any, Any]:
        return _make(fn, options)

    return decorate


def _iterate(*, items: Any) -> Iterator[Any]:
    yield from items


def source(items: Iterable[T], *, name: str | None = None) -> Source[[], T]:
    """A source stage that yields the items of any iterable.

    Picklable iterables (lists, ranges) travel to a worker; others
    (generators, files) are read in the caller's process and fed to the flow.
    """
    item_type: Any = int if isinstance(items, range) else Any
    sig = _Signature(
        kind="source",
        stream_param=None,
        constants=(inspect.Parameter("items", inspect.Parameter.KEYWORD_ONLY),),
        input_type=None,
        output_type=item_type,
        input_annotated=False,
        output_annotated=True,
        hints={},
        where=f"source({type(items).__name__})",
    )
    label = name or f"source({type(items).__name__})"
    return Source(_iterate, StageOptions(name=label), {"items": items}, _sig=sig)
