"""``ordered=True``: a stage's outputs leave in the order its inputs arrived.

::

    input edge --pull (one worker at a time; numbers the input)--> worker --gate: my turn?--> send
                                                                        |
    turn: the oldest input whose outputs may leave  <-- done(seq) ------+  (at its next pull)

The workers of an ordered stage share a ``Turnstile``.  A worker takes an
input and its number (``seq``, the order of arrival) together, under one
lock, so the numbers are the edge's own order.  Before it sends an output
of input ``seq`` it waits until ``turn == seq``; when it asks for its next
input, input ``seq`` is done: the turn moves past it (and past every later
input already done), or, if an older input is still being worked on, it is
marked done for the turn to skip later.  So the consumer sees exactly what
``workers=1`` gives it.  Outputs yielded after the input ended (a final
flush) belong to no input: they leave once every input is done.

Nothing is buffered for reordering: a worker whose output is not next waits
with it, holding one input and one reserved output slot (so it cannot
deadlock with ``packets_in_flight >= workers``, which is enforced).  Inputs
done out of turn are one flag each, in a ring of ``window`` flags; a worker
waits before taking an input ``window`` ahead of the oldest unfinished one.

Waits retry for the spin budget, then sleep on the worker's own semaphore;
whoever moves the turn wakes the workers waiting for the new one, under the
state lock, so no wake-up is lost.  ``abort()`` wakes everyone with
``Aborted``.  The shared state is a few int64 words in memory the backend
provides (a bytearray for threads, shared memory for processes).  Where
workers share no memory (Ray), the stage's input edge keeps the order
instead (``OrderedEdge``), behind the same face (``Order``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from .._transport import Aborted, Receiver
from .._transport._spin import spin_budget, wait

__all__ = ["InOrder", "Numbered", "Order", "OrderedEdge", "Turnstile", "window_for"]

_TURN, _NEXT, _END, _ABORT = 0, 1, 2, 3
_WAITERS = 4  # how many workers wait: whoever moves the turn wakes them only if some do
_WAITING = 5  # then one word a worker: the seq it waits for, or one of these
_NOTHING, _ROOM = -1, -2
_UNKNOWN = 1 << 62  # _END before the input ended


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
    """How far ahead of the oldest unfinished input a worker may take one."""
    return max(64, 4 * max(workers, packets_in_flight))


class Turnstile:
    """The order of one stage's inputs, shared by its workers; picklable to worker processes."""

    def __init__(
        self, workers: int, window: int, memory: Any, semaphore: Callable[[int], Lock], spin: float | None = None
    ) -> None:
        """``workers``: the threads that may wait, numbered from 0 (one a worker, or two for
        an async map stage's: its own and its input's); ``memory``: a buffer of
        ``Turnstile.size(workers, window)`` bytes (``.memory``); ``semaphore(value)``: a
        semaphore every worker can use; ``spin``: microseconds a wait retries before it sleeps
        (None: ``STREAMFLOW_SPIN_US`` or the default)."""
        self.workers = workers
        self.window = window
        self.buffer = memory
        self.lock = semaphore(1)  # guards the turn, the done flags and the waiting words
        self.pulling = semaphore(1)  # one worker takes an input (and its number) at a time
        self.wakes = [semaphore(0) for _ in range(workers)]
        self.spin = spin_budget(spin)
        self._map()
        ctrl = self.ctrl
        ctrl[_END] = _UNKNOWN
        for worker in range(workers):
            ctrl[_WAITING + worker] = _NOTHING

    @staticmethod
    def size(workers: int, window: int) -> int:
        return 8 * (_WAITING + workers + window)

    def _map(self) -> None:
        self.ctrl = memoryview(self.buffer.memory).cast("B").cast("q")
        self._done = _WAITING + self.workers

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "ctrl"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._map()

    def semaphores(self) -> list[Any]:
        return [self.lock, self.pulling, *self.wakes]

    # -- a worker's side ----------------------------------------------------------

    def take(self, worker: int, receiver: Receiver) -> tuple[Any, int]:
        """The next input and its number; ``StopIteration`` at the end of the stream.
        Its waits are the worker's waits for input (``receiver.clock``)."""
        ctrl = self.ctrl
        if ctrl[_NEXT] - ctrl[_TURN] >= self.window:
            with receiver.clock:
                self._wait(worker, _ROOM)
        pulling = self.pulling
        if not pulling.acquire(False):
            with receiver.clock:
                wait(pulling.acquire, self.spin)
        try:
            if ctrl[_ABORT]:
                raise Aborted()
            try:
                item = next(receiver)
            except StopIteration:
                self._acquire(self.lock)
                try:
                    ctrl[_END] = ctrl[_NEXT]  # every input is numbered now
                    if ctrl[_WAITERS]:
                        self._wake_all()
                finally:
                    self.lock.release()
                raise
            seq = ctrl[_NEXT]
            ctrl[_NEXT] = seq + 1
            return item, seq
        finally:
            pulling.release()

    def gate(self, worker: int, seq: int) -> None:
        """Wait until outputs of input ``seq`` (-1: after the end) may leave."""
        ctrl = self.ctrl
        if seq < 0:
            if ctrl[_TURN] < ctrl[_END]:
                self._wait(worker, _UNKNOWN)
        elif ctrl[_TURN] != seq:  # the turn cannot pass seq before it is done: no lock needed
            self._wait(worker, seq)

    def done(self, seq: int) -> None:
        """Every output of input ``seq`` has left."""
        ctrl, lock = self.ctrl, self.lock
        if not lock.acquire(False):
            wait(lock.acquire, self.spin)
        try:
            if ctrl[_TURN] != seq:
                ctrl[self._done + seq % self.window] = 1
                return
            turn, done, window = seq + 1, self._done, self.window
            while turn < ctrl[_NEXT] and ctrl[done + turn % window]:
                ctrl[done + turn % window] = 0
                turn += 1
            ctrl[_TURN] = turn
            if ctrl[_WAITERS]:
                self._wake_all()
        finally:
            lock.release()

    def _wait(self, worker: int, what: int) -> None:
        """Sleep until ``what`` holds: the turn is ``what`` (a seq), every input is done
        (``_UNKNOWN``), or there is room to take an input (``_ROOM``)."""
        ctrl = self.ctrl
        wake = self.wakes[worker]
        while True:
            self._acquire(self.lock)
            try:
                if ctrl[_ABORT]:
                    raise Aborted()
                if self._holds(what):
                    self._set_waiting(worker, _NOTHING)
                    return
                self._set_waiting(worker, what)
            finally:
                self.lock.release()
            if not wake.acquire(False):
                wait(wake.acquire, self.spin)

    def _holds(self, what: int) -> bool:
        ctrl = self.ctrl
        turn = ctrl[_TURN]
        if what == _ROOM:
            return bool(ctrl[_NEXT] - turn < self.window)
        if what == _UNKNOWN:
            return bool(turn >= ctrl[_END])
        return bool(turn == what)

    def _wake_all(self) -> None:
        """Wake the workers whose wait may be over (called with the lock held)."""
        ctrl = self.ctrl
        for worker in range(self.workers):
            what = ctrl[_WAITING + worker]
            if what != _NOTHING and (self._holds(what) or ctrl[_ABORT]):
                self._set_waiting(worker, _NOTHING)
                self.wakes[worker].release()

    def _set_waiting(self, worker: int, what: int) -> None:
        """Record what ``worker`` waits for (``_NOTHING``: it does not), keeping ``_WAITERS`` (lock held)."""
        ctrl = self.ctrl
        was = ctrl[_WAITING + worker]
        if (was == _NOTHING) != (what == _NOTHING):
            ctrl[_WAITERS] += 1 if was == _NOTHING else -1
        ctrl[_WAITING + worker] = what

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
        self.ctrl.release()
        self.buffer.close()


class InOrder:
    """An ordered stage's input as one worker takes it, and the gate on its outputs."""

    __slots__ = ("_turnstile", "_worker", "_receiver", "seq")

    def __init__(self, turnstile: Order, worker: int, receiver: Receiver) -> None:
        self._turnstile = turnstile
        self._worker = worker
        self._receiver = receiver
        self.seq = -2  # nothing taken yet (-1: the input has ended)

    def __iter__(self) -> InOrder:
        return self

    def __next__(self) -> Any:
        turnstile = self._turnstile
        if self.seq >= 0:
            turnstile.done(self.seq)
        # Let go of the last packet before queueing for the next one: a worker
        # that waits for its turn to take must not hold a slot the edge needs.
        self._receiver.release()
        try:
            item, self.seq = turnstile.take(self._worker, self._receiver)
        except StopIteration:
            self.seq = -1
            raise
        return item

    def next_within(self, seconds: float) -> Any:
        """Not timed here: an ordered stage's worker waits its turn to take an input."""
        return next(self)

    def release(self) -> None:
        self._receiver.release()

    def gate(self) -> None:
        """Wait until the output about to be sent may leave."""
        if self.seq != -2:
            self._turnstile.gate(self._worker, self.seq)

    def finish(self) -> None:
        if self.seq >= 0:  # a worker that stops early (downstream closed, an error)
            self._turnstile.done(self.seq)
            self.seq = -1
        self._receiver.finish()


class Numbered:
    """An async map stage's input, as one worker takes it: several inputs are in flight at once.

    Pulled on the worker's input thread, each item comes with its number
    (``seq``, read right after the pull); the worker's own thread waits for
    each output's turn (``gate``) and marks its input done as it leaves.
    """

    __slots__ = ("_turnstile", "_worker", "_taker", "_receiver", "seq", "_open")

    def __init__(self, turnstile: Order, worker: int, workers: int, receiver: Receiver) -> None:
        self._turnstile = turnstile
        self._worker = worker
        self._taker = workers + worker  # the input thread waits as a worker of its own
        self._receiver = receiver
        self.seq = -1
        self._open: set[int] = set()  # taken, not done

    def __iter__(self) -> Numbered:
        return self

    def __next__(self) -> Any:
        self._receiver.release()
        item, seq = self._turnstile.take(self._taker, self._receiver)
        self._open.add(seq)
        self.seq = seq
        return item

    def next_within(self, seconds: float) -> Any:
        return next(self)

    def release(self) -> None:
        self._receiver.release()

    def gate(self, seq: int) -> None:
        self._turnstile.gate(self._worker, seq)

    def done(self, seq: int) -> None:
        self._open.discard(seq)
        self._turnstile.done(seq)

    def finish(self) -> None:
        for seq in sorted(self._open):  # a worker that stops early lets the others go on
            self._turnstile.done(seq)
        self._open.clear()
        self._receiver.finish()
