"""Where a worker's outputs go, in a graph: its node's fanout built over its ends.

::

    Send(L)                     -> the worker's end of L
    Tee(a, b, ...)              -> TeeSender: every item down every branch (_transport/_fanout)
    Tee(..., zipped=True)       -> the same, one item to all under the zip's lock (several producers)
    Route(key, {k: a, ...})     -> ChoiceSender: key(item) picks the branch, else the default, else
                                   UnroutedItem (raised, or recorded and dropped under on_error="skip")

Why no block can deadlock, whatever its branches' speeds, filters, many
outputs per input, batches, skips and ``packets_in_flight`` (each edge
bounded): every wait is on one edge, for room (a producer) or for an item
(a consumer).  A producer waits for room only while its consumer has not
taken what it sent; a consumer waits for an item only while its
producers have not sent one.  A cycle of waits would need an edge whose
consumer waits, directly or through its own downstream, for something
its producer has not sent yet while that producer waits for room on
the same edge.  The graph of a flow has no cycle (blocks nest, branches
never feed back), so a wait for room always ends once the stages below
take what is there, as in a chain, except where a stage reads several
edges: the zip's join (and the caller, for an open zip).  There:

- A tee reserves a slot on every branch before it builds the next item,
  and sends it to all, so every branch has every earlier item.
- The join waits for the branch whose item comes next; that branch has
  the input, and its way to the join is an edge the join reads next, so
  it never waits on the join to read another branch first.  The other
  branches may fill and their tee wait on them: that wait ends as the
  join reads them, after this item.
- Where several workers share a zip's entry or join, ``lock`` keeps the
  order the same on every branch; no wait happens under it (the tee has
  its slots before it takes it; the join waits only for an item that its
  input guarantees).

A union of branches (a tee's open branches, ``sf.merge``) is one edge
written by several stages: its consumer takes what comes, so no branch
waits on another.  Memory stays bounded: every edge holds at most its
capacity, a route's producer one item more.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .._errors import UnroutedItem
from .._plan import Fanout, Route, Send, Tee, links_of
from .._records import FailureEvent, PortableError
from .._text import short
from .._transport import Sender
from .._transport._fanout import ChoiceSender, Lock, TeeSender

__all__ = ["lock_key", "sender_for"]


def lock_key(tee: Tee) -> tuple[int, ...]:
    """What names a zip's entry lock in every process: the links it feeds."""
    return links_of(tee)


def sender_for(
    fanout: Fanout,
    senders: Mapping[int, Sender],
    locks: Mapping[tuple[int, ...], Lock],
    unrouted: Callable[[FailureEvent], None],
    node: int,
    worker: int,
) -> Sender:
    """The end a worker of ``node`` sends its outputs to: ``fanout`` over its ``senders`` (by link).

    ``locks``: the zips' entry locks, where several workers feed one;
    ``unrouted``: records an item a route skipped.
    """

    def build(fanout: Fanout) -> Sender:
        if isinstance(fanout, Send):
            return senders[fanout.link]
        if isinstance(fanout, Tee):
            branches = [build(branch) for branch in fanout.branches]
            if len(branches) == 1:
                return branches[0]
            return TeeSender(branches, locks.get(lock_key(fanout)) if fanout.zipped else None)
        choices = {key: build(branch) for key, branch in fanout.choices}
        default = None if fanout.default is None else build(fanout.default)
        return _route(fanout, choices, default, unrouted, node, worker)

    return build(fanout)


def _route(
    route: Route,
    choices: dict[Any, Sender],
    default: Sender | None,
    unrouted: Callable[[FailureEvent], None],
    node: int,
    worker: int,
) -> Sender:
    """The end of ``route``: each item to its key's branch in ``choices``, else ``default``."""
    every = [*choices.values(), *([default] if default is not None else [])]
    key, skip, block = route.key, route.skip, route.block

    def choose(item: Any) -> Sender | None:
        name = key(item)
        try:
            chosen = choices.get(name, default)
        except TypeError:  # an unhashable key names no branch
            chosen = default
        if chosen is not None:
            return chosen
        error = UnroutedItem(
            f"{block} has no branch for key {short(name)} of item {short(item, 60)} and no default; "
            f"its keys are: {', '.join(short(k) for k in choices) or 'none'}"
        )
        if not skip:
            raise error
        unrouted(FailureEvent(node, worker, item, PortableError(error), 1, where=block))
        return None

    return ChoiceSender(choose, every)
