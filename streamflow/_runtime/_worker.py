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
from .._stats import BLOCKED, ENDED, ITEMS_IN, ITEMS_OUT, STARTED, WAITING, StatsTable
from .._transport import Aborted, DownstreamClosed, Receiver, Sender, Stop
from .._transport._serialize import PortableError
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
    receiver = job.inputs[0].receiver(worker) if job.inputs else None
    stream = None if receiver is None else _Counted(receiver, row)
    try:
        with working_as(node, worker):
            sender = job.outputs[0].sender(worker) if job.outputs else None
            produced = call_stage(node, stream)
            if sender is None:
                outcome.result = produced  # a sink has run to completion
            else:
                _pump(iter(produced), sender, row)
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
        if stream is not None:
            stream.flush()
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


_FLUSH_EVERY = 32  # packets between writes of a worker's counters


class _Counted:
    """The input stream a stage sees: the receiver, counted and timed."""

    __slots__ = ("_receiver", "_row", "_items", "_waiting")

    def __init__(self, receiver: Receiver, row: Any) -> None:
        self._receiver = receiver
        self._row = row
        self._items = 0
        self._waiting = 0.0

    def __iter__(self) -> _Counted:
        return self

    def __next__(self) -> Any:
        started = perf_counter()
        try:
            item = next(self._receiver)
        finally:
            self._waiting += perf_counter() - started
        self._items += 1
        if not self._items % _FLUSH_EVERY:
            self.flush()
        return item

    def flush(self) -> None:
        self._row[ITEMS_IN] = self._items
        self._row[WAITING] = self._waiting

    def finish(self) -> None:
        self._receiver.finish()


def _pump(items: Iterator[Any], sender: Sender, row: Any) -> None:
    """Move ``items`` onto ``sender``, one reserved slot per packet."""
    reserve, send = sender.reserve, sender.send
    sent, blocked = 0, 0.0
    try:
        while True:
            started = perf_counter()
            reserve()
            blocked += perf_counter() - started
            try:
                item = next(items)
            except StopIteration:
                sender.unreserve()
                break
            send(item)
            sent += 1
            if not sent % _FLUSH_EVERY:
                row[ITEMS_OUT], row[BLOCKED] = sent, blocked
    except DownstreamClosed:
        _close(items)
    except Aborted:
        _close(items)
        raise
    finally:
        row[ITEMS_OUT], row[BLOCKED] = sent, blocked
    sender.close()


def _close(items: Iterator[Any]) -> None:
    """Close a suspended generator so its ``finally`` blocks run."""
    close = getattr(items, "close", None)
    if close is not None:
        try:
            close()
        except Exception:  # noqa: BLE001 - the run is ending anyway
            pass
