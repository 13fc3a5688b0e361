"""Log records and warnings of worker processes, relayed to the caller's own.

::

    worker process                                        caller (supervisor thread)
    --------------                                        --------------------------
    logger.info(...) -> root's Forward handler --report-->  logging.getLogger(name).handle(record)
    warnings.warn(...) -> showwarning hook -----report-->  warnings.warn_explicit(...)

A worker process takes the caller's logging levels and warning filters as
they are when the run starts, drops the handlers it inherited (under fork)
so that nothing is printed twice, and sends every record and warning that
passes them to the caller, where the caller's handlers, formatters and
warning filters take over, reading source lines where the caller can.
Workers that are threads of the caller need none of this.  Every record
made inside a stage, on any backend, carries ``streamflow_stage`` (its
name) and ``streamflow_worker`` (0-based) for formatters and filters; any
other record of a process that imported streamflow carries them as None.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any, TextIO

from .._records import CallerSettings, LogRecordEvent, Report, WarningEvent, this_process
from ._current import worker_info

__all__ = ["caller_settings", "relay_to", "replay"]


def caller_settings() -> CallerSettings:
    """The caller's logging levels and warning filters, now."""
    manager = logging.Logger.manager
    levels = {"": logging.getLogger().level}
    for name, logger in list(manager.loggerDict.items()):
        if isinstance(logger, logging.Logger) and logger.level != logging.NOTSET:
            levels[name] = logger.level
    return CallerSettings(this_process(), levels, manager.disable, list(warnings.filters))


# -- in the worker ------------------------------------------------------------------


class _Forward(logging.Handler):
    """Sends every record it is given to the caller."""

    def __init__(self, report: Report) -> None:
        super().__init__()
        self._report = report

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._report(LogRecordEvent(_portable(record)))
        except Exception:  # noqa: BLE001 - as any handler that fails to emit
            self.handleError(record)


def _portable(record: logging.LogRecord) -> dict[str, Any]:
    """``record``'s attributes, with its message and exception already formatted."""
    attributes = dict(record.__dict__)
    attributes["msg"] = record.getMessage()
    attributes["args"] = None
    if record.exc_info:
        attributes["exc_text"] = record.exc_text or logging.Formatter().formatException(record.exc_info)
    attributes["exc_info"] = None
    for name, value in list(attributes.items()):
        if not isinstance(value, (str, int, float, bool, type(None))):
            attributes[name] = repr(value)  # extras that may not pickle
    return attributes


def relay_to(settings: CallerSettings, report: Report) -> None:
    """Send this worker process's log records and warnings to the caller, as it configured them.

    A process that runs workers one after the other (Ray's) relays each to
    its own caller: installing again replaces what was installed before.
    """
    manager = logging.Logger.manager
    forward = _Forward(report)
    loggers = [logging.getLogger()] + [
        logger for logger in list(manager.loggerDict.values()) if isinstance(logger, logging.Logger)
    ]
    for logger in loggers:
        for handler in list(logger.handlers):
            logger.removeHandler(handler)  # inherited from the caller (fork), or an earlier worker's
        if not logger.propagate:
            logger.addHandler(forward)  # its records stop here: send them from here
    logging.getLogger().addHandler(forward)
    for name, level in settings.levels.items():
        logging.getLogger(name or None).setLevel(level)
    logging.disable(settings.disabled)

    def show(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        report(WarningEvent(str(message), category, filename, lineno))

    warnings.filters[:] = settings.filters  # type: ignore[index]
    warnings._filters_mutated()  # type: ignore[attr-defined]
    warnings.showwarning = show


# -- in the caller ------------------------------------------------------------------


# One warnings registry per file that warned in a worker, for the caller's
# process: a warning shown once per place is shown once, however many
# workers and runs hit it, as it would be if they all ran in the caller.
_registries: dict[str, dict[Any, Any]] = {}


def replay(event: LogRecordEvent | WarningEvent) -> None:
    """Hand a worker's record or warning to the caller's logging or warnings."""
    if isinstance(event, LogRecordEvent):
        record = logging.makeLogRecord(event.record)
        logging.getLogger(record.name).handle(record)
    else:
        registry = _registries.setdefault(event.filename, {})
        warnings.warn_explicit(event.message, event.category, event.filename, event.lineno, registry=registry)


# -- on every record --------------------------------------------------------------


def _install_record_factory() -> None:
    """Make records made inside a stage carry its name and worker (None elsewhere)."""
    previous = logging.getLogRecordFactory()

    def make(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        info = worker_info()
        record.streamflow_stage = None if info is None else info.stage
        record.streamflow_worker = None if info is None else info.index
        return record

    logging.setLogRecordFactory(make)


_install_record_factory()
