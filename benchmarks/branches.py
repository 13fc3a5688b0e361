"""What a branch block costs: a tee, a route, a merge and a zip against the same work as a chain.

Small records between processes (and threads), microseconds per input
item, from the first item's arrival at a sink to the last one's:

- one hop: ``source | sink``, the unit the others are measured in;
- tee: ``source | tee(sink, sink)``: every item down two edges; target: at
  most one hop more than one hop (the second edge's);
- route: ``source | route(parity, {0: sink, 1: sink})``: each item down one;
- merge: ``merge(source, source) | sink``, per item, against one hop;
- zip: ``source | zip(touch, touch) | sink`` against ``source | touch | sink``.

Stages live here so that every start method's workers import them by name.
"""

from __future__ import annotations

import statistics
from typing import Any

import streamflow as sf

from .policies import records, stamps, touch

__all__ = ["costs"]


@sf.map
def joined(pair: tuple[dict[str, int], dict[str, int]]) -> dict[str, int]:
    return pair[0]


sink = stamps


def _parity(record: dict[str, int]) -> int:
    return record["id"] % 2


def _per_item(results: Any, n: int) -> float:
    """Microseconds an input item, from a sink's stamps (or several sinks', a block's tuple or dict)."""
    found = list(results.values()) if isinstance(results, dict) else list(results) if isinstance(results, tuple) else [results]
    first: float = min(r[0] for r in found)
    last: float = max(r[1] for r in found)
    return (last - first) / max(1, n - 1) * 1e6


def _flows(n: int) -> dict[str, tuple[Any, int]]:
    """Each measured flow, and the input items its time is divided by."""
    return {
        "one hop": (records(n=n) | sink, n),
        "tee of 2": (records(n=n) | sf.tee(sink, sink.options(name="sink2")), n),
        "route to 2": (records(n=n) | sf.route(_parity, {0: sink, 1: sink.options(name="sink2")}), n),
        "merge of 2": (sf.merge(records(n=n // 2), records(n=n // 2)) | sink, n),
        "chain of a map": (records(n=n) | touch | sink, n),
        "zip of 2 maps": (records(n=n) | sf.zip(touch, touch.options(name="touch2")) | joined | sink, n),
    }


def costs(options: dict[str, Any], n: int, rounds: int) -> dict[str, float]:
    """Median microseconds an input item for each flow, over ``rounds`` runs taken in turns."""
    times: dict[str, list[float]] = {}
    for _ in range(rounds):
        for name, (flow, items) in _flows(n).items():
            times.setdefault(name, []).append(_per_item(flow.run(**options), items))
    return {name: statistics.median(values) for name, values in times.items()}

