"""What every worker does, whatever runs it: drive one stage over its edges.

``run_worker`` is the whole life of a worker on every backend: bind the
stage's constants, feed it its input stream, and for each packet first
reserve a slot on the output edge, then resume the generator to build the
packet (this is what makes a ``yield`` block until there is room), then
send it.  It returns an ``Outcome`` and never raises.
"""

from __future__ import annotations

import dataclasses
import pickle
import threading
import traceback
from time import perf_counter
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from ._errors import StageError, UnpicklableMessage, WorkerCrashed
from ._plan import Node
from ._stats import BLOCKED, ENDED, ITEMS_IN, ITEMS_OUT, STARTED, WAITING
from ._transport import Aborted, DownstreamClosed, Receiver, Sender, Stop

T = TypeVar("T")

__all__ = ["Outcome", "RemoteTraceback", "WorkerInfo", "add_stage_note", "portable", "run_worker", "worker_info"]


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


@dataclasses.dataclass
class Outcome:
    """How one worker ended: a result, an error, or aborted with the run."""

    node: int
    worker: int
    result: Any = None
    error: BaseException | None = None
    traceback: str = ""
    aborted: bool = False


_NOTE = "raised in stage"


class RemoteTraceback(Exception):
    """The traceback of an error raised in a worker process; set as its ``__cause__``."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return f"\n\n{self.text.rstrip()}"


def add_stage_note(error: BaseException, stage: str, worker: int, workers: int) -> None:
    """Add ``raised in stage 'x' (worker i of n)`` to ``error``'s notes, once."""
    notes = getattr(error, "__notes__", None)
    if notes is not None and any(str(n).startswith(_NOTE) for n in notes):
        return
    note = f"{_NOTE} '{stage}' (worker {worker + 1} of {workers})"
    if hasattr(error, "add_note"):
        error.add_note(note)
    else:  # Python 3.10
        error.__notes__ = [*(notes or []), note]  # type: ignore[attr-defined]


def run_worker(
    node: Node, worker: int, receiver: Receiver | None, sender: Sender | None, row: Any
) -> Outcome:
    """Run worker ``worker`` of ``node`` to its end, counting into ``row``; never raises."""
    _local.info = WorkerInfo(node.name, worker, node.workers)
    outcome = Outcome(node.index, worker)
    row[STARTED] = perf_counter()
    stream = None if receiver is None else _Counted(receiver, row)
    try:
        produced = node.stage.call(stream)
        if sender is None:
            outcome.result = produced  # a sink has run to completion
        else:
            _pump(iter(produced), sender, row)
        if stream is not None:
            stream.finish()
    except Stop:
        outcome.aborted = True
    except SystemExit as exc:
        outcome.error = WorkerCrashed(
            f"worker {worker + 1} of {node.workers} of stage '{node.name}' "
            f"called sys.exit({exc.code!r}) before its stream ended"
        )
    except BaseException as exc:  # noqa: BLE001 - reported to the caller
        outcome.error = exc
        outcome.traceback = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    finally:
        if stream is not None:
            stream.flush()
        row[ENDED] = perf_counter()
        _local.info = None
    return outcome


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


def portable(outcome: Outcome, node: Node, serialize: Callable[[Outcome], T]) -> T:
    """``outcome`` serialised for the caller, replacing what cannot travel.

    An exception that does not survive pickling becomes a ``StageError``
    with its type name, message and traceback text; a sink result that
    cannot be pickled becomes an ``UnpicklableMessage`` error.
    """
    error = outcome.error
    if error is not None and not _round_trips(error):
        name = type(error).__qualname__
        outcome.error = StageError(f"{name}: {error}", name, outcome.traceback)
    try:
        return serialize(outcome)
    except Exception as exc:  # noqa: BLE001 - an unpicklable sink result
        kind = type(outcome.result).__qualname__
        outcome.result = None
        outcome.error = UnpicklableMessage(
            f"sink '{node.name}' returned a {kind} that cannot be pickled back to the caller: {exc}"
        )
        return serialize(outcome)


def _round_trips(error: BaseException) -> bool:
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:  # noqa: BLE001
        return False
    return True


def _close(items: Iterator[Any]) -> None:
    """Close a suspended generator so its ``finally`` blocks run."""
    close = getattr(items, "close", None)
    if close is not None:
        try:
            close()
        except Exception:  # noqa: BLE001 - the run is ending anyway
            pass
