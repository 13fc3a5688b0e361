"""A flow turned into plain data: nodes, edges, capacities, run settings.

A plan is what every backend runs.  Node ``i`` reads edge ``i - 1`` and
writes edge ``i``; the last edge of an open flow is read by the caller.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Iterator
from typing import Any, Literal

from ._backends import BACKENDS
from ._errors import OptionError
from ._stage import Stage, _iterate, source

__all__ = ["Edge", "Node", "Plan", "RunConfig", "build_plan"]

StartMethod = Literal["fork", "spawn", "forkserver"]


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Options of one run, validated on construction (``OptionError``)."""

    backend: str = "process"
    start_method: StartMethod | None = None
    inactivity_timeout: float | None = None
    shutdown_timeout: float = 5.0
    progress: bool = False
    ray_address: str | None = None

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise OptionError(
                f"backend={self.backend!r} is not known; use one of {', '.join(BACKENDS)}"
            )
        if self.start_method not in (None, "fork", "spawn", "forkserver"):
            raise OptionError(
                f"start_method={self.start_method!r} must be 'fork', 'spawn' or 'forkserver'"
            )
        timeout = self.inactivity_timeout
        if timeout is not None and not (_is_number(timeout) and 0 < timeout < math.inf):
            raise OptionError(f"inactivity_timeout={timeout!r} must be None or seconds > 0")
        grace = self.shutdown_timeout
        if not (_is_number(grace) and 0 <= grace < math.inf):
            raise OptionError(f"shutdown_timeout={grace!r} must be seconds >= 0")


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclasses.dataclass(frozen=True)
class Node:
    """One stage of the plan, run by ``workers`` workers."""

    index: int
    stage: Stage[Any, Any, Any]
    name: str
    workers: int
    in_caller: bool  # an iterable that cannot travel is read in the caller

    @property
    def kind(self) -> str:
        return self.stage.kind


@dataclasses.dataclass(frozen=True)
class Edge:
    """The bounded stream from node ``index`` to node ``index + 1`` (or the caller)."""

    index: int
    producer: str
    capacity: int
    producers: int
    consumers: int
    max_message_size: int | None
    shared_buffer: bool


@dataclasses.dataclass(frozen=True)
class Plan:
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    open: bool  # the caller reads the last edge

    @property
    def sink(self) -> Node | None:
        return None if self.open else self.nodes[-1]

    def stat_names(self) -> list[tuple[str, int]]:
        """(name, workers) per node: the shape of the run's stats table."""
        return [(node.name, node.workers) for node in self.nodes]


def _travels(stage: Stage[Any, Any, Any]) -> bool:
    """Whether an iterable source can be re-read in a worker (not a one-shot iterator)."""
    if stage.fn is not _iterate:
        return True
    items = stage.constants["items"]
    return not isinstance(items, Iterator)


def build_plan(stages: tuple[Stage[Any, Any, Any], ...], input: Iterable[Any] | None) -> Plan:
    """The plan that runs ``stages``, fed by ``input`` if the flow has no source."""
    if input is not None:
        stages = (source(input, name="input"), *stages)
    names: dict[str, int] = {}
    nodes = []
    for index, stage in enumerate(stages):
        names[stage.name] = names.get(stage.name, 0) + 1
        label = stage.name if names[stage.name] == 1 else f"{stage.name}#{names[stage.name]}"
        nodes.append(Node(index, stage, label, stage.workers, in_caller=not _travels(stage)))
    is_open = stages[-1].kind != "sink"
    edges = []
    for index, node in enumerate(nodes if is_open else nodes[:-1]):
        consumers = nodes[index + 1].workers if index + 1 < len(nodes) else 1
        stage = node.stage
        edges.append(
            Edge(
                index=index,
                producer=node.name,
                capacity=stage.packets_in_flight,
                producers=node.workers,
                consumers=consumers,
                max_message_size=stage.max_message_size,
                shared_buffer=stage.shared_buffer,
            )
        )
    return Plan(tuple(nodes), tuple(edges), is_open)
