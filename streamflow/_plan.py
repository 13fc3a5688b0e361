"""A flow turned into plain data: a graph of nodes joined by links.

A node is one stage as the runtime needs it: its function, kind, bound
constants and every run option, resolved.  A link is one bounded stream,
named by its endpoints: the nodes that write it and the node that reads it
(or the caller, for an open flow's output), with its capacity and message
size.  Everything below this module (runtime, backends, transports,
statistics, pictures) reads only this, and asks the plan for the shape:
a node's input and output links, the links the caller reads, the sinks,
what is upstream and downstream of a node, and which end of a link a
worker holds.  Nothing below indexes nodes or links by position; only
``build_plan`` knows how a flow becomes nodes and links.

::

    read | sf.tee(a | b, c) | d          node read: fanout Tee(Send(L0), Send(L1))
                                         L0: read -> a        L1: read -> c
                                         L2: a -> b           L3: {b, c} -> d   (one link, two writers)

Branch blocks become shapes of links: a node's outputs follow its
``fanout`` (every item down every ``Send`` of a ``Tee``, down the one a
``Route`` picks for it, failed items down ``letters``); a link several
nodes write joins their streams as they come (tee and route outputs,
``sf.merge``); a node whose ``join`` is ``"zip"`` reads one item from each
of its input links in turn.  The nodes of a zip's branches keep their
inputs' order and pass a skipped item on as a hole (``holes``), so that
the i-th item of every branch comes from the same input.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, Literal, Protocol, Union

from ._blocks import Block
from ._options import StageOptions
from ._signature import Kind, Signature, analyse

__all__ = ["Fanout", "Link", "Node", "Plan", "Result", "Route", "Send", "Tee", "build_plan"]


# -- where a node's outputs go ---------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Send:
    """Every item down one link."""

    link: int


@dataclasses.dataclass(frozen=True)
class Tee:
    """Every item down every branch; ``zipped``: the branches are a zip's, whose inputs must
    reach every branch in one order (the node's workers send one item at a time to all)."""

    branches: tuple[Fanout, ...]
    zipped: bool = False


@dataclasses.dataclass(frozen=True)
class Route:
    """Each item down the branch its key names (``choices``), else ``default``; an item with
    neither fails with ``UnroutedItem`` (``skip``: it is recorded and dropped)."""

    key: Callable[[Any], Any]
    choices: tuple[tuple[Hashable, Fanout], ...]
    default: Fanout | None
    skip: bool
    block: str  # how errors name the block


Fanout = Union[Send, Tee, Route]


def links_of(fanout: Fanout | None) -> tuple[int, ...]:
    """Every link a fanout may send down, in branch order."""
    if fanout is None:
        return ()
    if isinstance(fanout, Send):
        return (fanout.link,)
    if isinstance(fanout, Tee):
        return tuple(link for branch in fanout.branches for link in links_of(branch))
    tail = links_of(fanout.default)
    return tuple(link for _, branch in fanout.choices for link in links_of(branch)) + tail


# -- nodes, links and the plan -----------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Node:
    """One stage of the plan, run by ``options.workers`` workers."""

    index: int  # its key in the plan (``Plan.node``)
    name: str  # unique within the plan: the stage's, numbered if it appears again
    stage: str  # the stage's own name
    kind: Kind
    function: Callable[..., Any]
    constants: Mapping[str, Any]
    options: StageOptions  # resolved: every default filled in (``on_error`` "skip" for dead letters)
    in_caller: bool  # a one-shot iterable, read by a thread of the caller
    inputs: tuple[int, ...]  # the links it reads (``Plan.inputs``), in ``join`` order
    fanout: Fanout | None = None  # where its outputs go (None for a sink)
    letters: Fanout | None = None  # where its failed items go, as ``Failure`` records (dead letters)
    join: Literal["one", "zip"] = "one"  # "zip": one item of each input link in turn, as a tuple
    holes: bool = False  # in a zip's branch: a skipped item leaves a hole, and holes pass through
    per_item: bool = False  # ``function`` takes one item and returns one output
    factory: bool = False  # ``function`` is a class: one instance per worker, built with the constants
    is_async: bool = False  # ``function`` is an ``async def``: it runs on its worker's event loop

    @property
    def workers(self) -> int:
        return self.options.workers

    @property
    def outputs(self) -> tuple[int, ...]:
        """The links it writes: its outputs' and its dead letters'."""
        return links_of(self.fanout) + links_of(self.letters)


@dataclasses.dataclass(frozen=True)
class Link:
    """The bounded stream from the ``writers`` to ``reader`` (None: the caller reads it)."""

    index: int  # its key in the plan (``Plan.link``)
    name: str  # its writers' names, for messages
    writers: tuple[int, ...]  # the nodes whose workers write it, in endpoint order
    reader: int | None
    producers: int  # workers writing it
    consumers: int  # workers reading it
    capacity: int  # packets in flight on it at most
    max_message_size: int | None
    shared_buffer: bool
    producer_replaced: bool = False  # a producer worker that dies is replaced (its policy retries or skips)
    consumer_replaced: bool = False  # the same for a consumer worker
    producer_ordered: bool = False  # the producer's workers keep their inputs' order (``keeps_order``)
    consumer_ordered: bool = False  # the same for the consumer's: the edge numbers its packets for them
    consumer_zipped: bool = False  # a zip's join with several workers reads it: one packet at a time each

    @property
    def recoverable(self) -> bool:
        """Whether the workers at either end may be replaced: their ends must be taken over."""
        return self.producer_replaced or self.consumer_replaced


@dataclasses.dataclass(frozen=True)
class Result:
    """What a closed flow's ``run()`` returns: a sink's value, or a block's tuple or dict of them."""

    node: int | None = None  # a sink: its value (its workers' values as a list, with several)
    parts: tuple[Result, ...] = ()  # a block whose branches all end in sinks: theirs, in order
    keys: tuple[Hashable, ...] | None = None  # a route's: a dict of ``parts`` by these keys

    def value(self, results: Mapping[int, Sequence[Any]]) -> Any:
        """This result, given each sink node's values in worker order."""
        if self.node is not None:
            values = results[self.node]
            return values[0] if len(values) == 1 else list(values)
        values = [part.value(results) for part in self.parts]
        return tuple(values) if self.keys is None else dict(zip(self.keys, values))


@dataclasses.dataclass(frozen=True)
class Plan:
    """Nodes and links, and the questions about their shape that the layers below ask."""

    nodes: tuple[Node, ...]  # every node after the nodes whose links it reads
    links: tuple[Link, ...]
    result: Result | None = None  # what ``run()`` returns, for a closed flow
    caller_join: Literal["one", "zip"] = "one"  # how the caller reads ``caller_links``

    def node(self, index: int) -> Node:
        """The node keyed ``index`` (``Node.index``, as records name it)."""
        return self._nodes[index]

    def link(self, index: int) -> Link:
        """The link keyed ``index`` (``Link.index``)."""
        return self._links[index]

    def inputs(self, node: Node) -> tuple[Link, ...]:
        """The links ``node`` reads (none for a source), in ``join`` order."""
        return tuple(self._links[i] for i in node.inputs)

    def outputs(self, node: Node) -> tuple[Link, ...]:
        """The links ``node`` writes (none for a sink without dead letters)."""
        return tuple(self._links[i] for i in node.outputs)

    @property
    def caller_links(self) -> tuple[Link, ...]:
        """The links the caller reads: an open flow's output (none for a closed flow)."""
        return tuple(link for link in self.links if link.reader is None)

    @property
    def sinks(self) -> tuple[Node, ...]:
        """The nodes whose return values are the run's results."""
        return tuple(node for node in self.nodes if node.kind == "sink")

    def upstream(self, node: Node) -> tuple[Node, ...]:
        """The nodes whose outputs ``node`` reads."""
        writers = dict.fromkeys(w for link in self.inputs(node) for w in link.writers)
        return tuple(self._nodes[w] for w in writers)

    def downstream(self, node: Node) -> tuple[Node, ...]:
        """The nodes that read what ``node`` writes (the caller is none)."""
        readers = dict.fromkeys(link.reader for link in self.outputs(node) if link.reader is not None)
        return tuple(self._nodes[r] for r in readers if r is not None)

    def endpoint(self, link: Link, node: Node, worker: int) -> int:
        """The producer end of ``link`` that worker ``worker`` of ``node`` (one of its writers) holds."""
        offset = 0
        for writer in link.writers:
            if writer == node.index:
                return offset + worker
            offset += self._nodes[writer].workers
        raise ValueError(f"node '{node.name}' does not write link '{link.name}'")

    def stat_names(self) -> list[tuple[str, int]]:
        """(name, workers) per node: the shape of the run's stats table."""
        return [(node.name, node.workers) for node in self.nodes]

    @functools.cached_property
    def _nodes(self) -> Mapping[int, Node]:
        return {node.index: node for node in self.nodes}

    @functools.cached_property
    def _links(self) -> Mapping[int, Link]:
        return {link.index: link for link in self.links}


# -- building it ----------------------------------------------------------------------


class Planned(Protocol):
    """What building a plan reads of a stage."""

    @property
    def name(self) -> str: ...
    @property
    def kind(self) -> Kind: ...
    @property
    def fn(self) -> Callable[..., Any]: ...
    @property
    def constants(self) -> Mapping[str, Any]: ...
    @property
    def set_options(self) -> StageOptions: ...
    @property
    def one_shot(self) -> bool: ...
    @property
    def signature(self) -> Signature: ...


def build_plan(parts: Sequence[Planned | Block], packets_per_worker: int = 2) -> Plan:
    """The plan that runs the chain ``parts`` (stages and branch blocks); ``packets_per_worker``:
    the backend's default ``packets_in_flight`` for each worker of a stage."""
    return _Builder(packets_per_worker).plan(tuple(parts))


@dataclasses.dataclass
class _Stream:
    """The stream a part of the chain yields: the nodes whose outputs it is, not yet linked on.

    A zip's stream is its branches' streams, read one item of each in turn.
    """

    writers: tuple[int, ...] = ()
    zipped: tuple[_Stream, ...] = ()


@dataclasses.dataclass
class _Draft:
    """A node while the plan is built: its links and fanout come as its readers are known."""

    index: int
    name: str
    stage: Planned
    options: StageOptions
    inputs: tuple[int, ...] = ()
    join: Literal["one", "zip"] = "one"
    holes: bool = False
    fanout: Fanout | None = None
    letters: Fanout | None = None


@dataclasses.dataclass
class _LinkDraft:
    index: int
    writers: tuple[int, ...]
    reader: int | None
    capacity: int | None  # None: the writers' packets_in_flight


def _tuples(items: tuple[Any, ...]) -> tuple[Any, ...]:
    """What a zip yields, passed on as it is: the stage that joins a zip before a block."""
    return items


class _ZipJoin:
    """The stage a zip's branches are joined in when a block follows the zip."""

    name = "zip"
    kind: Kind = "processor"
    fn = staticmethod(_tuples)
    constants: Mapping[str, Any] = {}
    set_options = StageOptions(name="zip")
    one_shot = False
    signature = analyse(_tuples, per_item=True)


_ZIP_JOIN = _ZipJoin()


class _Builder:
    def __init__(self, packets_per_worker: int) -> None:
        self._per_worker = packets_per_worker
        self._drafts: list[_Draft] = []
        self._links: list[_LinkDraft] = []
        self._names: dict[str, int] = {}

    def plan(self, parts: tuple[Planned | Block, ...]) -> Plan:
        fanout, stream, result = self._chain(parts, None, zipped=False, capacity=None)
        assert fanout is None  # a whole flow starts with a source
        caller_join: Literal["one", "zip"] = "one"
        if stream is not None:  # an open flow: the caller reads its stream
            caller_join = "zip" if stream.zipped else "one"
            self._assign(stream, self._consume(stream, None, None))
        return Plan(tuple(self._nodes()), tuple(self._finished_links()), result, caller_join)

    # -- parts ------------------------------------------------------------------

    def _chain(
        self, parts: tuple[Any, ...], stream: _Stream | None, *, zipped: bool, capacity: int | None
    ) -> tuple[Fanout | None, _Stream | None, Result | None]:
        """Build ``parts`` fed by ``stream``: the fanout that feeds its first part (for its
        caller to give ``stream``'s writers), the stream it yields (None if it ends in a sink),
        and its result (if it does)."""
        entry: Fanout | None = None
        result: Result | None = None
        for position, part in enumerate(parts):
            incoming = stream
            if isinstance(part, Block):
                if incoming is not None and incoming.zipped:  # a zip's tuples, joined before they branch
                    _, incoming, _ = self._stage(_ZIP_JOIN, incoming, zipped=zipped, capacity=capacity)
                fanout, stream, result = self._block(part, incoming, zipped=zipped)
            else:
                fanout, stream, result = self._stage(part, incoming, zipped=zipped, capacity=capacity)
            capacity = None  # only a branch's first link is the block's
            if position == 0:
                entry = fanout
            elif incoming is not None and fanout is not None:
                self._assign(incoming, fanout)
        return entry, stream, result

    def _stage(
        self, stage: Planned, stream: _Stream | None, *, zipped: bool, capacity: int | None
    ) -> tuple[Fanout | None, _Stream | None, Result | None]:
        options = stage.set_options.resolved(self._per_worker)
        letters = options.dead_letters
        if letters is not None:
            options = dataclasses.replace(options, on_error="skip")  # and each failure into its branch
        if zipped and (options.workers > 1 or options.concurrency > 1):
            options = dataclasses.replace(options, ordered=True)  # the i-th output of every branch: the i-th input's
        self._names[stage.name] = self._names.get(stage.name, 0) + 1
        count = self._names[stage.name]
        draft = _Draft(len(self._drafts), stage.name if count == 1 else f"{stage.name}#{count}", stage, options)
        draft.holes = zipped
        self._drafts.append(draft)
        fanout = None if stream is None else self._consume(stream, draft, capacity)
        if letters is not None:
            parts = tuple(getattr(letters, "parts", (letters,)))
            draft.letters, _, _ = self._chain(parts, _Stream((draft.index,)), zipped=False, capacity=None)
        if stage.kind == "sink":
            return fanout, None, Result(node=draft.index)
        return fanout, _Stream((draft.index,)), None

    def _block(
        self, block: Block, stream: _Stream | None, *, zipped: bool
    ) -> tuple[Fanout | None, _Stream | None, Result | None]:
        inner = block.kind == "zip" or zipped
        built = [self._chain(branch, stream, zipped=inner, capacity=block.packets_in_flight) for branch in block.branches]
        fanouts = tuple(f for f, _, _ in built if f is not None)
        streams = [out for _, out, _ in built if out is not None]
        if block.kind == "zip":
            return Tee(fanouts, zipped=True), _Stream(zipped=tuple(streams)), None
        out = _Stream(tuple(w for s in streams for w in s.writers)) if streams else None
        result = None
        if out is None:  # every branch ends in a sink: the block's result is theirs
            results = tuple(r for _, _, r in built if r is not None)
            result = Result(parts=results, keys=block.keys if block.kind == "route" else None)
        if block.kind == "merge":
            return None, out, result
        if block.kind == "tee":
            return Tee(fanouts), out, result
        assert block.key is not None
        named = [(key, f) for index, (key, f) in enumerate(zip(block.keys, fanouts)) if index != block.default]
        default = None if block.default is None else fanouts[block.default]
        return Route(block.key, tuple(named), default, block.on_error == "skip", block.name), out, result

    def _consume(self, stream: _Stream, reader: _Draft | None, capacity: int | None) -> Fanout | None:
        """Link ``stream`` to ``reader`` (None: the caller): the fanout its writers send down, for
        the caller to give them; a zip's branches are linked to it one by one, each its own."""
        if stream.zipped:
            for branch in stream.zipped:
                self._assign(branch, self._consume(branch, reader, capacity))
            if reader is not None:
                reader.join = "zip"
            return None
        link = _LinkDraft(len(self._links), stream.writers, None if reader is None else reader.index, capacity)
        self._links.append(link)
        if reader is not None:
            reader.inputs = (*reader.inputs, link.index)
        return Send(link.index)

    def _assign(self, stream: _Stream | None, fanout: Fanout | None) -> None:
        """Make ``fanout`` where the outputs of ``stream``'s writers go (each is read by one part)."""
        if stream is None or fanout is None:
            return
        for writer in stream.writers:
            assert self._drafts[writer].fanout is None, "a stream is read by one part"
            self._drafts[writer].fanout = fanout

    # -- the finished plan ----------------------------------------------------------

    def _nodes(self) -> list[Node]:
        nodes = []
        for draft in self._drafts:
            stage = draft.stage
            nodes.append(
                Node(
                    draft.index, draft.name, stage.name, stage.kind, stage.fn, dict(stage.constants), draft.options,
                    stage.one_shot, draft.inputs, draft.fanout, draft.letters, draft.join, draft.holes,
                    per_item=stage.signature.per_item,
                    factory=stage.signature.factory,
                    is_async=stage.signature.is_async,
                )
            )
        return nodes

    def _finished_links(self) -> list[Link]:
        links = []
        for link in self._links:
            writers = [self._drafts[w] for w in link.writers]
            reader = None if link.reader is None else self._drafts[link.reader]
            capacities = [w.options.packets_in_flight or 1 for w in writers]
            sizes = [w.options.max_message_size for w in writers]
            links.append(
                Link(
                    index=link.index,
                    name=" + ".join(w.name for w in writers),
                    writers=link.writers,
                    reader=link.reader,
                    producers=sum(w.options.workers for w in writers),
                    consumers=1 if reader is None else reader.options.workers,
                    capacity=link.capacity or sum(capacities),
                    max_message_size=None if None in sizes else max(s for s in sizes if s is not None),
                    shared_buffer=all(w.options.shared_buffer for w in writers),
                    producer_replaced=any(w.options.replaces_crashed for w in writers),
                    consumer_replaced=reader is not None and reader.options.replaces_crashed,
                    producer_ordered=any(w.options.keeps_order for w in writers),
                    consumer_ordered=reader is not None and reader.options.keeps_order,
                    consumer_zipped=reader is not None and reader.join == "zip" and reader.options.workers > 1,
                )
            )
        return links
