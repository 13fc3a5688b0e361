"""Static typing of stages and flows, checked by mypy in tests/test_typing.py.

A line that must fail carries ``# type: ignore[code]``; mypy runs with
``--warn-unused-ignores``, so a regression either way (an error appearing on
a good line, or vanishing from a bad one) fails the test.  ``assert_type``
pins what mypy infers.  Nothing here is meant to run.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable, Iterator
from typing import Any

from typing_extensions import Never, assert_type

import streamflow as sf


class Animal:
    pass


class Dog(Animal):
    pass


@sf.stage
def numbers(n: int) -> Iterator[int]:
    yield from range(n)


@sf.stage
def flags(n: int) -> Iterator[bool]:
    for i in range(n):
        yield i % 2 == 0


@sf.stage
def words(text: str, sep: str = " ") -> Generator[str, None, None]:
    yield from text.split(sep)


@sf.stage
def upper(xs: Iterable[str]) -> Iterator[str]:
    for x in xs:
        yield x.upper()


@sf.stage
def half(xs: Iterable[int]) -> Iterator[float]:
    for x in xs:
        yield x / 2


@sf.stage(workers=2, packets_in_flight=4)
def scale(xs: Iterator[float], factor: float = 1.0) -> Iterator[float]:
    for x in xs:
        yield x * factor


@sf.stage
def total(xs: Iterable[float]) -> float:
    return sum(xs)


@sf.stage
def count(xs: Iterable[object]) -> int:
    return sum(1 for _ in xs)


@sf.stage
def dogs(n: int) -> Iterator[Dog]:
    for _ in range(n):
        yield Dog()


@sf.stage
def only_dogs(xs: Iterable[Dog]) -> Iterator[Dog]:
    yield from xs


@sf.stage
def per_animal(xs: Iterable[Animal]) -> Iterator[str]:
    for x in xs:
        yield type(x).__name__


# -- what the decorator infers ------------------------------------------------

# (Stages with constants are pinned through their binding and chains below:
# assert_type cannot spell a ParamSpec with parameter names.)
assert_type(upper, sf.Processor[[], str, str])
assert_type(half, sf.Processor[[], int, float])
assert_type(total, sf.Sink[[], float, float])
assert_type(numbers.fn, Callable[..., Any])  # the undecorated function
assert_type(half.options(workers=3), sf.Processor[[], int, float])
assert_type(sf.source(range(3)), sf.Source[[], int])

# -- constants: ParamSpec-typed binding ------------------------------------------

assert_type(numbers(3) | count, sf.ClosedFlow[Never, int])
assert_type(scale(factor=2.0) | total, sf.ClosedFlow[float, float])
assert_type(scale(factor=2) | total, sf.ClosedFlow[float, float])  # int is a float
assert_type(words("a b", sep=",") | count, sf.ClosedFlow[Never, int])
numbers(n="3")  # type: ignore[arg-type]
numbers("3")  # type: ignore[arg-type]
scale(factor="x")  # type: ignore[arg-type]
numbers(count=3)  # type: ignore[call-arg]
words()  # type: ignore[call-arg]
half.options(workers="2")  # type: ignore[arg-type]

# -- chains that fit ----------------------------------------------------------------

assert_type(numbers(n=3) | half, sf.Flow[Never, float])
assert_type(numbers(n=3) | half | scale(factor=2.0), sf.Flow[Never, float])
assert_type(numbers(n=3) | half | total, sf.ClosedFlow[Never, float])
assert_type(numbers(n=3) | count, sf.ClosedFlow[Never, int])
assert_type(words("a b") | upper | count, sf.ClosedFlow[Never, int])
assert_type(flags(n=3) | half, sf.Flow[Never, float])  # bool is an int
assert_type(numbers(n=3) | total, sf.ClosedFlow[Never, float])  # int is a float
assert_type(dogs(n=2) | per_animal, sf.Flow[Never, str])  # Dog is an Animal
assert_type(half | scale, sf.Flow[int, float])
assert_type(half | total, sf.ClosedFlow[int, float])
assert_type((half | scale) | total, sf.ClosedFlow[int, float])
assert_type(numbers(n=3) | (half | total), sf.ClosedFlow[Never, float])
assert_type((numbers(n=3) | half) | (scale | total), sf.ClosedFlow[Never, float])

# -- iterables as sources ---------------------------------------------------------

assert_type([1, 2] | half, sf.Flow[Never, float])
assert_type([1, 2] | total, sf.ClosedFlow[Never, float])
assert_type(range(3) | half | total, sf.ClosedFlow[Never, float])
assert_type([1, 2] | (half | total), sf.ClosedFlow[Never, float])
assert_type(sf.source(["a"]), sf.Source[[], str])
assert_type(sf.source(["a"]) | upper, sf.Flow[Never, str])
["a"] | half  # type: ignore[operator]

# -- what a run returns ---------------------------------------------------------------

assert_type((numbers(n=3) | half | total).run(), float)
assert_type((numbers(n=3) | count).run(backend="inline"), int)
assert_type((numbers(n=3) | half).run(), list[float])
assert_type((half | total).run([1, 2]), float)
assert_type((half | scale).run(range(3)), list[float])
assert_type(list(numbers(n=3) | half), list[float])
with (numbers(n=3) | half).iter(backend="thread") as items:
    assert_type(items, sf.Run[float, list[float]])
    for item in items:
        assert_type(item, float)
(half | total).run(["x"])  # type: ignore[list-item]

# -- chains that do not fit -----------------------------------------------------------

numbers(n=3) | upper  # type: ignore[operator]
numbers(n=3) | half | upper  # type: ignore[operator]
words("a") | half  # type: ignore[operator]
per_animal | only_dogs  # type: ignore[operator]
numbers(n=3) | only_dogs  # type: ignore[operator]
numbers(n=3) | total | half  # type: ignore[operator]
half | numbers(n=3)  # type: ignore[operator]
total | count  # type: ignore[operator]
(half | total) | count  # type: ignore[operator]

# Known limitation: a generic stage, say
#
#     @sf.stage
#     def batch(xs: Iterable[T], n: int) -> Iterator[list[T]]: ...
#
# is inferred as Processor[[int], Never, list[Never]]: a class (unlike a
# callable) cannot stay generic in T once the decorator returns it, so mypy
# solves T to Never and no upstream can be composed into it statically.  The
# runtime check binds T along the chain (tests/test_compose.py); statically
# such a chain needs a cast or a concrete wrapper stage.
