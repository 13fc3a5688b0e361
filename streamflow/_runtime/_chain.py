"""The inline backend's run: every stage's generator chained in the calling thread.

::

    caller: next() --> last stage --> ... --> first stage (all lazily, one packet at a time)

The chain follows the plan: each node reads the streams of its input links
and its outputs are the stream of its output link, built in the order of
the nodes' links, so that a node's inputs exist before it does.

No workers, no edges, no statistics: for debugging and deterministic
tests.  Each stage runs as its one worker would (``Body``, under its
failure policy), with ``worker_info()`` naming it and its errors noted with
its name and the last item it received.  An error
raised upstream crosses the stages below it as ``_Failed``, a
BaseException, so that their ``except Exception:`` cannot swallow it, as
on every other backend.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import CancelledError
from typing import Any

from .._failures import Failure
from .._options import RunConfig
from .._plan import Node, Plan
from .._records import FailureEvent
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


class _Noted:
    """Iterate a stage's output, naming the stage (and the last item it read) in its errors.

    ``last`` and ``count`` are what the next stage down has read of it.
    """

    __slots__ = ("_items", "_node", "_input", "_halt", "last", "count")

    def __init__(self, items: Iterator[Any], node: Node, input: _Noted | None, halt: _Halt) -> None:
        self._items = items
        self._node = node
        self._input = input
        self._halt = halt
        self.last: Any = None
        self.count = 0

    def __iter__(self) -> _Noted:
        return self

    def __next__(self) -> Any:
        if self._halt.requested:
            raise _Failed(CancelledError("the run was cancelled before it ended"))
        try:
            with working_as(self._node, 0):
                item = next(self._items)
        except (StopIteration, _Failed):
            raise
        except Exception as exc:
            _note(exc, self._node, self._input)
            raise _Failed(exc) from None
        except BaseException as exc:  # Ctrl-C and the like end the run as they are
            _note(exc, self._node, self._input)
            raise
        self.last = item
        self.count += 1
        return item

    def close(self) -> None:
        close = getattr(self._items, "close", None)
        if close is not None:
            close()


def _note(error: BaseException, node: Node, input: _Noted | None) -> None:
    if input is not None and input.count and not (node.is_async and node.per_item):  # ``Calls`` names its own
        name_item(error, input.count, input.last)
    add_stage_note(error, node.name, 0, 1)


class Chained:
    """An ``Execution`` that runs lazily in the caller's thread."""

    def __init__(self, plan: Plan, config: RunConfig) -> None:
        self._plan = plan
        self._finished = False
        self._outcome: tuple[list[Any], BaseException | None] | None = None
        self._log = FailureLog(plan, config.max_failures)
        self._grace = config.shutdown_timeout
        self._bodies: list[Body] = []
        self._halt = _Halt()
        self._streams: dict[int, _Noted] = {}  # by link: the outputs of the node that writes it
        for node in plan.nodes:  # in an order where a node comes after those it reads
            if node.kind != "sink":
                stream = self._input(node)
                (link,) = plan.outputs(node)  # a stage writes one stream
                self._streams[link.index] = _Noted(iter(self._call(node, stream)), node, stream, self._halt)
        self._stream: _Noted | None = None
        for link in plan.caller_links:
            self._stream = self._streams[link.index]

    def _input(self, node: Node) -> _Noted | None:
        """The stream ``node`` reads: its one input link's (none for a source)."""
        streams = [self._streams[link.index] for link in self._plan.inputs(node)]
        if not streams:
            return None
        (stream,) = streams
        return stream

    @property
    def failures(self) -> list[Failure]:
        return self._log.failures

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

    def result(self) -> list[Any]:
        if self._outcome is None:
            self._outcome = self._compute()
        value, error = self._outcome
        if error is not None:
            raise error
        return value

    def _compute(self) -> tuple[list[Any], BaseException | None]:
        self._halt.busy = True
        try:
            results = [self._call(sink, self._input(sink)) for sink in self._plan.sinks]
            for _ in self._stream or ():
                pass
            return results, None
        except _Failed as failed:
            return [], failed.error
        except Exception as error:  # noqa: BLE001 - kept, raised on every result()
            return [], error
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
                if self._stream is not None:
                    self._stream.close()
            finally:
                bodies, self._bodies = self._bodies, []
                for body in bodies:
                    body.close()

    def _call(self, node: Node, stream: _Noted | None) -> Any:
        """Start ``node`` on ``stream`` as its one worker would: its outputs, or a sink's value."""
        try:
            with working_as(node, 0):
                body = Body(node, grace=self._grace)
                self._bodies.append(body)
                if node.kind == "sink":
                    return body.call(stream)
                return outputs(node, 0, body, stream, self._record, _uncounted)
        except _Failed:
            raise
        except BaseException as exc:
            _note(exc, node, stream)
            raise

    def _record(self, event: FailureEvent) -> None:
        self._log.add(event)


def _uncounted(what: str, times: int = 1) -> None:
    """The inline backend keeps no statistics."""
