"""The fork server's own side: a single-threaded loop that imports, forks and reaps.

::

    socket  --PRELOAD-->  import the modules (each once; "stale" if a user's module changed)
            --FORK---->   os.fork(): the child sets up its fds, cwd and environment, runs the job
    pidfds  ------------> a worker ended: its exit status to its caller's pipe
    socket closed ------> wait for the last workers, then exit

Started as ``python -c "from streamflow._backends._warm._serve import serve; serve()"``;
never runs the user's ``__main__``.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import pickle
import select
import signal
import socket
import sys
import sysconfig
from multiprocessing import util as mp_util
from typing import Any

from . import _fds
from ._wire import PRELOAD, STATUS, receive, send

__all__ = ["serve"]


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
                os.write(status, STATUS.pack(os.waitstatus_to_exitcode(code)))
            os.close(status)
            os.close(pidfd)
        if sock not in ready:
            continue
        try:
            data, fds = receive(sock)
        except (EOFError, OSError):
            sock.close()
            _outlive(children)  # the caller let us go: once our workers have ended, so do we
            return
        op, payload = pickle.loads(data)
        try:
            if op == PRELOAD:
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
        send(sock, pickle.dumps(reply), [])


def _outlive(children: dict[int, tuple[int, int]]) -> None:
    """Reap the workers still running, so that none is left a zombie of ours."""
    for pidfd, (pid, status) in children.items():
        select.select([pidfd], [], [])
        _, code = os.waitpid(pid, 0)
        with contextlib.suppress(OSError):
            os.write(status, STATUS.pack(os.waitstatus_to_exitcode(code)))


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
        _fds.inherited[:] = fds[:-1]
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
