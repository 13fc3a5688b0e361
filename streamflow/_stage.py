"""``@stage`` and the Stage classes: what users write.

A stage is a generator function (or a sink function) plus its bound
constants and run options.  Its kind comes from its annotations (see
``_signature``); the runtime class (``Source``, ``Processor``, ``Sink``)
follows the kind, so mypy and the runtime agree on what may be composed.
"""

from __future__ import annotations

import dis
import importlib
import inspect
import typing
import warnings
from collections.abc import AsyncIterable, AsyncIterator, Callable, Coroutine, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from typing_extensions import Concatenate, Never, ParamSpec, Self, Unpack

from ._errors import FlowTypeError, StreamflowError
from ._options import RunOptions, StageArgs, StageOptions
from ._shapes import AsyncMaps, Maps, Processes, Sinks, Sources
from ._signature import Kind, Signature, analyse, plainly_contradicts
from ._text import short
from ._typecheck import element_type, show

if TYPE_CHECKING:
    from ._flow import ClosedFlow, Flow
    from ._run import Run

__all__ = ["Processor", "Sink", "Source", "Stage", "source", "stage"]

P = ParamSpec("P")
I = TypeVar("I", contravariant=True)  # noqa: E741 - the item a stage consumes
O = TypeVar("O", covariant=True)  # the item a stage yields
R = TypeVar("R", covariant=True)  # a sink's return value
T = TypeVar("T")
U = TypeVar("U")
X = TypeVar("X")
# What a sink returns though it is iterable: a function annotated to return one consumes its
# stream (only ``Iterator``, ``Iterable`` and ``Generator`` returns produce one).
C = TypeVar("C", bound="list[Any] | dict[Any, Any] | set[Any] | frozenset[Any] | tuple[Any, ...] | str | bytes | bytearray")


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
    _sig: Signature

    def __init__(
        self,
        fn: Callable[..., Any],
        options: StageOptions | None = None,
        bound: Mapping[str, Any] | None = None,
        *,
        _sig: Signature | None = None,
    ) -> None:
        if not callable(fn):
            raise FlowTypeError(f"@stage needs a function, got {type(fn).__name__}")
        options = options or StageOptions()
        _sig = _sig or analyse(fn)
        options.check(
            options.name or str(getattr(fn, "__name__", type(fn).__name__)),
            _sig.kind,
            async_map=_sig.per_item and _sig.is_async,
        )
        object.__setattr__(self, "fn", fn)
        object.__setattr__(self, "_sig", _sig)
        object.__setattr__(self, "_options", options)
        object.__setattr__(self, "_bound", dict(bound or {}))

    if TYPE_CHECKING:
        # No name can be set: typed so, a Stage does not pass for an
        # instance of a class stage, whose attributes can (see _shapes).
        def __setattr__(self, name: Never, value: Any, /) -> None: ...  # type: ignore[override, misc]

    else:

        def __setattr__(self, name: str, value: Any) -> None:
            raise AttributeError("Stage is immutable; use .options() or call it to bind constants")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("Stage is immutable; use .options() or call it to bind constants")

    # -- what it is ---------------------------------------------------------

    @property
    def __wrapped__(self) -> Callable[..., Any]:
        """The stage function (for ``inspect`` and pickling by name)."""
        return self.fn

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
        pif = self._options.resolved().packets_in_flight
        assert pif is not None
        return pif

    @property
    def max_message_size(self) -> int | None:
        return self._options.max_message_size

    @property
    def shared_buffer(self) -> bool:
        return self._options.shared_buffer

    @property
    def run_options(self) -> StageOptions:
        """All run options, defaults filled in (``packets_in_flight``: the process and thread
        backends' default; a run on another backend may fill in another)."""
        return self._options.resolved()

    @property
    def dead_letters(self) -> Any:
        """The branch that this stage's failed items enter (``on_error=branch``), if any."""
        return self._options.dead_letters

    @property
    def set_options(self) -> StageOptions:
        """The run options as set, defaults not filled in."""
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
    def signature(self) -> Signature:
        """What the stage function's annotations say."""
        return self._sig

    @property
    def where(self) -> str:
        """Where the stage function was defined, for messages."""
        return self._sig.where

    @property
    def one_shot(self) -> bool:
        """Whether this is a source over an iterator that can be read only once, in the caller."""
        return self.fn is _iterate and isinstance(self._bound["items"], _OneShot)

    def claim(self) -> None:
        """Take this stage's one-shot input for a run; raises ``StreamflowError`` if a run took it."""
        if self.one_shot:
            self._bound["items"].claim(self.name)

    # -- making variants ----------------------------------------------------

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Self:
        """A copy with constants bound; raises ``FlowTypeError`` on a bad name or type."""
        constants = self._sig.constants
        bound = dict(self._bound)
        positional = [p for p in constants if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
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
        accepts_any = any(p.kind is p.VAR_KEYWORD for p in constants)
        for name, value in pairs:
            param = next((p for p in constants if p.name == name), None)
            if param is None or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                if accepts_any and name != self._sig.stream_param:
                    bound[name] = value
                    continue
                raise FlowTypeError(
                    f"stage '{self.name}' has no constant {name!r}; "
                    f"its constants are: {', '.join(p.name for p in constants) or 'none'}"
                )
            if param.kind is param.POSITIONAL_ONLY and name in kwargs:
                raise FlowTypeError(f"constant {name!r} of stage '{self.name}' is positional-only")
            hint = self._sig.hints.get(name)
            if hint is not None and plainly_contradicts(value, hint):
                raise FlowTypeError(
                    f"constant {name}={short(value)} of stage '{self.name}' is "
                    f"{type(value).__name__}, but it is annotated {show(hint)} ({self.where})"
                )
            bound[name] = value
        return self._copy(bound=bound)

    def options(self, **options: Unpack[StageArgs]) -> Self:
        """A copy with other run options (see ``StageArgs``); options not given keep their value.

        Raises ``OptionError`` for an unknown option or a value out of range.
        """
        return self._copy(options=self._options.replaced(options))

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
        return self._sig.missing(self._bound)

    def check_complete(self) -> None:
        """Raise ``FlowTypeError`` if a required constant is unbound."""
        missing = self.missing_constants()
        if missing:
            listed = ", ".join(missing)
            raise FlowTypeError(
                f"stage '{self.name}' needs constant(s) {listed} ({self.where}); "
                f"bind them by calling it: {self.name}({', '.join(m + '=...' for m in missing)})"
            )

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
            return f"source({short(self._bound['items'])})"
        text = getattr(self.fn, "__name__", self.name)  # a name option shows below
        if self._bound:
            text += "(" + ", ".join(f"{k}={short(v)}" for k, v in self._bound.items()) + ")"
        changed = self._options.changed()
        name = changed.pop("name", None)  # last, where it reads best
        if name is not None:
            changed["name"] = name
        if "resources" in changed:
            changed["resources"] = dict(changed["resources"])
        if changed:
            text += ".options(" + ", ".join(f"{k}={v!r}" for k, v in changed.items()) + ")"
        return text


def _rebuild(
    cls: type[Stage[Any, Any, Any]],
    fn: Callable[..., Any],
    options: StageOptions,
    bound: Mapping[str, Any],
    sig: Signature,
) -> Stage[Any, Any, Any]:
    return cls(fn, options, bound, _sig=sig)


def _rebuild_named(module: str, qualname: str, options: StageOptions, bound: Mapping[str, Any]) -> Stage[Any, Any, Any]:
    target: Any = importlib.import_module(module)
    for part in qualname.split("."):
        target = getattr(target, part)
    return target._copy(options=options, bound=bound)  # type: ignore[no-any-return]


if TYPE_CHECKING:

    class ClassStageMismatch:
        """What ``|`` gives, to mypy, for a class whose instances do not take the items before it.

        Anything done with it is a mypy error, which names this class: a
        class on the right of ``|`` gives mypy no chance to say so there.
        """


class Composes(Generic[I, O]):
    """The static types of ``self | other`` for what consumes ``I`` and yields ``O``.

    A base of ``Flow``, ``Source`` and ``Processor``, listed before the
    class that does the composing at run time; only the static types live
    here, and at run time it is an empty base.
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


class Source(Composes[Never, O], Stage[P, Never, O], Generic[P, O]):
    """A stage that produces a stream from its constants alone; on its own, a flow."""

    __slots__ = ()

    def _flow(self) -> Flow[Never, O]:
        from ._flow import compose_all

        flow: Flow[Never, O] = compose_all((self,))
        return flow

    def __iter__(self) -> Iterator[O]:
        """Run with default options, yielding items (see ``Flow``)."""
        return iter(self._flow())

    def iter(self, **options: Unpack[RunOptions]) -> Run[O, list[O]]:
        """Start it and return its items as an iterator (and context manager)."""
        return self._flow().iter(**options)

    def start(self, **options: Unpack[RunOptions]) -> Run[O, list[O]]:
        """Start it; iterate the returned ``Run`` for its items."""
        return self._flow().start(**options)

    def run(self, **options: Unpack[RunOptions]) -> list[O]:
        """Run it to its end and return all its items as a list."""
        return self._flow().run(**options)

    async def run_async(self, **options: Unpack[RunOptions]) -> list[O]:
        """``run()`` for async code: the event loop keeps running meanwhile."""
        return await self._flow().run_async(**options)

    def aiter(self, **options: Unpack[RunOptions]) -> AsyncIterator[O]:
        """Its items for ``async for``; leaving the loop early stops it."""
        return self._flow().aiter(**options)

    if TYPE_CHECKING:

        def __ror__(self, other: Never) -> Never: ...


class Processor(Composes[I, O], Stage[P, I, O], Generic[P, I, O]):
    """A stage that turns a stream into another stream."""

    __slots__ = ()

    if TYPE_CHECKING:

        def __ror__(self, other: Iterable[I]) -> Flow[Never, O]: ...


class Sink(Stage[P, I, O]):
    """A stage that consumes a stream and returns a value (``O`` is that value)."""

    __slots__ = ()

    if TYPE_CHECKING:

        def __or__(self, other: Never) -> Never: ...
        def __ror__(self, other: Iterable[I]) -> ClosedFlow[Never, O]: ...


class Batch(Processor[[int, "float | None"], Any, Any]):
    """The stage ``sf.batch`` returns (typed by the stage before it)."""

    __slots__ = ()

    if TYPE_CHECKING:

        def __ror__(self, other: Iterable[T]) -> Flow[Never, list[T]]: ...


class Unbatch(Processor[[], Any, Any]):
    """The stage ``sf.unbatch`` returns (typed by the stage before it)."""

    __slots__ = ()

    if TYPE_CHECKING:

        def __ror__(self, other: Iterable[Iterable[T]]) -> Flow[Never, T]: ...


_CLASSES: dict[Kind, type[Stage[Any, Any, Any]]] = {
    "source": Source,
    "processor": Processor,
    "sink": Sink,
}


def _make(fn: Callable[..., Any], options: StageArgs, *, per_item: bool = False) -> Stage[Any, Any, Any]:
    if isinstance(fn, Stage):
        if per_item and not fn.signature.per_item:
            raise FlowTypeError(f"stage '{fn.name}' is already a @stage; @sf.map takes a plain function")
        return fn.options(**options)
    if not callable(fn):
        raise FlowTypeError(f"@{'sf.map' if per_item else 'stage'} needs a function or a class, got {type(fn).__name__}")
    sig = analyse(fn, per_item=per_item)
    if sig.kind == "source":
        _warn_if_unannotated_stream(fn, sig)
    return _CLASSES[sig.kind](fn, StageOptions().replaced(options), _sig=sig)


_STREAM_NAMES = {"stream", "items", "xs", "inputs", "iterable", "rows", "records", "lines", "chunks", "batches"}


def _warn_if_unannotated_stream(fn: Callable[..., Any], sig: Signature) -> None:
    """Warn when a source's unannotated first parameter looks like an input stream."""
    first = sig.constants[0] if sig.constants else None
    if first is None or first.name in sig.hints or first.kind not in (first.POSITIONAL_ONLY, first.POSITIONAL_OR_KEYWORD):
        return
    if first.name not in _STREAM_NAMES and not _iterates(fn, first.name):
        return
    warnings.warn(
        f"stage '{getattr(fn, '__name__', fn)}' has no annotation on its first parameter "
        f"'{first.name}', so it is a source and '{first.name}' a constant ({sig.where}); if "
        f"'{first.name}' is its input stream, annotate it ('{first.name}: Iterable[X]'), and "
        f"if it is a constant, annotate it too ('{first.name}: list[str]') to say so",
        UserWarning,
        stacklevel=4,
    )


def _iterates(fn: Callable[..., Any], name: str) -> bool:
    """Whether ``fn``'s code loops over its parameter ``name``."""
    code = getattr(fn, "__code__", None)
    if code is None:
        return False
    instructions = list(dis.get_instructions(code))
    return any(
        load.opname == "LOAD_FAST" and load.argval == name and use.opname in ("GET_ITER", "GET_YIELD_FROM_ITER")
        for load, use in zip(instructions, instructions[1:])
    )


class _Decorator(typing.Protocol):
    @overload
    def __call__(self, fn: Callable[Concatenate[AsyncIterable[T], P], AsyncIterator[U]]) -> Processor[P, T, U]: ...
    @overload
    def __call__(self, fn: Callable[Concatenate[AsyncIterator[T], P], AsyncIterator[U]]) -> Processor[P, T, U]: ...
    @overload
    def __call__(self, fn: Callable[Concatenate[AsyncIterable[T], P], Coroutine[Any, Any, X]]) -> Sink[P, T, X]: ...
    @overload
    def __call__(self, fn: Callable[P, AsyncIterator[U]]) -> Source[P, U]: ...  # type: ignore[overload-overlap]
    @overload
    def __call__(self, fn: Callable[P, Processes[T, U]]) -> Processor[P, T, U]: ...  # type: ignore[overload-overlap]
    @overload
    def __call__(self, fn: Callable[P, Sources[U]]) -> Source[P, U]: ...  # type: ignore[overload-overlap]
    @overload
    def __call__(self, fn: Callable[P, Sinks[T, X]]) -> Sink[P, T, X]: ...
    @overload
    def __call__(self, fn: Callable[Concatenate[Iterable[T], P], Iterator[U]]) -> Processor[P, T, U]: ...  # type: ignore[overload-overlap]
    @overload
    def __call__(self, fn: Callable[Concatenate[Iterator[T], P], Iterator[U]]) -> Processor[P, T, U]: ...  # type: ignore[overload-overlap]
    @overload
    def __call__(self, fn: Callable[Concatenate[Iterable[T], P], C]) -> Sink[P, T, C]: ...  # type: ignore[overload-overlap]
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
def stage(fn: Callable[Concatenate[AsyncIterable[T], P], AsyncIterator[U]], /) -> Processor[P, T, U]: ...
@overload
def stage(fn: Callable[Concatenate[AsyncIterator[T], P], AsyncIterator[U]], /) -> Processor[P, T, U]: ...
@overload
def stage(fn: Callable[Concatenate[AsyncIterable[T], P], Coroutine[Any, Any, X]], /) -> Sink[P, T, X]: ...
@overload
def stage(fn: Callable[P, AsyncIterator[U]], /) -> Source[P, U]: ...  # type: ignore[overload-overlap]
@overload
def stage(fn: Callable[P, Processes[T, U]], /) -> Processor[P, T, U]: ...  # type: ignore[overload-overlap]
@overload
def stage(fn: Callable[P, Sources[U]], /) -> Source[P, U]: ...  # type: ignore[overload-overlap]
@overload
def stage(fn: Callable[P, Sinks[T, X]], /) -> Sink[P, T, X]: ...
@overload
def stage(fn: Callable[Concatenate[Iterable[T], P], Iterator[U]], /) -> Processor[P, T, U]: ...  # type: ignore[overload-overlap]
@overload
def stage(fn: Callable[Concatenate[Iterator[T], P], Iterator[U]], /) -> Processor[P, T, U]: ...  # type: ignore[overload-overlap]
@overload
def stage(fn: Callable[Concatenate[Iterable[T], P], C], /) -> Sink[P, T, C]: ...  # type: ignore[overload-overlap]
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
def stage(**options: Unpack[StageArgs]) -> _Decorator: ...
def stage(fn: Callable[..., Any] | None = None, /, **options: Unpack[StageArgs]) -> Any:
    """Make a generator function (or sink function, or a class) a composable stage.

    A class's ``__init__`` takes the constants and its ``__call__`` the
    stream; each worker builds one instance and calls its ``close()``, if
    any, when it ends.  Use bare (``@stage``) or with run options (``@stage(workers=4)``, see
    ``StageArgs``).  Raises ``OptionError`` for invalid options, at
    decoration time.
    """
    if fn is not None:
        return _make(fn, options)

    def decorate(fn: Callable[..., Any]) -> Stage[Any, Any, Any]:
        return _make(fn, options)

    return decorate


def _iterate(*, items: Any) -> Iterator[Any]:
    yield from items


class _OneShot:
    """An iterator (a generator, an open file) that a flow can read in one run only."""

    __slots__ = ("_items", "_claimed")

    def __init__(self, items: Iterator[Any]) -> None:
        self._items = items
        self._claimed = False

    def claim(self, stage: str) -> None:
        if self._claimed:
            raise StreamflowError(
                f"source '{stage}' reads a {type(self._items).__name__}, which an earlier run of "
                "this flow already used up: an iterator can be read once; pass a list (or any "
                "iterable that can be read again), or build the flow again with a new iterator"
            )
        self._claimed = True

    def __iter__(self) -> Iterator[Any]:
        return self._items

    def __repr__(self) -> str:
        return repr(self._items)


def source(items: Iterable[T], *, name: str | None = None) -> Source[[], T]:
    """A source stage that yields the items of any iterable.

    Picklable iterables (lists, ranges) travel to a worker and are read
    again by every run; iterators (generators, open files) are read once,
    in the caller's process, by the first run (a second run raises
    ``StreamflowError``).  The items' type takes part in the checks at
    ``|`` where it is cheap to read: ranges, and lists, tuples and sets
    (from the types of their first 1,000 items).
    """
    kind = type(items).__name__
    read: Any = _OneShot(items) if isinstance(items, Iterator) else items
    sig = Signature(
        kind="source",
        stream_param=None,
        constants=(inspect.Parameter("items", inspect.Parameter.KEYWORD_ONLY),),
        input_type=None,
        output_type=element_type(read),
        input_annotated=False,
        output_annotated=True,
        hints={},
        where=f"from a {kind}",
    )
    label = name or f"source({kind})"
    return Source(_iterate, StageOptions(name=label), {"items": read}, _sig=sig)
