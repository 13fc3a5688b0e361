"""The benchmark workloads, as streamflow stages and as pipeline-lib tasks.

Kept in an importable module so that spawned workers of either library
load them by name.  Every sink records the time its first and last packet
arrived into a shared array (``stamps``), so throughput excludes start-up.
The small-message stages also take a ``meter`` (see ``new_meter``): the
CPU time and voluntary context switches of their process over the same
stretch, so the cost per message excludes start-up too.
"""

from __future__ import annotations

import resource
import time
import typing
from collections.abc import Iterable, Iterator
from typing import Any

import streamflow as sf

__all__ = [
    "METER_SIZE",
    "PASS",
    "SINK",
    "SOURCE",
    "busy",
    "cpu_sink",
    "cpu_source",
    "cpu_work",
    "large_sink",
    "large_source",
    "metered",
    "per_message",
    "ray_large_sink",
    "ray_small_sink",
    "small_pass",
    "small_sink",
    "slow_source",
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


# A meter (a locked shared array of doubles): [first, last] arrival at the
# sink, the count of pass-through workers that claimed a row, then a row of
# 4 a process: its (CPU seconds, voluntary context switches) at its first
# item and after its last.  Rows: the source, up to 3 pass-through workers,
# the sink.  A stage given ``meter=None`` records nothing: on threads only
# the sink records, and its process's usage covers every stage.
SOURCE, PASS, SINK = 0, 1, 4
_CLAIMED, _ROWS = 2, 3
METER_SIZE = _ROWS + 5 * 4


def _usage(meter: Any, row: int, end: int) -> None:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    base = _ROWS + 4 * row + 2 * end
    meter[base] = usage.ru_utime + usage.ru_stime
    meter[base + 1] = usage.ru_nvcsw


def metered(items: Iterable[Any], meter: Any, stage: int) -> Iterator[Any]:
    """Yield ``items``, recording this process's usage at the first and after the last.

    ``stage``: ``SOURCE``, ``PASS`` (each worker claims a row of its own) or ``SINK``.
    """
    if meter is None:
        yield from items
        return
    row = stage
    first = True
    for item in items:
        if first:
            if stage == PASS:
                with meter.get_lock():
                    row = PASS + int(meter[_CLAIMED])
                    meter[_CLAIMED] += 1
            _usage(meter, row, 0)
            first = False
        yield item
    _usage(meter, row, 1)


def per_message(meter: Any, n: int) -> tuple[float, float, float]:
    """(wall us, CPU us, voluntary context switches) per message, from a filled meter."""
    cpu = switches = 0.0
    for row in range(5):
        base = _ROWS + 4 * row
        if meter[base + 2]:  # the process recorded
            cpu += meter[base + 2] - meter[base]
            switches += meter[base + 3] - meter[base + 1]
    return (meter[1] - meter[0]) / (n - 1) * 1e6, cpu / n * 1e6, switches / n


def busy(seconds: float) -> int:
    """Spin in pure Python (holding the GIL) for about ``seconds``."""
    end = time.perf_counter() + seconds
    count = 0
    while time.perf_counter() < end:
        count += 1
    return count


# -- streamflow stages ------------------------------------------------------------


@sf.stage
def small_source(n: int, meter: Any = None) -> Iterator[dict[str, Any]]:
    for i in metered(range(n), meter, SOURCE):
        yield {"index": i, "name": "item", "value": 0.5}


@sf.stage
def slow_source(seconds: float, meter: Any = None) -> Iterator[dict[str, Any]]:
    """Two items, ``seconds`` apart: downstream stages wait that long for the second."""
    for i in metered(range(2), meter, SOURCE):
        if i:
            time.sleep(seconds)
        yield {"index": i, "name": "item", "value": 0.5}


@sf.stage
def small_pass(items: Iterable[dict[str, Any]], meter: Any = None) -> Iterator[dict[str, Any]]:
    yield from metered(items, meter, PASS)


@sf.stage
def small_sink(items: Iterable[dict[str, Any]], stamps: Any, metering: bool = False) -> int:
    """``stamps`` is a meter when ``metering``."""
    return _time_stream(metered(items, stamps if metering else None, SINK), stamps)


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


def pl_small_source(n: int, meter: typing.Any) -> typing.Iterable[dict]:  # type: ignore[type-arg]
    for i in metered(range(n), meter, SOURCE):
        yield {"index": i, "name": "item", "value": 0.5}


def pl_small_pass(items: typing.Iterable[dict], meter: typing.Any) -> typing.Iterable[dict]:  # type: ignore[type-arg]
    yield from metered(items, meter, PASS)


def pl_small_sink(items: typing.Iterable[dict], stamps: typing.Any) -> None:  # type: ignore[type-arg]
    """``stamps`` is a meter."""
    _time_stream(metered(items, stamps, SINK), stamps)


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
