"""What every parallel backend does alike, written once: the life of a run's workers.

::

    Engine                                     backend (mechanism)
    ------                                     -------------------
    edges: one a link  <--------------------   edge(link)
    stats: one row a worker  <--------------   memory(size)
    launch: a Job a worker  ---------------->  start(job)           (or a caller thread,
    wait: events and Outcomes  <------------   wait(timeout)         for one-shot sources)
    replace: a dead worker's Job again  ---->  start(job)
    abort: every edge; stop; release  ------>  stop(grace), release()

Shutdown order: abort the edges (every blocked worker wakes), stop the
workers (grace, then force), then, once the caller has let go of the last
edge, release the edges, the statistics and the backend.
"""

from __future__ import annotations

import dataclasses
import time
import weakref
from collections.abc import Callable

from .._backends import ThreadWorkers, WorkerBackend
from typing import Any

from .._plan import Fanout, Link, Node, Plan, Route, Tee, links_of
from .._records import End, Job, Memory, Record
from .._stats import StatsTable
from .._transport import Edge, Held, Receiver
from .._transport._turnstile import Order, OrderedEdge, Turnstile, window_for
from .._transport._zip import ZipReceiver
from ._fanout import lock_key
from ._relay import caller_settings
from ._signals import check_interrupt
from ._worker import run_job

__all__ = ["Engine"]


class Engine:
    """A plan's edges, statistics and workers on one backend."""

    def __init__(self, plan: Plan, backend: WorkerBackend, grace: float = 5.0, spin: float | None = None) -> None:
        """``grace``: the run's ``shutdown_timeout``, for the workers' own clean-up; ``spin``: its
        ``spin_us``, for ordered stages' waits (None: ``STREAMFLOW_SPIN_US`` or the default)."""
        self._plan = plan
        self._grace = grace
        self._backend = backend
        self._edges: dict[int, Edge] = {}  # by link
        self._memory: Memory | None = None
        self._turnstiles: dict[int, Order] = {}
        self._locks: dict[tuple[int, ...], Any] = {}  # a zip's entry and join, where several workers share one
        self._released = False
        names = plan.stat_names()
        try:
            for link in plan.links:
                self._edges[link.index] = backend.edge(link)
            self._memory = backend.memory(StatsTable.size(names), "the run's statistics")
            for node in plan.nodes:
                if node.options.keeps_order:
                    (link,) = plan.inputs(node)  # an ordered stage reads one stream
                    self._turnstiles[node.index] = _turnstile(node, backend, self._edges[link.index], spin)
            for key in _shared_zips(plan):
                self._locks[key] = backend.semaphore(1)
        except BaseException:
            self.release()
            raise
        self.stats = StatsTable(names, self._memory.memory)
        # Not backend.wake itself: the engine must not keep itself alive through its threads.
        self._callers = ThreadWorkers(finished=_waker(backend))
        self._jobs: dict[tuple[int, int], Job] = {}
        # The caller reads an open flow's output, as one consumer of it (of a zip's, one of each).
        readers = [self._edges[link.index].receiver(0) for link in plan.caller_links]
        self.output: Receiver | None = None
        if plan.caller_join == "zip":
            self.output = ZipReceiver(readers)
        elif readers:
            (self.output,) = readers

    def launch(self) -> None:
        """Start every worker of every node; stops early on a held-back Ctrl-C."""
        assert self._memory is not None
        settings = caller_settings()
        for node in self._plan.nodes:
            for worker in range(node.workers):
                job = Job(
                    node=node,
                    worker=worker,
                    inputs=tuple(End(link.index, self._edges[link.index], worker) for link in self._plan.inputs(node)),
                    outputs=tuple(self._ends(link, node, worker) for link in self._plan.outputs(node)),
                    stats=self._memory,
                    row=self.stats.index(node.index, worker),
                    main=run_job,
                    settings=settings,
                    order=self._turnstiles.get(node.index),
                    grace=self._grace,
                    locks=self._locks,
                )
                self._jobs[node.index, worker] = job
                check_interrupt()
                (self._callers if node.in_caller else self._backend).start(job)

    def _ends(self, link: Link, node: Node, worker: int) -> End:
        return End(link.index, self._edges[link.index], self._plan.endpoint(link, node, worker))

    def replaceable(self, node: int) -> bool:
        """Whether a dead worker of ``node`` can be replaced: every edge it uses can be taken over."""
        job = self._jobs[node, 0]
        stage = self._plan.node(node)
        if stage.in_caller or job.order is not None:
            return False  # an ordered stage's turn would wait for the dead worker's input forever
        if stage.is_async and stage.options.concurrency > 1:
            return False  # the inputs of its calls in flight are gone with it; one alone is retried
        return all(end.edge.recoverable for end in job.inputs + job.outputs)

    def held(self, node: int, worker: int) -> Held | None:
        """The input packet a dead worker held, if any."""
        for end in self._jobs[node, worker].inputs:
            held = end.edge.held(end.endpoint)
            if held is not None:
                return held
        return None

    def replace(self, node: int, worker: int, *, again: int = 0, letters: tuple[Any, ...] = ()) -> None:
        """Start a new worker in place of a dead one; ``again``: attempts so far at its held packet,
        which it takes first (0: the packet is freed; -1: it was skipped, and is freed);
        ``letters``: ``Failure`` records the new worker sends its dead-letter branch first."""
        job = dataclasses.replace(self._jobs[node, worker], letters=letters)
        for end in job.inputs:
            end.edge.again(end.endpoint, again)
        self._backend.start(job)

    def wait(self, timeout: float | None) -> list[Record]:
        """What workers reported within ``timeout`` seconds (their records, then ``Outcome``s)."""
        return self._backend.wait(timeout) + self._callers.events()

    def wake(self) -> None:
        self._backend.wake()

    def kill(self, node: int, worker: int) -> None:
        """End one worker at once; ``wait`` then reports its crash."""
        self._backend.kill(node, worker)

    def progress(self) -> int:
        """A number that changes whenever a packet moves."""
        return 0 if self._released else sum(edge.moved() for edge in self._edges.values())

    def abort(self) -> None:
        """Wake every worker blocked on an edge with ``Aborted``."""
        if not self._released:
            for edge in self._edges.values():
                edge.abort()
            for turnstile in self._turnstiles.values():
                turnstile.abort()

    def stop(self, grace: float) -> None:
        """Wait up to ``grace`` seconds for workers to end, then force them."""
        deadline = time.monotonic() + grace
        self._backend.stop(grace)
        self._callers.join(deadline)

    def release(self) -> None:
        """Free the edges, the statistics and the backend; idempotent."""
        if self._released:
            return
        self._released = True
        for edge in self._edges.values():
            edge.close()
        for turnstile in self._turnstiles.values():
            turnstile.close()
        if self._memory is not None:
            if hasattr(self, "stats"):
                self.stats.release()
            self._memory.close()
        self._backend.release()


def _turnstile(node: Node, backend: WorkerBackend, edge: Edge, spin: float | None) -> Order:
    """The shared order of an ordered node's inputs, in memory and semaphores of ``backend``,
    or kept by its input ``edge`` where workers share no memory (Ray)."""
    if not backend.shares_memory:
        assert isinstance(edge, OrderedEdge), "a backend without shared memory keeps order in its edges"
        turnstile: Order = edge.turnstile()
        return turnstile
    assert node.options.packets_in_flight is not None
    window = window_for(node.workers, node.options.packets_in_flight)
    # An async map worker waits in two threads: its input's, and its own for the turn.
    waiters = node.workers * (2 if node.is_async and node.per_item else 1)
    memory = backend.memory(Turnstile.size(waiters, window), f"the order of stage '{node.name}'")
    assert edge.numbered, "a backend with shared memory numbers an ordered stage's inputs in its edges"
    return Turnstile(waiters, window, memory, backend.semaphore, spin)


def _shared_zips(plan: Plan) -> list[tuple[int, ...]]:
    """The locks a run's zips need: an entry several workers feed, a join several workers read."""
    keys: dict[tuple[int, ...], None] = {}
    for node in plan.nodes:
        for tee in _zipped(node.fanout):
            if any(plan.link(link).producers > 1 for link in links_of(tee)):
                keys[lock_key(tee)] = None
        if node.join == "zip" and node.workers > 1:
            keys[node.inputs] = None
    return list(keys)


def _zipped(fanout: Fanout | None) -> list[Tee]:
    """The zips' entries in ``fanout``."""
    if isinstance(fanout, Tee):
        inner = [tee for branch in fanout.branches for tee in _zipped(branch)]
        return [fanout, *inner] if fanout.zipped else inner
    if isinstance(fanout, Route):
        return [tee for _, branch in fanout.choices for tee in _zipped(branch)] + _zipped(fanout.default)
    return []


def _waker(backend: WorkerBackend) -> Callable[[], None]:
    ref = weakref.ref(backend)

    def wake() -> None:
        target = ref()
        if target is not None:
            target.wake()

    return wake
