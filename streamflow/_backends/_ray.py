"""The Ray backend: every worker a Ray actor, every edge a small channel actor.

::

    caller process                              Ray cluster
    --------------                              -----------
    supervisor thread  <-- ray.wait on run() --  WorkerActor.run -> run_worker(...)  (one a worker)
    caller reads the last edge (open flows)      EdgeActor per edge: slots, FIFO of object refs
    feeder threads for sources that cannot travel --> EdgeActor 0

Uses the Ray the application initialised, else ``ray_address``, else starts
a local Ray for the run and shuts it down afterwards.  Every actor of the
run is killed when it ends, however it ends.  Per-stage resources come from
the stage's ``resources`` option (``num_cpus``, ``num_gpus``, ``memory``,
or custom resources), applied to each of its workers.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import cloudpickle
import ray

from .._errors import WorkerCrashed
from .._execution import Execution, Supervised
from .._plan import Node, Plan, RunConfig
from .._stats import WIDTH, StatsTable
from .._transport._ray import EdgeActor, RayReceiver, RaySender
from .._worker import Outcome, portable, run_worker
from ._threads import WorkerThreads

__all__ = ["start"]

_POLL = 0.05  # seconds between checks of the actors when nothing arrives
_STANDARD = ("num_cpus", "num_gpus", "memory")


def start(plan: Plan, config: RunConfig) -> Execution:
    """Run ``plan`` on Ray actors."""
    return Supervised(plan, config, RayEngine(plan, config))


class _Worker:
    """Runs one worker of one stage for the whole run (its setup happens once)."""

    def run(
        self, node: Node, worker: int, inbox: Any, inbox_share: int, outbox: Any
    ) -> tuple[Outcome, list[float]]:
        stage = node.stage
        receiver = None if inbox is None else RayReceiver(inbox, stage.shared_buffer, inbox_share)
        share = max(1, stage.packets_in_flight // node.workers)
        sender = None if outbox is None else RaySender(outbox, node.name, share, worker)
        row = [0.0] * WIDTH
        outcome = run_worker(node, worker, receiver, sender, row)
        return portable(outcome, node, _checked), row


WorkerActor: Any = ray.remote(_Worker)


def _checked(outcome: Outcome) -> Outcome:
    cloudpickle.dumps(outcome)  # what Ray will do with it: fail here, where it can be reported
    return outcome


class RayEngine:
    def __init__(self, plan: Plan, config: RunConfig) -> None:
        self._plan = plan
        self._started_ray = False
        if not ray.is_initialized():
            ray.init(address=config.ray_address, include_dashboard=False, log_to_driver=False)
            self._started_ray = True
        self._edges = [EdgeActor.remote(e.capacity, e.producers, e.consumers) for e in plan.edges]
        self._runs: dict[Any, tuple[Any, Node, int]] = {}
        self._actors: list[Any] = []
        self._woken = threading.Event()
        self._feeders = WorkerThreads(finished=self._woken.set)
        self._released = False
        last = plan.nodes[-1].stage
        self.output = (
            RayReceiver(self._edges[-1], last.shared_buffer, last.packets_in_flight) if plan.open else None
        )
        names = plan.stat_names()
        self.stats = StatsTable(names, bytearray(StatsTable.size(names)))

    def launch(self) -> None:
        for node in self._plan.nodes:
            inbox = self._edges[node.index - 1] if node.index > 0 else None
            outbox = self._edges[node.index] if node.index < len(self._edges) else None
            for worker in range(node.workers):
                if node.in_caller:
                    self._launch_thread(node, worker, outbox)
                    continue
                actor = WorkerActor.options(**_resources(node)).remote()
                self._actors.append(actor)
                share = 0
                if inbox is not None:
                    share = max(1, self._plan.edges[node.index - 1].capacity // node.workers)
                run = actor.run.remote(node, worker, inbox, share, outbox)
                self._runs[run] = (actor, node, worker)

    def _launch_thread(self, node: Node, worker: int, outbox: Any) -> None:
        def ends() -> tuple[None, RaySender | None]:
            share = max(1, node.stage.packets_in_flight // node.workers)
            return None, None if outbox is None else RaySender(outbox, node.name, share, worker)

        self._feeders.start(node, worker, ends, self.stats.row(node.index, worker))

    def wait(self, timeout: float | None) -> list[Outcome]:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            outcomes = self._collect()
            if outcomes or self._woken.is_set():
                self._woken.clear()
                return outcomes
            if deadline is not None and time.monotonic() >= deadline:
                return []

    def _collect(self) -> list[Outcome]:
        outcomes = []
        if self._runs:
            ready, _ = ray.wait(list(self._runs), num_returns=len(self._runs), timeout=_POLL)
            for ref in ready:
                actor, node, worker = self._runs.pop(ref)
                try:
                    outcome, row = ray.get(ref)
                except ray.exceptions.RayActorError as exc:
                    outcome, row = self._crash(node, worker, exc), None
                if row is not None:
                    self._record(node, worker, row)
                outcomes.append(outcome)
        return outcomes + self._feeders.outcomes()

    def _record(self, node: Node, worker: int, row: list[float]) -> None:
        target = self.stats.row(node.index, worker)
        for index, value in enumerate(row):
            target[index] = value

    def _crash(self, node: Node, worker: int, error: Exception) -> Outcome:
        cause = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return Outcome(
            node.index,
            worker,
            error=WorkerCrashed(
                f"worker {worker + 1} of {node.workers} of stage '{node.name}' (a Ray actor) died "
                f"before its stream ended; likely cause: the actor's process was killed, ran out "
                f"of memory, or its node left the cluster ({cause})"
            ),
        )

    def wake(self) -> None:
        self._woken.set()

    def progress(self) -> int:
        if self._released:
            return 0
        return sum(ray.get([edge.moved.remote() for edge in self._edges]))

    def abort(self) -> None:
        if not self._released:
            for edge in self._edges:
                edge.abort.remote()

    def stop(self, grace: float) -> None:
        if self._runs:
            ray.wait(list(self._runs), num_returns=len(self._runs), timeout=grace)
        for actor in self._actors:
            ray.kill(actor, no_restart=True)
        self._feeders.join(time.monotonic() + grace)

    def release(self) -> None:
        if self._released:
            return
        self._released = True
        for actor in [*self._actors, *self._edges]:
            ray.kill(actor, no_restart=True)
        self.stats.release()
        if self._started_ray:
            ray.shutdown()


def _resources(node: Node) -> dict[str, Any]:
    wanted = dict(node.stage.run_options.resources or ())
    options: dict[str, Any] = {name: wanted.pop(name) for name in _STANDARD if name in wanted}
    if wanted:
        options["resources"] = wanted
    return options
