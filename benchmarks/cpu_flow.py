"""A CPU-bound flow between light stages, against ``multiprocessing.Pool.imap`` (issue: spinning).

::

    source -> batch(32) -> model (2 workers, 1 ms an item) -> unbatch -> remap -> sink

Seven processes on a machine of two cores: the light stages wait most of
the time, and whatever they spend waiting is taken from the model's
workers.  The reference does the same work on ``Pool(2).imap`` with
``chunksize=32``, the light steps in the caller.  Whole runs, start-up
included, so the flow runs under fork, the start method ``Pool`` uses.
Stages live here so that every start method's workers can import them.
"""

from __future__ import annotations

import multiprocessing
import statistics
import time
from collections.abc import Iterable, Iterator

import streamflow as sf

__all__ = ["against_pool"]

ITEM_SECONDS = 0.001


def work(x: int) -> int:
    """About a millisecond of pure-Python CPU for one item, as a small model's call might take."""
    until = time.perf_counter() + ITEM_SECONDS
    while time.perf_counter() < until:
        pass
    return x


@sf.stage
def numbers(n: int) -> Iterator[int]:
    yield from range(n)


@sf.map(workers=2)
def model(batch: list[int]) -> list[int]:
    return [work(x) for x in batch]


@sf.map
def remap(x: int) -> int:
    return x + 1


@sf.stage
def count(xs: Iterable[int]) -> int:
    return sum(1 for _ in xs)


def flow_seconds(n: int, **options: object) -> float:
    started = time.perf_counter()
    flow = numbers(n=n) | sf.batch(32) | model | sf.unbatch() | remap | count
    assert flow.run(start_method="fork", **options) == n  # type: ignore[arg-type]
    return time.perf_counter() - started


def pool_seconds(n: int) -> float:
    started = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(2) as pool:
        assert sum(1 for _ in (x + 1 for x in pool.imap(work, range(n), chunksize=32))) == n
    return time.perf_counter() - started


def against_pool(n: int, rounds: int) -> dict[str, float]:
    """Median seconds of ``rounds`` interleaved runs: the flow as it is, with ``spin_us=0``, and Pool."""
    runs: dict[str, list[float]] = {"streamflow": [], "streamflow spin_us=0": [], "Pool(2).imap": []}
    for _ in range(rounds):
        runs["streamflow"].append(flow_seconds(n))
        runs["streamflow spin_us=0"].append(flow_seconds(n, spin_us=0))
        runs["Pool(2).imap"].append(pool_seconds(n))
    return {name: statistics.median(times) for name, times in runs.items()}
