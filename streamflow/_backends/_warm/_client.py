"""The caller's side of the fork server: its connection, and the handles of the workers it forks.

::

    preload(plan)            -> the server imports what the plan's stages need (restarted if stale)
    start_worker(plan, ...)  -> the job pickled (its fds collected), FORK -> a WarmProcess (pid, exit pipe)
    shutdown()               -> the server stops once its workers have ended

One connection a process, used one request at a time whatever thread runs
flows; a forked child forgets its parent's.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pickle
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing import context as mp_context
from typing import Any

from ..._plan import Plan
from ..._transport._serialize import dumps_job
from .._imports import modules_for
from ._fds import Collect
from ._wire import FORK, PRELOAD, STATUS, receive, send

__all__ = ["WarmProcess", "preload", "preload_nothing", "server_pid", "shutdown", "start_worker"]

_STOP_WAIT = 5.0  # seconds a replaced server gets to see its last workers end


class WarmProcess:
    """A worker forked by the server, as the caller tracks it (a multiprocessing-like handle)."""

    def __init__(self, pid: int, sentinel: int) -> None:
        self.pid = pid
        self.sentinel = sentinel  # readable once the worker has ended
        self._exitcode: int | None = None

    @property
    def exitcode(self) -> int | None:
        if self._exitcode is None and self.sentinel >= 0 and _readable(self.sentinel, 0):
            data = os.read(self.sentinel, STATUS.size)
            # No status at all: the server itself died; the worker's end is unknown.
            self._exitcode = STATUS.unpack(data)[0] if len(data) == STATUS.size else 255
        return self._exitcode

    def is_alive(self) -> bool:
        return self.exitcode is None

    def join(self, timeout: float | None = None) -> None:
        if self._exitcode is None and self.sentinel >= 0:
            _readable(self.sentinel, timeout)

    def terminate(self) -> None:
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        self._signal(signal.SIGKILL)

    def _signal(self, sig: int) -> None:
        if self.is_alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def close(self) -> None:
        if self.sentinel >= 0:
            os.close(self.sentinel)
            self.sentinel = -1


def _readable(fd: int, timeout: float | None) -> bool:
    return bool(select.select([fd], [], [], timeout)[0])


class _Server:
    """The caller's connection to its fork server; starts (and restarts) it as needed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # one request at a time, whatever thread runs flows
        self._pid: int | None = None
        self._socket: socket.socket | None = None

    @property
    def pid(self) -> int | None:
        """The server's process id, while it runs."""
        return self._pid if self._alive() else None

    def preload(self, modules: list[str]) -> None:
        """Have the server import ``modules``; replace it first if what it imported changed."""
        with self._lock:
            answer = self._ask(PRELOAD, (modules, list(sys.path)), []) if self._alive() else "stale"
            if answer == "stale":
                self._restart()
                self._ask(PRELOAD, (modules, list(sys.path)), [])

    def fork(self, job_bytes: bytes, fds: list[int]) -> WarmProcess:
        """A worker running the job pickled in ``job_bytes``, with ``fds`` as its inherited fds."""
        status_read, status_write = os.pipe()
        try:
            with self._lock:
                if not self._alive():
                    self._restart()
                payload = (job_bytes, os.getcwd(), dict(os.environ))
                pid = self._ask(FORK, payload, [*fds, status_write])
        except BaseException:
            os.close(status_read)
            raise
        finally:
            os.close(status_write)
        return WarmProcess(pid, status_read)

    def _alive(self) -> bool:
        if self._pid is None:
            return False
        if os.waitpid(self._pid, os.WNOHANG) == (0, 0):
            return True
        self._pid = None  # it died (killed?): reaped now, replaced on the next run
        return False

    def _restart(self) -> None:
        self._stop()
        ours, theirs = socket.socketpair()
        theirs.set_inheritable(True)
        argv = [
            sys.executable, *subprocess._args_from_interpreter_flags(),  # type: ignore[attr-defined]
            "-c", "from streamflow._backends._warm._serve import serve; serve()", str(theirs.fileno()),
        ]
        try:
            self._pid = os.posix_spawn(
                sys.executable, argv, os.environ,
                file_actions=[(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0)],
            )
        finally:
            theirs.close()
        self._socket = ours

    def _stop(self) -> None:
        """Let the current server go: it ends once its workers have."""
        if self._socket is not None:
            self._socket.close()  # the server exits when its socket closes
            self._socket = None
        if self._pid is not None:
            deadline = time.monotonic() + _STOP_WAIT
            while os.waitpid(self._pid, os.WNOHANG) == (0, 0):
                if time.monotonic() > deadline:
                    os.kill(self._pid, signal.SIGKILL)
                    os.waitpid(self._pid, 0)
                    break
                time.sleep(0.01)  # it is finishing its last workers' ends
            self._pid = None

    def shutdown(self) -> None:
        """Stop the server, if it runs, and wait for it to end; the next run starts a new one."""
        with self._lock:
            self._stop()

    def close(self) -> None:
        """At the caller's exit: close the socket; the server follows once its workers have."""
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def _ask(self, op: str, payload: Any, fds: list[int]) -> Any:
        assert self._socket is not None
        try:
            send(self._socket, pickle.dumps((op, payload)), fds)
            data, _ = receive(self._socket)
        except OSError as exc:
            raise OSError(f"streamflow's fork server did not answer: {exc}") from exc
        kind, value = pickle.loads(data)
        if kind == "error":
            raise RuntimeError(f"streamflow's fork server: {value}")
        return value


_server = _Server()
atexit.register(lambda: _server.close())


def _forget_in_child() -> None:
    """A forked child has a copy of the caller's connection: not its to use."""
    global _server
    _server = _Server()
atexit.register(lambda: _server.close())


os.register_at_fork(after_in_child=_forget_in_child)


def start_worker(plan: Plan, target: Callable[..., None], args: tuple[Any, ...]) -> WarmProcess:
    """Run ``target(*args)`` in a worker forked from the (warm) server."""
    collect = Collect()
    mp_context.set_spawning_popen(collect)  # type: ignore[arg-type]
    try:
        job_bytes = dumps_job((target, args))
    finally:
        mp_context.set_spawning_popen(None)
    return _server.fork(job_bytes, collect.fds)


def preload(plan: Plan) -> None:
    """Make sure the server is up, current, and has imported what ``plan`` needs."""
    _server.preload(modules_for(plan))


def shutdown() -> None:
    """Stop this session's fork server (``streamflow.shutdown()``)."""
    _server.shutdown()


def preload_nothing() -> None:
    """Start the server (or check it is current) without asking for modules."""
    _server.preload([])


def server_pid() -> int | None:
    """The fork server's process id, while one runs."""
    return _server.pid
