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
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from ._options import StageOptions
from ._signature import Kind, Signature

__all__ = ["Link", "Node", "Plan", "build_plan"]


@dataclasses.dataclass(frozen=True)
class Node:
    """One stage of the plan, run by ``options.workers`` workers."""

    index: int  # its key in the plan (``Plan.node``)
    name: str  # unique within the plan: the stage's, numbered if it appears again
    stage: str  # the stage's own name
    kind: Kind
    function: Callable[..., Any]
    constants: Mapping[str, Any]
    options: StageOptions  # resolved: every default filled in
    in_caller: bool  # a one-shot iterable, read by a thread of the caller
    inputs: tuple[int, ...]  # the links it reads (``Plan.inputs``)
    outputs: tuple[int, ...]  # the links it writes (``Plan.outputs``)
    per_item: bool = False  # ``function`` takes one item and returns one output
    factory: bool = False  # ``function`` is a class: one instance per worker, built with the constants
    is_async: bool = False  # ``function`` is an ``async def``: it runs on its worker's event loop

    @property
    def workers(self) -> int:
        return self.options.workers


@dataclasses.dataclass(frozen=True)
class Link:
    """The bounded stream from the ``writers`` to ``reader`` (None: the caller reads it)."""

    index: int  # its key in the plan (``Plan.link``)
    name: str  # its writers' name, for messages
    writers: tuple[int, ...]  # the nodes whose workers write it, in endpoint order
    reader: int | None
    producers: int  # workers writing it
    consumers: int  # workers reading it
    capacity: int  # packets_in_flight of the writers
    max_message_size: int | None
    shared_buffer: bool
    producer_replaced: bool = False  # a producer worker that dies is replaced (its policy retries or skips)
    consumer_replaced: bool = False  # the same for a consumer worker
    producer_ordered: bool = False  # the producer's workers keep their inputs' order (``keeps_order``)
    consumer_ordered: bool = False  # the same for the consumer's: the edge numbers its packets for them

    @property
    def recoverable(self) -> bool:
        """Whether the workers at either end may be replaced: their ends must be taken over."""
        return self.producer_replaced or self.consumer_replaced


@dataclasses.dataclass(frozen=True)
class Plan:
    """Nodes and links, and the questions about their shape that the layers below ask."""

    nodes: tuple[Node, ...]  # every node after the nodes whose links it reads
    links: tuple[Link, ...]

    def node(self, index: int) -> Node:
        """The node keyed ``index`` (``Node.index``, as records name it)."""
        return self._nodes[index]

    def link(self, index: int) -> Link:
        """The link keyed ``index`` (``Link.index``)."""
        return self._links[index]

    def inputs(self, node: Node) -> tuple[Link, ...]:
        """The links ``node`` reads (none for a source)."""
        return tuple(self._links[i] for i in node.inputs)

    def outputs(self, node: Node) -> tuple[Link, ...]:
        """The links ``node`` writes (none for a sink)."""
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
        return tuple(self._nodes[w] for link in self.inputs(node) for w in link.writers)

    def downstream(self, node: Node) -> tuple[Node, ...]:
        """The nodes that read what ``node`` writes (the caller is none)."""
        return tuple(self._nodes[link.reader] for link in self.outputs(node) if link.reader is not None)

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


def build_plan(stages: Sequence[Planned], packets_per_worker: int = 2) -> Plan:
    """The plan that runs ``stages``, a chain from first to last; ``packets_per_worker``: the
    backend's default ``packets_in_flight`` for each worker of a stage."""
    names: dict[str, int] = {}
    options = [stage.set_options.resolved(packets_per_worker) for stage in stages]
    nodes = []
    for index, (stage, resolved) in enumerate(zip(stages, options)):
        names[stage.name] = names.get(stage.name, 0) + 1
        name = stage.name if names[stage.name] == 1 else f"{stage.name}#{names[stage.name]}"
        nodes.append(
            Node(
                index, name, stage.name, stage.kind, stage.fn, dict(stage.constants), resolved, stage.one_shot,
                inputs=(index - 1,) if index else (),  # the link a stage writes has the stage's index
                outputs=(index,) if stage.kind != "sink" else (),
                per_item=stage.signature.per_item,
                factory=stage.signature.factory,
                is_async=stage.signature.is_async,
            )
        )
    links = []
    for writer, reader in zip(nodes, [*nodes[1:], None]):
        if writer.kind == "sink":
            continue
        pif = writer.options.packets_in_flight
        assert pif is not None
        links.append(
            Link(
                index=writer.index,
                name=writer.name,
                writers=(writer.index,),
                reader=None if reader is None else reader.index,
                producers=writer.workers,
                consumers=1 if reader is None else reader.workers,
                capacity=pif,
                max_message_size=writer.options.max_message_size,
                shared_buffer=writer.options.shared_buffer,
                producer_replaced=writer.options.replaces_crashed,
                consumer_replaced=reader is not None and reader.options.replaces_crashed,
                producer_ordered=writer.options.keeps_order,
                consumer_ordered=reader is not None and reader.options.keeps_order,
            )
        )
    return Plan(tuple(nodes), tuple(links))
