"""The Ray backend: every worker a Ray actor, every edge a small channel actor.

::

    caller process                              Ray cluster
    --------------                              -----------
    supervisor thread  <-- ray.wait on run() --  WorkerActor.run -> job.main(job, report)  (one a worker)
                       <-- drain() ------------  EventActor: what workers reported before their end
    caller reads the last edge (open flows)      EdgeActor per edge: slots, FIFO of packets
    caller threads for sources that cannot travel --> EdgeActor 0

Uses the Ray the application initialised, else ``ray_address``, else starts
a local Ray for the run and shuts it down afterwards.  Every actor of the
run is killed when it ends, however it ends.  Per-stage resources come from
the stage's ``resources`` option (``num_cpus``, ``num_gpus``, ``memory``,
or custom resources), applied to each of its workers.  Each actor ships its
counters to the caller every quarter of a second, and with its outcome.
"""

from __future__ import annotations

import dataclasses
import pickle
import threading
import time
from typing import Any

import ray

from .._errors import WorkerCrashed
from .._options import RunConfig
from .._plan import Link, Node, Plan
from .._stats import WIDTH
from .._transport._memory import LocalBuffer
from .._transport._ray import RayEdge
from .._transport._serialize import PortableError, Reader, dumps, dumps_job
from . import Job, Outcome

__all__ = ["BACKEND", "RayBackend"]

_POLL = 0.05  # seconds between checks of the actors when nothing arrives
_SHIP = 0.25  # seconds between an actor's shipments of its counters
_ROW_BYTES = WIDTH * 8
_EVENT, _ROW = "event", "row"
_STANDARD = ("num_cpus", "num_gpus", "memory")


class _Worker:
    """Runs one worker of one stage for the whole run (its setup happens once)."""

    def run(self, shipped: bytes, events: Any) -> tuple[bytes, bytes]:
        job: Job = pickle.loads(shipped)
        local = LocalBuffer(len(job.stats.memory))
        job = dataclasses.replace(job, stats=local)
        start = job.row * _ROW_BYTES
        ended: list[bytes] = []

        def report(event: Any) -> None:
            data = dumps(event, Reader.CALLER)  # fails here, where the runtime handles it
            if isinstance(event, Outcome):
                ended.append(data)
            else:
                events.put.remote(_EVENT, data)

        def ship_counters(done: threading.Event) -> None:
            while not done.wait(_SHIP):
                events.put.remote(_ROW, bytes(local.memory[start : start + _ROW_BYTES]), job.row)

        done = threading.Event()
        shipper = threading.Thread(target=ship_counters, args=(done,), name="streamflow-ship", daemon=True)
        shipper.start()
        try:
            job.main(job, report)
        finally:
            done.set()
            shipper.join()
        ray.get(events.sync.remote())  # what it reported is there before its end is seen
        return ended[-1], bytes(local.memory[start : start + _ROW_BYTES])


class _Events:
    """What the workers of a run reported, kept until the caller drains it.

    A plain actor: the calls of one worker run in the order it made them.
    """

    def __init__(self) -> None:
        self._events: list[tuple[str, int, bytes]] = []

    def put(self, kind: str, data: bytes, row: int = 0) -> None:
        self._events.append((kind, row, data))

    def sync(self) -> None:
        pass

    def drain(self) -> list[tuple[str, int, bytes]]:
        events, self._events = self._events, []
        return events


_remote: Any = ray.remote
WorkerActor: Any = _remote(_Worker)
EventActor: Any = _remote(num_cpus=0)(_Events)


class RayBackend:
    runs_in_caller = False

    def __init__(self, plan: Plan, config: RunConfig) -> None:
        self._started_ray = False
        if not ray.is_initialized():
            ray.init(address=config.ray_address, include_dashboard=False, log_to_driver=False)
            self._started_ray = True
        self._edges: list[RayEdge] = []
        self._runs: dict[Any, tuple[Job, Any]] = {}
        self._events = EventActor.remote()
        self._actors: list[Any] = [self._events]
        self._woken = threading.Event()
        self._memory: LocalBuffer | None = None
        self._released = False

    def edge(self, link: Link) -> RayEdge:
        edge = RayEdge(
            name=link.name,
            capacity=link.capacity,
            producers=link.producers,
            consumers=link.consumers,
            shared_buffer=link.shared_buffer,
            reader=Reader.CALLER if link.consumer is None else Reader.FRESH,
        )
        self._edges.append(edge)
        return edge

    def memory(self, size: int, what: str) -> LocalBuffer:
        self._memory = LocalBuffer(size)
        return self._memory

    def start(self, job: Job) -> None:
        actor = WorkerActor.options(**_resources(job.node)).remote()
        self._actors.append(actor)
        run = actor.run.remote(dumps_job(job), self._events)
        self._runs[run] = (job, actor)

    def wait(self, timeout: float | None) -> list[Any]:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            outcomes = self._collect()
            if outcomes or self._woken.is_set():
                self._woken.clear()
                return outcomes
            if deadline is not None and time.monotonic() >= deadline:
                return []

    def _collect(self) -> list[Any]:
        """Events reported so far, then the outcomes of the workers that ended."""
        outcomes: list[Any] = []
        if not self._runs:
            time.sleep(_POLL)  # only caller threads are left: the engine asks them
            return outcomes
        ready, _ = ray.wait(list(self._runs), num_returns=len(self._runs), timeout=_POLL)
        # What the ended workers reported is all in the event actor by now
        # (they synced with it before returning): take it before their ends,
        # so that their final counters are the last written.
        events = []
        for kind, row_index, data in ray.get(self._events.drain.remote()):
            if kind == _ROW:
                if self._memory is not None:
                    _copy_row(self._memory, row_index, data)
            else:
                events.append(pickle.loads(data))
        for ref in ready:
            job, _actor = self._runs.pop(ref)
            try:
                data, row = ray.get(ref)
            except ray.exceptions.RayActorError as exc:
                outcomes.append(_crash(job.node, job.worker, exc))
                continue
            _copy_row(job.stats, job.row, row)
            outcomes.append(pickle.loads(data))
        return events + outcomes

    def wake(self) -> None:
        self._woken.set()

    def stop(self, grace: float) -> None:
        if self._runs:
            ray.wait(list(self._runs), num_returns=len(self._runs), timeout=grace)
        for actor in self._actors:
            ray.kill(actor, no_restart=True)

    def release(self) -> None:
        if self._released:
            return
        self._released = True
        for actor in self._actors:
            ray.kill(actor, no_restart=True)
        if self._started_ray:
            ray.shutdown()


BACKEND = RayBackend


def _copy_row(memory: Any, index: int, row: bytes) -> None:
    """Put an actor's counters into the caller's table."""
    start = index * _ROW_BYTES
    memoryview(memory.memory).cast("B")[start : start + _ROW_BYTES] = row


def _crash(node: Node, worker: int, error: Exception) -> Outcome:
    cause = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    crash = WorkerCrashed(
        f"worker {worker + 1} of {node.workers} of stage '{node.name}' (a Ray actor) died "
        f"before its stream ended; likely cause: the actor's process was killed, ran out "
        f"of memory, or its node left the cluster ({cause})"
    )
    return Outcome(node.index, worker, error=PortableError(crash))


def _resources(node: Node) -> dict[str, Any]:
    wanted = dict(node.options.resources or ())
    options: dict[str, Any] = {name: wanted.pop(name) for name in _STANDARD if name in wanted}
    if wanted:
        options["resources"] = wanted
    return options
