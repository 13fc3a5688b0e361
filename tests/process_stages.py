"""Stages that crash, misbehave or move arrays: for the process-backend tests."""

from __future__ import annotations

import ctypes
import faulthandler
import os
import signal
import sys
import threading
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

import streamflow as sf


@sf.stage
def crash_at(xs: Iterable[int], at: int, how: str) -> Iterator[int]:
    for x in xs:
        if x == at:
            if how == "sigkill":
                os.kill(os.getpid(), signal.SIGKILL)
            elif how == "os_exit":
                os._exit(3)
            elif how == "sys_exit":
                sys.exit(0)
            elif how == "segfault":
                faulthandler.disable()  # pytest's handler would print a dump to the log
                ctypes.string_at(0)
        yield x


@sf.stage
def yield_unpicklable(xs: Iterable[int]) -> Iterator[Any]:
    for x in xs:
        yield (x, threading.Lock()) if x == 2 else (x, None)


@sf.stage
def yield_bytes(xs: Iterable[int], size: int) -> Iterator[bytes]:
    for x in xs:
        yield bytes(size)


@sf.stage
def arrays(n: int, shape: tuple[int, ...], dtype: str = "int32") -> Iterator[np.ndarray]:
    base = np.arange(int(np.prod(shape)), dtype=dtype).reshape(shape)
    for i in range(n):
        yield base + i


@sf.stage
def array_sums(xs: Iterable[np.ndarray]) -> Iterator[int]:
    for a in xs:
        yield int(a.sum())


@sf.stage
def twice_referenced(n: int, size: int) -> Iterator[dict[str, Any]]:
    for i in range(n):
        a = np.full(size, i, dtype=np.int64)
        yield {"first": a, "second": a, "i": i}


@sf.stage
def modify_first(xs: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for message in xs:
        message["first"][0] = -1
        yield message


@sf.stage
def check_shared(xs: Iterable[dict[str, Any]]) -> list[bool]:
    return [bool(m["second"][0] == -1 and m["first"] is m["second"]) for m in xs]


@sf.stage
def odd_arrays(xs: Iterable[int]) -> Iterator[dict[str, np.ndarray]]:
    for x in xs:
        grid = np.arange(24, dtype=np.float64).reshape(4, 6) + x
        yield {
            "empty": np.zeros((0, 3)),
            "strided": grid[:, ::2],
            "transposed": grid.T,
            "fortran": np.asfortranarray(grid),
            "scalar": np.float32(x),
        }


@sf.stage
def use_primitives(xs: Iterable[int], value: Any, array: Any, lock: Any, event: Any, queue: Any) -> int:
    count = 0
    for x in xs:
        with lock:
            value.value += x
            array[x % len(array)] += 1
        count += 1
    queue.put(count)
    event.set()
    return count


@sf.stage
def ignore_sigterm(xs: Iterable[int]) -> Iterator[int]:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    for x in xs:
        if x == 3:
            raise ValueError("stop the flow")
        yield x


@sf.stage
def slow_to_finish(xs: Iterable[int]) -> Iterator[int]:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # only SIGKILL ends it
    for x in xs:
        if x == 0:
            import select

            select.select([], [], [], 60)
        yield x


@sf.stage
def passthrough(xs: Iterable[Any]) -> Iterator[Any]:
    yield from xs
