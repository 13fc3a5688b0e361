"""Shared memory for one run: anonymous segments, and the names a run may leave.

Segments are memfds: they have no name, so nothing can outlive the run, and
they are sized with fallocate, so a shortage of shared memory is a clean
error, not a bus error.  What is named (the overflow segments of large
messages, the semaphores of spawned workers) starts with the run's id,
``sf-<pid>-<random>``, and ``sweep`` removes it whoever ends the run.
"""

from __future__ import annotations

import errno
import mmap
import os
import secrets
from typing import Any

import _multiprocessing

from .._errors import StreamflowError

try:
    import _posixshmem as posixshmem
except ImportError:  # pragma: no cover - not a POSIX CPython
    posixshmem = None

__all__ = ["LocalBuffer", "SharedBuffer", "allocate", "new_run_id", "posixshmem", "reserve", "sweep"]

_SHM_DIR = "/dev/shm"


def new_run_id() -> str:
    """An unguessable prefix for the segments of one run."""
    return f"sf-{os.getpid()}-{secrets.token_hex(8)}"


def sweep(run_id: str) -> None:
    """Unlink every name a run may have left: segments of messages in flight
    when a worker died, semaphores of workers that never started."""
    try:
        names = os.listdir(_SHM_DIR)
    except OSError:
        return
    for name in names:
        try:
            if name.startswith(run_id + "-") and posixshmem is not None:
                posixshmem.shm_unlink("/" + name)
            elif name.startswith(f"sem.{run_id}-"):
                _multiprocessing.sem_unlink("/" + name[len("sem.") :])
        except OSError:
            pass


def allocate(size: int, what: str) -> int:
    """A file descriptor of ``size`` bytes of anonymous shared memory."""
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("streamflow", os.MFD_CLOEXEC)
    else:  # pragma: no cover - macOS: a private name, unlinked at once
        name = f"/{new_run_id()}"
        fd = posixshmem.shm_open(name, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
        posixshmem.shm_unlink(name)
    try:
        os.ftruncate(fd, size)
        reserve(fd, size, what)
    except BaseException:
        os.close(fd)
        raise
    return fd


def reserve(fd: int, size: int, what: str) -> None:
    if not hasattr(os, "posix_fallocate"):  # pragma: no cover
        return
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.ENOMEM, errno.EFBIG):
            raise StreamflowError(
                f"not enough shared memory for {what}: it needs {size:,} bytes ({exc.strerror}); "
                "lower packets_in_flight or max_message_size, or give the machine or "
                "container more shared memory (e.g. docker --shm-size)"
            ) from None
        if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            raise


class SharedBuffer:
    """Anonymous shared memory, handed to workers: inherited under fork, its
    file descriptor passed under spawn/forkserver (so picklable only while a
    worker is being spawned)."""

    def __init__(self, size: int, what: str) -> None:
        self.size = size
        self.fd = allocate(size, what)
        self.memory = mmap.mmap(self.fd, size)

    def __getstate__(self) -> dict[str, Any]:
        from multiprocessing.reduction import DupFd

        return {"size": self.size, "fd": DupFd(self.fd)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.size = state["size"]
        self.fd = state["fd"].detach()
        self.memory = mmap.mmap(self.fd, self.size)

    def close(self) -> None:
        """Unmap and close this process's view; the memory goes with the last one."""
        try:
            self.memory.close()
        except BufferError:  # a zero-copy message still refers to it
            pass
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class LocalBuffer:
    """Plain memory with the same face as ``SharedBuffer``, for workers in one process."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.memory = bytearray(size)

    def close(self) -> None:
        pass
