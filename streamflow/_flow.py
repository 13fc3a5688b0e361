"""Flow: stages composed with ``|``, checked link by link, run lazily.

``Flow[I, O]`` is open: iterate it for its ``O`` items.  ``ClosedFlow[I, R]``
ends in a sink: ``run()`` returns the sink's ``R``.  ``I`` is what a flow
without a source consumes (``Never`` once it has one).
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from typing_extensions import Never, Unpack

from . import _runtime
from ._async_caller import aiter_run, run_async
from ._draw import to_dot, to_svg
from ._errors import FlowTypeError
from ._options import RunConfig, RunOptions
from ._plan import build_plan
from ._run import Run
from ._stage import Composes, Source, Stage, source
from ._typecheck import TypeConflict, is_subtype, show, show_apart, substitute

__all__ = ["ClosedFlow", "Flow", "compose"]

I = TypeVar("I", contravariant=True)  # noqa: E741
O = TypeVar("O", covariant=True)


def _stages_of(part: Any) -> tuple[Stage[Any, Any, Any], ...]:
    if isinstance(part, Stage):
        return (part,)
    if isinstance(part, _Composite):
        return part.stages
    if isinstance(part, (tuple, list, set, frozenset)) and any(isinstance(p, (Stage, _Composite)) for p in part):
        raise FlowTypeError(
            f"cannot compose a {type(part).__name__} of stages into a flow: '|' takes one stage or "
            "flow, and a tuple is not a fan-out; to give every item to each of them, use "
            "sf.tee(a, b), to give each item to one of them, sf.route(key, {...}), and for one "
            "output of each per item, sf.zip(a, b)"
        )
    if isinstance(part, Iterable) and not isinstance(part, (str, bytes)):
        return (source(part),)
    if callable(part):
        # mypy takes these where a decorated class stage goes: it cannot tell them apart.
        then = ""
        if isinstance(part, type):
            what, fix = f"class '{part.__qualname__}'", "decorate the class"
        elif hasattr(part, "__qualname__"):
            what, fix = f"function '{part.__qualname__}'", "decorate it"
        elif isinstance(part, functools.partial):
            name = getattr(part.func, "__qualname__", "the function")
            what, fix = f"a partial of '{name}'", f"decorate '{name}'"
            then = ", then bind its constants by calling the stage"
        else:
            name = type(part).__qualname__
            what, fix = f"a '{name}' object", f"decorate its class '{name}'"
        raise FlowTypeError(
            f"cannot compose: {what} is not a stage; {fix} with @sf.map (called with one item) "
            f"or @sf.stage (called with the stream){then}"
        )
    raise FlowTypeError(
        f"cannot compose {type(part).__name__} into a flow; "
        "use stages, flows or an iterable (wrap it with streamflow.source(...))"
    )


def _link(up: Stage[Any, Any, Any], up_type: Any, down: Stage[Any, Any, Any]) -> Any:
    """Check ``up -> down``; return the type ``down`` yields given ``up_type``."""
    head = f"cannot connect '{up.name}' -> '{down.name}'"
    if up.kind == "sink":
        raise FlowTypeError(f"{head}: '{up.name}' is a sink ({up.where}); nothing can follow it")
    if down.kind == "source":
        first = down.signature.constants[:1]
        hint = ""
        if first and first[0].name not in down.signature.hints:
            # Most likely a processor whose stream parameter lacks its annotation.
            name = first[0].name
            hint = f"; if '{name}' is its input stream, annotate it, e.g. '{name}: Iterable[X]'"
        raise FlowTypeError(
            f"{head}: '{down.name}' is a source ({down.where}); it takes no input stream{hint}"
        )
    if not up.signature.output_annotated:
        raise FlowTypeError(
            f"{head}: '{up.name}' has no return annotation ({up.where}); "
            f"annotate it, e.g. '-> Iterator[X]'"
        )
    bindings: dict[Any, Any] = {}
    try:
        fits = is_subtype(up_type, down.input_type, bindings)
    except TypeConflict as conflict:
        raise FlowTypeError(
            f"{head}: '{up.name}' yields {show(up_type)}, which binds {conflict}"
            f" in '{down.name}' ({down.where})"
        ) from None
    if not fits:
        yields, consumes = show_apart(up_type, down.input_type)
        raise FlowTypeError(
            f"{head}: '{up.name}' yields {yields}, '{down.name}' consumes "
            f"{consumes} ('{up.name}' {up.where}; '{down.name}' {down.where})"
        )
    return substitute(down.output_type, bindings)


def _check(stages: tuple[Stage[Any, Any, Any], ...]) -> tuple[Any, ...]:
    """Check every link; the output type of each stage after TypeVar binding."""
    first = stages[0]
    if first.kind != "source" and not first.signature.input_annotated:
        raise FlowTypeError(f"stage '{first.name}' has no stream annotation ({first.where})")
    types = [first.output_type]
    for up, down in zip(stages, stages[1:]):
        types.append(_link(up, types[-1], down))
    last = stages[-1]
    if last.kind != "sink" and not last.signature.output_annotated:
        raise FlowTypeError(
            f"stage '{last.name}' has no return annotation ({last.where}); "
            f"annotate it, e.g. '-> Iterator[X]'"
        )
    for stage in stages:  # after the links: a missing stream annotation says more
        stage.check_complete()
    return tuple(types)


def compose(left: Any, right: Any) -> Any:
    """``left | right`` as a ``Flow`` or ``ClosedFlow``; raises ``FlowTypeError``."""
    stages = _stages_of(left) + _stages_of(right)
    types = _check(stages)
    cls = ClosedFlow if stages[-1].kind == "sink" else Flow
    return cls(stages, types)


class _Composite:
    __slots__ = ("_stages", "_types")

    def __init__(self, stages: tuple[Stage[Any, Any, Any], ...], types: tuple[Any, ...]) -> None:
        self._stages = stages
        self._types = types

    @property
    def stages(self) -> tuple[Stage[Any, Any, Any], ...]:
        """The stages in order."""
        return self._stages

    @property
    def output_type(self) -> Any:
        """What the last stage yields (or returns), TypeVars bound."""
        return self._types[-1]

    @property
    def has_source(self) -> bool:
        return self._stages[0].kind == "source"

    def __repr__(self) -> str:
        return " | ".join(repr(stage) for stage in self._stages)

    def to_dot(self) -> str:
        """The flow as Graphviz text: stages, workers, edge buffer sizes."""
        return to_dot(build_plan(self._stages))

    def _repr_svg_(self) -> str:
        """Notebook display: the flow drawn as SVG."""
        return to_svg(build_plan(self._stages))

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, _Composite)
        return self._stages == other._stages

    def __hash__(self) -> int:
        return hash(self._stages)

    def __reduce__(self) -> tuple[Any, ...]:
        return (compose_all, (self._stages,))

    def __or__(self, other: Any) -> Any:
        return compose(self, other)

    def __ror__(self, other: Any) -> Any:
        return compose(other, self)

    def _start(self, input: Iterable[Any] | None, options: RunOptions) -> Run[Any, Any]:
        if input is not None and self.has_source:
            raise FlowTypeError(
                f"this flow starts with source '{self._stages[0].name}'; it takes no input"
            )
        if input is None and not self.has_source:
            raise FlowTypeError(
                f"this flow starts with '{self._stages[0].name}', which needs an input: "
                "pass one to run()/iter(), or compose a source in front"
            )
        stages = self._stages
        if input is not None:
            compose(input, self._stages[0])  # the input's items must fit too
            stages = (source(input, name="input"), *stages)
        config = RunConfig.of(options)
        plan = _runtime.plan(stages, config)
        for stage in stages:
            stage.claim()
        with _runtime.deferred_interrupts():  # a Ctrl-C now stops the start-up cleanly
            return Run(_runtime.start(plan, config), plan, config.backend, config.progress)


def compose_all(stages: tuple[Stage[Any, Any, Any], ...]) -> Any:
    """Rebuild a flow from its stages (used by pickle)."""
    cls = ClosedFlow if stages[-1].kind == "sink" else Flow
    return cls(stages, _check(stages))


class Flow(Composes[I, O], _Composite, Generic[I, O]):
    """An open flow: iterate it (or ``iter()`` it) to read its items."""

    __slots__ = ()

    def start(self, input: Iterable[I] | None = None, **options: Unpack[RunOptions]) -> Run[O, list[O]]:
        """Start the flow; iterate the returned ``Run`` for its items."""
        return self._start(input, options)

    def iter(self, input: Iterable[I] | None = None, **options: Unpack[RunOptions]) -> Run[O, list[O]]:
        """Start the flow and return its items as an iterator (and context manager)."""
        return self.start(input, **options)

    def __iter__(self) -> Iterator[O]:
        """Run with default options, yielding items; stops the flow on ``break``."""
        with self.start() as items:
            yield from items

    def run(self, input: Iterable[I] | None = None, **options: Unpack[RunOptions]) -> list[O]:
        """Run the flow to its end and return all its items as a list."""
        with self.start(input, **options) as run:
            return run.result()

    async def run_async(self, input: Iterable[I] | None = None, **options: Unpack[RunOptions]) -> list[O]:
        """``run()`` for async code: the event loop keeps running while the flow does."""
        return await run_async(lambda: self.start(input, **options))

    def aiter(self, input: Iterable[I] | None = None, **options: Unpack[RunOptions]) -> AsyncIterator[O]:
        """The flow's items for ``async for``; leaving the loop early stops the flow."""
        return aiter_run(lambda: self.start(input, **options))

    if TYPE_CHECKING:

        @overload
        def __ror__(self, other: Source[Any, I]) -> Flow[Never, O]: ...
        @overload
        def __ror__(self, other: Iterable[I]) -> Flow[Never, O]: ...
        def __ror__(self, other: Any) -> Any: ...


class ClosedFlow(_Composite, Generic[I, O]):
    """A flow that ends in a sink: ``run()`` returns the sink's value.

    With several sink workers, ``run()`` returns their values as a list,
    in worker order.
    """

    __slots__ = ()

    def start(self, input: Iterable[I] | None = None, **options: Unpack[RunOptions]) -> Run[Never, O]:
        """Start the flow in the background; ``result()`` of the ``Run`` waits for its value."""
        return self._start(input, options)

    def run(self, input: Iterable[I] | None = None, **options: Unpack[RunOptions]) -> O:
        """Run the flow to its end; the sink's return value.

        With several sink workers, their values as a list in worker order.
        Raises the first error any stage raised, with its own type.
        """
        return self.start(input, **options).result()

    async def run_async(self, input: Iterable[I] | None = None, **options: Unpack[RunOptions]) -> O:
        """``run()`` for async code: the event loop keeps running while the flow does."""
        run: O = await run_async(lambda: self.start(input, **options))
        return run

    if TYPE_CHECKING:

        def __or__(self, other: Never) -> Never: ...
        @overload
        def __ror__(self, other: Source[Any, I]) -> ClosedFlow[Never, O]: ...
        @overload
        def __ror__(self, other: Iterable[I]) -> ClosedFlow[Never, O]: ...
        def __ror__(self, other: Any) -> Any: ...
