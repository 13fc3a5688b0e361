"""A stage's code as one worker runs it: its function, or its class's one instance.

``Body(node)`` is built where the worker runs, when it starts: for a class
stage that is when the instance is built (so a model is loaded once per
worker, on that worker's device), kept for the whole run, across restarts
under a failure policy, and closed however the worker ends.  ``call``
starts the stage on a stream: a generator stage's function as it is, a
map stage's function once per item.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from .._plan import Node

__all__ = ["Body"]


class Body:
    """What a worker calls: ``node``'s function with its constants, or its class's instance."""

    __slots__ = ("_node", "_target", "_constants", "_instance")

    def __init__(self, node: Node) -> None:
        self._node = node
        self._instance: Any = None
        self._target: Callable[..., Any] = node.function
        self._constants: Mapping[str, Any] = node.constants
        if node.factory:
            self._instance = self._target = node.function(**node.constants)
            self._constants = {}

    def call(self, stream: Iterable[Any] | None) -> Any:
        """Start the stage on ``stream`` (None for a source): its outputs, or a sink's result."""
        node, target, constants = self._node, self._target, self._constants
        if node.kind == "source":
            return target(**constants)
        assert stream is not None
        if node.per_item:
            return _each(target, stream, constants)
        return target(stream, **constants)

    def per_item(self) -> tuple[Callable[..., Any], Mapping[str, Any]]:
        """A map stage's function (or instance) and the constants to call it with."""
        return self._target, self._constants

    def close(self) -> None:
        """Call the instance's ``close()``, if it has one (class stages only)."""
        close = getattr(self._instance, "close", None)
        self._instance = None
        if close is not None:
            close()


def _each(function: Callable[..., Any], items: Iterable[Any], constants: Mapping[str, Any]) -> Iterator[Any]:
    """A map stage's outputs: ``function`` called on each item."""
    if constants:
        for item in items:
            yield function(item, **constants)
    else:
        for item in items:
            yield function(item)
