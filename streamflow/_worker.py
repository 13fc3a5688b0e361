"""What every worker does, whatever runs it: drive one stage over its edges.

``run_worker`` is the whole life of a worker on every backend: bind the
stage's constants, feed it its input stream, and for each packet first
reserve a slot on the output edge, then resume the generator to build the
packet (this is what makes a ``yield`` block until there is room), then
send it.  It returns an ``Outcome`` and never raises.
"""

from __future__ import annotations

import dataclasses
import threading
import traceback
from collections.abc import Iterator
from typing import Any

from ._errors import WorkerCrashed
from ._plan import Node
from ._transport import Aborted, DownstreamClosed, Receiver, Sender, Stop

__all__ = ["Outcome", "RemoteTraceback", "WorkerInfo", "add_stage_note", "run_worker", "worker_info"]


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


def run_worker(node: Node, worker: int, receiver: Receiver | None, sender: Sender | None) -> Outcome:
    """Run worker ``worker`` of ``node`` to its end; never raises."""
    _local.info = WorkerInfo(node.name, worker, node.workers)
    outcome = Outcome(node.index, worker)
    try:
        produced = node.stage.call(receiver)
        if sender is None:
            outcome.result = produced  # a sink has run to completion
        else:
            _pump(iter(produced), sender)
        if receiver is not None:
            receiver.finish()
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
        _local.info = None
    return outcome


def _pump(items: Iterator[Any], sender: Sender) -> None:
    """Move ``items`` onto ``sender``, one reserved slot per packet."""
    reserve, send = sender.reserve, sender.send
    try:
        while True:
            reserve()
            try:
                item = next(items)
            except StopIteration:
                sender.unreserve()
                break
            send(item)
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
