"""The inline backend: the stages' generators chained in the calling thread.

For debugging and deterministic tests: no workers, no buffers, one packet
at a time.  Worker counts, ``packets_in_flight`` and timeouts are ignored.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .._execution import Execution
from .._plan import Node, Plan, RunConfig
from .._worker import WorkerInfo, _local, add_stage_note

__all__ = ["start"]


def start(plan: Plan, config: RunConfig) -> Execution:
    """Run ``plan`` lazily in the calling thread."""
    return InlineExecution(plan)


class _Noted:
    """Iterate a stage's output, naming the stage in the errors it raises."""

    __slots__ = ("_items", "_node")

    def __init__(self, items: Iterator[Any], node: Node) -> None:
        self._items = items
        self._node = node

    def __iter__(self) -> _Noted:
        return self

    def __next__(self) -> Any:
        outer = getattr(_local, "info", None)
        _local.info = WorkerInfo(self._node.name, 0, 1)
        try:
            return next(self._items)
        except StopIteration:
            raise
        except BaseException as exc:
            add_stage_note(exc, self._node.name, 0, 1)
            raise
        finally:
            _local.info = outer

    def close(self) -> None:
        close = getattr(self._items, "close", None)
        if close is not None:
            close()


class InlineExecution:
    def __init__(self, plan: Plan) -> None:
        self._plan = plan
        self._finished = False
        self._outcome: tuple[list[Any], BaseException | None] | None = None
        stream: _Noted | None = None
        for node in plan.nodes:
            if node.kind == "sink":
                break
            stream = _Noted(iter(_call(node, stream)), node)
        self._stream = stream

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
        try:
            return next(self._stream)
        except BaseException:
            self.cancel()
            raise

    def result(self) -> list[Any]:
        if self._outcome is None:
            self._outcome = self._compute()
        value, error = self._outcome
        if error is not None:
            raise error
        return value

    def _compute(self) -> tuple[list[Any], BaseException | None]:
        sink = self._plan.sink
        try:
            if sink is None:
                for _ in self._stream or ():
                    pass
                return [], None
            return [_call(sink, self._stream)], None
        except Exception as error:  # noqa: BLE001 - kept, raised on every result()
            return [], error
        finally:
            self.cancel()

    def cancel(self) -> None:
        if not self._finished:
            self._finished = True
            if self._stream is not None:
                self._stream.close()


def _call(node: Node, stream: _Noted | None) -> Any:
    outer = getattr(_local, "info", None)
    _local.info = WorkerInfo(node.name, 0, 1)
    try:
        return node.stage.call(stream)
    except BaseException as exc:
        add_stage_note(exc, node.name, 0, 1)
        raise
    finally:
        _local.info = outer
