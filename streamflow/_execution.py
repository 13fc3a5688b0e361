"""A started run as the caller sees it, and the supervisor shared by backends.

::

    caller thread                    supervisor thread            workers (threads/processes)
    -------------                    -----------------            ---------------------------
    result() / next_output()  <----  collects Outcomes    <-----  run_worker(...) -> Outcome
          |   reads last edge        first error wins:            reserve / send / next on edges
          |                          engine.abort(), stop()
          +-- cancel() ------------> engine.wake()

A backend supplies an ``Engine`` (how workers run, how they are stopped,
how bytes move); everything else about a run's life, the first-error rule,
inactivity, cancellation and clean-up, lives here once.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import CancelledError
from collections.abc import Iterator
from typing import Any, Protocol

from ._errors import InactivityError
from ._plan import Plan, RunConfig
from ._stats import StatsTable
from ._transport import Aborted
from ._worker import Outcome, RemoteTraceback, add_stage_note

__all__ = ["Engine", "Execution", "Supervised"]


class Execution(Protocol):
    """What ``Flow`` needs from a started run, on every backend."""

    @property
    def finished(self) -> bool: ...

    def next_output(self) -> Any:
        """The next item of an open flow; ``StopIteration`` at its end."""

    def result(self) -> list[Any]:
        """Wait for the end; the sink workers' return values, in worker order."""

    def cancel(self) -> None:
        """Stop every worker and free every resource; idempotent."""

    def wait(self, timeout: float | None) -> bool:
        """Wait up to ``timeout`` seconds for every worker to end; whether they did."""

    @property
    def stats(self) -> StatsTable | None:
        """The run's live counters (None where a backend keeps none)."""


class Engine(Protocol):
    """How a backend runs the workers of one plan."""

    @property
    def output(self) -> Iterator[Any] | None:
        """The receiver of the last edge of an open flow, read by the caller."""

    @property
    def stats(self) -> StatsTable:
        """One row of counters per worker."""

    def launch(self) -> None:
        """Start every worker."""

    def wait(self, timeout: float | None) -> list[Outcome]:
        """Outcomes that arrived (possibly none) within ``timeout`` seconds.

        A worker that died without an outcome comes back as a ``WorkerCrashed``
        outcome.  Returns early, maybe empty, after ``wake()``.
        """

    def wake(self) -> None:
        """Make a pending ``wait`` return now."""

    def progress(self) -> int:
        """A number that changes whenever a packet moves."""

    def abort(self) -> None:
        """Wake every worker blocked on an edge with ``Aborted``."""

    def stop(self, grace: float) -> None:
        """Wait up to ``grace`` seconds for workers to end, then force them."""

    def release(self) -> None:
        """Free transport resources; idempotent."""


class Supervised:
    """An ``Execution`` driven by an ``Engine`` and a supervisor thread."""

    def __init__(self, plan: Plan, config: RunConfig, engine: Engine) -> None:
        self._plan = plan
        self._config = config
        self._engine = engine
        self._pending = {(node.index, w) for node in plan.nodes for w in range(node.workers)}
        self._results: dict[int, Any] = {}
        self._error: BaseException | None = None
        self._cancelled = False
        self._caller_waiting = False
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._output = engine.output
        self._output_ended = False
        self._thread = threading.Thread(
            target=self._supervise, name="streamflow-supervisor", daemon=True
        )
        try:
            engine.launch()
            self._thread.start()
        except BaseException:  # Ctrl-C may land anywhere here, even in Thread.start()
            self._cancelled = True
            engine.abort()
            if self._thread.ident is not None:
                engine.wake()
                self._wait_done()
            else:
                engine.stop(config.shutdown_timeout)
            engine.release()
            raise

    # -- caller side ----------------------------------------------------------

    @property
    def finished(self) -> bool:
        return self._done.is_set()

    @property
    def stats(self) -> StatsTable | None:
        return self._engine.stats

    def wait(self, timeout: float | None) -> bool:
        try:
            if timeout is not None:
                return self._done.wait(timeout)
            self._wait_done()
            return True
        except BaseException:
            self.cancel()
            raise

    def next_output(self) -> Any:
        if self._output is None or self._output_ended:
            self._finish()
            raise StopIteration
        self._caller_waiting = True
        try:
            return next(self._output)
        except StopIteration:
            self._output_ended = True
            self._finish()
            raise
        except Aborted:
            self._output_ended = True
            self._finish()
            raise StopIteration from None  # the run was cancelled
        except BaseException:
            self.cancel()
            raise
        finally:
            self._caller_waiting = False

    def result(self) -> list[Any]:
        self._finish()
        if self._cancelled:
            raise CancelledError("the run was cancelled before it ended")
        sink = self._plan.sink
        return [self._results.get(w) for w in range(sink.workers)] if sink else []

    def cancel(self) -> None:
        with self._lock:
            if not self._done.is_set() and self._error is None:
                self._cancelled = True
        self._engine.abort()
        self._engine.wake()
        self._wait_done()
        self._engine.release()

    def _finish(self) -> None:
        """Wait for the supervisor; raise the run's first error, if any."""
        try:
            self._wait_done()
        except BaseException:
            self.cancel()
            raise
        self._engine.release()
        if self._error is not None:
            raise self._error

    def _wait_done(self) -> None:
        while not self._done.wait(1.0):
            pass  # short waits keep the main thread responsive to Ctrl-C

    # -- supervisor side ------------------------------------------------------

    def _supervise(self) -> None:
        engine = self._engine
        try:
            self._watch()
        except BaseException as exc:  # noqa: BLE001 - a bug here must not hang the caller
            self._fail(exc)
        finally:
            failed = self._error is not None or self._cancelled
            if failed:
                engine.abort()
            engine.stop(self._config.shutdown_timeout)
            self._done.set()  # the caller releases the edges: it may still be reading one

    def _watch(self) -> None:
        limit = self._config.inactivity_timeout
        engine = self._engine
        seen, since = engine.progress(), time.monotonic()
        while self._pending and self._error is None and not self._cancelled:
            timeout = None if limit is None else max(0.0, since + limit - time.monotonic())
            for outcome in engine.wait(timeout):
                self._record(outcome)
            if limit is None:
                continue
            now, progress = time.monotonic(), engine.progress()
            if progress != seen or (self._plan.open and not self._caller_waiting):
                # A caller busy with its item is not the flow stalling.
                seen, since = progress, now
            elif now - since >= limit:
                self._fail(
                    InactivityError(
                        f"no packet moved for {limit:g} s (inactivity_timeout={limit:g}); "
                        f"stages still running: {self._running()}"
                    )
                )

    def _running(self) -> str:
        names = sorted({self._plan.nodes[n].name for n, _ in self._pending})
        return ", ".join(f"'{name}'" for name in names) or "none"

    def _record(self, outcome: Outcome) -> None:
        self._pending.discard((outcome.node, outcome.worker))
        if outcome.error is not None:
            node = self._plan.nodes[outcome.node]
            if outcome.error.__traceback__ is None and outcome.traceback:
                outcome.error.__cause__ = RemoteTraceback(outcome.traceback)  # from another process
            add_stage_note(outcome.error, node.name, outcome.worker, node.workers)
            self._fail(outcome.error)
        elif not outcome.aborted and self._plan.sink is not None:
            if outcome.node == self._plan.sink.index:
                self._results[outcome.worker] = outcome.result

    def _fail(self, error: BaseException) -> None:
        with self._lock:
            if self._error is None and not self._cancelled:
                self._error = error
        self._engine.abort()
