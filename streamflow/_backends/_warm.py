"""The warm fork server: worker processes forked in milliseconds from a clean process
that has already imported what the stages need.

::

    caller process                                    fork server (one a session)
    --------------                                    ---------------------------
    _Server.preload(modules)  --- socket -------->    imports them (each once)
    _Server.fork(job, fds)    --- socket + fds --->   os.fork() -> a worker: runs the job,
           <------------------- pid ---------------             exits when the caller is gone
    WarmProcess.sentinel  <---- exit status ---------  waits on each worker's pidfd

Why: ``spawn`` is safe whatever the caller does (threads, notebooks, no
``__main__`` guard), but every worker is a new interpreter that imports
the world again: seconds a run when stages import scikit-learn or torch.
``fork`` is fast but copies a caller mid-way through its threads' work.
The server is started the way spawn starts a worker (a fresh interpreter
that never runs the user's ``__main__``), is single-threaded, so forking
it is safe, and keeps what it imported: a run's workers start in about a
fork's time once the server has imported their modules.  It is started on
the first run and kept for the session; it exits as soon as the caller's
process does (its socket closes).

Staleness: before a run, the server looks at the files of the modules it
imported from outside the Python installation (the user's own code); if
one changed since (edited, reloaded in a notebook), the server is replaced
by a new one, and that run starts cold.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import os
import pickle
import select
import signal
import socket
import struct
import subprocess
import sys
import sysconfig
import threading
import time
from collections.abc import Callable
from multiprocessing import context as mp_context
from multiprocessing import util as mp_util
from typing import Any

from .._plan import Plan
from .._transport._serialize import dumps_job
from ._imports import modules_for

__all__ = ["WarmProcess", "start_worker"]

_HEADER = struct.Struct("<QI")  # payload length, number of fds
_STATUS = struct.Struct("<i")
_MAX_FDS = 256
_PRELOAD, _FORK = "preload", "fork"
_STOP_WAIT = 5.0  # seconds a replaced server gets to see its last workers end


# -- the caller's side -----------------------------------------------------------------


class WarmProcess:
    """A worker forked by the server, as the caller tracks it (a multiprocessing-like handle)."""

    def __init__(self, pid: int, sentinel: int) -> None:
        self.pid = pid
        self.sentinel = sentinel  # readable once the worker has ended
        self._exitcode: int | None = None

    @property
    def exitcode(self) -> int | None:
        if self._exitcode is None and self.sentinel >= 0 and _readable(self.sentinel, 0):
            data = os.read(self.sentinel, _STATUS.size)
            # No status at all: the server itself died; the worker's end is unknown.
            self._exitcode = _STATUS.unpack(data)[0] if len(data) == _STATUS.size else 255
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
            answer = self._ask(_PRELOAD, (modules, list(sys.path)), []) if self._alive() else "stale"
            if answer == "stale":
                self._restart()
                self._ask(_PRELOAD, (modules, list(sys.path)), [])

    def fork(self, job_bytes: bytes, fds: list[int]) -> WarmProcess:
        """A worker running the job pickled in ``job_bytes``, with ``fds`` as its inherited fds."""
        status_read, status_write = os.pipe()
        try:
            with self._lock:
                if not self._alive():
                    self._restart()
                payload = (job_bytes, os.getcwd(), dict(os.environ))
                pid = self._ask(_FORK, payload, [*fds, status_write])
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
            "-c", "from streamflow._backends._warm import serve; serve()", str(theirs.fileno()),
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
            _send(self._socket, pickle.dumps((op, payload)), fds)
            data, _ = _receive(self._socket)
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


class _Collect:
    """Stands for multiprocessing's spawning Popen while a job is pickled: gathers its fds."""

    def __init__(self) -> None:
        self.fds: list[int] = []

    def duplicate_for_child(self, fd: int) -> int:
        self.fds.append(fd)
        return len(self.fds) - 1

    @staticmethod
    def DupFd(index: int) -> _Inherited:  # noqa: N802 - multiprocessing's name for it
        return _Inherited(index)


class _Inherited:
    """An fd the worker received from the server, by its position in what it received."""

    def __init__(self, index: int) -> None:
        self.index = index

    def detach(self) -> int:
        return _inherited[self.index]


_inherited: list[int] = []


def start_worker(plan: Plan, target: Callable[..., None], args: tuple[Any, ...]) -> WarmProcess:
    """Run ``target(*args)`` in a worker forked from the (warm) server."""
    collect = _Collect()
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


# -- messages ----------------------------------------------------------------------------


def _send(sock: socket.socket, data: bytes, fds: list[int]) -> None:
    header = _HEADER.pack(len(data), len(fds))
    socket.send_fds(sock, [header], fds) if fds else sock.sendall(header)
    sock.sendall(data)


def _receive(sock: socket.socket) -> tuple[bytes, list[int]]:
    header, fds, _, _ = socket.recv_fds(sock, _HEADER.size, _MAX_FDS, socket.MSG_WAITALL)
    if len(header) < _HEADER.size:
        raise EOFError("the other end closed")
    length, count = _HEADER.unpack(header)
    if len(fds) != count:
        raise OSError(f"expected {count} file descriptors, got {len(fds)}")
    chunks, left = [], length
    while left:
        chunk = sock.recv(min(left, 1 << 20))
        if not chunk:
            raise EOFError("the other end closed")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks), fds


# -- the server's side ---------------------------------------------------------------------


def serve() -> None:
    """The fork server's main loop (``python -c ... serve()``; argv[1] is its socket's fd)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C is the caller's
    sock = socket.socket(fileno=int(sys.argv[1]))
    import streamflow._backends._process_worker  # noqa: F401 - what every worker runs, imported once here

    imported: dict[str, float] = {}  # file -> mtime, of the user's modules this server imported
    children: dict[int, tuple[int, int]] = {}  # pidfd -> (pid, status fd)
    while True:
        waitables: list[Any] = [sock, *children]
        ready, _, _ = select.select(waitables, [], [])
        for pidfd in [fd for fd in ready if fd in children]:
            pid, status = children.pop(pidfd)
            _, code = os.waitpid(pid, 0)
            with contextlib.suppress(OSError):  # the caller may have let go of the worker
                os.write(status, _STATUS.pack(os.waitstatus_to_exitcode(code)))
            os.close(status)
            os.close(pidfd)
        if sock not in ready:
            continue
        try:
            data, fds = _receive(sock)
        except (EOFError, OSError):
            sock.close()
            _outlive(children)  # the caller let us go: once our workers have ended, so do we
            return
        op, payload = pickle.loads(data)
        try:
            if op == _PRELOAD:
                modules, path = payload
                answer: Any = _preload(modules, path, imported)
            else:
                pid = _fork(payload, fds, sock)
                children[os.pidfd_open(pid)] = (pid, fds[-1])
                fds = fds[:-1]  # the status fd stays, the worker's are its own now
                answer = pid
            reply = ("ok", answer)
        except Exception as exc:  # noqa: BLE001 - told to the caller
            reply = ("error", f"{type(exc).__name__}: {exc}")
        finally:
            for fd in fds:
                os.close(fd)
        _send(sock, pickle.dumps(reply), [])


def _outlive(children: dict[int, tuple[int, int]]) -> None:
    """Reap the workers still running, so that none is left a zombie of ours."""
    for pidfd, (pid, status) in children.items():
        select.select([pidfd], [], [])
        _, code = os.waitpid(pid, 0)
        with contextlib.suppress(OSError):
            os.write(status, _STATUS.pack(os.waitstatus_to_exitcode(code)))


def _preload(modules: list[str], path: list[str], imported: dict[str, float]) -> str:
    """Import ``modules``; "stale" if a user's module this server imported has changed."""
    for file, mtime in imported.items():
        with contextlib.suppress(OSError):
            if os.stat(file).st_mtime != mtime:
                return "stale"
    sys.path[:] = path
    for name in modules:
        # A worker that needs it will say what is wrong; a module that exits on
        # import (SystemExit) must not take the server, and the run, with it.
        with contextlib.suppress(Exception, SystemExit):
            importlib.import_module(name)
    installed = tuple({sysconfig.get_paths()[key] for key in ("stdlib", "platstdlib", "purelib", "platlib")})
    for module in list(sys.modules.values()):
        source = getattr(module, "__file__", None)
        if isinstance(source, str) and source not in imported and not source.startswith(installed):
            with contextlib.suppress(OSError):
                imported[source] = os.stat(source).st_mtime
    return "ok"


def _fork(payload: tuple[bytes, str, dict[str, str]], fds: list[int], sock: socket.socket) -> int:
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        sock.close()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        job_bytes, cwd, environ = payload
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(environ)
        _inherited[:] = fds[:-1]
        os.close(fds[-1])  # the status fd is the server's
        target, args = pickle.loads(job_bytes)
        target(*args)
        code = 0
    finally:
        # As multiprocessing ends its own processes: its finalizers (a Queue's
        # feeder thread) and the standard streams, then out without atexit.
        with contextlib.suppress(BaseException):
            mp_util._exit_function()  # type: ignore[attr-defined]
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)
