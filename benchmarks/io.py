"""What waiting on I/O costs: an async map stage with ``concurrency`` against threads.

``io_bound`` runs ``calls`` calls of ``latency`` seconds of simulated I/O
(``asyncio.sleep`` in an ``async def`` map stage on one worker, or
``time.sleep`` in a sync one with many thread workers) and returns the wall
time and the CPU time the whole process spent.  Stages live here so that
spawned workers can import them.
"""

from __future__ import annotations

import asyncio
import resource
import time
from collections.abc import Iterable, Iterator
from typing import Any

import streamflow as sf

__all__ = ["io_bound"]


@sf.stage
def requests(n: int) -> Iterator[int]:
    yield from range(n)


@sf.map
async def call_async(x: int, latency: float = 0.05) -> int:
    await asyncio.sleep(latency)
    return x


@sf.map
def call_sync(x: int, latency: float = 0.05) -> int:
    time.sleep(latency)
    return x


@sf.stage
def count(xs: Iterable[int]) -> int:
    return sum(1 for _ in xs)


def io_bound(options: dict[str, Any], calls: int, latency: float, *, concurrency: int = 1, workers: int = 1) -> tuple[float, float]:
    """Wall seconds and CPU seconds (this process, every thread) for ``calls`` calls."""
    if concurrency > 1:
        stage = call_async(latency=latency).options(concurrency=concurrency, workers=workers)
    else:
        stage = call_sync(latency=latency).options(workers=workers)
    # Each sync worker holds its input's slot while it waits: give the source room for all of them.
    source = requests(n=calls).options(packets_in_flight=2 * workers)
    flow = source | stage | count
    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    assert flow.run(**options) == calls
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return wall, cpu
