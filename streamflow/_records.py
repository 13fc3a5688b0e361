"""The records between a worker and its caller: what a worker is handed, and what it reports.

::

    caller process                                            a worker (thread, process or Ray task)
    --------------                                            --------------------------------------
    Engine.launch  --- Job (node, edges, stats row, main) -->  backend.start(job) calls job.main(job, report)
                                                               run_job drives the stage over its edges
    Supervisor, its own thread                                 and reports, with ``report(record)``:
      backend.wait() <---- FailureEvent -------------------     an item it skipped (``on_error="skip"``)
        -> FailureLog -> Run.failures                           (its error a ``PortableError``)
      backend.wait() <---- LogRecordEvent, WarningEvent ----    a log record, a warning (worker processes)
        -> replayed to the caller's logging and warnings
      backend.wait() <---- Outcome (last) ------------------    how it ended: a sink's result, an error,
        -> first error, results, worker replacement               aborted with the run
      backend.wait() <---- Outcome(crashed=True) ----------     the backend's, for a worker that died

    Engine.launch  --- CallerSettings (in the Job) ------->    logging levels and warning filters to relay

Between threads the records are the objects themselves; to a worker
process the Job goes pickled by value (``dumps_job``), and back from it
every record goes pickled for the caller (``Reader.CALLER``), an error as
a ``PortableError`` that keeps what is known of an exception that cannot
travel.  The supervisor hands each record to its ``Handler`` method
(``Record.deliver``): the set of records is closed, and mypy checks that
every one is handled.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import socket
import traceback
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from ._errors import StageError
from ._plan import Node
from ._transport import Edge
from ._transport._serialize import Reader, dumps
from ._transport._turnstile import Order

__all__ = [
    "CallerSettings",
    "End",
    "FailureEvent",
    "Handler",
    "Job",
    "LogRecordEvent",
    "Memory",
    "Outcome",
    "PortableError",
    "Record",
    "Report",
    "WarningEvent",
    "this_process",
]


def this_process() -> tuple[str, int]:
    """(host, pid) of the process running this code."""
    return socket.gethostname(), os.getpid()


class Memory(Protocol):
    """A buffer the workers of a run write their statistics (or an order) into."""

    @property
    def memory(self) -> Any: ...

    def close(self) -> None: ...


@dataclasses.dataclass(frozen=True)
class CallerSettings:
    """What workers take from the caller's process when a run starts."""

    process: tuple[str, int]  # (host, pid) of the caller
    levels: dict[str, int]  # logger name ("" for the root) -> level set in the caller
    disabled: int  # logging.disable()'s level
    filters: list[Any]  # warnings.filters

    def here(self) -> bool:
        """Whether this code runs in the caller's process."""
        return self.process == this_process()


@dataclasses.dataclass(frozen=True)
class End:
    """One end of an edge that a worker holds: the edge of ``link``, and which of its producers or consumers."""

    link: int
    edge: Edge
    endpoint: int


@dataclasses.dataclass
class Job:
    """What one worker runs, handed to wherever it starts.

    ``main(job, report)`` is the runtime's worker loop: the backend calls it
    where the worker runs, with a ``report`` that sends a record back to the
    supervisor; its last record is the worker's ``Outcome``.  ``report`` may
    raise if a record cannot travel; ``main`` then reports what replaces it.
    """

    node: Node
    worker: int
    inputs: tuple[End, ...]  # its ends of the node's input links, as the plan lists them
    outputs: tuple[End, ...]  # its ends of the node's output links
    stats: Memory
    row: int  # this worker's row in ``stats``
    main: Callable[[Job, Report], None]
    settings: CallerSettings | None = None  # None: the worker is a thread of the caller
    order: Order | None = None  # the stage's turnstile, if it is ordered and has several workers
    grace: float = 5.0  # ``shutdown_timeout``: what a stopping async worker gives its calls in flight
    locks: Mapping[tuple[int, ...], Any] = dataclasses.field(default_factory=dict)  # a zip's, by its links
    letters: tuple[Any, ...] = ()  # ``Failure`` records a new worker sends its dead letters first

    @property
    def label(self) -> str:
        """``streamflow-<stage>-<worker>``: the name of its thread or process."""
        return f"streamflow-{self.node.name}-{self.worker}"


class Handler(Protocol):
    """What the supervisor does with each kind of record."""

    def on_outcome(self, outcome: Outcome) -> None: ...
    def on_failure(self, failure: FailureEvent) -> None: ...
    def on_log(self, record: LogRecordEvent | WarningEvent) -> None: ...


@dataclasses.dataclass
class Outcome:
    """How one worker ended: a result, an error, or aborted with the run.

    ``crashed``: the worker died (a signal, an exit) without finishing its stream; its error
    is a ``WorkerCrashed``, the backend's when the worker could report nothing.
    """

    node: int
    worker: int
    result: Any = None
    error: PortableError | None = None
    aborted: bool = False
    crashed: bool = False

    def deliver(self, to: Handler) -> None:
        to.on_outcome(self)


@dataclasses.dataclass
class FailureEvent:
    """An item a worker skipped, on its way to the supervisor (its error portable)."""

    node: int
    worker: int
    item: Any
    error: PortableError
    attempts: int
    where: str | None = None  # what failed it, if not the node's stage (an ``sf.route`` after it)
    lettered: bool = False  # it also went into the stage's dead-letter branch

    def deliver(self, to: Handler) -> None:
        to.on_failure(self)


@dataclasses.dataclass(frozen=True)
class LogRecordEvent:
    """A log record made in a worker process, for the caller's logging."""

    record: dict[str, Any]  # a LogRecord's attributes, its message formatted

    def deliver(self, to: Handler) -> None:
        to.on_log(self)


@dataclasses.dataclass(frozen=True)
class WarningEvent:
    """A warning issued in a worker process, for the caller's warnings filters."""

    message: str
    category: type[Warning]
    filename: str
    lineno: int

    def deliver(self, to: Handler) -> None:
        to.on_log(self)


Record = Outcome | FailureEvent | LogRecordEvent | WarningEvent
Report = Callable[[Record], None]  # sends one record from a worker to the supervisor


Frames = list[tuple[str, int, str]]  # (file, line, function), outermost call first


class PortableError:
    """An exception on its way to the caller, with what is known of it.

    Pickled, it carries the exception pickled for the caller on its own, so
    that an exception that cannot travel still leaves its type name,
    message, frames and traceback text; ``unwrap()`` in the caller gives the
    exception back, or a ``StageError`` that says why it could not.
    Unpickled nowhere (threads), it is the exception itself.
    """

    __slots__ = ("error", "data", "type_name", "message", "chain", "text", "why")

    data: bytes | None  # the exception pickled for the caller, once it crossed
    type_name: str
    message: str
    # The exception, then what it was raised from or while handling, each as
    # (type name, message, frames, how it led to the one before: "cause" or "context").
    chain: list[tuple[str, str, Frames, str]]
    text: str  # its traceback as formatted where it was raised
    why: str  # why ``data`` is None, if it is

    def __init__(self, error: BaseException | None, **known: Any) -> None:
        self.error = error
        if error is not None:
            known = {
                "data": None,
                "type_name": type(error).__qualname__,
                "message": str(error),
                "chain": _chain(error),
                "text": "".join(traceback.format_exception(type(error), error, error.__traceback__)),
                "why": "",
            }
        for name, value in known.items():
            setattr(self, name, value)

    @property
    def frames(self) -> Frames:
        """Where the exception was raised: its traceback's frames."""
        return self.chain[0][2]

    def __reduce__(self) -> tuple[Any, ...]:
        data, why = (None, "") if self.error is not None else (self.data, self.why)
        if self.error is not None:
            try:
                data = dumps(self.error, Reader.CALLER)
            except Exception as exc:  # noqa: BLE001 - described instead
                why = f"it cannot be pickled: {exc}"
        known = {
            "data": data,
            "type_name": self.type_name,
            "message": self.message,
            "chain": self.chain,
            "text": self.text,
            "why": why,
        }
        return (_portable_error, (known,))

    @property
    def remote(self) -> bool:
        """Whether this crossed a process boundary (its traceback did not)."""
        return self.error is None

    def unwrap(self) -> BaseException:
        """The exception, or a ``StageError`` with what is known and why it is not itself."""
        if self.error is not None:
            return self.error
        why = self.why
        if self.data is not None:
            try:
                error: BaseException = pickle.loads(self.data)
                return error
            except Exception as exc:  # noqa: BLE001 - described instead
                why = f"it cannot be rebuilt in the caller: {type(exc).__name__}: {exc}"
        return StageError(f"{self.type_name}: {self.message} ({why})", self.type_name, self.text)


def _chain(error: BaseException, most: int = 8) -> list[tuple[str, str, Frames, str]]:
    chain: list[tuple[str, str, Frames, str]] = []
    seen: set[int] = set()
    link = ""
    current: BaseException | None = error
    while current is not None and id(current) not in seen and len(chain) < most:
        seen.add(id(current))
        frames = [(f.filename, f.lineno or 0, f.name) for f in traceback.extract_tb(current.__traceback__)]
        chain.append((type(current).__qualname__, str(current), frames, link))
        if current.__cause__ is not None:
            current, link = current.__cause__, "cause"
        elif current.__context__ is not None and not current.__suppress_context__:
            current, link = current.__context__, "context"
        else:
            current = None
    return chain


def _portable_error(known: dict[str, Any]) -> PortableError:
    return PortableError(None, **known)
