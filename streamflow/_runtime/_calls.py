"""The async map engine: ``@sf.map`` on an ``async def`` keeps up to ``concurrency`` calls in flight.

::

    input edge --pull (input thread)--> _start (loop): a call for each input while there is room
                                          |  _attempt: the call, retried as ``decide`` says, on the loop
                                          v
    pump (worker thread) <-- Calls.__next__: finished calls' outputs (in input order if ordered),
                                 failures skipped or raised as ``decide`` says

It starts a call for each input while the worker holds fewer than
``concurrency`` inputs whose outputs have not left, and hands results to
the pump as they finish, in input order when the stage is ordered (with
several workers, each output also waits for its turn, ``Numbered``).  A
worker holds at most ``concurrency`` inputs whose outputs have not left.
Policies apply per call, on the loop: a retry awaits its delay, and
``timeout`` cancels the call (``Deadline``).
"""

from __future__ import annotations

import asyncio
import collections
import queue
from collections.abc import Callable, Iterator
from typing import Any

from .._plan import Node
from .._records import FailureEvent, PortableError
from .._transport import HOLE
from ._decide import Decision, decide
from ._loop import END, Deadline, Loop
from ._order import Numbered
from ._policy import Count, Record
from ._remote import name_item

__all__ = ["Calls"]


class _Call:
    """One input of an async map stage, and what came of it."""

    __slots__ = ("item", "position", "seq", "output", "error", "decision", "attempts", "retries", "timeouts")

    def __init__(self, item: Any, position: int, seq: int) -> None:
        self.item = item
        self.position = position  # in the worker's input, from 1
        self.seq = seq  # in the stage's input, when it is ordered
        self.output: Any = None
        self.error: Exception | None = None
        self.decision: Decision | None = None  # what its last failure came to: skip or raise
        self.attempts = 0
        self.retries = 0
        self.timeouts = 0


class Calls:
    """An async map stage's outputs for the pump: up to ``concurrency`` calls in flight.

    The loop starts a call for each input while the worker holds fewer than
    ``concurrency`` inputs whose outputs have not left; this side hands out
    the finished calls' outputs, in input order if the stage is ordered, and
    settles their failures as the stage's policy says.  ``order``: the
    stage's ``Numbered`` input (ordered with several workers), whose turn
    each output waits for.
    """

    def __init__(
        self,
        node: Node,
        worker: int,
        function: Callable[..., Any],
        constants: dict[str, Any],
        stream: Iterator[Any],
        loop: Loop,
        record: Record,
        count: Count,
        order: Numbered | None = None,
    ) -> None:
        self._node = node
        self._worker = worker
        self._function = function
        self._constants = constants
        self._stream = stream
        self._loop = loop
        self._record = record
        self._count = count
        self._order = order
        self._in_order = node.options.ordered
        self._finished: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._early: dict[int, _Call] = {}  # finished out of turn (ordered)
        self._expected = 1  # the position whose output leaves next (ordered)
        self._sent = False  # an input was settled since the last call: free its room
        self._left = -1  # the seq of the output handed out last, to mark done once it has left
        self._free = node.options.concurrency  # calls that may start (the loop's to change)
        self._roomy: asyncio.Event | None = None  # set when ``_free`` grew
        self._freed: collections.deque[None] = collections.deque()  # rooms freed by this side
        self._starting = asyncio.run_coroutine_threadsafe(self._start(), loop.loop)

    def __iter__(self) -> Calls:
        return self

    def __next__(self) -> Any:
        order = self._order
        while True:
            if self._sent:  # the output handed out last has left: its input's room is free
                self._sent = False
                freed = self._freed
                freed.append(None)
                if len(freed) == 1:  # else the wake-up on its way takes this one too
                    self._loop.loop.call_soon_threadsafe(self._release)
                if order is not None and self._left >= 0:
                    order.done(self._left)
                    self._left = -1
            call = self._next_finished()
            if call is END:
                raise StopIteration
            if call.retries:
                self._count("retries", call.retries)
            if call.timeouts:
                self._count("timeouts", call.timeouts)
            self._sent = True
            if call.error is None:
                if order is not None:
                    order.gate(call.seq)
                    self._left = call.seq
                return call.output
            if order is not None:
                order.done(call.seq)
            assert call.decision is not None
            if call.decision.action == "raise":
                error = call.error
                name_item(error, call.position, call.item)
                raise error
            self._count("skips", 1)
            self._record(
                FailureEvent(self._node.index, self._worker, call.item, PortableError(call.error), call.attempts)
            )
            if self._node.holes:  # in a zip's branch: the skipped input leaves a hole
                return HOLE

    def _next_finished(self) -> Any:
        if not self._in_order:
            return self._take()
        while self._expected not in self._early:
            call = self._take()
            if call is END:
                return END
            self._early[call.position] = call
        self._expected += 1
        return self._early.pop(self._expected - 1)

    def _take(self) -> Any:
        finished = self._loop.take(self._finished)
        if isinstance(finished, BaseException):
            raise finished
        return finished

    def _release(self) -> None:
        """On the loop: take the rooms freed since the last time."""
        assert self._roomy is not None
        freed = self._freed
        while True:
            try:
                freed.popleft()
            except IndexError:
                break
            self._free += 1
        self._roomy.set()

    async def _start(self) -> None:
        """Start a call for each input while there is room; ``END`` once every call has finished.

        Unordered, one pull takes as many inputs as are there and have room:
        one hop to the input thread for all of them.
        """
        self._roomy = roomy = asyncio.Event()
        calls: set[asyncio.Task[None]] = set()
        position = 0
        numbered = self._order
        try:
            ended = False
            while not ended:
                while self._free == 0:
                    roomy.clear()
                    await roomy.wait()
                for item in await self._loop.pull(self._stream, 1 if numbered else self._free):
                    if item is END:
                        ended = True
                        break
                    self._free -= 1
                    position += 1
                    call = _Call(item, position, -1 if numbered is None else numbered.seq)
                    if item is HOLE:  # passed on as it is, in its turn: no call for it
                        call.output = HOLE
                        self._finished.put(call)
                        continue
                    task = asyncio.ensure_future(self._attempt(call))
                    calls.add(task)
                    task.add_done_callback(calls.discard)
            if calls:
                await asyncio.wait(calls)
        except BaseException as exc:  # the input failed or was aborted: the worker raises it
            self._finished.put(exc)
            raise
        self._finished.put(END)

    async def _attempt(self, call: _Call) -> None:
        """Call the function on ``call``'s item as the policy says, then hand it over."""
        options = self._node.options
        deadline = None if options.timeout is None else Deadline(options.timeout)
        while True:
            call.attempts += 1
            try:
                coroutine = self._function(call.item, **self._constants)
                call.output = await (coroutine if deadline is None else deadline.bound(coroutine))
                call.error = None
                break
            except Exception as error:  # noqa: BLE001 - the policy decides
                call.error = error
                call.decision = decision = decide(error, call.attempts, options)
                call.timeouts += decision.timed_out
                if decision.action != "retry":
                    break
                call.retries += 1
                await asyncio.sleep(decision.delay)
        self._finished.put(call)  # not when cancelled: the worker is stopping

    def close(self) -> None:
        """Stop starting calls; the loop's closing cancels the ones in flight."""
        self._starting.cancel()
