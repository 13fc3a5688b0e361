"""An async stage's event loop: one a worker, in a thread of its own, and its input's thread.

::

    input edge --pull (input thread)--> AsyncInput --> async stage (loop thread) --> output (worker thread)
                                                                                  reserve, next(), send

To the rest of the runtime an async stage is a sync iterator of outputs,
so the pump, ordering and failure policies are the ones every stage uses.
Its worker's thread keeps doing what it does for any stage: it reserves a
slot on the output edge, asks for the next output and sends it.  The
output comes from an event loop that runs in a thread of its own
(``Loop``), started with the worker and kept across restarts under a
failure policy.  The stage's input reaches the loop through
``AsyncInput``, whose pulls run on a third thread, so that waiting for
input never blocks the loop.  An async generator's steps run one at a
time, as a generator's do (``Steps``); ``@sf.map`` on an ``async def``
keeps several calls in flight on the same loop (``_calls``).  ``timeout``
cancels a step or a call that overruns (``Deadline``).

When the worker stops (its stream ended, an error, downstream closed, a
cancel), every task on the loop is cancelled and awaited, so ``finally``
and ``async with`` blocks run, before the loop stops.  While the worker's
thread waits on the loop, it checks every ``_POLL`` seconds whether the
run was aborted: nothing on the edges wakes it there.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from typing import Any, TypeVar

from .._errors import ItemTimeout
from .._plan import Node
from .._transport import Aborted, Quiet
from ._current import working_as

__all__ = ["END", "AsyncInput", "Deadline", "Loop", "Steps"]

T = TypeVar("T")

_POLL = 0.05  # seconds between checks for an aborted run, while waiting on the loop
END: Any = object()  # the input stream ended (what ``pull`` gives last)


class Loop:
    """One worker's event loop, in a thread of its own, and the thread its input is pulled on."""

    def __init__(self, node: Node, worker: int, aborted: Callable[[], bool], grace: float) -> None:
        """``aborted()``: whether the run is being torn down (checked while waiting);
        ``grace``: seconds the calls cancelled as the worker stops get to finish (``shutdown_timeout``)."""
        self.loop = asyncio.new_event_loop()
        self._aborted = aborted
        self._grace = grace
        self._pulls = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=f"streamflow-{node.name}-input")
        self._thread = threading.Thread(
            target=self._serve, args=(node, worker), name=f"streamflow-{node.name}-loop", daemon=True
        )
        self._thread.start()

    def _serve(self, node: Node, worker: int) -> None:
        asyncio.set_event_loop(self.loop)
        with working_as(node, worker):
            self.loop.run_forever()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` on the loop, waiting for its result here; ``Aborted`` if the run is."""
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        while not concurrent.futures.wait([future], _POLL).done:
            if self._aborted():
                future.cancel()
                raise Aborted()
        return future.result()

    def take(self, results: queue.SimpleQueue[T]) -> T:
        """The next of ``results``, filled by the loop; ``Aborted`` if the run is."""
        while True:
            try:
                return results.get(timeout=_POLL)
            except queue.Empty:
                if self._aborted():
                    raise Aborted() from None

    async def pull(self, stream: Iterator[Any], most: int = 1) -> list[Any]:
        """The next item of ``stream``, and up to ``most - 1`` more that are there already,
        pulled on the input thread (one hop for all); ``END`` last at the stream's end."""
        return await asyncio.wrap_future(self._pulls.submit(_pull, stream, most))

    def close(self, close: Callable[[], Any] | None = None) -> None:
        """Cancel every task on the loop and wait for them, call ``close()`` (an instance's,
        awaited if it returns an awaitable; its errors are the worker's), and stop the loop."""
        try:
            if self._thread.is_alive():
                # Not ``run``: a torn-down run still gives the calls their ``finally`` blocks.
                cancelling = asyncio.run_coroutine_threadsafe(_cancel_all(self._grace), self.loop)
                concurrent.futures.wait([cancelling], self._grace + _POLL)
                if close is not None:
                    self.run(_closing(close))
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(self._grace + _POLL)
            if not self._thread.is_alive():
                self.loop.close()
            # A pull still waiting for input ends with the stream, or as the run is torn down.
            self._pulls.shutdown(wait=False)


def _pull(stream: Any, most: int) -> list[Any]:
    items: list[Any] = []
    ready = getattr(stream, "next_within", None)  # none inline: upstream is a generator, not an edge
    try:
        items.append(next(stream))
        while ready is not None and len(items) < most:
            items.append(ready(0))
    except StopIteration:
        items.append(END)
    except Quiet:
        pass
    return items


async def _cancel_all(grace: float) -> None:
    current = asyncio.current_task()
    tasks = [task for task in asyncio.all_tasks() if task is not current]
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks, timeout=grace)
    await asyncio.get_running_loop().shutdown_asyncgens()


async def _closing(close: Callable[[], Any]) -> None:
    closing = close()
    if isinstance(closing, Awaitable):
        await closing


class Deadline:
    """``timeout`` seconds of one item's own time: its task is cancelled when they run out.

    The clock runs while the stage's code runs on the item (``resume``) and
    stops while it waits for input or for room downstream (``pause``);
    ``renew`` gives a new item the whole budget.
    """

    __slots__ = ("seconds", "_left", "_loop", "_task", "_handle", "expired")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._left = seconds
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Future[Any] | None = None
        self._handle: asyncio.TimerHandle | None = None
        self.expired = False

    def renew(self) -> None:
        self._left = self.seconds

    def resume(self) -> None:
        assert self._loop is not None
        self.pause()
        self._handle = self._loop.call_later(self._left, self._expire)

    def pause(self) -> None:
        handle = self._handle
        if handle is not None:
            assert self._loop is not None
            self._left = max(0.0, handle.when() - self._loop.time())
            handle.cancel()
            self._handle = None

    def _expire(self) -> None:
        self._handle = None
        self._left = 0.0
        self.expired = True
        if self._task is not None:
            self._task.cancel()

    async def bound(self, awaitable: Awaitable[T]) -> T:
        """``awaitable``'s result; ``ItemTimeout`` if the budget runs out first."""
        self._loop = asyncio.get_running_loop()
        self._task = task = asyncio.ensure_future(awaitable)
        self.expired = False
        self.resume()
        try:
            return await task
        except asyncio.CancelledError:
            if self.expired:
                raise ItemTimeout(f"an item took longer than timeout={self.seconds:g} s") from None
            raise
        finally:
            self.pause()
            self._task = None


class AsyncInput:
    """A stage's input stream as an async iterator; each item is pulled on the input thread."""

    __slots__ = ("_stream", "_loop", "_deadline")

    def __init__(self, stream: Iterator[Any], loop: Loop, deadline: Deadline | None = None) -> None:
        self._stream = stream
        self._loop = loop
        self._deadline = deadline

    def __aiter__(self) -> AsyncInput:
        return self

    async def __anext__(self) -> Any:
        deadline = self._deadline
        if deadline is not None:
            deadline.pause()  # waiting for input is not the item's time
            await asyncio.sleep(0)  # a timeout that rang just now lands here, before the pull
        (item,) = await self._loop.pull(self._stream)
        if item is END:
            raise StopAsyncIteration
        if deadline is not None:
            deadline.renew()
            deadline.resume()
        return item


class Steps:
    """An async generator's outputs for the pump: one step at a time, on the worker's loop."""

    __slots__ = ("_loop", "_outputs", "_deadline")

    def __init__(self, loop: Loop, outputs: Any, deadline: Deadline | None) -> None:
        self._loop = loop
        self._outputs = outputs
        self._deadline = deadline

    def __iter__(self) -> Steps:
        return self

    def __next__(self) -> Any:
        output = self._loop.run(self._step())
        if output is END:
            raise StopIteration
        return output

    async def _step(self) -> Any:
        try:
            if self._deadline is None:
                return await self._outputs.__anext__()
            return await self._deadline.bound(self._outputs.__anext__())
        except StopAsyncIteration:
            return END

    def close(self) -> None:
        """Close the generator (its ``finally`` blocks run), as ``close()`` does a generator's."""
        try:
            self._loop.run(self._outputs.aclose())
        except RuntimeError:  # it was cancelled in the middle of a step: nothing to close
            pass
