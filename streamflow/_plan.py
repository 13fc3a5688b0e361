"""A flow turned into plain data: a graph of nodes joined by links.

A node is one stage as the runtime needs it: its function, kind, bound
constants and every run option, resolved.  A link is one bounded stream,
named by its endpoints: the producer node and the consumer node (or the
caller, for the last link of an open flow), with its capacity and message
size.  Nodes list the links they read and write, so a node may later have
several of each; today's flows are chains.  Everything below this module
(runtime, backends, transports, statistics, pictures) reads only this.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from ._options import StageOptions
from ._signature import Kind, Signature

__all__ = ["Link", "Node", "Plan", "build_plan"]


@dataclasses.dataclass(frozen=True)
class Node:
    """One stage of the plan, run by ``options.workers`` workers."""

    index: int
    name: str  # unique within the plan: the stage's, numbered if it appears again
    stage: str  # the stage's own name
    kind: Kind
    function: Callable[..., Any]
    constants: Mapping[str, Any]
    options: StageOptions  # resolved: every default filled in
    in_caller: bool  # a one-shot iterable, read by a thread of the caller
    inputs: tuple[int, ...]  # indexes of the links it reads
    outputs: tuple[int, ...]  # indexes of the links it writes
    per_item: bool = False  # ``function`` takes one item and returns one output
    factory: bool = False  # ``function`` is a class: one instance per worker, built with the constants
    is_async: bool = False  # ``function`` is an ``async def``: it runs on its worker's event loop

    @property
    def workers(self) -> int:
        return self.options.workers


@dataclasses.dataclass(frozen=True)
class Link:
    """The bounded stream from ``producer`` to ``consumer`` (None: the caller reads it)."""

    index: int
    name: str  # the producer's name, for messages
    producer: int
    consumer: int | None
    producers: int  # workers writing it
    consumers: int  # workers reading it
    capacity: int  # packets_in_flight of the producer
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
    nodes: tuple[Node, ...]
    links: tuple[Link, ...]

    @property
    def output(self) -> Link | None:
        """The link the caller reads (an open flow), if any."""
        return next((link for link in self.links if link.consumer is None), None)

    @property
    def sink(self) -> Node | None:
        """The node whose return value is the run's result (a closed flow)."""
        return next((node for node in self.nodes if node.kind == "sink"), None)

    def stat_names(self) -> list[tuple[str, int]]:
        """(name, workers) per node: the shape of the run's stats table."""
        return [(node.name, node.workers) for node in self.nodes]


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
    seen: dict[str, int] = {}
    nodes, links = [], []
    last = len(stages) - 1
    resolved = [stage.set_options.resolved(packets_per_worker) for stage in stages]
    for index, stage in enumerate(stages):
        seen[stage.name] = seen.get(stage.name, 0) + 1
        name = stage.name if seen[stage.name] == 1 else f"{stage.name}#{seen[stage.name]}"
        inputs = (index - 1,) if index > 0 else ()
        outputs = (index,) if stage.kind != "sink" else ()
        options = resolved[index]
        nodes.append(
            Node(
                index, name, stage.name, stage.kind, stage.fn, dict(stage.constants), options,
                stage.one_shot, inputs, outputs, stage.signature.per_item, stage.signature.factory,
                stage.signature.is_async,
            )
        )
        if outputs:
            assert options.packets_in_flight is not None
            links.append(
                Link(
                    index=index,
                    name=name,
                    producer=index,
                    consumer=index + 1 if index < last else None,
                    producers=options.workers,
                    consumers=resolved[index + 1].workers if index < last else 1,
                    capacity=options.packets_in_flight,
                    max_message_size=options.max_message_size,
                    shared_buffer=options.shared_buffer,
                    producer_replaced=options.replaces_crashed,
                    consumer_replaced=index < last and resolved[index + 1].replaces_crashed,
                    producer_ordered=options.keeps_order,
                    consumer_ordered=index < last and resolved[index + 1].keeps_order,
                )
            )
    return Plan(tuple(nodes), tuple(links))
