"""What order and batches cost: ``ordered=True`` against unordered, and ``max_wait``'s latency.

Each function returns plain numbers; ``__main__`` turns them into rows.
Stages live here so that spawned workers can import them.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterable, Iterator
from typing import Any

import streamflow as sf

from .policies import records, stamps

__all__ = ["against_unordered", "batch_latency", "ordered_cost"]


@sf.map
def touch(record: dict[str, int]) -> dict[str, int]:
    return record


@sf.map
def work(record: dict[str, int], microseconds: float = 200.0) -> dict[str, int]:
    """About ``microseconds`` of CPU, as a model call might take."""
    until = time.perf_counter() + microseconds / 1e6
    while time.perf_counter() < until:
        pass
    return record


def ordered_cost(options: dict[str, Any], workload: str, n: int, pairs: int) -> tuple[float, float, list[float]]:
    """Microseconds a message unordered and ordered, 2 workers, best of ``pairs`` runs each,
    and ordered over unordered in each of the ``pairs`` pairs of runs, taken in turns.

    The pairs' ratios are the steadier measure: two runs in a row share the machine's
    state of the moment, and one lucky best does not move their median.
    """
    stage = touch if workload == "small" else work
    times: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(pairs):
        for ordered in (False, True):
            flow = records(n=n) | stage.options(workers=2, ordered=ordered) | stamps
            first, last, count = flow.run(**options)
            assert count == n
            times[ordered].append((last - first) / max(1, n - 1) * 1e6)
    ratios = [o / u for u, o in zip(times[False], times[True])]
    return min(times[False]), min(times[True]), ratios


def against_unordered(ratios: list[float], unordered: float, ordered: float) -> str:
    """A row's note: the median of the pairs' ratios, their middle half, and the best runs'."""
    quartiles = statistics.quantiles(ratios, n=4, method="inclusive") if len(ratios) > 1 else ratios * 3
    return (
        f"{statistics.median(ratios) - 1:+.0%} against unordered, median of {len(ratios)} pairs "
        f"(middle half {quartiles[0] - 1:+.0%} to {quartiles[2] - 1:+.0%}); best {ordered / unordered - 1:+.0%}"
    )


@sf.stage
def trickle(n: int, every: float) -> Iterator[float]:
    """``n`` timestamps, one each ``every`` seconds: a slow source."""
    for _ in range(n):
        time.sleep(every)
        yield time.perf_counter()


@sf.stage
def delays(batches: Iterable[list[float]]) -> list[float]:
    """Seconds from each item's birth to its batch's arrival here."""
    out = []
    for batch in batches:
        now = time.perf_counter()
        out += [now - born for born in batch]
    return out


def batch_latency(options: dict[str, Any], max_wait: float, n: int) -> tuple[float, float]:
    """Median and worst seconds from an item's arrival to its batch's, with items 10 x max_wait apart."""
    flow = trickle(n=n, every=10 * max_wait) | sf.batch(1000, max_wait=max_wait) | delays
    seen = flow.run(**options)
    return statistics.median(seen), max(seen)
