"""The Ray backend: every worker a Ray task, every edge a channel of the session's hub.

::

    caller process                                    Ray cluster
    --------------                                    -----------
    supervisor thread  <-- ray.wait on the tasks ---  _run_job task -> job.main(job, report)  (a worker each,
                       <-- drain(run) ------------    events actor: what workers reported       in the worker
    caller reads the last edge (open flows)           hub actor: the edges of every run          processes Ray
    caller threads for sources that cannot travel --> hub                                        keeps)

Workers are tasks, not actors: Ray runs them in the worker processes it
keeps ready, so a run starts in milliseconds instead of the seconds that
new actor processes take.  The hub and the events actor serve every run of
the driver's Ray session (``_transport/_hub``).  A worker task reserves no
CPU of the cluster unless its stage's ``resources`` ask for some
(``num_cpus``, ``num_gpus``, ``memory``, or custom resources): every worker
of a flow must run at once, whatever the size of the cluster.

Uses the Ray the application initialised, else ``ray_address``, else
starts a local Ray for the run and shuts it down afterwards.  A run's
tasks are cancelled, forcibly if need be, when it ends, however it ends.
Each worker ships its counters to the caller every quarter of a second,
and with its outcome.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import pickle
import threading
import time
from typing import Any

import ray

from .._errors import WorkerCrashed
from .._options import RunConfig
from .._plan import Link, Node, Plan
from .._stats import WIDTH
from .._transport._hub import forget_session, session_actor
from .._transport._main_classes import MainClasses
from .._transport._memory import LocalBuffer
from .._transport._ray import HubSemaphore, RayEdge
from .._records import Job, Outcome, PortableError, Record
from .._transport._serialize import Reader, dumps, dumps_job
from . import WorkerBackend

__all__ = ["BACKEND", "RayBackend"]

_POLL = 0.05  # seconds between checks of the tasks when nothing arrives
_SHIP = 0.25  # seconds between a worker's shipments of its counters
_CANCEL_WAIT = 10.0  # seconds for force-cancelled tasks to be gone
_ROW_BYTES = WIDTH * 8
_EVENT, _ROW = "event", "row"
_runs = itertools.count()


def _run_job(shipped: bytes, events: Any, run: str) -> tuple[bytes, bytes]:
    """A worker: run the job in this Ray worker process, reporting to ``events``."""
    job: Job = pickle.loads(shipped)
    local = LocalBuffer(len(job.stats.memory))
    start = job.row * _ROW_BYTES
    # A worker that replaces a dead one goes on from its counters, as the caller last saw them.
    local.memory[start : start + _ROW_BYTES] = job.stats.memory[start : start + _ROW_BYTES]
    job = dataclasses.replace(job, stats=local)
    ended: list[bytes] = []

    def report(event: Record) -> None:
        data = dumps(event, Reader.CALLER)  # fails here, where the runtime handles it
        if isinstance(event, Outcome):
            ended.append(data)
        else:
            events.put.remote(run, _EVENT, data)

    def ship_counters(done: threading.Event) -> None:
        while not done.wait(_SHIP):
            events.put.remote(run, _ROW, bytes(local.memory[start : start + _ROW_BYTES]), job.row)

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
    """What the workers of each run reported, kept until the caller drains it.

    A plain (not async) actor: the calls of one worker run in the order it
    made them.
    """

    def __init__(self) -> None:
        self._events: dict[str, list[tuple[str, int, bytes]]] = {}

    def put(self, run: str, kind: str, data: bytes, row: int = 0) -> None:
        self._events.setdefault(run, []).append((kind, row, data))

    def sync(self) -> None:
        pass

    def drain(self, run: str) -> list[tuple[str, int, bytes]]:
        return self._events.pop(run, [])


_remote: Any = ray.remote
RunJob: Any = _remote(num_cpus=0, max_retries=0)(_run_job)  # a crash is the runtime's to handle
EventActor: Any = _remote(num_cpus=0)(_Events)


class RayBackend(WorkerBackend):
    stops_calls = True  # tasks run on their worker process's main thread
    shares_memory = False  # workers may be on other machines
    # The default ``packets_in_flight`` for each worker of a stage: a hop through the hub is a
    # round trip of milliseconds, so an edge moves at most its packets in flight a round trip.
    packets_per_worker = 64

    def __init__(self, plan: Plan, config: RunConfig) -> None:
        self._started_ray = False
        if not ray.is_initialized():
            ray.init(address=config.ray_address, include_dashboard=False, log_to_driver=False)
            self._started_ray = True
        self._run = f"{os.getpid()}-{next(_runs)}"
        self._events = session_actor("events", EventActor)
        self._tasks: dict[Any, Job] = {}
        self._woken = threading.Event()
        self._memory: LocalBuffer | None = None
        self._shipped: MainClasses | None = None  # collected for the first edge between workers
        self._semaphores: list[HubSemaphore] = []
        self._released = False

    def edge(self, link: Link) -> RayEdge:
        fresh = link.reader is not None
        if fresh and self._shipped is None:
            self._shipped = MainClasses.collect()
        return RayEdge(
            key=(self._run, link.index),
            name=link.name,
            capacity=link.capacity,
            producers=link.producers,
            consumers=link.consumers,
            shared_buffer=link.shared_buffer,
            reader=Reader.FRESH if fresh else Reader.CALLER,
            producers_replaced=link.producer_replaced,
            consumers_replaced=link.consumer_replaced,
            producers_ordered=link.producer_ordered,
            consumers_ordered=link.consumer_ordered or link.consumer_zipped,  # one packet at a time, each
            shipped=self._shipped if fresh else None,
        )

    def memory(self, size: int, what: str) -> LocalBuffer:
        self._memory = LocalBuffer(size)
        return self._memory

    def semaphore(self, value: int) -> HubSemaphore:
        """A semaphore in the hub: each use a round trip (a zip's lock, where several workers share it)."""
        semaphore = HubSemaphore((self._run, -1 - len(self._semaphores)), value)
        self._semaphores.append(semaphore)
        return semaphore

    def start(self, job: Job) -> None:
        task = RunJob.options(**_resources(job.node)).remote(dumps_job(job), self._events, self._run)
        self._tasks[task] = job

    def wait(self, timeout: float | None) -> list[Record]:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            outcomes = self._collect()
            if outcomes or self._woken.is_set():
                self._woken.clear()
                return outcomes
            if deadline is not None and time.monotonic() >= deadline:
                return []

    def _collect(self) -> list[Record]:
        """Events reported so far, then the outcomes of the workers that ended."""
        if not self._tasks:
            time.sleep(_POLL)  # only caller threads are left: the engine asks them
            return []
        ready, _ = ray.wait(list(self._tasks), num_returns=len(self._tasks), timeout=_POLL)
        # What the ended workers reported is all in the events actor by now
        # (they synced with it before returning): take it before their ends,
        # so that their final counters are the last written.
        events: list[Record] = []
        for kind, row_index, data in ray.get(self._events.drain.remote(self._run)):
            if kind == _ROW:
                if self._memory is not None:
                    _copy_row(self._memory, row_index, data)
            else:
                events.append(pickle.loads(data))
        outcomes: list[Record] = []
        for task in ready:
            job = self._tasks.pop(task)
            try:
                data, row = ray.get(task)
            except (ray.exceptions.RayError, ray.exceptions.RayTaskError) as exc:
                outcomes.append(_crash(job.node, job.worker, exc))
                continue
            _copy_row(job.stats, job.row, row)
            outcomes.append(pickle.loads(data))
        return events + outcomes

    def wake(self) -> None:
        self._woken.set()

    def kill(self, node: int, worker: int) -> None:
        for task, job in list(self._tasks.items()):
            if job.node.index == node and job.worker == worker:
                ray.cancel(task, force=True)  # ends the worker process running it

    def stop(self, grace: float) -> None:
        tasks = list(self._tasks)
        if tasks:
            _, stubborn = ray.wait(tasks, num_returns=len(tasks), timeout=grace)
            for task in stubborn:
                ray.cancel(task, force=True)  # ends the worker process running it
            if stubborn:
                ray.wait(stubborn, num_returns=len(stubborn), timeout=_CANCEL_WAIT)

    def release(self) -> None:
        if self._released:
            return
        self._released = True
        for semaphore in self._semaphores:
            semaphore.close()
        if self._started_ray:
            forget_session()
            ray.shutdown()
        else:
            self._events.drain.remote(self._run)  # what came after the end


BACKEND = RayBackend


def _copy_row(memory: Any, index: int, row: bytes) -> None:
    """Put a worker's counters into the caller's table."""
    start = index * _ROW_BYTES
    memoryview(memory.memory).cast("B")[start : start + _ROW_BYTES] = row


def _crash(node: Node, worker: int, error: Exception) -> Outcome:
    cause = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    crash = WorkerCrashed(
        f"worker {worker + 1} of {node.workers} of stage '{node.name}' (a Ray task) died "
        f"before its stream ended; likely cause: its worker process was killed, ran out "
        f"of memory, or its node left the cluster ({cause})"
    )
    return Outcome(node.index, worker, error=PortableError(crash), crashed=True)


def _resources(node: Node) -> dict[str, Any]:
    wanted = dict(node.options.resources or ())
    options: dict[str, Any] = {name: wanted.pop(name) for name in ("num_cpus", "num_gpus", "memory") if name in wanted}
    if wanted:
        options["resources"] = wanted
    return options
