"""Static typing of map stages and class stages, checked by mypy in tests/test_typing.py.

A line that must fail carries ``# type: ignore[code]``; ``assert_type`` pins
what mypy infers.  Nothing here is meant to run.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from typing_extensions import Never, assert_type

import streamflow as sf


@sf.map
def parse(line: str, sep: str = ",") -> list[str]:
    return line.split(sep)


@sf.map(workers=2, on_error="skip")
def length(fields: list[str]) -> int:
    return len(fields)


@sf.stage
def lines(n: int) -> Iterator[str]:
    yield from map(str, range(n))


@sf.stage
def total(xs: Iterable[int]) -> int:
    return sum(xs)


assert_type(lines(n=3) | parse, sf.Flow[Never, list[str]])
assert_type(length, sf.Processor[[], list[str], int])
assert_type(lines(n=3) | parse(sep=";") | length, sf.Flow[Never, int])
assert_type(lines(n=3) | parse | length | total, sf.ClosedFlow[Never, int])
parse(sep=1)  # type: ignore[arg-type]
lines(n=3) | length  # type: ignore[operator]


class Model:
    def __init__(self, name: str, scale: float = 1.0) -> None:
        self.name = name

    def __call__(self, x: int) -> float:
        return x * 2.0


classify = sf.map(Model)
@sf.stage
def ints(n: int) -> Iterator[int]:
    yield from range(n)


assert_type(ints(n=2) | classify(name="small"), sf.Flow[Never, float])
lines(n=2) | classify(name="small")  # type: ignore[operator]
classify(name=3)  # type: ignore[arg-type]


class Tokens:
    def __init__(self, lower: bool = False) -> None:
        self.lower = lower

    def __call__(self, texts: Iterable[str]) -> Iterator[str]:
        for text in texts:
            yield from text.split()


tokens = sf.stage(Tokens)
tokens(lower=1.5)  # type: ignore[arg-type]
assert_type(lines(n=2) | tokens(lower=True), sf.Flow[Never, str])


class Count:
    def __call__(self, items: Iterable[str]) -> int:
        return sum(1 for _ in items)


count = sf.stage(Count)
assert_type(count, sf.Sink[[], str, int])
assert_type(lines(n=2) | count, sf.ClosedFlow[Never, int])


# -- batch and unbatch: generic in the item ------------------------------------------------------

assert_type(ints(n=5) | sf.batch(2), sf.Flow[Never, list[int]])
assert_type(lines(n=5) | parse | sf.batch(2, max_wait=0.1), sf.Flow[Never, list[list[str]]])
assert_type(ints(n=5) | sf.batch(2) | sf.unbatch(), sf.Flow[Never, int])
assert_type([1.5, 2.5] | sf.batch(2), sf.Flow[Never, list[float]])
assert_type(lines(n=5) | parse | sf.unbatch(), sf.Flow[Never, str])
ints(n=5) | sf.batch(2) | parse  # type: ignore[operator]


# -- async callers --------------------------------------------------------------------------------


async def _async_callers() -> None:
    assert_type(await (ints(n=2) | classify(name="a")).run_async(), list[float])
    assert_type(await (ints(n=2) | total_floats).run_async(), float)
    assert_type(await ints(n=2).run_async(), list[int])
    async for x in (ints(n=2) | classify(name="a")).aiter():
        assert_type(x, float)


@sf.stage
def total_floats(xs: Iterable[float]) -> float:
    return sum(xs)
