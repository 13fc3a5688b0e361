"""Composition with ``|``: lazy, immutable, checked link by link (SPEC 2, 3)."""

from __future__ import annotations

import functools
import pickle
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TypeVar

import pytest

import streamflow as sf

pytestmark = pytest.mark.timeout(30)

T = TypeVar("T")
HERE = r"defined at .*test_compose\.py:\d+"


class Animal:
    pass


class Dog(Animal):
    pass


@sf.stage
def read(paths: list[str]) -> Iterator[bytes]:
    for path in paths:
        yield path.encode()


@sf.stage
def score(xs: Iterable[float]) -> Iterator[float]:
    for x in xs:
        yield x * 0.5


@sf.stage
def nums(n: int) -> Iterator[int]:
    yield from range(n)


@sf.stage
def flags(n: int) -> Iterator[bool]:
    for i in range(n):
        yield i % 2 == 0


@sf.stage
def sq(xs: Iterable[int]) -> Iterator[int]:
    for x in xs:
        yield x * x


@sf.stage
def total(xs: Iterable[int]) -> int:
    return sum(xs)


@sf.stage
def maybe_total(xs: Iterable[int | None]) -> int:
    return sum(x for x in xs if x is not None)


@sf.stage
def repeat(xs: Iterable[int], times: int) -> Iterator[int]:
    for x in xs:
        for _ in range(times):
            yield x


@sf.stage
def batch(xs: Iterable[T], n: int) -> Iterator[list[T]]:
    chunk: list[T] = []
    for x in xs:
        chunk.append(x)
        if len(chunk) == n:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


@sf.stage
def sum_batches(batches: Iterable[list[int]]) -> int:
    return sum(sum(b) for b in batches)


@sf.stage
def join_batches(batches: Iterable[list[str]]) -> str:
    return "".join("".join(b) for b in batches)


@sf.stage
def widths(batches: Iterable[Sequence[float]]) -> Iterator[int]:
    for b in batches:
        yield len(b)


@sf.stage
def pairs(n: int) -> Iterator[tuple[int, str]]:
    for i in range(n):
        yield i, str(i)


@sf.stage
def swap_same(xs: Iterable[tuple[T, T]]) -> Iterator[tuple[T, T]]:
    for a, b in xs:
        yield b, a


@sf.stage
def dogs(n: int) -> Iterator[Dog]:
    for _ in range(n):
        yield Dog()


@sf.stage
def count_animals(animals: Iterable[Animal]) -> int:
    return sum(1 for _ in animals)


@sf.stage
def count_dogs(animals: Iterable[Dog]) -> int:
    return sum(1 for _ in animals)


@sf.stage
def anything(xs: Iterable[Any]) -> Iterator[Any]:
    yield from xs


@sf.stage
def unannotated_gen(xs: Iterable[int]):  # type: ignore[no-untyped-def]  # noqa: ANN201
    yield from xs


@sf.stage
def unannotated_source(n: int):  # type: ignore[no-untyped-def]  # noqa: ANN201
    yield from range(n)


def unannotated_stream(xs, k: int = 0) -> Iterator[int]:  # type: ignore[no-untyped-def]  # noqa: ANN001
    for x in xs:
        yield x + k


with pytest.warns(UserWarning, match="no annotation on its first parameter 'xs'"):
    unannotated_stream = sf.stage(unannotated_stream)  # type: ignore[assignment]


# -- the link check -----------------------------------------------------------------


def test_a_mismatch_names_both_stages_types_and_places() -> None:
    with pytest.raises(sf.FlowTypeError) as info:
        read(paths=["a"]) | score
    message = str(info.value)
    assert message.startswith("cannot connect 'read' -> 'score': 'read' yields bytes, 'score' consumes float")
    for made in (read, score):
        where = f"defined at {__file__}:{made.fn.__code__.co_firstlineno}"
        assert f"'{made.name}' {where}" in message
    assert isinstance(info.value, TypeError)


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: nums(n=1) | count_dogs, "'nums' yields int, 'count_dogs' consumes Dog"),
        (lambda: dogs(n=1) | sq, "'dogs' yields Dog, 'sq' consumes int"),
        (lambda: nums(n=1) | batch(n=2) | join_batches, r"'batch' yields list\[int\], 'join_batches' consumes list\[str\]"),
        (lambda: pairs(n=1) | sq, r"'pairs' yields tuple\[int, str\], 'sq' consumes int"),
        (lambda: (nums(n=1) | sq) | (count_dogs), "'sq' yields int, 'count_dogs' consumes Dog"),
        (lambda: sq | count_dogs, "'sq' yields int, 'count_dogs' consumes Dog"),
    ],
)
def test_mismatches_raise_at_composition(build: Any, match: str) -> None:
    with pytest.raises(sf.FlowTypeError, match="cannot connect .*" + match):
        build()


@pytest.mark.parametrize(
    "build",
    [
        lambda: flags(n=3) | sq,  # bool into int
        lambda: nums(n=3) | score,  # int into float
        lambda: nums(n=3) | maybe_total,  # int into int | None
        lambda: dogs(n=3) | count_animals,  # Dog into Animal
        lambda: dogs(n=3) | anything | count_dogs,  # Any into anything
        lambda: nums(n=3) | batch(n=2) | widths,  # list[int] into Sequence[float]
    ],
)
def test_subtypes_connect(build: Any) -> None:
    assert isinstance(build(), (sf.Flow, sf.ClosedFlow))


def test_a_generic_stage_binds_its_typevar_along_the_chain() -> None:
    flow = nums(n=5) | batch(n=2)
    assert flow.output_type == list[int]
    closed = flow | sum_batches
    assert closed.run(backend="inline") == 10
    assert (nums(n=5) | batch(n=2)).run(backend="inline") == [[0, 1], [2, 3], [4]]
    with pytest.raises(sf.FlowTypeError, match=r"'batch' yields list\[int\], 'join_batches' consumes list\[str\]"):
        flow | join_batches
    assert (flags(n=3) | batch(n=2)).output_type == list[bool]


class Doc:
    """Not ``tests.stages.Doc``: the same name, another class."""


@sf.stage
def make_docs(n: int) -> Iterator[Doc]:
    yield from (Doc() for _ in range(n))


def test_classes_of_one_name_from_two_modules_read_apart() -> None:
    from .stages import count_docs

    with pytest.raises(
        sf.FlowTypeError, match=r"'make_docs' yields tests\.test_compose\.Doc, 'count_docs' consumes tests\.stages\.Doc"
    ):
        make_docs(n=1) | count_docs


def test_a_tuple_of_stages_is_not_a_fan_out() -> None:
    with pytest.raises(sf.FlowTypeError, match=r"a tuple of stages .* not a fan-out; .* use sf\.tee\(a, b\)"):
        nums(n=2) | (sq, total)  # type: ignore[operator]
    with pytest.raises(sf.FlowTypeError, match="a list of stages"):
        nums(n=2) | [sq | total]  # type: ignore[operator]


def test_conflicting_typevar_bindings_raise() -> None:
    with pytest.raises(sf.FlowTypeError, match=r"cannot connect 'pairs' -> 'swap_same': .*T bound to both int and str"):
        pairs(n=2) | swap_same


def test_a_missing_return_annotation_asks_to_annotate() -> None:
    with pytest.raises(sf.FlowTypeError, match=r"'unannotated_gen' has no return annotation .*; annotate it, e.g. '-> Iterator\[X\]'"):
        nums(n=2) | unannotated_gen | total
    with pytest.raises(sf.FlowTypeError, match=r"'unannotated_gen' has no return annotation .*; annotate it"):
        nums(n=2) | unannotated_gen
    with pytest.raises(sf.FlowTypeError, match=r"'unannotated_source' has no return annotation .*; annotate it"):
        unannotated_source(n=2) | total


def test_a_missing_stream_annotation_asks_to_annotate() -> None:
    assert unannotated_stream.kind == "source"  # 'xs' is just a constant then
    with pytest.raises(sf.FlowTypeError, match=r"'unannotated_stream' is a source .*annotate it, e.g. 'xs: Iterable\[X\]'"):
        nums(n=2) | unannotated_stream


def test_nothing_follows_a_sink() -> None:
    with pytest.raises(sf.FlowTypeError, match=rf"cannot connect 'total' -> 'sq': 'total' is a sink \({HERE}\); nothing can follow it"):
        nums(n=2) | total | sq
    with pytest.raises(sf.FlowTypeError, match="'total' is a sink"):
        (nums(n=2) | total) | (sq | total)
    with pytest.raises(sf.FlowTypeError, match="'total' is a sink"):
        total | sq


def test_nothing_flows_into_a_source() -> None:
    with pytest.raises(sf.FlowTypeError, match=rf"cannot connect 'sq' -> 'nums': 'nums' is a source \({HERE}\); it takes no input stream"):
        nums(n=2) | sq | nums(n=1)
    with pytest.raises(sf.FlowTypeError, match="'nums' is a source"):
        [1, 2] | nums(n=1)


def test_an_unbound_constant_raises_at_composition() -> None:
    with pytest.raises(sf.FlowTypeError, match=r"stage 'repeat' needs constant\(s\) times .*bind them by calling it: repeat\(times=\.\.\.\)"):
        nums(n=2) | repeat | total
    with pytest.raises(sf.FlowTypeError, match=r"stage 'nums' needs constant\(s\) n "):
        nums | sq
    with pytest.raises(sf.FlowTypeError, match=r"stage 'read' needs constant\(s\) paths "):
        read | anything
    assert (nums(n=2) | repeat(times=2) | total).run(backend="inline") == 2


def test_future_annotations_are_resolved() -> None:
    assert total.input_type is int and total.output_type is int
    assert dogs.output_type is Dog
    assert batch.output_type == list[T]
    assert (dogs(n=2) | count_animals).run(backend="inline") == 2


# -- iterables as sources --------------------------------------------------------------


def test_an_iterable_feeds_a_flow() -> None:
    assert ([1, 2, 3] | sq | total).run(backend="inline") == 14
    assert (range(4) | sq).run(backend="inline") == [0, 1, 4, 9]
    assert ((1, 2) | total).run(backend="inline") == 3
    assert ([1, 2] | (sq | total)).run(backend="inline") == 5
    assert (sf.source(range(3)) | sq | total).run(backend="inline") == 5
    flow = [1, 2] | sq
    assert [stage.kind for stage in flow.stages] == ["source", "processor"]


def test_a_range_is_typed_as_ints() -> None:
    with pytest.raises(sf.FlowTypeError, match=r"'source\(range\)' yields int, 'count_dogs' consumes Dog"):
        range(3) | count_dogs


def test_a_string_is_not_taken_as_a_source() -> None:
    with pytest.raises(sf.FlowTypeError, match="cannot compose str into a flow"):
        "abc" | anything


def _halve(x: int) -> float:
    return x / 2


class _Halve:
    def __call__(self, x: int) -> float:
        return x / 2


# mypy takes these where it takes a decorated class stage (it cannot tell them apart), so
# the runtime error says what to do.
@pytest.mark.parametrize(
    "part, what",
    [
        (_halve, r"function '_halve' is not a stage; decorate it"),
        (_Halve, r"class '_Halve' is not a stage; decorate the class"),
        (_Halve(), r"a '_Halve' object is not a stage; decorate its class '_Halve'"),
        (functools.partial(_halve), r"a partial of '_halve' is not a stage; decorate '_halve'"),
    ],
    ids=["function", "class", "instance", "partial"],
)
def test_an_undecorated_callable_is_told_to_be_decorated(part: Any, what: str) -> None:
    advice = r" with @sf\.map \(called with one item\) or @sf\.stage \(called with the stream\)"
    with pytest.raises(sf.FlowTypeError, match="cannot compose: " + what + advice):
        nums(n=2) | part
    with pytest.raises(sf.FlowTypeError, match="cannot compose: " + what):
        part | total


# -- what a flow is ----------------------------------------------------------------------


def test_flow_kinds() -> None:
    assert type(nums(n=1) | sq) is sf.Flow
    assert type(nums(n=1) | total) is sf.ClosedFlow
    assert type(sq | sq) is sf.Flow
    assert type(sq | total) is sf.ClosedFlow


def test_stages_are_the_tuple_in_order() -> None:
    flow = nums(n=3) | sq | batch(n=2) | sum_batches
    assert flow.stages == (nums(n=3), sq, batch(n=2), sum_batches)
    assert isinstance(flow.stages, tuple)
    nested = (nums(n=3) | sq) | (batch(n=2) | sum_batches)
    assert nested.stages == flow.stages
    assert nested == flow


def test_repr_reads_like_the_code() -> None:
    assert repr(nums(n=3) | sq.options(workers=3) | total) == "nums(n=3) | sq.options(workers=3) | total"
    flow = nums(n=3) | repeat(times=2).options(workers=2, packets_in_flight=7, max_message_size=1024) | total
    assert repr(flow) == (
        "nums(n=3) | repeat(times=2).options(workers=2, packets_in_flight=7, max_message_size=1024) | total"
    )
    assert repr(sq.options(name="square") | total) == "sq.options(name='square') | total"
    assert repr(repeat(times=2).options(name="twice")) == "repeat(times=2).options(name='twice')"
    assert repr(sf.source([1, 2]) | sq) == "source([1, 2]) | sq"


def test_composing_is_lazy() -> None:
    ran: list[int] = []

    def record(xs: Iterable[int]) -> Iterator[int]:
        for x in xs:
            ran.append(x)
            yield x

    flow = nums(n=3) | sf.stage(record) | total
    assert ran == []
    assert flow.run(backend="inline") == 3
    assert ran == [0, 1, 2]


def test_flows_are_immutable() -> None:
    flow = nums(n=3) | sq
    longer = flow | sq
    assert flow.stages == (nums(n=3), sq)
    assert longer.stages == (nums(n=3), sq, sq)
    with pytest.raises(AttributeError):
        flow.stages = ()  # type: ignore[misc]
    with pytest.raises(AttributeError):
        flow.extra = 1  # type: ignore[attr-defined]
    assert flow.run(backend="inline") == [0, 1, 4]


def test_flows_are_reusable() -> None:
    flow = nums(n=4) | sq | total
    assert flow.run(backend="inline") == flow.run(backend="inline") == 14
    open_flow = [1, 2, 3] | sq
    assert list(open_flow.iter(backend="inline")) == list(open_flow.iter(backend="inline")) == [1, 4, 9]
    partial = sq | total
    assert partial.run([1, 2], backend="inline") == 5
    assert partial.run([3], backend="inline") == 9


@pytest.mark.parametrize(
    "flow",
    [
        nums(n=4) | sq,
        nums(n=4) | sq.options(workers=2) | total,
        nums(n=5) | batch(n=2) | sum_batches,
        [1, 2, 3] | repeat(times=2) | total,
        range(4) | sq,
        sq | total,
    ],
    ids=repr,
)
def test_flows_pickle_round_trip(flow: Any) -> None:
    copy = pickle.loads(pickle.dumps(flow))
    assert type(copy) is type(flow)
    assert copy == flow
    assert repr(copy) == repr(flow)
    assert copy.output_type == flow.output_type
    given = None if flow.has_source else [1, 2]
    assert copy.run(given, backend="inline") == flow.run(given, backend="inline")


def test_literal_sources_take_part_in_the_checks() -> None:
    @sf.stage
    def total(xs: Iterable[int]) -> int:
        return sum(xs)

    with pytest.raises(sf.FlowTypeError, match=r"'source\(list\)' yields str, 'total' consumes int"):
        ["a", "b"] | total
    with pytest.raises(sf.FlowTypeError, match=r"yields int \| str, 'total' consumes int"):
        sf.source([1, "b"]) | total
    with pytest.raises(sf.FlowTypeError, match=r"yields str"):
        ("x",) | total
    assert ([1, 2, True] | total).run(backend="inline") == 4  # bool is an int
    assert ({3: "three"} | total).run(backend="inline") == 3  # a dict yields its keys
    assert ([] | total).run(backend="inline") == 0  # nothing to read: unchecked
    assert ((x for x in [1]) | total).run(backend="inline") == 1  # an iterator: unchecked
