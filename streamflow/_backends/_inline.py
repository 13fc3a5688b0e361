"""The inline backend: no workers; the caller chains the stages' generators.

For debugging and deterministic tests: one packet at a time, in the calling
thread.  Worker counts, ``packets_in_flight`` and timeouts are ignored.
The chaining itself is the runtime's (``streamflow._runtime._chain``): it
applies the same stage semantics as every worker does.
"""

from __future__ import annotations

from . import InCaller

__all__ = ["BACKEND", "InlineBackend"]


class InlineBackend(InCaller):
    """The inline backend: the runtime runs the plan in the caller."""

    stops_calls = False  # the caller's own thread runs the stages
    shares_memory = True  # one thread


BACKEND = InlineBackend
