"""Stages for the branch tests (importable, so every start method's workers load them by name)."""

from __future__ import annotations

import random
import time
from collections.abc import Iterable, Iterator
from typing import Any

import streamflow as sf


@sf.stage
def nums(n: int) -> Iterator[int]:
    yield from range(n)


@sf.map
def double(x: int) -> int:
    return 2 * x


@sf.map
def neg(x: int) -> int:
    return -x


@sf.map
def text(x: int) -> str:
    return str(x)


@sf.map
def fail_on(x: int, bad: frozenset[int] = frozenset()) -> int:
    if x in bad:
        raise ValueError(f"bad item {x}")
    return x


@sf.map
def jitter(x: int, most: float = 0.002) -> int:
    """Wait a random moment: workers finish out of turn."""
    time.sleep(random.random() * most)
    return x


@sf.map
def slow(x: int, seconds: float = 0.002) -> int:
    time.sleep(seconds)
    return x


@sf.stage
def evens(xs: Iterable[int]) -> Iterator[int]:
    for x in xs:
        if x % 2 == 0:
            yield x


@sf.stage
def thrice(xs: Iterable[int]) -> Iterator[int]:
    for x in xs:
        yield x
        yield x
        yield x


@sf.stage
def total(xs: Iterable[int]) -> int:
    return sum(xs)


@sf.stage
def count(xs: Iterable[object]) -> int:
    return sum(1 for _ in xs)


@sf.stage
def collect(xs: Iterable[Any]) -> list[Any]:
    return list(xs)


@sf.stage
def letters(failures: Iterable[sf.Failure]) -> list[tuple[str, int, str]]:
    """A dead-letter table: (stage, item, error type) for each failure."""
    return [(f.stage, f.item, type(f.error).__name__) for f in failures]


def parity(x: int) -> int:
    return x % 2


@sf.map
def item_of(failure: sf.Failure) -> Any:
    return failure.item


@sf.map
def inc(x: int) -> int:
    return x + 1


@sf.map
def added(xs: tuple[int, ...]) -> int:
    return sum(xs)


@sf.map
def fail_skip(x: int, bad: frozenset[int] = frozenset()) -> int:
    """``x`` back; an item in ``bad`` fails (for stages under ``on_error="skip"``)."""
    if x in bad:
        raise ValueError(x)
    return x


@sf.map
def pair(t: tuple[int, str]) -> tuple[int, str]:
    return t
