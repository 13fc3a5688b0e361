"""What failure policies cost: a policy that is set but never acts, and replacing a dead worker.

Each function returns plain numbers; ``__main__`` turns them into rows.
Stages live here so that spawned workers can import them.
"""

from __future__ import annotations

import os
import signal
import time
import warnings
from collections.abc import Iterable, Iterator
from typing import Any

import streamflow as sf

__all__ = ["per_message", "replacement"]


@sf.stage
def records(n: int) -> Iterator[dict[str, int]]:
    for i in range(n):
        yield {"id": i, "value": i * 7}


@sf.map
def touch(record: dict[str, int]) -> dict[str, int]:
    return record


@sf.map
def dies_at(record: dict[str, int], at: int = -1) -> dict[str, int]:
    if record["id"] == at:
        os.kill(os.getpid(), signal.SIGKILL)
    return record


@sf.stage
def stamps(records: Iterable[dict[str, int]]) -> tuple[float, float, int]:
    """When the first and the last record arrived, and how many."""
    first = last = 0.0
    count = 0
    for _ in records:
        last = time.perf_counter()
        first = first or last
        count += 1
    return first, last, count


POLICIES: dict[str, dict[str, Any]] = {
    "none": {},
    "skip": {"on_error": "skip"},
    "retries=2": {"retries": 2},
    "timeout=10": {"timeout": 10.0},
}


def per_message(options: dict[str, Any], n: int, repeats: int) -> dict[str, float]:
    """Microseconds a message, best of ``repeats``, for each policy on a map stage; interleaved."""
    best = {name: float("inf") for name in POLICIES}
    for _ in range(repeats):
        for name, policy in POLICIES.items():
            if "timeout" in policy and options["backend"] not in ("process", "ray"):
                continue
            flow = records(n=n) | touch.options(**policy) | stamps
            first, last, count = flow.run(**options)
            assert count == n
            best[name] = min(best[name], (last - first) / max(1, n - 1) * 1e6)
    return {name: value for name, value in best.items() if value != float("inf")}


def replacement(options: dict[str, Any], n: int, repeats: int) -> tuple[float, float]:
    """Seconds a run of ``n`` records takes with no crash, and with its worker killed halfway
    (and replaced); best of ``repeats`` each."""
    clean = crashed = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        (records(n=n) | dies_at.options(on_error="skip") | stamps).run(**options)
        clean = min(clean, time.perf_counter() - started)
        started = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", sf.FailuresWarning)
            (records(n=n) | dies_at(at=n // 2).options(on_error="skip") | stamps).run(**options)
        crashed = min(crashed, time.perf_counter() - started)
    return clean, crashed
