"""Stages defined in a script, as ``__main__``, that use scikit-learn: a function and a class.

Run as a script (never imported): ``python benchmarks/heavy_main.py METHOD SHAPE LATER_RUNS``
runs the flow whose middle stage is SHAPE (``function`` or ``class``) once,
then LATER_RUNS more times, and prints ``[first, best later]`` in
milliseconds.  Stages from ``__main__`` travel by value, so no start method
can import them; what their code refers to is what a worker needs.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable, Iterator
from typing import cast

import numpy as np
from sklearn.ensemble import RandomForestClassifier  # type: ignore[import-untyped]

import streamflow as sf
from streamflow._options import StartMethod


@sf.stage
def requests(n: int) -> Iterator[int]:
    yield from range(n)


@sf.map(workers=3)
def predict(x: int) -> int:
    forest = RandomForestClassifier(n_estimators=1)
    return 2 * x + int(forest.n_estimators) - 1


class Model:
    """Loaded once per worker, the documented way (``@sf.map`` on the class; applied below for mypy)."""

    def __init__(self) -> None:
        self.forest = RandomForestClassifier(n_estimators=1)

    def __call__(self, x: int) -> int:
        return 2 * x + self.offset()

    def offset(self) -> int:
        return int(np.int64(self.forest.n_estimators)) - 1


model = sf.map(workers=3)(Model)


@sf.stage
def collect(xs: Iterable[int]) -> int:
    return sum(xs)


def once(method: str, shape: str) -> float:
    flow = requests(n=10) | predict | collect if shape == "function" else requests(n=10) | model() | collect
    started = time.perf_counter()
    assert flow.run(start_method=cast(StartMethod, method)) == 90
    return (time.perf_counter() - started) * 1e3


method, shape, later_runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
first = once(method, shape)
print(json.dumps([first, min(once(method, shape) for _ in range(later_runs))]))
