"""Process-shared semaphores without multiprocessing's resource tracker.

``multiprocessing.Semaphore`` under spawn registers every semaphore with a
tracker process that outlives the run.  These wrap the same C object
(``_multiprocessing.SemLock``, futex-backed, no Python-level lock) but
manage the name themselves: under fork it is unlinked at once (children
inherit the semaphore); under spawn/forkserver workers open it by name as
they start, and ``unlink()`` removes it once they all have.
"""

from __future__ import annotations

import itertools
from typing import Any

import _multiprocessing

__all__ = ["Semaphore"]

_KIND = 1  # multiprocessing.synchronize.SEMAPHORE
_MAX = 2147483647
_serial = itertools.count()


class Semaphore:
    """A counting semaphore (``maxvalue=1`` makes it a lock) shared by processes."""

    __slots__ = ("_sem", "acquire", "release", "name", "maxvalue")

    def __init__(self, value: int, *, prefix: str, inherited: bool, maxvalue: int = _MAX) -> None:
        name = f"/{prefix}-{next(_serial)}"
        sem = _multiprocessing.SemLock(_KIND, value, maxvalue, name, inherited)
        self._bind(sem, None if inherited else name, maxvalue)

    def _bind(self, sem: Any, name: str | None, maxvalue: int) -> None:
        self._sem = sem
        self.acquire = sem.acquire
        self.release = sem.release
        self.name = name
        self.maxvalue = maxvalue

    def unlink(self) -> None:
        """Remove the name; processes that opened it keep using it."""
        if self.name is not None:
            name, self.name = self.name, None
            try:
                _multiprocessing.sem_unlink(name)
            except OSError:
                pass

    def __enter__(self) -> bool:
        return bool(self._sem.acquire())

    def __exit__(self, *exc: object) -> None:
        self._sem.release()

    def __reduce__(self) -> tuple[Any, ...]:
        if self.name is None:
            raise TypeError("this semaphore can only be inherited by forked workers")
        return (_open, (self.name, self.maxvalue))


def _open(name: str, maxvalue: int) -> Semaphore:
    sem = Semaphore.__new__(Semaphore)
    sem._bind(_multiprocessing.SemLock._rebuild(0, _KIND, maxvalue, name), None, maxvalue)
    return sem
