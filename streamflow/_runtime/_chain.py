"""The inline backend's run: every stage's generator chained in the calling thread.

::

    caller: next() --> last stage --> ... --> first stage (all lazily, one packet at a time)

No workers, no edges, no statistics: for debugging and deterministic
tests.  Each stage runs as its one worker would (``call_stage``), with
``worker_info()`` naming it and its errors noted with its name.  An error
raised upstream crosses the stages below it as ``_Failed``, a
BaseException, so that their ``except Exception:`` cannot swallow it, as
on every other backend.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .._plan import Node, Plan
from ._remote import add_stage_note
from ._current import working_as
from ._worker import call_stage

__all__ = ["Chained"]


class _Failed(BaseException):
    """An error raised upstream, on its way through the stages below to the caller."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(error)
        self.error = error


class _Noted:
    """Iterate a stage's output, naming the stage in the errors it raises."""

    __slots__ = ("_items", "_node")

    def __init__(self, items: Iterator[Any], node: Node) -> None:
        self._items = items
        self._node = node

    def __iter__(self) -> _Noted:
        return self

    def __next__(self) -> Any:
        try:
            with working_as(self._node, 0):
                return next(self._items)
        except (StopIteration, _Failed):
            raise
        except Exception as exc:
            add_stage_note(exc, self._node.name, 0, 1)
            raise _Failed(exc) from None
        except BaseException as exc:  # Ctrl-C and the like end the run as they are
            add_stage_note(exc, self._node.name, 0, 1)
            raise

    def close(self) -> None:
        close = getattr(self._items, "close", None)
        if close is not None:
            close()


class Chained:
    """An ``Execution`` that runs lazily in the caller's thread."""

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
        except _Failed as failed:
            self.cancel()
            raise failed.error from failed.error.__cause__
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
        except _Failed as failed:
            return [], failed.error
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
    try:
        with working_as(node, 0):
            return call_stage(node, stream)
    except _Failed:
        raise
    except BaseException as exc:
        add_stage_note(exc, node.name, 0, 1)
        raise
