"""Static typing of branch blocks (sf.tee, sf.route, sf.zip, sf.merge), checked by mypy in tests/test_typing.py."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from typing_extensions import Never, assert_type

import streamflow as sf


@sf.stage
def read(n: int) -> Iterator[bytes]:
    yield b"x"


@sf.map
def parse(raw: bytes) -> str:
    return raw.decode()


@sf.map
def size(raw: bytes) -> int:
    return len(raw)


@sf.map
def shout(text: str) -> str:
    return text.upper()


@sf.stage
def count(items: Iterable[bytes]) -> int:
    return sum(1 for _ in items)


@sf.stage
def keep(items: Iterable[bytes]) -> list[bytes]:
    return list(items)


@sf.stage
def numbers(n: int) -> Iterator[int]:
    yield from range(n)


@sf.stage
def count_all(items: Iterable[object]) -> int:
    return sum(1 for _ in items)


# A tee of open branches yields the union of their items.
assert_type(sf.tee(parse, size), sf.Flow[bytes, str | int])
assert_type(read(n=1) | sf.tee(parse, size), sf.Flow[Never, str | int])
assert_type(read(n=1) | sf.tee(parse | shout, size, parse), sf.Flow[Never, str | int])
# Every branch a sink: the block is a sink, run() gives the tuple of results.
assert_type(read(n=1) | sf.tee(count, keep), sf.ClosedFlow[Never, tuple[int, list[bytes]]])
# A route yields what its branches yield; of sinks, a dict by key.
assert_type(read(n=1) | sf.route(len, {1: parse, 2: parse | shout}), sf.Flow[Never, str])
assert_type(read(n=1) | sf.route(len, {1: count, 2: count}), sf.ClosedFlow[Never, dict[int | None, int]])
# A zip yields one tuple per input.
assert_type(read(n=1) | sf.zip(parse, size), sf.Flow[Never, tuple[str, int]])
assert_type(read(n=1) | sf.zip(parse, size, parse | shout), sf.Flow[Never, tuple[str, int, str]])
# A merge starts a chain with the union of its flows' items.
assert_type(sf.merge(read(n=1), numbers(n=2)), sf.Flow[Never, bytes | int])
assert_type(sf.merge(read(n=1), [1, 2]) | sf.tee(count_all, count_all), sf.ClosedFlow[Never, tuple[int, int]])

# A branch that does not take what enters the block is an error (at the branch, where the
# block is written into the flow; at | where it was built apart).
read(n=1) | sf.tee(parse, shout)  # type: ignore[arg-type]
numbers(n=1) | sf.zip(parse, size)  # type: ignore[arg-type]
read(n=1) | sf.route(len, {1: shout})  # type: ignore[arg-type, operator]
mixed = sf.tee(parse, shout)
read(n=1) | mixed  # type: ignore[operator]
