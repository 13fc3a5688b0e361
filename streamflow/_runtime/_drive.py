"""How a stage is driven: the one choice, made for a worker's loop and for the inline chain alike.

::

    a source's or processor's outputs, as ``outputs(...)`` chooses them:
        no input stream (a source)          body.call(None)            its generator
        an ``async def`` map stage          Calls(...)                 up to ``concurrency`` calls in flight
        a map stage under a failure policy  each_resilient(...)        each call tried, retried or skipped
          (or in a zip's branch)                                         (a skipped or a passed-on hole)
        a generator under a policy          Resilient(...)             restarted after a failed item
        anything else                       body.call(stream)          the function's own generator

A sink is not driven: its function consumes the stream and returns
(``Body.call``).  Whoever drives the outputs (the pump, the inline chain)
sees only an iterator.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .._plan import Node
from ._body import Body
from ._calls import Calls
from ._order import InOrder, Numbered
from ._policy import Alarm, Count, Feed, Record, Resilient, each_resilient

__all__ = ["outputs"]


def outputs(
    node: Node,
    worker: int,
    body: Body,
    stream: Iterator[Any] | None,
    record: Record,
    count: Count,
    alarm: Alarm | None = None,
    order: InOrder | Numbered | None = None,
) -> Iterator[Any]:
    """The outputs of ``node``, a source or processor run by ``body`` on ``stream``.

    ``record`` reports a skipped item, ``count`` counts what a failure
    policy did; ``alarm`` enforces a sync stage's ``timeout``; ``order``:
    an ordered async map stage's numbered input, whose outputs wait for
    their turn (an ordered sync stage's outputs are gated where they are
    sent).
    """
    if stream is None:
        return iter(body.call(None))
    if node.is_async and node.per_item:
        assert body.loop is not None
        function, constants = body.per_item()
        numbered = order if isinstance(order, Numbered) else None  # a sync stage's turn is its sender's
        return Calls(node, worker, function, dict(constants), stream, body.loop, record, count, numbered)
    if node.options.has_policy or node.holes:  # a zip's branch passes holes on, policy or not
        if node.per_item:
            return each_resilient(node, worker, body, stream, alarm, record, count)
        return Resilient(node, worker, body, Feed(stream, alarm), record, count)
    return iter(body.call(stream))
