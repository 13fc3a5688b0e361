"""How workers run: one module per backend, loaded by the name users pass.

A backend is mechanism only: how a worker starts, stops and reports, and
which edge carries packets between workers.  Everything a run does alike
on every backend (wiring edges, caller-side threads, outcomes, statistics,
shutdown order, the worker loop itself) is the runtime's, written once; a
backend receives ``Job``s whose ``main`` it calls where the worker runs.

::

    runtime                                     backend (this package)
    -------                                     ----------------------
    Engine: edges, stats, jobs  --start(job)--> a thread / process / task calls job.main(job, report)
    Supervisor                  <--wait()-----  the records workers reported, their Outcomes, crashes

This module is the contract: every backend module defines ``BACKEND``, a
subclass of ``WorkerBackend`` (workers somewhere, reporting records), or of
``InCaller`` (no workers: the runtime chains the stages in the caller), and
``load(name)`` returns it.  ``ThreadWorkers`` runs jobs on threads of the
caller, for the thread backend and for the sources every backend reads in
the caller.
"""

from __future__ import annotations

import abc
import importlib
import sys
from typing import Any, ClassVar

from .._errors import OptionError
from .._options import RunConfig
from .._plan import Link, Plan
from .._records import Job, Memory, Record
from .._transport import Edge
from ._threads import ThreadWorkers

__all__ = ["BACKENDS", "Backend", "InCaller", "ThreadWorkers", "WorkerBackend", "load", "shutdown"]

BACKENDS = ("process", "thread", "inline", "ray")


class Backend(abc.ABC):
    """What every backend declares about itself."""

    stops_calls: ClassVar[bool]  # a running sync call can be stopped (per-item ``timeout``)
    shares_memory: ClassVar[bool]  # ``memory`` and ``semaphore`` reach every worker; else edges keep order
    start_methods: ClassVar[tuple[str, ...]] = ()  # what the run option ``start_method`` may name
    packets_per_worker: ClassVar[int] = 2  # the default ``packets_in_flight`` for each worker of a stage

    @staticmethod
    def shutdown() -> None:
        """Stop what the backend keeps for the session between runs (nothing, unless it says)."""


class InCaller(Backend):
    """A backend with no workers: the runtime runs the stages in the caller's thread."""


class WorkerBackend(Backend):
    """How one run's workers start, stop and reach each other."""

    @abc.abstractmethod
    def __init__(self, plan: Plan, config: RunConfig) -> None: ...

    @abc.abstractmethod
    def edge(self, link: Link) -> Edge:
        """The edge that carries ``link``."""

    @abc.abstractmethod
    def memory(self, size: int, what: str) -> Memory:
        """``size`` bytes every worker of the run can write and the caller read."""

    def semaphore(self, value: int) -> Any:
        """A semaphore every worker of the run can use (``acquire(block)``, ``release()``).

        Only a backend whose workers share memory (``shares_memory``) has
        them; elsewhere the edges keep what needs one (an order).
        """
        raise NotImplementedError(f"{type(self).__name__} shares no memory between its workers")

    @abc.abstractmethod
    def start(self, job: Job) -> None:
        """Start a worker running ``job``; returns at once."""

    @abc.abstractmethod
    def wait(self, timeout: float | None) -> list[Record]:
        """What workers reported within ``timeout`` seconds (their records, then ``Outcome``s).

        A worker that died without an outcome comes back as an ``Outcome``
        whose error is a ``WorkerCrashed``.  Returns early, maybe empty,
        after ``wake()``.
        """

    @abc.abstractmethod
    def wake(self) -> None:
        """Make a pending ``wait`` return now; safe from any thread."""

    @abc.abstractmethod
    def kill(self, node: int, worker: int) -> None:
        """End one worker at once (stuck past its ``timeout``); ``wait`` reports its crash."""

    @abc.abstractmethod
    def stop(self, grace: float) -> None:
        """Wait up to ``grace`` seconds for workers to end, then force them."""

    @abc.abstractmethod
    def release(self) -> None:
        """Free what the backend holds; idempotent."""


def load(name: str) -> type[Backend]:
    """The backend registered as ``name``; raises ``OptionError`` for an unknown name."""
    if name not in BACKENDS:
        raise OptionError(f"backend={name!r} is not known; use one of {', '.join(map(repr, BACKENDS))}")
    backend: type[Backend] = importlib.import_module(f"{__name__}._{name}").BACKEND
    return backend


def shutdown() -> None:
    """Stop what the backends loaded so far keep for the session (the process backend's fork server)."""
    for name in BACKENDS:
        module = sys.modules.get(f"{__name__}._{name}")
        if module is not None:
            module.BACKEND.shutdown()
