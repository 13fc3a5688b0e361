"""The caller's side for async code: ``run_async`` and ``aiter`` (SPEC section 11), on every backend."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Iterator
from typing import Any

import pytest

import streamflow as sf

from .conftest import scaled


@sf.stage
def numbers(n: int, pause: float = 0.0) -> Iterator[int]:
    for i in range(n):
        if pause:
            time.sleep(pause)
        yield i


@sf.map
def double(x: int) -> int:
    return 2 * x


@sf.stage
def total(xs: Iterable[int]) -> int:
    return sum(xs)


@sf.map
def fail_on_three(x: int) -> int:
    if x == 3:
        raise KeyError("three")
    return x


async def _ticking(work: Any) -> tuple[Any, int]:
    """Run ``work`` while a ticker counts how often the loop got to run it."""
    ticks = 0
    done = asyncio.Event()

    async def tick() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0.01)

    ticker = asyncio.create_task(tick())
    try:
        return await work, ticks
    finally:
        done.set()
        await ticker


def test_run_async_gives_what_run_gives_and_the_loop_keeps_ticking(opts: dict[str, Any]) -> None:
    n = scaled(opts, 50)
    flow = numbers(n=n, pause=0.01) | double | total
    result, ticks = asyncio.run(_ticking(flow.run_async(**opts)))
    assert result == sum(2 * i for i in range(n))
    assert ticks >= 5  # the flow took at least n x 10 ms, and the loop went on meanwhile
    assert asyncio.run((numbers(n=3) | double).run_async(**opts)) == [0, 2, 4]
    assert asyncio.run(numbers(n=2).run_async(**opts)) == [0, 1]


def test_aiter_yields_items_and_stops_the_flow_on_break(opts: dict[str, Any]) -> None:
    async def first(k: int) -> list[int]:
        got = []
        async for x in (numbers(n=10_000) | double).aiter(**opts):
            got.append(x)
            if len(got) == k:
                break
        return got

    async def everything() -> list[int]:
        return [x async for x in numbers(n=5).aiter(**opts)]

    assert asyncio.run(first(4)) == [0, 2, 4, 6]
    assert asyncio.run(everything()) == [0, 1, 2, 3, 4]


def test_errors_arrive_as_in_run(opts: dict[str, Any]) -> None:
    with pytest.raises(KeyError) as caught:
        asyncio.run((numbers(n=10) | fail_on_three | total).run_async(**opts))
    assert any("raised in stage 'fail_on_three'" in note for note in caught.value.__notes__)

    async def read() -> list[int]:
        return [x async for x in (numbers(n=10) | fail_on_three).aiter(**opts)]

    with pytest.raises(KeyError):
        asyncio.run(read())


def test_cancelling_the_task_cancels_the_run(opts: dict[str, Any]) -> None:
    async def cancel_soon() -> None:
        task = asyncio.create_task((numbers(n=1_000_000, pause=0.001) | double | total).run_async(**opts))
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    started = time.perf_counter()
    asyncio.run(cancel_soon())
    assert time.perf_counter() - started < 30  # and the leak guard checks nothing is left running
