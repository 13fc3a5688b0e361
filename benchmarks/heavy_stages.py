"""Stages of an inference flow whose module imports scikit-learn, as real ones do.

The start-up benchmark runs them to see what a start method costs when
every worker needs a heavy import: once with a new interpreter (the first
run) and again in the same one (later runs).
"""

from __future__ import annotations

import typing
from collections.abc import Iterable, Iterator

import sklearn.ensemble  # type: ignore[import-untyped]  # noqa: F401 - the import being measured

import streamflow as sf


@sf.stage
def requests(n: int) -> Iterator[int]:
    yield from range(n)


@sf.stage(workers=3)
def predict(xs: Iterable[int]) -> Iterator[int]:
    for x in xs:
        yield 2 * x


@sf.stage
def collect(xs: Iterable[int]) -> int:
    return sum(xs)


def flow() -> sf.ClosedFlow[typing.Any, int]:
    """Five workers: one source, three of ``predict``, one sink."""
    return requests(n=10) | predict | collect


# -- the same, as pipeline-lib tasks -------------------------------------------------


def pl_requests(n: int) -> typing.Iterable[int]:
    yield from range(n)


def pl_predict(xs: typing.Iterable[int]) -> typing.Iterable[int]:
    for x in xs:
        yield 2 * x


def pl_collect(xs: typing.Iterable[int]) -> None:
    for _ in xs:
        pass
