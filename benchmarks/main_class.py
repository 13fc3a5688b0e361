"""A message class defined in ``__main__``: microseconds a hop, per start method.

Run as a script's main module (``python -m benchmarks.main_class METHOD N REPEATS``,
as ``python -m benchmarks --only main-class`` does): ``Event`` and the stages
are then ``__main__``'s, as in a user's script, and the best of ``REPEATS``
runs of ``source | sink`` (one hop, worker to worker) is printed as JSON.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import Iterable, Iterator

import streamflow as sf


@dataclasses.dataclass
class Event:
    index: int
    name: str
    value: float
    tags: list[str] = dataclasses.field(default_factory=list)


@sf.stage
def events(n: int) -> Iterator[Event]:
    for i in range(n):
        yield Event(i, "item", 0.5, ["a"])


@sf.stage
def arrivals(items: Iterable[Event]) -> tuple[float, float]:
    """The first and last arrival times (``perf_counter``: one clock across processes)."""
    first = last = 0.0
    for count, item in enumerate(items):
        assert type(item) is Event
        last = time.perf_counter()
        if count == 0:
            first = last
    return first, last


def hop(method: str, n: int) -> float:
    """Microseconds a message takes from the source's worker to the sink's."""
    first, last = (events(n=n) | arrivals).run(start_method=method)  # type: ignore[arg-type]
    return (last - first) / (n - 1) * 1e6


if __name__ == "__main__":
    method, n, repeats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    print(json.dumps(min(hop(method, n) for _ in range(repeats))))
