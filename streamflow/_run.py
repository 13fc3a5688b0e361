"""Run: a started flow, like a future; iterate it for an open flow's items."""

from __future__ import annotations

import warnings
from types import TracebackType
from typing import Any, Generic, TypeVar

from typing_extensions import Self

from ._draw import to_dot, to_svg
from ._errors import FailuresWarning
from ._failures import Failure, summary
from ._plan import Plan, Result
from ._runtime import Execution
from ._stats import StageStats, WorkerStats, report

__all__ = ["Run"]

O = TypeVar("O", covariant=True)
R = TypeVar("R", covariant=True)


class Run(Generic[O, R]):
    """A running flow.

    ``result()`` waits for the end and returns the sink's value (a closed
    flow) or the remaining items (an open one); ``cancel()`` stops every
    worker; ``stats()``/``report()`` tell what each stage is doing, live.
    Iterating yields an open flow's items; leaving a ``with`` block, or
    ``cancel()``, stops the flow.  ``failures`` lists the items stages
    skipped under ``on_error="skip"``; a run that skipped any issues a
    ``FailuresWarning`` as it ends.
    """

    def __init__(self, execution: Execution, plan: Plan, backend: str, progress: bool) -> None:
        self._execution = execution
        self._plan = plan
        self._backend = backend
        self._closed = plan.result is not None  # ends in sinks: ``result()`` is their value
        self._warned = False
        self._progress = None
        if progress:
            from ._progress import Progress

            self._progress = Progress(self.stats, self.done, [node.name for node in plan.nodes])

    # -- the future -------------------------------------------------------------

    def result(self, timeout: float | None = None) -> R:
        """Wait for the end of the run and return its value.

        Raises the first error of any stage, ``TimeoutError`` if the run is
        still going after ``timeout`` seconds (it keeps running).  For an
        open flow, collects the items not read yet (``timeout`` bounds the
        wait for the end after they are read).
        """
        try:
            if not self._closed:
                items: Any = list(self)
                self._wait(timeout)
                self._warn_failures()
                return items  # type: ignore[no-any-return]
            self._wait(timeout)
            assert self._plan.result is not None
            value: R = self._plan.result.value(self._execution.result())
            self._warn_failures()
            return value
        finally:
            if self._execution.finished:
                self._stop_progress()

    def _wait(self, timeout: float | None) -> None:
        if not self._execution.wait(timeout):
            raise TimeoutError(f"the flow is still running after {timeout:g} s")

    def done(self) -> bool:
        """Whether every worker has ended."""
        return self._execution.finished

    def cancel(self) -> None:
        """Stop every worker and free every resource; safe to call again."""
        try:
            self._execution.cancel()
        finally:
            self._stop_progress()

    @property
    def results(self) -> dict[str, Any]:
        """Every sink's return value, by its node's name (as in ``stats()``): several workers'
        values as a list.  Waits for the end of a closed flow; an open flow's come once its
        items have been read (raises ``RuntimeError`` before)."""
        if not self._closed and not self._execution.finished:
            raise RuntimeError("read this open flow's items first (iterate the run, or call result())")
        self._wait(None)
        values = self._execution.result()
        return {sink.name: Result(node=sink.index).value(values) for sink in self._plan.sinks}

    @property
    def failures(self) -> list[Failure]:
        """The items skipped so far (``on_error="skip"``), in the order they were reported."""
        return self._execution.failures

    def _warn_failures(self) -> None:
        failures = self._execution.unlettered  # those in a dead-letter branch are not lost
        if failures and not self._warned:
            self._warned = True
            warnings.warn(
                f"{summary(failures)}; see Run.failures for each item and its error",
                FailuresWarning,
                stacklevel=3,
            )

    # -- what it is doing ---------------------------------------------------------

    def stats(self) -> list[StageStats]:
        """Per-stage counts and times so far (live while the run goes on)."""
        table = self._execution.stats
        return [] if table is None else table.stages()

    def worker_stats(self) -> list[WorkerStats]:
        """Per-worker counts and times so far."""
        table = self._execution.stats
        return [] if table is None else table.workers()

    def report(self) -> str:
        """A table of the stages that names the bottleneck and what to try."""
        stages = self.stats()
        if not stages:
            return "no statistics (the inline backend keeps none)"
        plan = self._plan
        upstream = {node.name: [up.name for up in plan.upstream(node)] for node in plan.nodes}
        return report(stages, self._backend, upstream=upstream)

    def to_dot(self) -> str:
        """The flow as Graphviz text, with each stage's rate so far."""
        return to_dot(self._plan, self.stats())

    def _repr_svg_(self) -> str:
        """Notebook display: the flow with rates, the bottleneck highlighted."""
        return to_svg(self._plan, self.stats())

    def _stop_progress(self) -> None:
        if self._progress is not None:
            self._progress.stop()

    # -- an open flow's items -----------------------------------------------------

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> O:
        if self._closed:
            raise TypeError("this flow ends in a sink: call result() for its value")
        try:
            item: O = self._execution.next_output()
        except StopIteration:
            self._stop_progress()
            self._warn_failures()
            raise
        return item

    def close(self) -> None:
        """Stop the flow (same as ``cancel()``)."""
        self.cancel()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cancel()

    def __del__(self) -> None:
        execution = getattr(self, "_execution", None)
        if execution is not None and not execution.finished:
            execution.cancel()
