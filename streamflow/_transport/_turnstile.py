"""The turnstile: the shared order of one ordered stage's inputs, in memory its workers share.

::

    worker A: take input 7 ----------------------- gate(7): wait for turn == 7 --> send --> done(7)
    worker B: take input 8 -- gate(8): wait ...                                  turn moves to 8 --+
                                                                           (B wakes, sends) <------+
    shared words: | turn | end | abort | waiters | waiting (one a worker) | done flags (a window) |

Each input has a number (``seq``) its edge gave it (``NumberingReceiver``).
A worker waits until ``turn == seq`` before it sends an output of input
``seq``; when it is done with the input, the turn moves past it (and past
every later input already done), or, if an older input is still being
worked on, the input is marked done for the turn to skip later.  Inputs
done out of turn are one flag each, in a ring of ``window`` flags; a worker
that takes an input ``window`` ahead of the oldest unfinished one waits
before it works on it (``make_room``).

Waits retry for the spin budget, then sleep on the waiter's own semaphore;
whoever moves the turn wakes the waiters whose turn came, under the state
lock, so no wake-up is lost.  ``abort()`` wakes everyone with ``Aborted``.
The shared state is a few int64 words in memory the backend provides (a
bytearray for threads, shared memory for processes).  Where workers share
no memory (Ray), the stage's input edge keeps the order instead
(``OrderedEdge``), behind the same face (``Order``).  How a worker uses it
is the runtime's (``_runtime/_order``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from . import Aborted, NumberingReceiver, Receiver
from ._clock import Clock
from ._spin import spin_budget, wait

__all__ = ["TURN", "Order", "OrderedEdge", "Turnstile", "window_for"]

TURN, _END, _ABORT = 0, 1, 2  # ``TURN``: the word a worker may read without the lock (the turn only moves past it)
_WAITERS = 3  # how many workers wait: whoever moves the turn wakes them only if some do
_WAITING = 4  # then one word a worker: the turn it waits for, or _NOTHING
_NOTHING = -1
_ALL_DONE = 1 << 62  # a wait until every input is done; also _END, until the input ended
_MAPPED = ("ctrl", "_flags", "_lock_acquire", "_lock_release")  # made again in each process (``_map``)


class Order(Protocol):
    """What an ordered stage's workers share: ``Turnstile``, or one an edge keeps (``OrderedEdge``)."""

    def take(self, worker: int, receiver: Receiver) -> tuple[Any, int]: ...
    def gate(self, worker: int, seq: int) -> None: ...
    def done(self, seq: int) -> None: ...
    def abort(self) -> None: ...
    def close(self) -> None: ...


@runtime_checkable
class OrderedEdge(Protocol):
    """An edge that keeps the order of the stage reading it, where workers share no memory (Ray)."""

    def turnstile(self) -> Order: ...


class Lock(Protocol):
    def acquire(self, block: bool = True) -> bool: ...
    def release(self) -> None: ...


def window_for(workers: int, packets_in_flight: int) -> int:
    """How far ahead of the oldest unfinished input a worker may work on one."""
    return max(64, 4 * max(workers, packets_in_flight))


class Turnstile:
    """The order of one stage's inputs, shared by its workers; picklable to worker processes."""

    def __init__(
        self,
        workers: int,
        window: int,
        memory: Any,
        semaphore: Callable[[int], Lock],
        spin: float | None = None,
    ) -> None:
        """``workers``: the threads that may wait, numbered from 0 (one a worker, or two for
        an async map stage's: its own and its input's); ``memory``: a buffer of
        ``Turnstile.size(workers, window)`` bytes (``.memory``); ``semaphore(value)``: a
        semaphore every worker can use; ``spin``: microseconds a wait retries before it sleeps
        (None: ``STREAMFLOW_SPIN_US`` or the default).  The stage's input edge numbers its
        packets (``NumberingReceiver``): the workers' receivers are read as such."""
        self.workers = workers
        self.window = window
        self.buffer = memory
        self.lock = semaphore(1)  # guards the turn, the done flags and the waiting words
        self.wakes = [semaphore(0) for _ in range(workers)]
        self.spin = spin_budget(spin)
        self._map()
        ctrl = self.ctrl
        ctrl[_END] = _ALL_DONE
        for worker in range(workers):
            ctrl[_WAITING + worker] = _NOTHING

    @staticmethod
    def size(workers: int, window: int) -> int:
        return 8 * (_WAITING + workers + window)

    def _map(self) -> None:
        self.ctrl = memoryview(self.buffer.memory).cast("B").cast("q")
        self._flags = self.ctrl[_WAITING + self.workers :]  # the done flags, one an input of the window
        # Bound once: a semaphore's methods are looked up by name at every call.
        self._lock_acquire, self._lock_release = self.lock.acquire, self.lock.release

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in _MAPPED}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._map()

    # -- a worker's side ----------------------------------------------------------

    def take(self, worker: int, receiver: Receiver) -> tuple[Any, int]:
        """The next input and its number; ``StopIteration`` at the end of the stream.
        Its waits are the worker's waits for input (``receiver.clock``)."""
        numbering: NumberingReceiver = receiver  # type: ignore[assignment]  # the edge is ``numbered``
        try:
            item = next(numbering)
        except StopIteration:
            self.ended(numbering.position)
            raise
        seq = numbering.position
        if seq - self.ctrl[TURN] >= self.window:
            self.make_room(worker, seq, receiver.clock)
        return item, seq

    def numbering(self, worker: int, receiver: Receiver) -> NumberingReceiver:
        """``receiver`` of the stage's numbered input edge, telling this turnstile its gaps."""
        numbering: NumberingReceiver = receiver  # type: ignore[assignment]  # the edge is ``numbered``
        numbering.gap = functools.partial(self.gap, worker)
        return numbering

    def make_room(self, worker: int, seq: int, clock: Clock) -> None:
        """Input ``seq`` is a window ahead of the oldest unfinished one: wait until it is not,
        timed on ``clock`` (the worker's waits for input)."""
        with clock:
            self._wait(worker, seq - self.window + 1)

    def ended(self, end: int) -> None:
        """A worker's input ended at number ``end``; each worker's end may have a number of
        its own, after every input's: the smallest is where the stream ends."""
        ctrl = self.ctrl
        self._acquire(self.lock)
        try:
            if end < ctrl[_END]:
                ctrl[_END] = end
                if ctrl[_WAITERS]:
                    self._wake_all()
        finally:
            self.lock.release()

    def gap(self, worker: int, seq: int) -> None:
        """Number ``seq`` came without an input: it is done as it is taken."""
        if seq - self.ctrl[TURN] >= self.window:
            self._wait(worker, seq - self.window + 1)
        self.done(seq)

    def gate(self, worker: int, seq: int) -> None:
        """Wait until outputs of input ``seq`` (-1: after the end) may leave."""
        ctrl = self.ctrl
        if seq < 0:
            if ctrl[TURN] < ctrl[_END]:
                self._wait(worker, _ALL_DONE)
        elif ctrl[TURN] != seq:  # the turn cannot pass seq before it is done: no lock needed
            self._wait(worker, seq)

    def done(self, seq: int) -> None:
        """Every output of input ``seq`` has left."""
        ctrl, flags, window = self.ctrl, self._flags, self.window
        acquire, release = self._lock_acquire, self._lock_release
        if not acquire(False):
            wait(acquire, self.spin)
        try:
            if ctrl[TURN] != seq:
                flags[seq % window] = 1
                return
            # A set flag ahead is the input of that very number: none is taken a window ahead.
            turn = seq + 1
            while flags[turn % window]:
                flags[turn % window] = 0
                turn += 1
            ctrl[TURN] = turn
            if ctrl[_WAITERS]:
                self._wake_all()
        finally:
            release()

    def _wait(self, worker: int, turn: int) -> None:
        """Sleep until the turn reaches ``turn`` (``_ALL_DONE``: every input is done)."""
        ctrl = self.ctrl
        wake = self.wakes[worker]
        while True:
            self._acquire(self.lock)
            try:
                if ctrl[_ABORT]:
                    raise Aborted()
                if self._holds(turn):
                    self._set_waiting(worker, _NOTHING)
                    return
                self._set_waiting(worker, turn)
            finally:
                self.lock.release()
            if not wake.acquire(False):
                wait(wake.acquire, self.spin)

    def _holds(self, turn: int) -> bool:
        return bool(self.ctrl[TURN] >= (self.ctrl[_END] if turn == _ALL_DONE else turn))

    def _wake_all(self) -> None:
        """Wake the workers whose wait may be over (called with the lock held)."""
        ctrl = self.ctrl
        for worker in range(self.workers):
            turn = ctrl[_WAITING + worker]
            if turn != _NOTHING and (self._holds(turn) or ctrl[_ABORT]):
                self._set_waiting(worker, _NOTHING)
                self.wakes[worker].release()

    def _set_waiting(self, worker: int, turn: int) -> None:
        """Record the turn ``worker`` waits for (``_NOTHING``: it does not), keeping ``_WAITERS`` (lock held)."""
        ctrl = self.ctrl
        was = ctrl[_WAITING + worker]
        if (was == _NOTHING) != (turn == _NOTHING):
            ctrl[_WAITERS] += 1 if was == _NOTHING else -1
        ctrl[_WAITING + worker] = turn

    def _acquire(self, lock: Lock) -> None:
        if not lock.acquire(False):
            wait(lock.acquire, self.spin)

    # -- the run's side -----------------------------------------------------------------

    def abort(self) -> None:
        """Wake every waiting worker with ``Aborted``; safe from any thread or process."""
        self.ctrl[_ABORT] = 1
        for wake in self.wakes:
            wake.release()

    def close(self) -> None:
        """Let go of the shared state (the run's owner, once every worker has ended)."""
        self._flags.release()
        self.ctrl.release()
        self.buffer.close()
