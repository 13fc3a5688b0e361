"""The process backend: every worker a process, edges in shared memory.

::

    caller process                                        worker processes
    --------------                                        ----------------
    supervisor thread  <-- report pipe (one a worker) --  worker_main -> job.main(job, report)
      waits on pipes + process sentinels                   watchdog thread: exits if the
    caller thread reads the last ShmEdge (open flows)       caller process dies
    caller threads run sources that cannot travel --ShmEdge-->  ...

Start methods: ``warm`` (the default) forks workers from streamflow's own
fork server (``_warm``): as safe as ``spawn`` whatever the caller is doing
(threads, notebooks, no ``__main__`` guard), since the server is a fresh,
single-threaded interpreter, and about as fast as ``fork`` once the server
has imported what the stages need.  ``spawn`` starts a fresh interpreter
a worker, every run; ``fork`` copies the caller (fastest, but unsafe with
threads in it); ``forkserver`` is multiprocessing's own server, which
imports nothing ahead.  Under every method, stage functions from
``__main__`` travel by value and no worker runs the caller's ``__main__``;
its classes travel by value once a run, and messages name them
(``_transport._main_classes``).
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
from collections.abc import Iterator
from typing import Any

from .._errors import StreamflowError, WorkerCrashed
from .._options import START_METHODS, RunConfig
from .._plan import Link, Node, Plan
from .._records import Job, Outcome, PortableError, Record
from .._transport._main_classes import MainClasses
from .._transport._memory import SharedBuffer, new_run_id, sweep
from .._transport._serialize import Reader
from .._transport._sem import Semaphore
from .._transport._shm import ShmEdge
from . import WorkerBackend, _warm
from ._process_worker import STARTED, Shipped, worker_main

__all__ = ["BACKEND", "ProcessBackend"]

DEFAULT_START_METHOD = "warm"
_KILL_WAIT = 1.0  # seconds between SIGTERM and SIGKILL for a worker that ignores it


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
def _start_hint(method: str) -> str:
    context = "spawn" if method == "warm" else method
    return (
        "; every constant must be picklable, and multiprocessing objects (Value, Queue, "
        f"Lock, ...) must come from a context that can hand them to {method} workers: "
        f"multiprocessing.get_context({context!r}).Value(...)"
    )


class _Worker:
    """One worker process as the caller tracks it."""

    __slots__ = ("process", "node", "worker", "reader", "ended")

    def __init__(self, process: Any, node: Node, worker: int, reader: Any) -> None:
        self.process, self.node, self.worker, self.reader = process, node, worker, reader
        self.ended = False  # its outcome (or its crash) was collected


class ProcessBackend(WorkerBackend):
    stops_calls = True  # each worker is its process's main thread: SIGALRM reaches it
    shares_memory = True  # shared memory, on one machine
    start_methods = START_METHODS

    def __init__(self, plan: Plan, config: RunConfig) -> None:
        self._plan = plan
        self._spin = config.spin_us  # None: the caller's STREAMFLOW_SPIN_US, or the default
        self._watched = config.inactivity_timeout is not None  # the supervisor reads the edges' ``moved()``
        self._method = config.start_method or DEFAULT_START_METHOD
        self._forked = self._method == "fork"
        self._warm = self._method == "warm"
        self._ctx: Any = None if self._warm else multiprocessing.get_context(self._method)
        if self._warm:
            _warm.preload(plan)
        self._run_id = new_run_id()
        self._edges: list[ShmEdge] = []
        self._shipped: MainClasses | None = None  # collected for the first edge to a fresh worker
        self._semaphores: list[Semaphore] = []  # besides the edges'
        self._workers: list[_Worker] = []
        self._waker = _Waker()
        self._unstarted = 0
        # A worker that replaces a dead one opens the edges' semaphores by
        # name: then the names stay until the run is released.
        self._keep_names = any(link.recoverable for link in plan.links)
        self._released = False

    @staticmethod
    def shutdown() -> None:
        """Stop the warm fork server, which is kept for the session."""
        _warm.shutdown()

    def edge(self, link: Link) -> ShmEdge:
        if link.reader is None:
            reader = Reader.CALLER
        else:
            reader = Reader.FORKED if self._forked else Reader.FRESH
        if reader is Reader.FRESH and self._shipped is None:
            self._shipped = MainClasses.collect()
        edge = ShmEdge(
            name=link.name,
            capacity=link.capacity,
            producers=link.producers,
            consumers=link.consumers,
            max_message_size=link.max_message_size,
            shared_buffer=link.shared_buffer,
            run_id=self._run_id,
            forked=self._forked,
            reader=reader,
            index=link.index,
            spin=self._spin,
            recoverable=link.recoverable,
            watched=self._watched,
            shipped=self._shipped if reader is Reader.FRESH else None,
        )
        self._edges.append(edge)
        return edge

    def memory(self, size: int, what: str) -> SharedBuffer:
        return SharedBuffer(size, what)

    def semaphore(self, value: int) -> Semaphore:
        semaphore = Semaphore(value, prefix=self._run_id, inherited=self._forked)
        self._semaphores.append(semaphore)
        return semaphore

    def start(self, job: Job) -> None:
        reader, writer = multiprocessing.Pipe(duplex=False)
        args = (job, writer, not self._forked, self._run_id, os.getpid())
        try:
            if self._warm:
                worker = _Worker(_warm.start_worker(self._plan, worker_main, args), job.node, job.worker, reader)
                self._workers.append(worker)
            else:
                self._start_process(job, reader, args)
        except Exception as exc:
            raise StreamflowError(
                f"cannot start a {self._method} worker for stage '{job.node.name}': {exc}" + _start_hint(self._method)
            ) from exc
        finally:
            writer.close()
        if not self._forked:
            self._unstarted += 1

    def _start_process(self, job: Job, reader: Any, args: tuple[Any, ...]) -> None:
        if not self._forked:
            args = (Shipped(job), *args[1:])
        process = self._ctx.Process(target=worker_main, args=args, name=job.label, daemon=True)
        # Listed before it starts: a Ctrl-C during start() must not orphan it.
        self._workers.append(_Worker(process, job.node, job.worker, reader))
        with _start_lock, (contextlib.nullcontext() if self._forked else _without_main()):
            process.start()

    def wait(self, timeout: float | None) -> list[Record]:
        waitables: list[Any] = [self._waker.fd]
        by_handle: dict[Any, _Worker] = {}
        for worker in self._workers:
            if worker.ended or worker.process.pid is None:
                continue
            waitables += [worker.reader, worker.process.sentinel]
            by_handle[worker.reader] = by_handle[worker.process.sentinel] = worker
        ready = multiprocessing.connection.wait(waitables, timeout)
        events: list[Record] = []
        if self._waker.fd in ready:
            self._waker.drain()
        for handle in ready:
            found = by_handle.get(handle)
            if found is not None and not found.ended:
                events += self._collect(found)
        return events

    def _collect(self, worker: _Worker) -> list[Record]:
        """What ``worker`` reported; a crash if it died without an outcome."""
        events: list[Record] = []
        while True:
            try:
                if not worker.reader.poll():
                    break
                message = worker.reader.recv_bytes()
            except (EOFError, OSError):
                break
            if message == STARTED:
                self._started()
                continue
            event = pickle.loads(message)
            events.append(event)
            if isinstance(event, Outcome):
                worker.ended = True
                return events
        if worker.process.is_alive():
            return events
        worker.process.join()
        worker.ended = True
        crash = WorkerCrashed(_crash_message(worker.node, worker.worker, worker.process.exitcode))
        return [*events, Outcome(worker.node.index, worker.worker, error=PortableError(crash), crashed=True)]

    def _started(self) -> None:
        self._unstarted -= 1
        if self._unstarted == 0 and not self._keep_names:  # every worker has opened the semaphores by name
            for edge in self._edges:
                edge.unlink()
            for semaphore in self._semaphores:
                semaphore.unlink()

    def wake(self) -> None:
        self._waker.poke()

    def kill(self, node: int, worker: int) -> None:
        for found in self._workers:
            if found.node.index == node and found.worker == worker and not found.ended:
                found.process.kill()

    def stop(self, grace: float) -> None:
        deadline = time.monotonic() + grace
        started = [w.process for w in self._workers if w.process.pid is not None]
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

    def release(self) -> None:
        if self._released:
            return
        self._released = True
        for worker in self._workers:
            worker.reader.close()
            with contextlib.suppress(ValueError, AssertionError):
                worker.process.close()
        self._waker.close()
        sweep(self._run_id)


BACKEND = ProcessBackend


class _Waker:
    """A pipe that makes the supervisor's ``wait`` return; safe to poke after close.

    A caller thread stuck in user code may end after the run is released:
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
