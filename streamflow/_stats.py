"""Per-worker counters, cheap enough to be always on, and what they add up to.

Each worker owns one row of a table of doubles: packets in and out, seconds
waiting for input, seconds blocked on output, start and end times (from
``time.perf_counter``, which every process on the machine shares).  The
table lives in a bytearray for threads and in shared memory for processes,
so the caller reads it live, without messages.  Workers accumulate in local
variables and write their row every few packets and at the end.
"""

from __future__ import annotations

import dataclasses
import os
import textwrap
import time
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["FIELDS", "StageStats", "StatsTable", "WorkerStats", "report"]

FIELDS = (
    "items_in", "items_out", "waiting", "blocked", "started", "ended",
    "retries", "skips", "timeouts", "replaced", "overrun_at",
)
ITEMS_IN, ITEMS_OUT, WAITING, BLOCKED, STARTED, ENDED, RETRIES, SKIPS, TIMEOUTS, REPLACED, OVERRUN_AT = range(
    len(FIELDS)
)
WIDTH = len(FIELDS)


@dataclasses.dataclass(frozen=True)
class WorkerStats:
    """What one worker has done so far; times in seconds."""

    stage: str
    worker: int
    items_in: int
    items_out: int
    busy: float  # running the stage's own code
    waiting: float  # waiting for input
    blocked: float  # waiting for a free slot downstream
    elapsed: float
    retries: int = 0  # items tried again after they failed
    skips: int = 0  # items given up on (``on_error="skip"``)
    timeouts: int = 0  # attempts that overran ``timeout``
    replaced: int = 0  # times the worker died and a new one took its place


@dataclasses.dataclass(frozen=True)
class StageStats:
    """A stage's workers added up; times in seconds."""

    stage: str
    workers: int
    items_in: int
    items_out: int
    busy: float  # all its workers together
    waiting: float
    blocked: float
    elapsed: float  # the longest any of its workers has been alive
    run_elapsed: float = 0.0  # since the run's first worker started: the same for every stage
    retries: int = 0
    skips: int = 0
    timeouts: int = 0
    replaced: int = 0

    @property
    def busy_share(self) -> float:
        """Busy time over the time its workers were alive (0 to 1)."""
        alive = self.elapsed * self.workers
        return min(1.0, self.busy / alive) if alive > 0 else 0.0

    @property
    def rate(self) -> float:
        """Items out (or in, for a sink) per second of the run: comparable across stages."""
        items = self.items_out or self.items_in
        seconds = self.run_elapsed or self.elapsed
        return items / seconds if seconds > 0 else 0.0


class StatsTable:
    """One row of counters per worker, over a buffer of doubles."""

    def __init__(self, names: Sequence[tuple[str, int]], buffer: Any) -> None:
        """``names``: (stage name, workers) per node; ``buffer``: writable, WIDTH doubles a worker."""
        self._names = list(names)
        self._view = memoryview(buffer).cast("B").cast("d")
        self._offsets = []
        offset = 0
        for _, workers in self._names:
            self._offsets.append(offset)
            offset += workers
        self.rows = offset

    @staticmethod
    def size(names: Sequence[tuple[str, int]]) -> int:
        """Bytes needed for ``names``."""
        return 8 * WIDTH * sum(workers for _, workers in names)

    def index(self, node: int, worker: int) -> int:
        """The row of ``worker`` of ``node``."""
        return self._offsets[node] + worker

    def row(self, node: int, worker: int) -> Any:
        start = self.index(node, worker) * WIDTH
        return self._view[start : start + WIDTH]

    @staticmethod
    def view(memory: Any, index: int) -> Any:
        """Row ``index`` of a table over ``memory``, as a worker writes it."""
        start = index * WIDTH
        return memoryview(memory).cast("B").cast("d")[start : start + WIDTH]

    def workers(self) -> list[WorkerStats]:
        now = time.perf_counter()
        out = []
        for node, (name, workers) in enumerate(self._names):
            for worker in range(workers):
                row = self.row(node, worker)
                started, ended = row[STARTED], row[ENDED]
                elapsed = 0.0 if not started else (ended or now) - started
                out.append(
                    WorkerStats(
                        stage=name,
                        worker=worker,
                        items_in=int(row[ITEMS_IN]),
                        items_out=int(row[ITEMS_OUT]),
                        busy=max(0.0, elapsed - row[WAITING] - row[BLOCKED]),
                        waiting=row[WAITING],
                        blocked=row[BLOCKED],
                        elapsed=elapsed,
                        retries=int(row[RETRIES]),
                        skips=int(row[SKIPS]),
                        timeouts=int(row[TIMEOUTS]),
                        replaced=int(row[REPLACED]),
                    )
                )
        return out

    def stages(self) -> list[StageStats]:
        by_stage: dict[str, list[WorkerStats]] = {}
        for stats in self.workers():
            by_stage.setdefault(stats.stage, []).append(stats)
        run_elapsed = self._run_elapsed()
        return [
            StageStats(
                stage=name,
                workers=len(rows),
                items_in=sum(r.items_in for r in rows),
                items_out=sum(r.items_out for r in rows),
                busy=sum(r.busy for r in rows),
                waiting=sum(r.waiting for r in rows),
                blocked=sum(r.blocked for r in rows),
                elapsed=max(r.elapsed for r in rows),
                run_elapsed=run_elapsed,
                retries=sum(r.retries for r in rows),
                skips=sum(r.skips for r in rows),
                timeouts=sum(r.timeouts for r in rows),
                replaced=sum(r.replaced for r in rows),
            )
            for name, rows in by_stage.items()
        ]

    def _run_elapsed(self) -> float:
        """From the first worker's start to the last one's end (or now)."""
        now = time.perf_counter()
        started: list[float] = []
        ended: list[float] = []
        running = False
        for node, (_, workers) in enumerate(self._names):
            for worker in range(workers):
                row = self.row(node, worker)
                if row[STARTED]:
                    started.append(float(row[STARTED]))
                    running = running or not row[ENDED]
                    ended.append(float(row[ENDED]))
        if not started:
            return 0.0
        return (now if running else max(ended)) - min(started)

    def release(self) -> None:
        """Let go of the shared buffer, keeping a private copy of the counters."""
        final = bytearray(self._view.cast("B"))
        self._view.release()
        self._view = memoryview(final).cast("d")


def bottleneck(stages: Sequence[StageStats]) -> StageStats | None:
    """The stage whose workers each spent the most time busy, if any did anything.

    Busy seconds per worker, not the busy share: a source that ran flat out
    for a moment and then ended is not what holds the flow back.
    """
    active = [s for s in stages if s.elapsed > 0]
    return max(active, key=lambda s: s.busy / s.workers, default=None)


def advice(
    stage: StageStats, stages: Sequence[StageStats], backend: str, cores: int, upstream: Sequence[str] = ()
) -> str:
    """What to try to speed up a flow bottlenecked on ``stage``, on ``cores`` cores; ``upstream``:
    the stages that feed it."""
    if stage.busy_share < 0.5:
        return (
            "no stage is busy most of the time: the flow waits on its edges; raise "
            "packets_in_flight, or set max_message_size if messages are large"
        )
    busy_workers = sum(s.workers for s in stages if s.busy_share >= 0.5)
    if backend == "thread":
        tips = [
            f"if '{stage.stage}' waits on I/O or on code that releases the GIL (numpy, most "
            f"I/O), give it more workers; if it runs Python code, threads share one core: "
            f"use the process backend"
        ]
    elif backend != "ray" and busy_workers >= cores:
        tips = [
            f"this machine's {cores} cores already run {busy_workers} busy workers, so more "
            f"workers will not help '{stage.stage}': make it cheaper (profile its function), "
            f"or run on more cores (backend='ray')"
        ]
    elif backend == "ray":
        tips = [f"give '{stage.stage}' more workers (workers={stage.workers + 1} or more), as the cluster allows"]
    else:
        tips = [f"give '{stage.stage}' more workers (workers={stage.workers + cores - busy_workers})"]
    by_name = {s.stage: s for s in stages}
    for feeder in (by_name[name] for name in upstream if name in by_name):
        if feeder.blocked > feeder.busy:
            tips.append(
                f"'{feeder.stage}' spends most of its time blocked on it; a larger "
                f"packets_in_flight there only helps if '{stage.stage}' has bursts"
            )
    return "; ".join(tips)


def report(
    stages: Sequence[StageStats],
    backend: str = "process",
    cores: int | None = None,
    upstream: Mapping[str, Sequence[str]] | None = None,
) -> str:
    """A table of ``stages`` naming the bottleneck and what to try.

    ``rate/s`` is items out (in, for a sink) per second of the run so far;
    ``busy``, ``waiting`` and ``blocked`` are shares of the time its workers
    were alive; ``retries``, ``skips``, ``timeouts`` and ``replaced``
    (shown when a failure policy acted) count items and replaced workers.  ``cores``: of this
    machine, by default; ``upstream``: the names of the stages that feed each stage (the plan's).
    """
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    acted = any(s.retries or s.skips or s.timeouts or s.replaced for s in stages)
    lines = [
        f"{'stage':20} {'workers':>7} {'in':>9} {'out':>9} {'rate/s':>10} "
        f"{'busy':>6} {'waiting':>8} {'blocked':>8}" + (f" {'retries':>7} {'skips':>6} {'timeouts':>8} {'replaced':>8}" if acted else "")
    ]
    slowest = bottleneck(stages)
    for s in stages:
        alive = s.elapsed * s.workers or 1.0
        mark = "  <- bottleneck" if s is slowest else ""
        lines.append(
            f"{s.stage[:20]:20} {s.workers:>7} {s.items_in:>9} {s.items_out:>9} {s.rate:>10.1f} "
            f"{s.busy / alive:>6.0%} {s.waiting / alive:>8.0%} {s.blocked / alive:>8.0%}"
            + (f" {s.retries:>7} {s.skips:>6} {s.timeouts:>8} {s.replaced:>8}" if acted else "")
            + mark
        )
    if slowest is not None:
        lines.append("")
        tips = advice(slowest, stages, backend, cores, (upstream or {}).get(slowest.stage, ()))
        text = f"bottleneck: '{slowest.stage}' ({slowest.busy_share:.0%} busy); try: {tips}"
        lines.extend(textwrap.wrap(text, width=88, subsequent_indent="  "))
    return "\n".join(lines)
