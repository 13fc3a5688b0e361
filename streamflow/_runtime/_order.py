"""``ordered=True``: a stage's outputs leave in the order its inputs arrived.

::

    input edge --next (numbers the input)--> worker --gate: my turn?--> send
                                                  |
    turn: the oldest input whose outputs may leave  <-- done(seq) --+  (at its next pull)

The workers of an ordered stage share a ``Turnstile``.  Each input has a
number (``seq``) that its edge gave it, in the edge's own order
(``NumberingReceiver``: a shared-memory edge's ready queue numbers its
packets; a threads' edge numbers them as they are put), so the workers
take their inputs as an unordered stage's would.  Before it sends an
output of input ``seq`` a worker waits until ``turn == seq``; when it asks
for its next input (a map stage's: as soon as its one output has left),
input ``seq`` is done: the turn moves past it (and past every later input
already done), or, if an older input is still being worked on, it is
marked done for the turn to skip later.  Numbers that came
without an input (a slot its producer gave back empty) are done as they
are taken.  So the consumer sees exactly what ``workers=1`` gives it.
Outputs yielded after the input ended (a final flush) belong to no input:
they leave once every input is done.

Nothing is buffered for reordering: a worker whose output is not next waits
with it, holding one input and one reserved output slot (so it cannot
deadlock with ``packets_in_flight >= workers``, which is enforced).  Inputs
done out of turn are one flag each, in a ring of ``window`` flags; a worker
that takes an input ``window`` ahead of the oldest unfinished one waits
before it works on it.

Waits retry for the spin budget, then sleep on the worker's own semaphore;
whoever moves the turn wakes the workers waiting for the new one, under the
state lock, so no wake-up is lost.  ``abort()`` wakes everyone with
``Aborted``.  The shared state is a few int64 words in memory the backend
provides (a bytearray for threads, shared memory for processes).  Where
workers share no memory (Ray), the stage's input edge keeps the order
instead (``OrderedEdge``), behind the same face (``Order``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any, Protocol, runtime_checkable

from .._transport import Aborted, NumberingReceiver, Receiver
from .._transport._clock import Clock
from .._transport._spin import spin_budget, wait

__all__ = ["InEdgeOrder", "InOrder", "Numbered", "Order", "OrderedEdge", "Turnstile", "in_order", "window_for"]

_TURN, _END, _ABORT = 0, 1, 2
_WAITERS = 3  # how many workers wait: whoever moves the turn wakes them only if some do
_WAITING = 4  # then one word a worker: the turn it waits for, or _NOTHING
_NOTHING = -1
_ALL_DONE = 1 << 62  # a wait until every input is done; also _END, until the input ended
_MAPPED = ("ctrl", "_flags", "_lock_acquire", "_lock_release")  # made again in each process (``_map``)

# ``InOrder.seq`` when it is no input's number:
_UNTAKEN = -2  # nothing taken yet
_ENDED = -1  # the input has ended: outputs now leave after every input's
_SENT = -3  # a map stage's input whose output has left: done already


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
        if seq - self.ctrl[_TURN] >= self.window:
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
        if seq - self.ctrl[_TURN] >= self.window:
            self._wait(worker, seq - self.window + 1)
        self.done(seq)

    def gate(self, worker: int, seq: int) -> None:
        """Wait until outputs of input ``seq`` (-1: after the end) may leave."""
        ctrl = self.ctrl
        if seq < 0:
            if ctrl[_TURN] < ctrl[_END]:
                self._wait(worker, _ALL_DONE)
        elif ctrl[_TURN] != seq:  # the turn cannot pass seq before it is done: no lock needed
            self._wait(worker, seq)

    def done(self, seq: int) -> None:
        """Every output of input ``seq`` has left."""
        ctrl, flags, window = self.ctrl, self._flags, self.window
        acquire, release = self._lock_acquire, self._lock_release
        if not acquire(False):
            wait(acquire, self.spin)
        try:
            if ctrl[_TURN] != seq:
                flags[seq % window] = 1
                return
            # A set flag ahead is the input of that very number: none is taken a window ahead.
            turn = seq + 1
            while flags[turn % window]:
                flags[turn % window] = 0
                turn += 1
            ctrl[_TURN] = turn
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
        return bool(self.ctrl[_TURN] >= (self.ctrl[_END] if turn == _ALL_DONE else turn))

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


def in_order(order: Order, worker: int, receiver: Receiver) -> InOrder:
    """An ordered stage's input as worker ``worker`` takes it from ``receiver``."""
    if isinstance(order, Turnstile):
        return InEdgeOrder(order, worker, order.numbering(worker, receiver))
    return InOrder(order, worker, receiver)


class InOrder:
    """An ordered stage's input as one worker takes it, and the gate on its outputs."""

    __slots__ = ("_turnstile", "_worker", "_receiver", "_send", "seq")
    _send: Callable[[Any], None]  # set by ``sending``

    def __init__(self, turnstile: Order, worker: int, receiver: Receiver) -> None:
        self._turnstile = turnstile
        self._worker = worker
        self._receiver = receiver
        self.seq = _UNTAKEN

    def __iter__(self) -> Iterator[Any]:
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
            self.seq = _ENDED
            raise
        return item

    def next_within(self, seconds: float) -> Any:
        """Not timed here: an ordered stage's worker waits its turn to take an input."""
        return next(self)

    def release(self) -> None:
        self._receiver.release()

    def sending(self, send: Callable[[Any], None], per_item: bool) -> Callable[[Any], None]:
        """``send`` for the stage's outputs: each waits for its input's turn.  A map stage's
        (``per_item``) is its input's only output, so the input is done as it leaves, not at
        the worker's next pull, which first waits for room downstream."""
        self._send = send
        return self._send_only if per_item else self._send_next

    def _send_next(self, item: Any) -> None:
        self.gate()
        self._send(item)

    def _send_only(self, item: Any) -> None:
        self.gate()
        self._send(item)
        seq = self.seq
        if seq >= 0:
            self.seq = _SENT
            self._turnstile.done(seq)

    def gate(self) -> None:
        """Wait until the output about to be sent may leave."""
        if self.seq != _UNTAKEN:
            self._turnstile.gate(self._worker, self.seq)

    def finish(self) -> None:
        if self.seq >= 0:  # a worker that stops early (downstream closed, an error)
            self._turnstile.done(self.seq)
            self.seq = _ENDED
        self._receiver.finish()


class InEdgeOrder(InOrder):
    """``InOrder`` on an edge that numbers its packets (a ``Turnstile``'s): its steps bound once,
    its turn looked at without a call, its input read by one generator (``_items``): resuming
    a generator costs less than a call to ``__next__`` from C, per item."""

    __slots__ = ("_ctrl", "_done", "_input")

    def __init__(self, turnstile: Turnstile, worker: int, receiver: NumberingReceiver) -> None:
        super().__init__(turnstile, worker, receiver)
        self._ctrl = turnstile.ctrl
        self._done = turnstile.done
        self._input = self._items(turnstile, receiver)

    def __iter__(self) -> Iterator[Any]:
        return self._input

    def __next__(self) -> Any:
        return next(self._input)

    def _items(self, turnstile: Turnstile, receiver: NumberingReceiver) -> Iterator[Any]:
        """``Turnstile.take`` inlined, its waits left to it: a call and a tuple less an item."""
        done, ctrl, window, worker = self._done, self._ctrl, turnstile.window, self._worker
        while True:
            seq = self.seq
            if seq >= 0:
                done(seq)
            try:
                item = next(receiver)  # frees the last packet first
            except StopIteration:
                self.seq = _ENDED
                turnstile.ended(receiver.position)
                return
            self.seq = seq = receiver.position
            if seq - ctrl[_TURN] >= window:
                turnstile.make_room(worker, seq, receiver.clock)
            yield item

    def _send_next(self, item: Any) -> None:
        if self._ctrl[_TURN] != self.seq:
            super().gate()
        self._send(item)

    def _send_only(self, item: Any) -> None:
        seq = self.seq
        if self._ctrl[_TURN] != seq:
            super().gate()
        self._send(item)
        if seq >= 0:
            self.seq = _SENT
            self._done(seq)


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
        if isinstance(turnstile, Turnstile):
            turnstile.numbering(self._taker, receiver)

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
