"""A started run as the caller sees it, and the supervisor that drives it.

::

    caller thread                    supervisor thread            workers (threads/processes/actors)
    -------------                    -----------------            ----------------------------------
    result() / next_output()  <----  collects Outcomes    <-----  run_job(...) -> report(Outcome)
          |   reads last edge        first error wins:            reserve / send / next on edges
          |                          engine.abort(), stop()
          +-- cancel() ------------> engine.wake()

Everything about a run's life that does not depend on the backend lives
here once: the first-error rule, inactivity, cancellation and clean-up.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import CancelledError
from typing import Any, Protocol

from .._errors import InactivityError, TooManyFailures
from .._failures import Failure
from .._options import RunConfig
from .._plan import Node, Plan
from .._records import FailureEvent, LogRecordEvent, Outcome, PortableError, WarningEvent
from .._stats import OVERRUN_AT, REPLACED, RETRIES, SKIPS, TIMEOUTS, StatsTable
from .._transport import Aborted
from ._decide import crash_error, decide
from ._engine import Engine
from ._failure_log import FailureLog
from ._relay import replay
from ._remote import arrived, name_held
from ._signals import run_ended, run_started

__all__ = ["Execution", "Supervisor"]

_OVERRUN_CHECK = 0.25  # seconds between looks for workers stuck past their timeout


class Execution(Protocol):
    """What the caller's side needs from a started run, on every backend."""

    @property
    def finished(self) -> bool: ...

    def next_output(self) -> Any:
        """The next item of an open flow; ``StopIteration`` at its end."""

    def result(self) -> dict[int, list[Any]]:
        """Wait for the end; each sink node's workers' return values, in worker order."""

    def cancel(self) -> None:
        """Stop every worker and free every resource; idempotent."""

    def wait(self, timeout: float | None) -> bool:
        """Wait up to ``timeout`` seconds for every worker to end; whether they did."""

    @property
    def stats(self) -> StatsTable | None:
        """The run's live counters (None where a backend keeps none)."""

    @property
    def failures(self) -> list[Failure]:
        """The items skipped so far, as the caller heard of them."""

    @property
    def unlettered(self) -> list[Failure]:
        """Of them, those that went into no dead-letter branch."""


class Supervisor:
    """An ``Execution`` of an ``Engine``, watched by a supervisor thread."""

    def __init__(self, plan: Plan, config: RunConfig, engine: Engine) -> None:
        self._plan = plan
        self._config = config
        self._engine = engine
        self._pending = {(node.index, w) for node in plan.nodes for w in range(node.workers)}
        self._results: dict[tuple[int, int], Any] = {}  # (sink node, worker) -> its return value
        self._error: BaseException | None = None
        self._cancelled = False
        self._caller_waiting = False
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._output: Iterator[Any] | None = engine.output
        self._output_ended = False
        self._log = FailureLog(plan, config.max_failures)
        self._thread = threading.Thread(target=self._supervise, name="streamflow-supervisor", daemon=True)
        run_started(self)
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
            run_ended(self)
            raise

    # -- caller side ----------------------------------------------------------

    @property
    def finished(self) -> bool:
        return self._done.is_set()

    @property
    def stats(self) -> StatsTable | None:
        return self._engine.stats

    @property
    def failures(self) -> list[Failure]:
        return list(self._log.failures)

    @property
    def unlettered(self) -> list[Failure]:
        return self._log.unlettered

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

    def result(self) -> dict[int, list[Any]]:
        self._finish()
        if self._cancelled:
            raise CancelledError("the run was cancelled before it ended")
        return {sink.index: [self._results.get((sink.index, w)) for w in range(sink.workers)] for sink in self._plan.sinks}

    def cancel(self) -> None:
        with self._lock:
            if not self._done.is_set() and self._error is None:
                self._cancelled = True
        self._engine.abort()
        self._engine.wake()
        self._wait_done()
        self._engine.release()
        run_ended(self)

    def _finish(self) -> None:
        """Wait for the supervisor; raise the run's first error, if any."""
        try:
            self._wait_done()
        except BaseException:
            self.cancel()
            raise
        self._engine.release()
        run_ended(self)
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
            if self._error is not None or self._cancelled:
                engine.abort()
            engine.stop(self._config.shutdown_timeout)
            self._done.set()  # the caller releases the edges: it may still be reading one

    def _watch(self) -> None:
        limit = self._config.inactivity_timeout
        engine = self._engine
        seen, since = engine.progress(), time.monotonic()
        timed = [node for node in self._plan.nodes if node.options.timeout is not None]
        while self._pending and self._error is None and not self._cancelled:
            timeout = None if limit is None else max(0.0, since + limit - time.monotonic())
            if timed:
                timeout = _OVERRUN_CHECK if timeout is None else min(timeout, _OVERRUN_CHECK)
                self._end_overruns(timed)
            for record in engine.wait(timeout):
                record.deliver(self)
            if limit is None:
                continue
            now, progress = time.monotonic(), engine.progress()
            if progress != seen or (self._plan.caller_links and not self._caller_waiting):
                # A caller busy with its item is not the flow stalling.
                seen, since = progress, now
            elif now - since >= limit:
                self._fail(
                    InactivityError(
                        f"no packet moved for {limit:g} s (inactivity_timeout={limit:g}); "
                        f"stages still running: {self._running()}"
                    )
                )

    def _end_overruns(self, timed: list[Node]) -> None:
        """End the workers still on an item past its timeout and grace: code no signal interrupts."""
        now = time.perf_counter()
        for node in timed:
            for worker in range(node.workers):
                overrun_at = self._engine.stats.row(node.index, worker)[OVERRUN_AT]
                if overrun_at and now >= overrun_at and (node.index, worker) in self._pending:
                    self._engine.kill(node.index, worker)

    def _running(self) -> str:
        names = sorted({self._plan.node(n).name for n, _ in self._pending})
        return ", ".join(f"'{name}'" for name in names) or "none"

    # -- the records workers report (``_records.Handler``) -------------------------------

    def on_failure(self, failure: FailureEvent) -> None:
        try:
            self._log.add(failure)
        except TooManyFailures as error:
            self._fail(error)

    def on_log(self, record: LogRecordEvent | WarningEvent) -> None:
        replay(record)

    def on_outcome(self, outcome: Outcome) -> None:
        node = self._plan.node(outcome.node)
        if outcome.crashed and node.options.replaces_crashed and self._replaced(outcome):
            return
        self._pending.discard((outcome.node, outcome.worker))
        if outcome.crashed:
            # An ``ItemTimeout`` if the supervisor ended it past its timeout, else its ``WorkerCrashed``,
            # naming the item it held, if any.
            row = self._engine.stats.row(node.index, outcome.worker)
            error = crash_error(outcome, node, row)
            held = self._engine.held(node.index, outcome.worker)
            if held is not None:
                name_held(error, held.item, held.of)
            self._fail(arrived(PortableError(error), node.name, outcome.worker, node.workers))
        elif outcome.error is not None:
            self._fail(arrived(outcome.error, node.name, outcome.worker, node.workers))
        elif not outcome.aborted and node.kind == "sink":
            self._results[outcome.node, outcome.worker] = outcome.result

    def _replaced(self, outcome: Outcome) -> bool:
        """Under a policy, settle the item a dead worker held and start a new worker in its place.

        False when the crash ends the run as it is: not an item's failure (it
        held none), a run already ending, or edges that cannot be taken over.
        """
        engine, node, worker = self._engine, self._plan.node(outcome.node), outcome.worker
        if self._error is not None or self._cancelled or not engine.replaceable(node.index):
            return False
        held = engine.held(node.index, worker)
        if held is None or held.attempts < 0:
            return False  # it held nothing, or died again before it took another item
        row = engine.stats.row(node.index, worker)
        error = crash_error(outcome, node, row)
        attempts = held.attempts + 1
        decision = decide(error, attempts, node.options)
        letters: tuple[Failure, ...] = ()
        if decision.timed_out:
            row[TIMEOUTS] += 1
        if decision.action == "retry":  # the new worker waits for nothing: starting it takes longer
            row[RETRIES] += 1
            again = attempts
        elif decision.action == "skip":
            row[SKIPS] += 1
            again = -1
            event = FailureEvent(node.index, worker, held.item, PortableError(error), attempts)
            if node.letters is not None:  # the new worker sends it to the dead letters first
                event.lettered = True
                letters = (Failure(node.name, worker, held.item, error, event.error.text, attempts),)
            try:
                self._log.add(event)
            except TooManyFailures as too_many:
                self._fail(too_many)
                return False
        else:
            name_held(error, held.item, held.of)
            self._pending.discard((node.index, worker))
            self._fail(arrived(PortableError(error), node.name, worker, node.workers))
            return True
        row[REPLACED] += 1
        row[OVERRUN_AT] = 0.0
        engine.replace(node.index, worker, again=again, letters=letters)
        return True

    def _fail(self, error: BaseException) -> None:
        with self._lock:
            if self._error is None and not self._cancelled:
                self._error = error
        self._engine.abort()
