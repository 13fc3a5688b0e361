"""The inline backend's run: every stage's generator chained in the calling thread.

::

    caller: next() --> pull(caller's link) --> a writer's outputs --> pull(its input link) --> ...
                        (lazily, one item at a time; what a writer yields goes where its fanout says)

The chain follows the plan.  Each link has a queue; reading a link takes
from its queue, and when the queue is empty, advances one of the link's
writers (in turn, for a link several nodes write) by one output, which
goes down that writer's fanout: into every branch's queue for a tee, into
the chosen one for a route.  A zip's join reads one item of each of its
links.  Sinks run when the run's result is asked for (an open flow's,
once its items are read), one after the other: a sink's branch queues
what the others read before it runs.  So inline a tee's branches hold in
memory what their siblings have read ahead of them; the other backends
bound every edge.

No workers, no edges, no statistics: for debugging and deterministic
tests.  Each stage runs as its one worker would (``Body``, under its
failure policy, driven as ``_drive`` chooses), with ``worker_info()``
naming it and its errors noted with its name and the last item it
received.  An error raised upstream crosses the stages below it as
``_Failed``, a BaseException, so that their ``except Exception:`` cannot
swallow it, as on every other backend.
"""

from __future__ import annotations

import collections
from collections.abc import Iterator
from concurrent.futures import CancelledError
from typing import Any

from .._errors import UnroutedItem
from .._failures import Failure
from .._options import RunConfig
from .._plan import Fanout, Node, Plan, Route, Send, Tee
from .._records import FailureEvent, PortableError
from .._text import short
from .._transport import HOLE
from ._body import Body
from ._current import working_as
from ._drive import outputs
from ._failure_log import FailureLog
from ._remote import add_stage_note, name_item

__all__ = ["Chained"]


class _Failed(BaseException):
    """An error raised upstream, on its way through the stages below to the caller."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(error)
        self.error = error


class _Halt:
    """A cancel asked for from another thread while the chain runs (an async caller's)."""

    __slots__ = ("requested", "busy")

    def __init__(self) -> None:
        self.requested = False  # stop at the next item
        self.busy = False  # a thread is running the chain: it cleans up as it stops


class _Input:
    """What a node reads: its link's items (or a zip's tuples); ``last`` and ``count`` name its errors' item."""

    __slots__ = ("_chain", "_links", "last", "count")

    def __init__(self, chain: Chained, links: tuple[int, ...]) -> None:
        self._chain = chain
        self._links = links
        self.last: Any = None
        self.count = 0

    def __iter__(self) -> _Input:
        return self

    def __next__(self) -> Any:
        chain = self._chain
        while True:
            items = [chain.take(link) for link in self._links]
            if len(items) == 1:
                item = items[0]
                break
            if not any(one is HOLE for one in items):  # a zip: a tuple with a hole is none
                item = tuple(items)
                break
        self.last = item
        self.count += 1
        return item


class _Noted:
    """Iterate a stage's outputs, naming the stage (and the last item it read) in its errors."""

    __slots__ = ("_items", "_node", "_input", "_halt")

    def __init__(self, items: Iterator[Any], node: Node, input: _Input | None, halt: _Halt) -> None:
        self._items = items
        self._node = node
        self._input = input
        self._halt = halt

    def __iter__(self) -> _Noted:
        return self

    def __next__(self) -> Any:
        if self._halt.requested:
            raise _Failed(CancelledError("the run was cancelled before it ended"))
        try:
            with working_as(self._node, 0):
                return next(self._items)
        except (StopIteration, _Failed):
            raise
        except Exception as exc:
            _note(exc, self._node, self._input)
            raise _Failed(exc) from None
        except BaseException as exc:  # Ctrl-C and the like end the run as they are
            _note(exc, self._node, self._input)
            raise

    def close(self) -> None:
        close = getattr(self._items, "close", None)
        if close is not None:
            close()


def _note(error: BaseException, node: Node, input: _Input | None) -> None:
    if input is not None and input.count and not (node.is_async and node.per_item):  # ``Calls`` names its own
        name_item(error, input.count, input.last)
    add_stage_note(error, node.name, 0, 1)


class Chained:
    """An ``Execution`` that runs lazily in the caller's thread."""

    def __init__(self, plan: Plan, config: RunConfig) -> None:
        self._plan = plan
        self._finished = False
        self._outcome: tuple[dict[int, list[Any]], BaseException | None] | None = None
        self._log = FailureLog(plan, config.max_failures)
        self._grace = config.shutdown_timeout
        self._bodies: list[Body] = []
        self._halt = _Halt()
        self._queues: dict[int, collections.deque[Any]] = {link.index: collections.deque() for link in plan.links}
        self._live: dict[int, list[int]] = {link.index: list(link.writers) for link in plan.links}  # writers not ended
        self._outputs: dict[int, _Noted] = {}  # by node
        self._results: dict[int, list[Any]] = {}  # by sink node, once it has run
        for node in plan.nodes:  # in an order where a node comes after those it reads
            if node.kind != "sink":
                stream = self._input(node)
                self._outputs[node.index] = _Noted(iter(self._call(node, stream)), node, stream, self._halt)
        callers = tuple(link.index for link in plan.caller_links)
        self._stream: _Input | None = _Input(self, callers) if callers else None

    def _input(self, node: Node) -> _Input | None:
        """What ``node`` reads: its input links' items (none for a source)."""
        return _Input(self, node.inputs) if node.inputs else None

    # -- moving items ---------------------------------------------------------------

    def take(self, link: int) -> Any:
        """The next item of ``link``, advancing its writers until one comes; ``StopIteration`` at its end."""
        queue, live = self._queues[link], self._live[link]
        while not queue:
            if not live:
                raise StopIteration
            writer = live.pop(0)
            try:
                item = next(self._outputs[writer])
            except StopIteration:
                for others in self._live.values():  # it ended for every link it writes
                    if writer in others:
                        others.remove(writer)
                continue
            live.append(writer)  # the next writer's turn next
            self._deliver(self._plan.node(writer), self._plan.node(writer).fanout, item)
        return queue.popleft()

    def _deliver(self, node: Node, fanout: Fanout | None, item: Any) -> None:
        """Put ``item``, which ``node`` yielded, where ``fanout`` sends it."""
        if isinstance(fanout, Send):
            self._queues[fanout.link].append(item)
        elif isinstance(fanout, Tee):
            for branch in fanout.branches:
                self._deliver(node, branch, item)
        elif isinstance(fanout, Route):
            self._route(node, fanout, item)

    def _route(self, node: Node, route: Route, item: Any) -> None:
        try:
            key = route.key(item)
        except Exception as exc:
            add_stage_note(exc, node.name, 0, 1)
            raise _Failed(exc) from None
        choices = dict(route.choices)
        try:
            chosen = choices.get(key, route.default)
        except TypeError:
            chosen = route.default
        if chosen is not None:
            self._deliver(node, chosen, item)
            return
        error = UnroutedItem(
            f"{route.block} has no branch for key {short(key)} of item {short(item, 60)} and no default; "
            f"its keys are: {', '.join(short(k) for k in choices) or 'none'}"
        )
        if not route.skip:
            add_stage_note(error, node.name, 0, 1)
            raise _Failed(error)
        self._log.add(FailureEvent(node.index, 0, item, PortableError(error), 1, where=route.block))

    # -- the Execution ---------------------------------------------------------------

    @property
    def failures(self) -> list[Failure]:
        return self._log.failures

    @property
    def unlettered(self) -> list[Failure]:
        return self._log.unlettered

    @property
    def finished(self) -> bool:
        return self._finished

    @property
    def stats(self) -> None:
        return None

    def wait(self, timeout: float | None) -> bool:
        return True  # the work happens as the caller asks for it

    def next_output(self) -> Any:
        assert self._stream is not None
        self._halt.busy = True
        try:
            return next(self._stream)
        except StopIteration:
            self._halt.busy = False
            self.result()  # the sinks of its closed branches run now
            raise
        except _Failed as failed:
            self._halt.busy = False
            self.cancel()
            raise failed.error from failed.error.__cause__
        except BaseException:
            self._halt.busy = False
            self.cancel()
            raise
        finally:
            self._halt.busy = False

    def result(self) -> dict[int, list[Any]]:
        if self._outcome is None:
            self._outcome = self._compute()
        value, error = self._outcome
        if error is not None:
            raise error
        return value

    def _compute(self) -> tuple[dict[int, list[Any]], BaseException | None]:
        self._halt.busy = True
        try:
            for sink in self._plan.sinks:
                self._results[sink.index] = [self._call(sink, self._input(sink))]
            for _ in self._stream or ():
                pass
            return dict(self._results), None
        except _Failed as failed:
            return {}, failed.error
        except Exception as error:  # noqa: BLE001 - kept, raised on every result()
            return {}, error
        finally:
            self._halt.busy = False
            self.cancel()

    def cancel(self) -> None:
        """Stop the chain; from another thread while it runs, at its next item."""
        self._halt.requested = True
        if self._halt.busy:
            return  # the running thread stops at the next item and cleans up
        if not self._finished:
            self._finished = True
            try:
                for stream in self._outputs.values():
                    stream.close()
            finally:
                bodies, self._bodies = self._bodies, []
                for body in bodies:
                    body.close()

    def _call(self, node: Node, stream: _Input | None) -> Any:
        """Start ``node`` on ``stream`` as its one worker would: its outputs, or a sink's value."""
        try:
            with working_as(node, 0):
                body = Body(node, grace=self._grace)
                self._bodies.append(body)
                if node.kind == "sink":
                    return body.call(stream)
                return outputs(node, 0, body, stream, self._recorder(node), _uncounted)
        except _Failed:
            raise
        except BaseException as exc:
            _note(exc, node, stream)
            raise

    def _recorder(self, node: Node) -> Any:
        """Keep a skipped item of ``node``'s, and put it into its dead-letter branch, if it has one."""

        def record(event: FailureEvent) -> None:
            if node.letters is not None:
                event.lettered = True
                error = event.error.unwrap()
                self._deliver(node, node.letters, Failure(node.name, 0, event.item, error, event.error.text, event.attempts))
            self._log.add(event)

        return record


def _uncounted(what: str, times: int = 1) -> None:
    """The inline backend keeps no statistics."""
