"""What every worker does, whatever runs it: drive one stage over its edges.

::

    input ends --receiver--> Counted stream --> stage (``_drive.outputs``) --> pump --sender--> output ends
                                                                              (reserve, resume, send)

``run_job`` is the whole life of a worker on every backend: call the
stage's function on its input stream with its constants (``Body``), and
for each packet first reserve a slot on the output edge, then resume the
generator to build the packet (this is what makes a ``yield`` block until
there is room), then send it.  A sink's return value is the worker's
result.  How the outputs come (under a failure policy, from an async
stage's event loop, as an async map stage's calls finish) is
``_drive``'s choice, the same one the inline chain makes.  The worker's
ends are the ones the plan gives its node (``Job.inputs``, ``Job.outputs``):
a stage reads one stream and writes one.  It reports one ``Outcome`` and
never raises.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from time import perf_counter
from typing import Any

from .._errors import UnpicklableMessage, WorkerCrashed
from .._failures import Failure
from .._plan import Node
from .._records import FailureEvent, Job, Outcome, PortableError, Report
from .._stats import ENDED, STARTED, StatsTable
from .._transport import Aborted, DownstreamClosed, Receiver, Sender, Stop, carry
from .._transport._zip import ZipReceiver
from ._body import Body
from ._counters import Counters, counting
from ._current import working_as
from ._drive import outputs
from ._fanout import sender_for
from ._order import InOrder, Numbered, in_order
from ._policy import Alarm, alarm_for
from ._relay import relay_to
from ._remote import name_held, name_item

__all__ = ["run_job"]


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
    if not row[STARTED]:  # a worker that replaces a dead one keeps its row's start
        row[STARTED] = perf_counter()
    counters = Counters(row)
    calls = node.is_async and node.per_item  # several inputs in flight at once (``_calls.Calls``)
    receiver = _receiver(job)
    if receiver is not None:
        receiver.clock = counters.input  # it times the waits that block
    order: InOrder | Numbered | None = None
    if receiver is not None and job.order is not None:
        order = Numbered(job.order, worker, node.workers, receiver) if calls else in_order(job.order, worker, receiver)
    stream = None if receiver is None else _Counted(order or receiver, counters)
    body: Body | None = None
    alarm: Alarm | None = None
    ends = job.inputs + job.outputs
    try:
        with counting(counters), working_as(node, worker):
            record = _recorder(report, _letters(job), node.name)
            for failure in job.letters:  # what the worker this one replaces failed on
                record.send(failure)
            sender = _sender(job, record)
            if sender is not None:
                sender.clock = counters.output
            if sender is not None and receiver is not None:
                carry(receiver, sender)
            send = None  # ``sender.send``, or an ordered stage's, whose outputs wait for their turn
            if isinstance(order, InOrder) and sender is not None:
                send = order.sending(sender.send, node.per_item)
            body = Body(node, worker, lambda: any(end.edge.aborted() for end in ends), job.grace)
            if sender is None:
                outcome.result = body.call(stream)  # a sink has run to completion
            else:
                if stream is not None and node.options.has_policy and not calls:
                    alarm = alarm_for(node, counters.row)
                _pump(outputs(node, worker, body, stream, record, _counter(counters), alarm, order), sender, counters, send)
                record.close()
            ending, body = body, None
            ending.close()  # its errors are the worker's: the stream is done
        if stream is not None:
            stream.finish()
    except Stop:
        outcome.aborted = True
    except SystemExit as exc:  # a crash like any other: under a policy, its worker is replaced
        crash = WorkerCrashed(
            f"worker {worker + 1} of {node.workers} of stage '{node.name}' "
            f"called sys.exit({exc.code!r}) before its stream ended"
        )
        if stream is not None and stream.last is not _NOTHING and not calls:
            name_held(crash, stream.last)
        outcome.crashed = True
        outcome.error = PortableError(crash)
    except BaseException as exc:  # noqa: BLE001 - reported to the caller
        if stream is not None and stream.last is not _NOTHING and not calls:  # ``Calls`` names its own
            name_item(exc, counters.items_in, stream.last)
        outcome.error = PortableError(exc)
    finally:
        row[ENDED] = perf_counter()
        if alarm is not None:
            alarm.close()
        if body is not None:  # the run is ending with an error: close quietly
            try:
                body.close()
            except Exception:  # noqa: BLE001 - the first error is the one to report
                pass
    _deliver(outcome, node, report)


def _receiver(job: Job) -> Receiver | None:
    """The worker's input: its end of the node's input link (none for a source), or of each of a
    zip's branches, joined one tuple at a time."""
    receivers = [end.edge.receiver(end.endpoint) for end in job.inputs]
    if job.node.join == "zip":
        return ZipReceiver(receivers, job.locks.get(job.node.inputs))
    if not receivers:
        return None
    (receiver,) = receivers
    return receiver


def _ends(job: Job) -> dict[int, Sender]:
    return {end.link: end.edge.sender(end.endpoint) for end in job.outputs}


def _sender(job: Job, record: _Recorder) -> Sender | None:
    """The worker's output: its node's fanout over its ends of the output links (none for a sink)."""
    node = job.node
    if node.fanout is None:
        return None
    return sender_for(node.fanout, record.senders, job.locks, record, node.index, job.worker)


def _letters(job: Job) -> tuple[dict[int, Sender], Sender | None]:
    """The worker's ends, and the one its failed items go to (its dead-letter branch's), if any."""
    senders = _ends(job)
    node = job.node
    if node.letters is None:
        return senders, None
    return senders, sender_for(node.letters, senders, job.locks, lambda event: None, node.index, job.worker)


def _counter(counters: Counters) -> Callable[[str, int], None]:
    """Count what a failure policy did into the worker's counters."""

    def count(what: str, times: int = 1) -> None:
        setattr(counters, what, getattr(counters, what) + times)

    return count


class _Recorder:
    """Reports a skipped item's failure to the caller, and sends it to the dead letters, if any."""

    __slots__ = ("_report", "senders", "_letters", "_stage")

    def __init__(self, report: Report, ends: tuple[dict[int, Sender], Sender | None], stage: str) -> None:
        self._report = report
        self.senders, self._letters = ends
        self._stage = stage

    def __call__(self, event: FailureEvent) -> None:
        if self._letters is not None and event.where is None:  # a stage's own failure, not a route's
            event.lettered = True
            self.send(Failure(self._stage, event.worker, event.item, event.error.unwrap(), event.error.text, event.attempts))
        try:
            self._report(event)
        except Exception:  # noqa: BLE001 - an item that cannot travel travels as its repr
            event.item = repr(event.item)
            self._report(event)

    def send(self, failure: Failure) -> None:
        """Put ``failure`` into the dead-letter branch, waiting for room there."""
        letters = self._letters
        if letters is not None:
            letters.reserve()
            letters.send(failure)

    def close(self) -> None:
        """The worker's stream is done: so is what it sends its dead letters."""
        if self._letters is not None:
            self._letters.close()


def _recorder(report: Report, ends: tuple[dict[int, Sender], Sender | None], stage: str) -> _Recorder:
    return _Recorder(report, ends, stage)


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


_NOTHING: Any = object()


class _Counted:
    """The input stream a stage sees: the receiver, counted; ``last`` is its last item.

    Its waits are timed by the receiver, and only when they block (``_transport._clock``).
    A ``for`` loop over it runs a generator (``_items``): resuming one costs
    about half of a call to ``__next__`` from C, per item.
    """

    __slots__ = ("_receiver", "_counters", "last")

    def __init__(self, receiver: Receiver | InOrder | Numbered, counters: Counters) -> None:
        self._receiver = receiver
        self._counters = counters
        self.last: Any = _NOTHING

    def __iter__(self) -> Iterator[Any]:
        return self._items()

    def _items(self) -> Iterator[Any]:
        counters = self._counters
        for item in self._receiver:
            self.last = item
            counters.items_in += 1
            yield item

    def __next__(self) -> Any:
        self.last = item = next(self._receiver)
        self._counters.items_in += 1
        return item

    def next_within(self, seconds: float) -> Any:
        """The next item, waiting at most ``seconds``; raises ``Quiet`` if none came (``sf.batch``)."""
        self.last = item = self._receiver.next_within(seconds)
        self._counters.items_in += 1
        return item

    def finish(self) -> None:
        self._receiver.finish()


def _pump(items: Iterator[Any], sender: Sender, counters: Counters, send: Callable[[Any], None] | None = None) -> None:
    """Move ``items`` onto ``sender``, one reserved slot per packet; ``send``: instead of
    ``sender.send`` (an ordered stage's, which waits for each output's turn)."""
    reserve = sender.reserve
    if send is None:
        send = sender.send
    try:
        while True:
            reserve()
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
