"""``ordered=True``: a stage's outputs leave in the order its inputs arrived.

::

    input edge --next (numbers the input)--> worker --gate: my turn?--> send
                                                  |
    turn: the oldest input whose outputs may leave  <-- done(seq) --+  (at its next pull)

The workers of an ordered stage share a turnstile (``_transport/_turnstile``).
Each input has a number (``seq``) that its edge gave it, in the edge's own
order (``NumberingReceiver``: a shared-memory edge's ready queue numbers its
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
deadlock with ``packets_in_flight >= workers``, which is enforced).  This
module holds the worker's side: its input as it takes it (``InOrder``,
``InEdgeOrder``, ``Numbered`` for an async map's calls) and the gate on
its outputs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from .._transport import NumberingReceiver, Receiver
from .._transport._turnstile import TURN, Order, Turnstile

__all__ = ["InEdgeOrder", "InOrder", "Numbered", "in_order"]

# ``InOrder.seq`` when it is no input's number:
_UNTAKEN = -2  # nothing taken yet
_ENDED = -1  # the input has ended: outputs now leave after every input's
_SENT = -3  # a map stage's input whose output has left: done already


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
            if seq - ctrl[TURN] >= window:
                turnstile.make_room(worker, seq, receiver.clock)
            yield item

    def _send_next(self, item: Any) -> None:
        if self._ctrl[TURN] != self.seq:
            super().gate()
        self._send(item)

    def _send_only(self, item: Any) -> None:
        seq = self.seq
        if self._ctrl[TURN] != seq:
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
