"""How workers run: one module per backend, loaded by the name users pass.

A backend is mechanism only: how a worker starts, stops and reports, and
which edge carries packets between workers.  Everything a run does alike
on every backend (wiring edges, caller-side threads, outcomes, statistics,
shutdown order, the worker loop itself) is the runtime's, written once; a
backend receives ``Job``s whose ``main`` it calls where the worker runs.

::

    runtime                                     backend (this package)
    -------                                     ----------------------
    Engine: edges, stats, jobs  --start(job)--> a thread / process / actor calls job.main(job, report)
    Supervisor                  <--wait()-----  what workers reported, their Outcomes, crashes
"""

from __future__ import annotations

import dataclasses
import importlib
import sys
from collections.abc import Callable
from typing import Any, Protocol

from .._errors import OptionError
from .._options import RunConfig
from .._plan import Link, Node, Plan
from .._transport import Edge
from .._transport._serialize import PortableError

__all__ = ["BACKENDS", "Backend", "BackendFactory", "Job", "Memory", "Outcome", "Report", "load", "shutdown"]

BACKENDS = ("process", "thread", "inline", "ray")

Report = Callable[[Any], None]  # sends one event from a worker to the supervisor


class Memory(Protocol):
    """A buffer the workers of a run write their statistics into."""

    @property
    def memory(self) -> Any: ...

    def close(self) -> None: ...


@dataclasses.dataclass
class Outcome:
    """How one worker ended: a result, an error, or aborted with the run.

    ``crashed``: the worker died without reporting (its error is a ``WorkerCrashed``).
    """

    node: int
    worker: int
    result: Any = None
    error: PortableError | None = None
    aborted: bool = False
    crashed: bool = False


@dataclasses.dataclass
class Job:
    """What one worker runs, handed to wherever it starts.

    ``main(job, report)`` is the runtime's worker loop: the backend calls it
    where the worker runs, with a ``report`` that sends an event back to the
    supervisor; its last event is the worker's ``Outcome``.  ``report`` may
    raise if an event cannot travel; ``main`` then reports what replaces it.
    """

    node: Node
    worker: int
    inputs: tuple[Edge, ...]
    outputs: tuple[Edge, ...]
    stats: Memory
    row: int  # this worker's row in ``stats``
    main: Callable[[Job, Report], None]
    settings: Any = None  # what the runtime takes from the caller to the worker
    order: Any = None  # the stage's ``Turnstile``, if it is ordered and has several workers
    grace: float = 5.0  # ``shutdown_timeout``: what a stopping async worker gives its calls in flight

    @property
    def label(self) -> str:
        """``stage 'x' worker i of n``-style name, for threads and processes."""
        return f"streamflow-{self.node.name}-{self.worker}"


class Backend(Protocol):
    """How one run's workers start, stop and reach each other."""

    runs_in_caller: bool  # True: no workers at all; the caller chains the stages
    stops_calls: bool  # True: a running sync call can be stopped (per-item ``timeout``)
    shares_memory: bool  # True: ``memory`` and ``semaphore`` reach every worker; else edges keep order
    start_methods: tuple[str, ...]  # what the run option ``start_method`` may name (none: it takes none)
    packets_per_worker: int  # the default ``packets_in_flight`` for each worker of a stage

    def edge(self, link: Link) -> Edge:
        """The edge that carries ``link``."""

    def memory(self, size: int, what: str) -> Memory:
        """``size`` bytes every worker of the run can write and the caller read."""

    def semaphore(self, value: int) -> Any:
        """A semaphore every worker of the run can use (``acquire(block)``, ``release()``)."""

    def start(self, job: Job) -> None:
        """Start a worker running ``job``; returns at once."""

    def wait(self, timeout: float | None) -> list[Any]:
        """What workers reported (events, then ``Outcome``s) within ``timeout`` seconds.

        A worker that died without an outcome comes back as an ``Outcome``
        whose error is a ``WorkerCrashed``.  Returns early, maybe empty,
        after ``wake()``.
        """

    def wake(self) -> None:
        """Make a pending ``wait`` return now; safe from any thread."""

    def kill(self, node: int, worker: int) -> None:
        """End one worker at once (stuck past its ``timeout``); ``wait`` reports its crash."""

    def stop(self, grace: float) -> None:
        """Wait up to ``grace`` seconds for workers to end, then force them."""

    def release(self) -> None:
        """Free what the backend holds; idempotent."""


BackendFactory = Callable[[Plan, RunConfig], Backend]


def shutdown() -> None:
    """Stop what the backends loaded so far keep for the session (the process backend's fork server)."""
    for name in BACKENDS:
        module = sys.modules.get(f"{__name__}._{name}")
        stop = getattr(getattr(module, "BACKEND", None), "shutdown", None)
        if stop is not None:
            stop()


def load(name: str) -> Any:
    """The backend class registered as ``name``; raises ``OptionError`` for an unknown name."""
    if name not in BACKENDS:
        raise OptionError(f"backend={name!r} is not known; use one of {', '.join(map(repr, BACKENDS))}")
    module = importlib.import_module(f"{__name__}._{name}")
    return module.BACKEND

