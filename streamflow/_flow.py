"""Flow: stages composed with ``|``, checked link by link, run lazily.

``Flow[I, O]`` is open: iterate it for its ``O`` items.  ``ClosedFlow[I, R]``
ends in a sink: ``run()`` returns the sink's ``R``.  ``I`` is what a flow
without a source consumes (``Never`` once it has one).
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Generic, TypeVar, Union, overload

from typing_extensions import Never, Unpack

from . import _runtime
from ._async_caller import aiter_run, run_async
from ._draw import to_dot, to_svg
from ._errors import FlowTypeError
from ._options import RunConfig, RunOptions
from ._plan import build_plan
from ._run import Run
from ._blocks import Block
from ._compose import check, kind_of, stages_in
from ._stage import Composes, Source, Stage, source

__all__ = ["ClosedFlow", "Flow", "Part", "compose", "compose_all", "parts_of"]

Part = Union["Stage[Any, Any, Any]", Block]  # a link of a chain

I = TypeVar("I", contravariant=True)  # noqa: E741
O = TypeVar("O", covariant=True)


def parts_of(part: Any) -> tuple[Part, ...]:
    if isinstance(part, Stage):
        return (part,)
    if isinstance(part, _Composite):
        return part.parts
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


def compose(left: Any, right: Any) -> Any:
    """``left | right`` as a ``Flow`` or ``ClosedFlow``; raises ``FlowTypeError``."""
    return compose_all(parts_of(left) + parts_of(right))


def compose_all(parts: tuple[Part, ...]) -> Any:
    """The flow of the chain ``parts``, checked (also how pickle rebuilds a flow)."""
    cls = ClosedFlow if kind_of(parts[-1]) == "sink" else Flow
    return cls(parts, check(parts))


def show_part(part: Part) -> str:
    """A part as the code that built it: a stage's repr, or ``sf.tee(a | b, c)``."""
    if not isinstance(part, Block):
        return repr(part)
    branches = [" | ".join(show_part(p) for p in branch) for branch in part.branches]
    if part.kind == "route":
        keys = ", ".join(f"{key!r}: {branch}" for key, branch in zip(part.keys, branches))
        key = getattr(part.key, "__name__", repr(part.key))
        return f"sf.route({key}, {{{keys}}})"
    return f"sf.{part.kind}({', '.join(branches)})"


class _Composite:
    __slots__ = ("_parts", "_types")

    def __init__(self, parts: tuple[Part, ...], types: tuple[Any, ...]) -> None:
        self._parts = parts
        self._types = types

    @property
    def parts(self) -> tuple[Part, ...]:
        """The chain: stages and branch blocks, in order."""
        return self._parts

    @property
    def stages(self) -> tuple[Stage[Any, Any, Any], ...]:
        """The stages in order (a block's branches in turn)."""
        return stages_in(self._parts)

    @property
    def output_type(self) -> Any:
        """What the last part yields (or returns), TypeVars bound."""
        return self._types[-1]

    @property
    def has_source(self) -> bool:
        return kind_of(self._parts[0]) == "source"

    def __repr__(self) -> str:
        return " | ".join(show_part(part) for part in self._parts)

    def to_dot(self) -> str:
        """The flow as Graphviz text: stages, workers, edge buffer sizes."""
        return to_dot(build_plan(self._parts))

    def _repr_svg_(self) -> str:
        """Notebook display: the flow drawn as SVG."""
        return to_svg(build_plan(self._parts))

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, _Composite)
        return self._parts == other._parts

    def __hash__(self) -> int:
        return hash(self._parts)

    def __reduce__(self) -> tuple[Any, ...]:
        return (compose_all, (self._parts,))

    def __or__(self, other: Any) -> Any:
        return compose(self, other)

    def __ror__(self, other: Any) -> Any:
        return compose(other, self)

    def _start(self, input: Iterable[Any] | None, options: RunOptions) -> Run[Any, Any]:
        first = self._parts[0]
        if input is not None and self.has_source:
            raise FlowTypeError(f"this flow starts with source '{first.name}'; it takes no input")
        if input is None and not self.has_source:
            raise FlowTypeError(
                f"this flow starts with '{first.name}', which needs an input: "
                "pass one to run()/iter(), or compose a source in front"
            )
        parts = self._parts
        if input is not None:
            compose(input, first)  # the input's items must fit too
            parts = (source(input, name="input"), *parts)
        config = RunConfig.of(options)
        plan = build_plan(parts, _runtime.packets_per_worker(config))
        for stage in stages_in(parts):
            stage.claim()
        with _runtime.deferred_interrupts():  # a Ctrl-C now stops the start-up cleanly
            return Run(_runtime.start(plan, config), plan, config.backend, config.progress)


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
