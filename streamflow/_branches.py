"""``sf.tee``, ``sf.route``, ``sf.zip`` and ``sf.merge``: one stream into several, several into one.

::

    read | parse | sf.tee(index | write_index, thumbs | write_thumbs)   # run() -> (index's, thumbs')
    read | sf.route(kind_of, {"pdf": pdf_text, "img": ocr}) | store     # each item down one branch
    read | sf.zip(embed, caption) | join_rows                           # (vector, text) per input, in order
    sf.merge(read_a(...), read_b(...)) | parse | store                  # two sources' items, as they come

Each returns a flow of one branch block (``_blocks.Block``): a link of a
chain with one input and one output, composed with ``|`` like a stage and
checked branch by branch against what enters it.  A branch is a stage or
a flow that takes the stream (a source, for ``merge``); blocks nest.  The
block's output is the union of its open branches' items (a tuple of them,
for ``zip``); when every branch ends in a sink, the block is a sink, and
``run()`` returns the branches' results as a tuple (a dict by key, for
``route``).  How a block runs, with bounded edges and no deadlock, is the
plan's and the runtime's (``_plan``, ``_runtime/_fanout``).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal, TypeVar, Union, overload

from typing_extensions import Never

from ._blocks import Block, BlockKind
from ._errors import FlowTypeError, OptionError
from ._flow import ClosedFlow, Flow, compose_all, parts_of

if TYPE_CHECKING:
    from ._shapes import AsyncMaps, Maps, Processes, Sinks
    from ._stage import Composes, Processor, Sink, Source

__all__ = ["merge", "route", "tee", "zip"]

I = TypeVar("I")  # noqa: E741 - what enters the block
K = TypeVar("K", bound=Hashable)
A = TypeVar("A")
B = TypeVar("B")
C = TypeVar("C")
D = TypeVar("D")
R1 = TypeVar("R1")
R2 = TypeVar("R2")
R3 = TypeVar("R3")
R4 = TypeVar("R4")

if TYPE_CHECKING:
    # A branch that yields A: a stage, a flow, or (as mypy sees one) a decorated class stage.
    _Open = Union[
        "Processor[Any, I, A]", "Flow[I, A]", "Composes[I, A]", "Maps[I, A]", "AsyncMaps[I, A]", "Processes[I, A]"
    ]
    # A branch that ends in a sink returning R1.
    _Closed = Union["Sink[Any, I, R1]", "ClosedFlow[I, R1]", "Sinks[I, R1]"]
    _Any = Union[_Open[I, A], "Sink[Any, I, Any]", "ClosedFlow[I, Any]", "Sinks[I, Any]"]
    _Started = Union["Flow[Never, A]", "Source[Any, A]", Iterable[A]]  # a flow that starts with a source


def _block(kind: BlockKind, branches: tuple[Any, ...], **fields: Any) -> Any:
    if not branches:
        raise FlowTypeError(f"sf.{kind} needs at least one branch")
    pif = fields.get("packets_in_flight")
    if pif is not None and (not isinstance(pif, int) or isinstance(pif, bool) or pif < 1):
        raise OptionError(f"packets_in_flight={pif!r} for sf.{kind} must be None or an int >= 1")
    ordered = fields.get("ordered", False)
    if not isinstance(ordered, bool):
        raise OptionError(f"ordered={ordered!r} for sf.{kind} must be True or False")
    block = Block(kind, tuple(parts_of(branch) for branch in branches), **fields)
    return compose_all((block,))


# -- tee -----------------------------------------------------------------------------


@overload
def tee(  # type: ignore[overload-overlap]
    b1: _Closed[I, R1], b2: _Closed[I, R2], /, *, ordered: bool = ..., packets_in_flight: int | None = ...
) -> ClosedFlow[I, tuple[R1, R2]]: ...
@overload
def tee(  # type: ignore[overload-overlap]
    b1: _Closed[I, R1], b2: _Closed[I, R2], b3: _Closed[I, R3], /, *, ordered: bool = ...,
    packets_in_flight: int | None = ...,
) -> ClosedFlow[I, tuple[R1, R2, R3]]: ...
@overload
def tee(  # type: ignore[overload-overlap]
    b1: _Closed[I, R1], b2: _Closed[I, R2], b3: _Closed[I, R3], b4: _Closed[I, R4], /, *, ordered: bool = ...,
    packets_in_flight: int | None = ...,
) -> ClosedFlow[I, tuple[R1, R2, R3, R4]]: ...
@overload
def tee(
    b1: _Any[I, A], b2: _Any[I, B], /, *, ordered: bool = ..., packets_in_flight: int | None = ...
) -> Flow[I, A | B]: ...
@overload
def tee(
    b1: _Any[I, A], b2: _Any[I, B], b3: _Any[I, C], /, *, ordered: bool = ..., packets_in_flight: int | None = ...
) -> Flow[I, A | B | C]: ...
@overload
def tee(
    b1: _Any[I, A], b2: _Any[I, B], b3: _Any[I, C], b4: _Any[I, D], /, *, ordered: bool = ...,
    packets_in_flight: int | None = ...,
) -> Flow[I, A | B | C | D]: ...
@overload
def tee(
    b1: Any, b2: Any, b3: Any, b4: Any, b5: Any, /, *more: Any, ordered: bool = ..., packets_in_flight: int | None = ...
) -> Any: ...
def tee(*branches: Any, ordered: bool = False, packets_in_flight: int | None = None) -> Any:
    """Every item to every branch.

    The outputs of the branches that do not end in a sink leave the block
    interleaved as they come (``ordered=True``: in their inputs' order,
    branch order within one input); when every branch ends in a sink, the
    block is a sink and ``run()`` returns their results as a tuple.  An
    item goes to its next branch only when that branch's input has room:
    the slowest branch sets the pace.  ``packets_in_flight``: the packets
    each branch's input edge holds (default: the stage before's).
    """
    return _block("tee", branches, ordered=ordered, packets_in_flight=packets_in_flight)


# -- route ---------------------------------------------------------------------------


@overload
def route(  # type: ignore[overload-overlap]
    key: Callable[[I], K], branches: Mapping[K, _Closed[I, R1]], default: _Closed[I, R1] | None = ..., *,
    on_error: Literal["raise", "skip"] = ..., ordered: bool = ..., packets_in_flight: int | None = ...,
) -> ClosedFlow[I, dict[K | None, R1]]: ...
@overload
def route(
    key: Callable[[I], K], branches: Mapping[K, _Open[I, A]], default: _Open[I, A] | None = ..., *,
    on_error: Literal["raise", "skip"] = ..., ordered: bool = ..., packets_in_flight: int | None = ...,
) -> Flow[I, A]: ...
def route(
    key: Callable[[Any], Any],
    branches: Mapping[Any, Any],
    default: Any = None,
    *,
    on_error: Literal["raise", "skip"] = "raise",
    ordered: bool = False,
    packets_in_flight: int | None = None,
) -> Any:
    """Each item to exactly one branch: ``branches[key(item)]``, else ``default``.

    A predicate routes with ``{True: ..., False: ...}``.  An item whose key
    has no branch, with no ``default``, fails with ``UnroutedItem``: the run
    stops, or with ``on_error="skip"`` the item is recorded in
    ``Run.failures`` and dropped.  Outputs and results as for ``tee``; when
    every branch ends in a sink, ``run()`` returns their results as a dict
    by key (the default branch's under ``None``).
    """
    if not isinstance(branches, Mapping) or not branches:
        raise FlowTypeError(
            "sf.route takes its branches as a dict of key -> branch, e.g. {'pdf': pdf_text, 'img': ocr}"
        )
    if not callable(key):
        raise FlowTypeError(f"sf.route takes a key function of an item, got {type(key).__name__}")
    if on_error not in ("raise", "skip"):
        raise OptionError(f"on_error={on_error!r} for sf.route must be 'raise' or 'skip'")
    keys: tuple[Hashable, ...] = tuple(branches)
    chosen = tuple(branches.values())
    fields: dict[str, Any] = {"key": key, "on_error": on_error, "ordered": ordered, "packets_in_flight": packets_in_flight}
    if default is not None:
        keys, chosen = (*keys, None), (*chosen, default)
        fields["default"] = len(chosen) - 1
    return _block("route", chosen, keys=keys, **fields)


# -- zip ---------------------------------------------------------------------------


@overload
def zip(b1: _Open[I, A], b2: _Open[I, B], /, *, packets_in_flight: int | None = ...) -> Flow[I, tuple[A, B]]: ...  # noqa: A001
@overload
def zip(  # noqa: A001
    b1: _Open[I, A], b2: _Open[I, B], b3: _Open[I, C], /, *, packets_in_flight: int | None = ...
) -> Flow[I, tuple[A, B, C]]: ...
@overload
def zip(  # noqa: A001
    b1: _Open[I, A], b2: _Open[I, B], b3: _Open[I, C], b4: _Open[I, D], /, *, packets_in_flight: int | None = ...
) -> Flow[I, tuple[A, B, C, D]]: ...
@overload
def zip(b1: Any, b2: Any, b3: Any, b4: Any, b5: Any, /, *more: Any, packets_in_flight: int | None = ...) -> Any: ...  # noqa: A001
def zip(*branches: Any, packets_in_flight: int | None = None) -> Any:  # noqa: A001
    """Every item to every branch, and one tuple of their outputs per input, in input order.

    Each branch gives exactly one output per input: a chain of ``@sf.map``
    stages (else ``FlowTypeError``).  An input that fails in a branch under
    ``on_error="skip"`` gives no tuple, and is recorded once for each branch
    where it failed.
    """
    return _block("zip", branches, packets_in_flight=packets_in_flight)


# -- merge ---------------------------------------------------------------------------


@overload
def merge(f1: _Started[A], f2: _Started[B], /) -> Flow[Never, A | B]: ...
@overload
def merge(f1: _Started[A], f2: _Started[B], f3: _Started[C], /) -> Flow[Never, A | B | C]: ...
@overload
def merge(f1: _Started[A], f2: _Started[B], f3: _Started[C], f4: _Started[D], /) -> Flow[Never, A | B | C | D]: ...
@overload
def merge(f1: Any, f2: Any, f3: Any, f4: Any, f5: Any, /, *more: Any) -> Flow[Never, Any]: ...
def merge(*flows: Any) -> Any:
    """Several flows, each starting with a source (or an iterable, as in ``sf.source``), into one stream.

    Their items are interleaved as they come; the stream ends when every
    flow has ended.  A merge is a source: it starts a chain.
    """
    return _block("merge", flows)

