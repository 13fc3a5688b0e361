"""The benchmark workloads, as streamflow stages and as pipeline-lib tasks.

Kept in an importable module so that spawned workers of either library
load them by name.  Every sink records the time its first and last packet
arrived into a shared array (``stamps``), so throughput excludes start-up.
"""

from __future__ import annotations

import time
import typing
from collections.abc import Iterable, Iterator
from typing import Any

import streamflow as sf

__all__ = [
    "busy",
    "cpu_sink",
    "cpu_source",
    "cpu_work",
    "large_sink",
    "large_source",
    "ray_large_sink",
    "ray_small_sink",
    "small_pass",
    "small_sink",
    "small_source",
]


def _stamp(stamps: Any, index: int) -> None:
    stamps[index] = time.perf_counter()


def _time_stream(items: Iterable[Any], stamps: Any) -> int:
    """Consume ``items``, stamping the arrival of the first and the last."""
    count = 0
    for _ in items:
        if count == 0:
            _stamp(stamps, 0)
        count += 1
    _stamp(stamps, 1)
    return count


def busy(seconds: float) -> int:
    """Spin in pure Python (holding the GIL) for about ``seconds``."""
    end = time.perf_counter() + seconds
    count = 0
    while time.perf_counter() < end:
        count += 1
    return count


# -- streamflow stages ------------------------------------------------------------


@sf.stage
def small_source(n: int) -> Iterator[dict[str, Any]]:
    for i in range(n):
        yield {"index": i, "name": "item", "value": 0.5}


@sf.stage
def small_pass(items: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    yield from items


@sf.stage
def small_sink(items: Iterable[dict[str, Any]], stamps: Any) -> int:
    return _time_stream(items, stamps)


@sf.stage
def large_source(n: int, megabytes: int) -> Iterator[Any]:
    import numpy as np

    array = np.ones(megabytes * 1024 * 1024 // 4, dtype=np.int32)  # reused: a pure transfer
    for _ in range(n):
        yield array


@sf.stage
def large_sink(arrays: Iterable[Any], stamps: Any) -> int:
    return _time_stream(arrays, stamps)


@sf.stage
def cpu_source(n: int) -> Iterator[int]:
    yield from range(n)


@sf.stage
def cpu_work(items: Iterable[int], seconds: float) -> Iterator[int]:
    for item in items:
        busy(seconds)
        yield item


@sf.stage
def cpu_sink(items: Iterable[int], stamps: Any) -> int:
    return _time_stream(items, stamps)


@sf.stage
def ray_small_sink(items: Iterable[dict[str, Any]]) -> tuple[float, float]:
    """Sink for Ray, whose actors cannot write a shared array: returns the stamps."""
    stamps = [0.0, 0.0]
    _time_stream(items, stamps)
    return stamps[0], stamps[1]


@sf.stage
def ray_large_sink(arrays: Iterable[Any]) -> tuple[float, float]:
    stamps = [0.0, 0.0]
    _time_stream(arrays, stamps)
    return stamps[0], stamps[1]


# -- pipeline-lib tasks (its checker wants typing.Iterable and no defaults) -------


def pl_small_source(n: int) -> typing.Iterable[dict]:  # type: ignore[type-arg]
    for i in range(n):
        yield {"index": i, "name": "item", "value": 0.5}


def pl_small_pass(items: typing.Iterable[dict]) -> typing.Iterable[dict]:  # type: ignore[type-arg]
    yield from items


def pl_small_sink(items: typing.Iterable[dict], stamps: typing.Any) -> None:  # type: ignore[type-arg]
    _time_stream(items, stamps)


def pl_large_source(n: int, megabytes: int) -> typing.Iterable[typing.Any]:
    import numpy as np

    array = np.ones(megabytes * 1024 * 1024 // 4, dtype=np.int32)
    for _ in range(n):
        yield array


def pl_large_sink(arrays: typing.Iterable[typing.Any], stamps: typing.Any) -> None:
    _time_stream(arrays, stamps)


def pl_cpu_source(n: int) -> typing.Iterable[int]:
    yield from range(n)


def pl_cpu_work(items: typing.Iterable[int], seconds: float) -> typing.Iterable[int]:
    for item in items:
        busy(seconds)
        yield item


def pl_cpu_sink(items: typing.Iterable[int], stamps: typing.Any) -> None:
    _time_stream(items, stamps)


def pl_tiny_source(n: int) -> typing.Iterable[int]:
    yield from range(n)


def pl_tiny_pass(items: typing.Iterable[int]) -> typing.Iterable[int]:
    yield from items


def pl_tiny_sink(items: typing.Iterable[int]) -> None:
    for _ in items:
        pass
