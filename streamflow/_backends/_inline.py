"""The inline backend: no workers; the caller chains the stages' generators.

For debugging and deterministic tests: one packet at a time, in the calling
thread.  Worker counts, ``packets_in_flight`` and timeouts are ignored.
The chaining itself is the runtime's (``streamflow._runtime._chain``): it
applies the same stage semantics as every worker does.
"""

from __future__ import annotations

__all__ = ["BACKEND", "InlineBackend"]


class InlineBackend:
    """Marks the inline backend: the runtime runs the plan in the caller."""

    runs_in_caller = True
    stops_calls = False  # the caller's own thread runs the stages
    shares_memory = True  # one thread
    start_methods: tuple[str, ...] = ()  # what ``start_method`` may name
    packets_per_worker = 2  # the default ``packets_in_flight`` for each worker of a stage


BACKEND = InlineBackend
