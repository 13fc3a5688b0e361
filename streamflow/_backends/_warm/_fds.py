"""The file descriptors a job hands to a worker of the fork server (shared memory, pipes).

::

    caller: pickling the job, multiprocessing asks the "spawning Popen" for each fd
            -> Collect: keeps the fd, gives its position  (the fds go with the FORK request)
    worker: unpickling the job, each fd's ``detach()``
            -> Inherited: the fd received at that position (``inherited``, set as the worker starts)
"""

from __future__ import annotations

__all__ = ["Collect", "Inherited", "inherited"]


class Collect:
    """Stands for multiprocessing's spawning Popen while a job is pickled: gathers its fds."""

    def __init__(self) -> None:
        self.fds: list[int] = []

    def duplicate_for_child(self, fd: int) -> int:
        self.fds.append(fd)
        return len(self.fds) - 1

    @staticmethod
    def DupFd(index: int) -> Inherited:  # noqa: N802 - multiprocessing's name for it
        return Inherited(index)


class Inherited:
    """An fd the worker received from the server, by its position in what it received."""

    def __init__(self, index: int) -> None:
        self.index = index

    def detach(self) -> int:
        return inherited[self.index]


inherited: list[int] = []  # set in each worker, as it starts
