"""A stage's code as one worker runs it: its function, or its class's one instance.

``Body(node)`` is built where the worker runs, when it starts: for a class
stage that is when the instance is built (so a model is loaded once per
worker, on that worker's device), kept for the whole run, across restarts
under a failure policy, and closed however the worker ends.  ``call``
starts the stage on a stream: a generator stage's function as it is, a
map stage's function once per item.  An async stage runs on the worker's
event loop (``_loop.Loop``), started here and stopped by ``close``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from .._plan import Node
from .._text import short
from ._loop import AsyncInput, Deadline, Loop, Steps

__all__ = ["Body"]


class Body:
    """What a worker calls: ``node``'s function with its constants, or its class's instance."""

    __slots__ = ("_node", "_target", "_constants", "_instance", "loop")

    def __init__(
        self, node: Node, worker: int = 0, aborted: Callable[[], bool] = lambda: False, grace: float = 5.0
    ) -> None:
        """For an async stage: ``aborted()`` says whether the run is being torn down (checked
        while waiting), and ``grace`` is the seconds its cancelled calls get to finish."""
        self._node = node
        self._instance: Any = None
        self._target: Callable[..., Any] = node.function
        self._constants: Mapping[str, Any] = node.constants
        self.loop = Loop(node, worker, aborted, grace) if node.is_async else None
        if node.factory:
            self._instance = self._target = node.function(**node.constants)
            self._constants = {}

    def call(self, stream: Iterator[Any] | None) -> Any:
        """Start the stage on ``stream`` (None for a source): its outputs, or a sink's result.

        An async map stage's outputs come from ``_calls.Calls`` instead, built by the worker.
        """
        node, target, constants, loop = self._node, self._target, self._constants, self.loop
        if loop is not None:
            return self._call_async(loop, stream)
        if node.kind == "source":
            return _outputs(node, target(**constants))
        assert stream is not None
        if node.per_item:
            return _each(target, stream, constants)
        if node.kind == "sink":
            return target(stream, **constants)
        return _outputs(node, target(stream, **constants))

    def _call_async(self, loop: Loop, stream: Iterator[Any] | None) -> Any:
        node, target, constants = self._node, self._target, self._constants
        timeout = node.options.timeout
        deadline = None if timeout is None else Deadline(timeout)
        if stream is None:
            return Steps(loop, target(**constants), deadline)
        assert not node.per_item
        items = AsyncInput(stream, loop, deadline)
        if node.kind == "sink":
            return loop.run(target(items, **constants))
        return Steps(loop, target(items, **constants), deadline)

    def per_item(self) -> tuple[Callable[..., Any], Mapping[str, Any]]:
        """A map stage's function (or instance) and the constants to call it with."""
        return self._target, self._constants

    def close(self) -> None:
        """Call the instance's ``close()``, if it has one (class stages only); stop the loop."""
        close = getattr(self._instance, "close", None)
        self._instance = None
        if self.loop is not None:
            loop, self.loop = self.loop, None
            loop.close(close)
        elif close is not None:
            close()


def _outputs(node: Node, outputs: Any) -> Iterable[Any]:
    """What a source or processor function returned, which must be its outputs (a generator's)."""
    if not isinstance(outputs, Iterable):
        raise TypeError(
            f"stage '{node.name}' returned {short(outputs)} instead of yielding its outputs: a "
            f"{node.kind} gives its outputs with 'yield' (or returns an iterable of them)"
        )
    return outputs


def _each(function: Callable[..., Any], items: Iterable[Any], constants: Mapping[str, Any]) -> Iterator[Any]:
    """A map stage's outputs: ``function`` called on each item."""
    if constants:
        for item in items:
            yield function(item, **constants)
    else:
        for item in items:
            yield function(item)
