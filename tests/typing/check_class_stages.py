"""Static typing of decorated class stages, checked by mypy in tests/test_typing.py.

mypy ignores what a class decorator returns: after ``@sf.map class Score``,
``Score`` is still the class and ``Score(scale=2.0)`` an instance of it,
though both are stages at run time.  ``|`` types them by their
``__call__``.  A line that must fail carries ``# type: ignore[code]``;
``assert_type`` pins what mypy infers.  Nothing here is meant to run.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from typing_extensions import Never, assert_type

import streamflow as sf


@sf.stage
def ints(n: int) -> Iterator[int]:
    yield from range(n)


@sf.stage
def words(n: int) -> Iterator[str]:
    yield from map(str, range(n))


@sf.stage
def doubled(xs: Iterable[int]) -> Iterator[int]:
    for x in xs:
        yield 2 * x


@sf.stage
def total(xs: Iterable[float]) -> float:
    return sum(xs)


@sf.map(workers=2)
class Score:
    def __init__(self, scale: float = 1.0) -> None:
        self.scale = scale

    def __call__(self, x: int) -> float:
        return x * self.scale


@sf.map
class Load:
    def __init__(self, path: str) -> None:
        self.path = path

    def __call__(self, x: int) -> float:
        return float(x)


@sf.map(concurrency=10)
class Fetch:
    def __init__(self, base: str = "http://x/") -> None:
        self.base = base

    async def __call__(self, path: str) -> bytes:
        return (self.base + path).encode()


@sf.stage(workers=2)
class Tokens:
    def __init__(self, lower: bool = False) -> None:
        self.lower = lower

    def __call__(self, texts: Iterable[str]) -> Iterator[str]:
        for text in texts:
            yield from (text.lower() if self.lower else text).split()


@sf.stage
class Count:
    def __init__(self, start: int = 0) -> None:
        self.start = start

    def __call__(self, items: Iterable[str]) -> int:
        return self.start + sum(1 for _ in items)


# -- bound: an instance of the class, after a source, a flow or a processor ---------------------

assert_type(ints(n=3) | Score(scale=2.0), sf.Flow[Never, float])
assert_type(ints(n=3) | doubled | Score(scale=2.0), sf.Flow[Never, float])
assert_type(doubled | Score(scale=2.0), sf.Flow[int, float])
assert_type(ints(n=3) | Score(scale=2.0) | total, sf.ClosedFlow[Never, float])
assert_type(ints(n=3) | Load(path="m.bin"), sf.Flow[Never, float])
assert_type(words(n=3) | Fetch(base="http://y/"), sf.Flow[Never, bytes])
assert_type(words(n=3) | Tokens(lower=True), sf.Flow[Never, str])
assert_type(words(n=3) | Tokens(lower=True) | Count(start=1), sf.ClosedFlow[Never, int])
assert_type(words(n=3) | Count(), sf.ClosedFlow[Never, int])
assert_type((ints(n=3) | Score(scale=2.0)).run(), list[float])
assert_type((words(n=3) | Count()).run(), int)

# -- bare: the class object itself ------------------------------------------------------------

assert_type(ints(n=3) | Score, sf.Flow[Never, float])
assert_type(ints(n=3) | doubled | Score | total, sf.ClosedFlow[Never, float])
assert_type(doubled | Score, sf.Flow[int, float])
assert_type(words(n=3) | Fetch, sf.Flow[Never, bytes])
assert_type(words(n=3) | Tokens | Count, sf.ClosedFlow[Never, int])

# -- mis-typed: the items do not fit the class's __call__ -------------------------------------

words(n=3) | Score(scale=2.0)  # type: ignore[operator]
words(n=3) | doubled  # type: ignore[operator]
ints(n=3) | Fetch(base="http://y/")  # type: ignore[operator]
ints(n=3) | Tokens(lower=True)  # type: ignore[operator]
ints(n=3) | Count()  # type: ignore[operator]
ints(n=3) | Score(scale=2.0) | Count()  # type: ignore[operator]
doubled | Tokens()  # type: ignore[operator]
Score(scale="2")  # type: ignore[arg-type]
words(n=3) | Count() | total  # type: ignore[operator]

# A bare class that does not fit gives mypy no chance to fail at the `|` (the class's own
# `type.__ror__` would take it); what `|` gives instead fails at its first use.
(words(n=3) | Score).run()  # type: ignore[attr-defined]
(ints(n=3) | Count).run()  # type: ignore[attr-defined]
ints(n=3) | Tokens | total  # type: ignore[operator]
for _ in ints(n=3) | Fetch:  # type: ignore[attr-defined]
    pass

# A stage that does not fit stays an error even where its own __call__ (binding
# constants) would take the items: `sep` is a str, and so are the words.
@sf.stage
def split(texts: Iterable[list[str]], sep: str = ",") -> Iterator[str]:
    for text in texts:
        yield sep.join(text)


words(n=3) | split  # type: ignore[operator]
words(n=3) | split(sep=";")  # type: ignore[operator]


# -- what mypy cannot tell from a class stage --------------------------------------------------

# An undecorated function or class of the same shape: mypy takes it, the `|` raises
# FlowTypeError at run time, telling to decorate it.
def plain(x: int) -> float:
    return x / 2


class Undecorated:
    def __call__(self, x: int) -> float:
        return x / 2


assert_type(ints(n=3) | plain, sf.Flow[Never, float])
assert_type(ints(n=3) | Undecorated(), sf.Flow[Never, float])
assert_type(ints(n=3) | Undecorated, sf.Flow[Never, float])
