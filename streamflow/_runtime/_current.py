"""Which worker the running code belongs to (``streamflow.worker_info()``)."""

from __future__ import annotations

import dataclasses
import threading

from .._plan import Node

__all__ = ["WorkerInfo", "worker_info", "working_as"]


@dataclasses.dataclass(frozen=True)
class WorkerInfo:
    """Which worker the calling code runs in (see ``worker_info()``)."""

    stage: str
    index: int  # 0-based
    workers: int


_local = threading.local()


def worker_info() -> WorkerInfo | None:
    """The stage and worker running the calling code, or None outside a worker."""
    info: WorkerInfo | None = getattr(_local, "info", None)
    return info


class working_as:
    """Within this block, ``worker_info()`` names ``worker`` of ``node``."""

    __slots__ = ("_info", "_outer")

    def __init__(self, node: Node, worker: int) -> None:
        self._info = WorkerInfo(node.name, worker, node.workers)

    def __enter__(self) -> None:
        self._outer = getattr(_local, "info", None)
        _local.info = self._info

    def __exit__(self, *exc: object) -> None:
        _local.info = self._outer
