"""What only the Ray backend has to show: lockstep across workers, killed workers,
resources, nothing left on the cluster (issue 6)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any

import pytest

ray = pytest.importorskip("ray")

import streamflow as sf  # noqa: E402
from tests.stages import count_to, forever, square, total  # noqa: E402

pytestmark = [pytest.mark.foreign_fds, pytest.mark.usefixtures("ray_cluster")]


@ray.remote(num_cpus=0)
class Overlap:
    """Counts stages active at once; any overlap is recorded."""

    def __init__(self) -> None:
        self.active = 0
        self.overlaps = 0

    def enter(self) -> None:
        self.active += 1
        self.overlaps += self.active > 1

    def leave(self) -> None:
        self.active -= 1

    def result(self) -> int:
        return self.overlaps


def _busy(counter: Any) -> None:
    ray.get(counter.enter.remote())
    sum(range(2000))
    ray.get(counter.leave.remote())


@sf.stage(packets_in_flight=1)
def lock_source(n: int, counter: Any) -> Iterator[int]:
    for i in range(n):
        _busy(counter)
        yield i


@sf.stage(packets_in_flight=1)
def lock_middle(xs: Iterable[int], counter: Any) -> Iterator[int]:
    for x in xs:
        _busy(counter)
        yield x


@sf.stage
def lock_sink(xs: Iterable[int], counter: Any) -> int:
    count = 0
    for _ in xs:
        _busy(counter)
        count += 1
    return count


def test_one_packet_in_flight_is_lockstep_across_workers() -> None:
    counter = Overlap.remote()
    try:
        flow = lock_source(n=30, counter=counter) | lock_middle(counter=counter) | lock_sink(counter=counter)
        assert flow.run(backend="ray") == 30
        assert ray.get(counter.result.remote()) == 0
    finally:
        ray.kill(counter)


@sf.stage(workers=2)
def killed_at(xs: Iterable[int], at: int) -> Iterator[int]:
    import os
    import signal

    for x in xs:
        if x == at:
            os.kill(os.getpid(), signal.SIGKILL)  # as the OOM killer would
        yield x


def test_a_killed_worker_process_raises_worker_crashed() -> None:
    run = (forever() | killed_at(at=5) | total).start(backend="ray", shutdown_timeout=1)
    with pytest.raises(sf.WorkerCrashed, match=r"stage 'killed_at' \(a Ray task\) died before its stream ended"):
        run.result(timeout=60)


def test_resources_per_stage_are_validated_and_applied() -> None:
    with pytest.raises(sf.OptionError, match="resources="):
        square.options(resources={"num_cpus": -1})
    heavy = square.options(resources={"num_cpus": 1})
    assert (count_to(n=10) | heavy | total).run(backend="ray") == sum(x * x for x in range(10))
    too_much = square.options(resources={"num_gpus": 1})  # the test cluster has none
    run = (count_to(n=3) | too_much | total).start(backend="ray")
    with pytest.raises(TimeoutError):
        run.result(timeout=3)  # it cannot be scheduled: it waits, as Ray does
    run.cancel()


def test_cancel_and_break_leave_nothing_on_the_cluster() -> None:
    with (forever() | square).iter(backend="ray") as items:
        for x in items:
            if x > 10:
                break
    run = (forever() | total).start(backend="ray")
    run.cancel()
    alive = [
        a for a in ray._private.state.actors().values()
        if a["State"] != "DEAD" and not (a.get("Name") or "").startswith("streamflow-")
    ]
    assert alive == []  # the session's hub and events actors aside


_TWO_RUNS = """
import streamflow as sf
from tests.stages import count_to, total
print((count_to(n=5) | total).run(backend="ray"), (count_to(n=5) | total).run(backend="ray"))
"""


@pytest.mark.timeout(180)
def test_runs_that_start_ray_themselves_run_again() -> None:
    """Each run starts and stops its own local Ray; the second must not reach for the first's hub."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, "-c", _TWO_RUNS], capture_output=True, text=True, timeout=170, cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-2:] == ["10", "10"]


def test_the_default_packets_in_flight_is_the_backends() -> None:
    """A hop through the hub is a round trip: Ray's default keeps 64 packets a worker in flight."""
    from streamflow import _runtime
    from streamflow._options import RunConfig
    from streamflow._plan import build_plan

    stages = (count_to(n=3) | square.options(workers=2) | square.options(packets_in_flight=3) | total).stages
    ray_plan = build_plan(stages, _runtime.packets_per_worker(RunConfig(backend="ray")))
    assert [link.capacity for link in ray_plan.links] == [64, 128, 3]
    process_plan = build_plan(stages, _runtime.packets_per_worker(RunConfig(backend="process")))
    assert [link.capacity for link in process_plan.links] == [2, 4, 3]
    assert square.options(workers=2).packets_in_flight == 4  # a stage on its own: the local default
