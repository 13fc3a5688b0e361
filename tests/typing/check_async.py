"""Static typing of async stages, checked by mypy in tests/test_typing.py.

A line that must fail carries ``# type: ignore[code]``; ``assert_type`` pins
what mypy infers.  Nothing here is meant to run.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator

from typing_extensions import Never, assert_type

import streamflow as sf


@sf.stage
async def pages(n: int) -> AsyncIterator[str]:
    for i in range(n):
        yield str(i)


@sf.stage
def urls(n: int) -> Iterator[str]:
    yield from map(str, range(n))


@sf.map(concurrency=100)
async def fetch(url: str, retries: int = 2) -> bytes:
    return url.encode()


@sf.stage(workers=2)
async def sizes(stream: AsyncIterable[bytes], scale: int = 1) -> AsyncIterator[int]:
    async for body in stream:
        yield len(body) * scale


@sf.stage
async def total(stream: AsyncIterable[int]) -> int:
    return sum([x async for x in stream])


@sf.stage
def sync_total(xs: Iterable[int]) -> int:
    return sum(xs)


assert_type(total, sf.Sink[[], int, int])
assert_type(urls(n=3) | fetch | sizes, sf.Flow[Never, int])
assert_type(pages(n=3) | fetch(retries=1) | sizes(scale=2) | total, sf.ClosedFlow[Never, int])
assert_type(pages(n=3) | fetch | sizes | sync_total, sf.ClosedFlow[Never, int])
fetch(retries="x")  # type: ignore[arg-type]
pages(n=3) | sizes  # type: ignore[operator]
urls(n=3) | fetch | total  # type: ignore[operator]


class Client:
    def __init__(self, base: str) -> None:
        self.base = base

    async def __call__(self, path: str) -> bytes:
        return (self.base + path).encode()

    async def close(self) -> None:
        pass


client = sf.map(Client)
assert_type(urls(n=3) | client(base="http://x") | sizes, sf.Flow[Never, int])
client(base=1)  # type: ignore[arg-type]
