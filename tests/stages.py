"""Stage functions used across the tests (importable, so every start method works)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import Any

import streamflow as sf


@sf.stage
def count_to(n: int) -> Iterator[int]:
    yield from range(n)


@sf.stage
def forever() -> Iterator[int]:
    i = 0
    while True:
        yield i
        i += 1


@sf.stage
def square(xs: Iterable[int]) -> Iterator[int]:
    for x in xs:
        yield x * x


@sf.stage
def keep_even(xs: Iterable[int]) -> Iterator[int]:
    for x in xs:
        if x % 2 == 0:
            yield x


@sf.stage
def repeat(xs: Iterable[int], times: int) -> Iterator[int]:
    for x in xs:
        for _ in range(times):
            yield x


@sf.stage
def add(xs: Iterable[int], k: int = 1) -> Iterator[int]:
    for x in xs:
        yield x + k


@sf.stage
def total(xs: Iterable[int]) -> int:
    return sum(xs)


@sf.stage
def collect(xs: Iterable[Any]) -> list[Any]:
    return list(xs)


@sf.stage
def fail_at(xs: Iterable[int], at: int, error: str = "ValueError") -> Iterator[int]:
    for x in xs:
        if x == at:
            raise {"ValueError": ValueError, "KeyError": KeyError}[error](f"bad item {x}")
        yield x


@sf.stage
def source_failing_at(at: int) -> Iterator[int]:
    for x in range(at + 10):
        if x == at:
            raise RuntimeError(f"source broke at {x}")
        yield x


@sf.stage
def sink_failing_at(xs: Iterable[int], at: int) -> int:
    for x in xs:
        if x == at:
            raise ZeroDivisionError(f"sink broke at {x}")
    return 0


@sf.stage
def whoami(xs: Iterable[int]) -> Iterator[tuple[str, int, int, int]]:
    for x in xs:
        info = sf.worker_info()
        assert info is not None
        yield (info.stage, info.index, info.workers, os.getpid())


class Doc:
    """A class whose name another module's class shares (``tests.test_compose.Doc``)."""


@sf.stage
def count_docs(docs: Iterable[Doc]) -> int:
    return sum(1 for _ in docs)


@sf.stage
def returns_instead(xs: Iterable[int]) -> Iterator[int]:
    """A processor that returns a value where it should yield."""
    return sum(xs)  # type: ignore[return-value]
