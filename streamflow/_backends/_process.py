"""The process backend: every worker a process, edges in shared memory.

::

    caller process                                        worker processes
    --------------                                        ----------------
    supervisor thread  <-- outcome pipe (one a worker) --  _worker_main -> run_worker(...)
      waits on pipes + process sentinels                   watchdog thread: exits if the
    caller thread reads the last ShmEdge (open flows)       caller process dies
    feeder threads run sources that cannot travel  --ShmEdge-->  ...

Start methods: ``spawn`` is the default because it is the one that is safe
whatever the caller is doing (fork copies a process mid-way through its
other threads' locks, and forkserver leaves a server process behind), and,
with stage functions pickled by value (cloudpickle) and the worker
bootstrap told not to import the caller's ``__main__``, it runs stages
defined in scripts and notebooks.  ``fork`` starts fastest; ``forkserver``
is in between.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.connection
import os
import pickle
import signal
import sys
import threading
import time
import types
from collections import ChainMap
from collections.abc import Iterator
from multiprocessing.reduction import ForkingPickler
from typing import Any

import cloudpickle

from .._errors import StreamflowError, WorkerCrashed
from .._execution import Execution, Supervised
from .._plan import Node, Plan, RunConfig
from .._stats import StatsTable
from .._transport._codec import pack, read, write
from .._transport._shm import SharedBuffer, ShmEdge, new_run_id, sweep
from .._worker import Outcome, portable, run_worker
from ._threads import WorkerThreads

__all__ = ["start"]

DEFAULT_START_METHOD = "spawn"
_STARTED = b"S"
_OUTCOME = b"O"
_KILL_WAIT = 1.0  # seconds between SIGTERM and SIGKILL for a worker that ignores it


def start(plan: Plan, config: RunConfig) -> Execution:
    """Run ``plan`` on worker processes."""
    return Supervised(plan, config, ProcessEngine(plan, config.start_method or DEFAULT_START_METHOD))


# -- handing work to a worker --------------------------------------------------


class _ForkingCloudPickler(cloudpickle.Pickler):  # type: ignore[misc]
    """cloudpickle, plus multiprocessing's reducers for pipes and shared objects.

    Used only while a worker is being spawned, when multiprocessing
    primitives (queues, locks, values) can be handed over.
    """

    # A live view: multiprocessing registers reducers as objects are created.
    dispatch_table = ChainMap(
        getattr(ForkingPickler, "_extra_reducers"), cloudpickle.Pickler.dispatch_table
    )


class _Job:
    """Everything one worker needs; pickled by value (cloudpickle) when spawning."""

    def __init__(self, node: Node, worker: int, inbox: ShmEdge | None, outbox: ShmEdge | None,
                 report: multiprocessing.connection.Connection, announce: bool, run_id: str,
                 stats: SharedBuffer, names: list[tuple[str, int]]) -> None:
        self.node, self.worker, self.inbox, self.outbox = node, worker, inbox, outbox
        self.report, self.announce, self.run_id = report, announce, run_id
        self.stats, self.names = stats, names

    def __reduce__(self) -> tuple[Any, ...]:
        import io

        buffer = io.BytesIO()
        _ForkingCloudPickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(self.__dict__)
        return (_Job._load, (buffer.getvalue(),))

    @staticmethod
    def _load(data: bytes) -> _Job:
        job = _Job.__new__(_Job)
        job.__dict__.update(pickle.loads(data))
        return job


def _worker_main(job: _Job) -> None:
    """Entry point of a worker process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the caller's to handle
    _watch_parent(job.run_id)
    if job.announce:
        job.report.send_bytes(_STARTED)
    receiver = job.inbox.receiver() if job.inbox is not None else None
    sender = job.outbox.sender() if job.outbox is not None else None
    table = StatsTable(job.names, job.stats.memory)
    outcome = run_worker(job.node, job.worker, receiver, sender, table.row(job.node.index, job.worker))
    job.report.send_bytes(_OUTCOME + _encode_outcome(outcome, job.node))


def _watch_parent(run_id: str) -> None:
    """Exit this worker as soon as the caller's process is gone (SIGKILL, SIGTERM).

    The caller cannot clean up after itself then; every worker sweeps the
    run's names on its way out, so none outlives the run.
    """
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        multiprocessing.connection.wait([parent.sentinel])
        sweep(run_id)
        os._exit(1)

    threading.Thread(target=watch, name="streamflow-watchdog", daemon=True).start()


def _encode_outcome(outcome: Outcome, node: Node) -> bytes:
    def encode(outcome: Outcome) -> bytes:
        packed = pack(outcome, main_by_value=True)
        data = bytearray(packed.size)
        write(memoryview(data), packed)
        return bytes(data)

    return portable(outcome, node, encode)


@contextlib.contextmanager
def _without_main() -> Iterator[None]:
    """Start workers without multiprocessing importing the caller's ``__main__``.

    spawn and forkserver otherwise re-run the user's script (or module) in
    every worker; stage functions from ``__main__`` travel by value instead.
    """
    main = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = main


_start_lock = threading.Lock()
_START_HINT = (
    "; every constant must be picklable, and multiprocessing objects (Value, Queue, "
    "Lock, ...) must come from the context of the start method: "
    "multiprocessing.get_context(start_method).Value(...)"
)


# -- the engine ------------------------------------------------------------------


class ProcessEngine:
    def __init__(self, plan: Plan, method: str) -> None:
        self._plan = plan
        self._method = method
        self._forked = method == "fork"
        self._ctx: Any = multiprocessing.get_context(method)
        self._run_id = new_run_id()
        self._edges: list[ShmEdge] = []
        self._procs: list[tuple[Any, Node, int, Any]] = []
        self._waker = _Waker()
        # Not self.wake: the engine must not keep itself alive through its threads.
        self._feeders = WorkerThreads(finished=self._waker.poke)
        self._reported: set[tuple[int, int]] = set()
        self._unstarted = 0
        self._released = False
        self._names = plan.stat_names()
        self._stats_buffer = SharedBuffer(StatsTable.size(self._names), "the run's statistics")
        self.stats = StatsTable(self._names, self._stats_buffer.memory)
        try:
            for edge in plan.edges:
                self._edges.append(
                    ShmEdge(
                        name=edge.producer,
                        capacity=edge.capacity,
                        producers=edge.producers,
                        consumers=edge.consumers,
                        max_message_size=edge.max_message_size,
                        shared_buffer=edge.shared_buffer,
                        run_id=self._run_id,
                        forked=self._forked,
                        index=edge.index,
                    )
                )
        except BaseException:
            self.release()
            raise
        self.output = self._edges[-1].receiver() if plan.open else None

    def launch(self) -> None:
        edges = self._edges
        for node in self._plan.nodes:
            inbox = edges[node.index - 1] if node.index > 0 else None
            outbox = edges[node.index] if node.index < len(edges) else None
            for worker in range(node.workers):
                if node.in_caller:
                    self._launch_thread(node, worker, inbox, outbox)
                else:
                    self._launch_process(node, worker, inbox, outbox)

    def _launch_process(self, node: Node, worker: int, inbox: ShmEdge | None, outbox: ShmEdge | None) -> None:
        reader, writer = self._ctx.Pipe(duplex=False)
        job = _Job(
            node, worker, inbox, outbox, writer,
            announce=not self._forked, run_id=self._run_id, stats=self._stats_buffer, names=self._names,
        )
        process = self._ctx.Process(
            target=_worker_main, args=(job,), name=f"streamflow-{node.name}-{worker}", daemon=True
        )
        # Listed before it starts: a Ctrl-C during start() must not orphan it.
        self._procs.append((process, node, worker, reader))
        try:
            with _start_lock, (contextlib.nullcontext() if self._forked else _without_main()):
                process.start()
        except Exception as exc:
            raise StreamflowError(
                f"cannot start a {self._method} worker for stage '{node.name}': {exc}"
                + _START_HINT
            ) from exc
        finally:
            writer.close()
        if not self._forked:
            self._unstarted += 1

    def _launch_thread(self, node: Node, worker: int, inbox: ShmEdge | None, outbox: ShmEdge | None) -> None:
        def ends() -> tuple[Any, Any]:
            return (None if inbox is None else inbox.receiver(), None if outbox is None else outbox.sender())

        self._feeders.start(node, worker, ends, self.stats.row(node.index, worker))

    def wait(self, timeout: float | None) -> list[Outcome]:
        waitables: list[Any] = [self._waker.fd]
        by_handle: dict[Any, tuple[Any, Node, int, Any]] = {}
        for entry in self._procs:
            process, node, worker, reader = entry
            if (node.index, worker) in self._reported or process.pid is None:
                continue
            waitables += [reader, process.sentinel]
            by_handle[reader] = by_handle[process.sentinel] = entry
        ready = multiprocessing.connection.wait(waitables, timeout)
        outcomes: list[Outcome] = []
        if self._waker.fd in ready:
            self._waker.drain()
        for handle in ready:
            found = by_handle.get(handle)
            if found is None or (found[1].index, found[2]) in self._reported:
                continue
            outcome = self._collect(*found)
            if outcome is not None:
                outcomes.append(outcome)
        return outcomes + self._feeders.outcomes()

    def _collect(self, process: Any, node: Node, worker: int, reader: Any) -> Outcome | None:
        """The outcome a worker sent, or a crash if it died without one."""
        while True:
            try:
                if not reader.poll():
                    break
                message = reader.recv_bytes()
            except (EOFError, OSError):
                break
            if message == _STARTED:
                self._started()
                continue
            self._reported.add((node.index, worker))
            outcome: Outcome = read(memoryview(message)[1:], copy=True)
            return outcome
        if process.is_alive():
            return None
        process.join()
        self._reported.add((node.index, worker))
        return Outcome(node.index, worker, error=WorkerCrashed(_crash_message(node, worker, process.exitcode)))

    def _started(self) -> None:
        self._unstarted -= 1
        if self._unstarted == 0:  # every worker has opened the semaphores by name
            for edge in self._edges:
                for sem in edge.semaphores():
                    sem.unlink()

    def wake(self) -> None:
        self._waker.poke()

    def progress(self) -> int:
        return sum(edge.moved() for edge in self._edges)

    def abort(self) -> None:
        if not self._released:
            for edge in self._edges:
                edge.abort()

    def stop(self, grace: float) -> None:
        deadline = time.monotonic() + grace
        started = [p for p, *_ in self._procs if p.pid is not None]
        for process in started:
            process.join(max(0.0, deadline - time.monotonic()))
        stubborn = [p for p in started if p.is_alive()]
        for process in stubborn:
            process.terminate()
        for process in stubborn:
            process.join(_KILL_WAIT)
            if process.is_alive():
                process.kill()
                process.join()
        self._feeders.join(deadline)

    def release(self) -> None:
        if self._released:
            return
        self._released = True
        for edge in self._edges:
            for sem in edge.semaphores():
                sem.unlink()
            edge.close()
        self.stats.release()
        self._stats_buffer.close()
        for process, _, _, reader in self._procs:
            reader.close()
            with contextlib.suppress(ValueError, AssertionError):
                process.close()
        self._waker.close()
        sweep(self._run_id)


class _Waker:
    """A pipe that makes the supervisor's ``wait`` return; safe to poke after close.

    A feeder thread stuck in user code may end after the run is released:
    its poke must not write into a descriptor number reused since.
    """

    def __init__(self) -> None:
        self.fd, self._write = os.pipe()
        self._lock = threading.Lock()  # taken per poke: once per worker or cancel, not per packet

    def poke(self) -> None:
        with self._lock:
            if self._write >= 0:
                os.write(self._write, b"x")

    def drain(self) -> None:
        os.read(self.fd, 4096)

    def close(self) -> None:
        with self._lock:
            os.close(self.fd)
            os.close(self._write)
            self._write = -1


_SIGNAL_CAUSES = {
    signal.SIGKILL: "the kernel's out-of-memory killer, or a kill -9",
    signal.SIGSEGV: "a crash in native code (an extension module or ctypes)",
    signal.SIGBUS: "a crash in native code, or shared memory exhausted",
    signal.SIGABRT: "an abort() in native code",
}


def _crash_message(node: Node, worker: int, exitcode: int | None) -> str:
    who = f"worker {worker + 1} of {node.workers} of stage '{node.name}'"
    if exitcode is None or exitcode >= 0:
        how = f"exited with code {exitcode}"
        cause = "os._exit() or a native library ending the process"
    else:
        number = -exitcode
        try:
            sig = signal.Signals(number)
        except ValueError:
            how, cause = f"was killed by signal {number}", "a signal"
        else:
            how, cause = f"was killed by {sig.name}", _SIGNAL_CAUSES.get(sig, "a signal")
    return f"{who} {how} before its stream ended; likely cause: {cause}"
