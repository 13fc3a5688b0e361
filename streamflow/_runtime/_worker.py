"""What every worker does, whatever runs it: drive one stage over its edges.

::

    input edge --receiver--> Counted stream --> stage function --> pump --sender--> output edge
                                                                 (reserve, resume, send)

``run_job`` is the whole life of a worker on every backend: call the
stage's function on its input stream with its constants, and for each
packet first reserve a slot on the output edge, then resume the generator
to build the packet (this is what makes a ``yield`` block until there is
room), then send it.  A sink's return value is the worker's result.  It
reports one ``Outcome`` and never raises.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from time import perf_counter
from typing import Any

from .._backends import Job, Outcome, Report
from .._errors import UnpicklableMessage, WorkerCrashed
from .._plan import Node
from .._stats import ENDED, STARTED, StatsTable
from .._transport import Aborted, DownstreamClosed, Receiver, Sender, Stop
from .._transport._serialize import PortableError
from ._counters import Counters, counting
from ._current import working_as
from ._relay import relay_to

__all__ = ["call_stage", "run_job"]


def call_stage(node: Node, stream: Iterable[Any] | None) -> Any:
    """Call ``node``'s function on ``stream`` (None for a source) with its constants."""
    if node.kind == "source":
        return node.function(**node.constants)
    return node.function(stream, **node.constants)


def run_job(job: Job, report: Report) -> None:
    """Run ``job`` to its end, counting into its stats row; report its ``Outcome``; never raises.

    In a process of its own, the worker first relays its log records and
    warnings to the caller (``_relay``).
    """
    node, worker = job.node, job.worker
    if job.settings is not None and not job.settings.here():
        relay_to(job.settings, report)
    row = StatsTable.view(job.stats.memory, job.row)
    outcome = Outcome(node.index, worker)
    row[STARTED] = perf_counter()
    counters = Counters(row)
    receiver = job.inputs[0].receiver(worker) if job.inputs else None
    stream = None if receiver is None else _Counted(receiver, counters)
    try:
        with counting(counters), working_as(node, worker):
            sender = job.outputs[0].sender(worker) if job.outputs else None
            produced = call_stage(node, stream)
            if sender is None:
                outcome.result = produced  # a sink has run to completion
            else:
                _pump(iter(produced), sender, counters)
        if stream is not None:
            stream.finish()
    except Stop:
        outcome.aborted = True
    except SystemExit as exc:
        outcome.error = PortableError(
            WorkerCrashed(
                f"worker {worker + 1} of {node.workers} of stage '{node.name}' "
                f"called sys.exit({exc.code!r}) before its stream ended"
            )
        )
    except BaseException as exc:  # noqa: BLE001 - reported to the caller
        outcome.error = PortableError(exc)
    finally:
        row[ENDED] = perf_counter()
    _deliver(outcome, node, report)


def _deliver(outcome: Outcome, node: Node, report: Report) -> None:
    """Report ``outcome``; a sink result that cannot travel becomes an error."""
    try:
        report(outcome)
    except Exception as exc:  # noqa: BLE001 - an unpicklable sink result
        kind = type(outcome.result).__qualname__
        outcome.result = None
        outcome.error = PortableError(
            UnpicklableMessage(
                f"sink '{node.name}' returned a {kind} that cannot be pickled back to the caller: {exc}"
            )
        )
        report(outcome)


class _Counted:
    """The input stream a stage sees: the receiver, counted and timed."""

    __slots__ = ("_receiver", "_counters")

    def __init__(self, receiver: Receiver, counters: Counters) -> None:
        self._receiver = receiver
        self._counters = counters

    def __iter__(self) -> _Counted:
        return self

    def __next__(self) -> Any:
        counters = self._counters
        counters.waiting_since = started = perf_counter()
        try:
            item = next(self._receiver)
        finally:
            counters.waiting += perf_counter() - started
            counters.waiting_since = 0.0
        counters.items_in += 1
        return item

    def finish(self) -> None:
        self._receiver.finish()


def _pump(items: Iterator[Any], sender: Sender, counters: Counters) -> None:
    """Move ``items`` onto ``sender``, one reserved slot per packet."""
    reserve, send = sender.reserve, sender.send
    try:
        while True:
            counters.blocked_since = started = perf_counter()
            try:
                reserve()
            finally:
                counters.blocked += perf_counter() - started
                counters.blocked_since = 0.0
            try:
                item = next(items)
            except StopIteration:
                sender.unreserve()
                break
            send(item)
            counters.items_out += 1
    except DownstreamClosed:
        _close(items)
    except Aborted:
        _close(items)
        raise
    sender.close()


def _close(items: Iterator[Any]) -> None:
    """Close a suspended generator so its ``finally`` blocks run."""
    close = getattr(items, "close", None)
    if close is not None:
        try:
            close()
        except Exception:  # noqa: BLE001 - the run is ending anyway
            pass
