"""Errors from workers, made to read like local ones in the caller, and the notes they carry.

An error that crossed a process boundary lost its traceback; it comes back
with a ``RemoteTraceback`` as its ``__cause__``, whose own traceback is the
worker's frames rebuilt in the caller: the caller's traceback display
(Python's, IPython's) shows them with their source lines, read where the
caller can read them (the user's script, a notebook cell).  Every error
gets a note naming the stage and worker that raised it, and where known
the item: the last one its worker received (``name_item``), or the one it
held as it died (``name_held``).
"""

from __future__ import annotations

import linecache
import os
import types
from collections.abc import Sequence
from typing import Any

from .._records import PortableError
from .._text import short

__all__ = ["RemoteTraceback", "add_stage_note", "arrived", "name_held", "name_item"]

_NOTE = "raised in stage"


class RemoteTraceback(Exception):
    """The traceback of an error raised in a worker process, set as the error's ``__cause__``.

    Its own traceback holds the worker's frames; ``text`` is the traceback
    as the worker formatted it.  Exceptions the error was raised from (or
    while handling) in the worker come before it, as its own causes.
    """

    def __init__(self, message: str, text: str = "") -> None:
        super().__init__(message)
        self.text = text

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (str(self), self.text))


RemoteTraceback.__module__ = "streamflow"  # as users see it, and import it


def arrived(portable: PortableError, stage: str, worker: int, workers: int) -> BaseException:
    """The error ``portable`` carries, noted with its stage and, if remote, its frames."""
    error = portable.unwrap()
    if portable.remote and error.__cause__ is None:
        error.__cause__ = _remote_traceback(portable)
    add_stage_note(error, stage, worker, workers)
    return error


def _remote_traceback(portable: PortableError) -> RemoteTraceback:
    """The worker's traceback of ``portable``, its earlier exceptions chained before it."""
    earlier: BaseException | None = None
    link_of_next = ""
    for type_name, message, frames, link in reversed(portable.chain[1:]):
        shown = RemoteTraceback(f"{type_name}: {message}" if message else type_name)
        shown.__traceback__ = _rebuilt(frames)
        if earlier is not None:
            _link(shown, earlier, link_of_next)
        earlier, link_of_next = shown, link
    top = RemoteTraceback("the worker's traceback, above", portable.text)
    top.__traceback__ = _rebuilt(portable.frames)
    if earlier is not None:
        _link(top, earlier, link_of_next)
    return top


def _link(later: BaseException, earlier: BaseException, how: str) -> None:
    if how == "cause":
        later.__cause__ = earlier
    else:
        later.__context__ = earlier


def add_stage_note(error: BaseException, stage: str, worker: int, workers: int) -> None:
    """Add ``raised in stage 'x' (worker i of n)`` to ``error``'s notes, once."""
    if not _noted(error, _NOTE):
        _add_note(error, f"{_NOTE} '{stage}' (worker {worker + 1} of {workers})")


def name_item(error: BaseException, position: int, item: Any) -> None:
    """Note on ``error`` the last item its worker received: the one to look at first."""
    _add_note(error, f"the last item this worker received was its #{position}: {short(item, 80)}")


_HELD = "its worker held as it died"


def name_held(error: BaseException, item: Any, of: int = 1) -> None:
    """Note on ``error`` (a crash) the item its worker held as it died, once; ``of`` > 1: ``item``
    lists the items it held, one of which it was working on."""
    if _noted(error, _HELD, anywhere=True):
        return
    if of == 1:
        _add_note(error, f"the item {_HELD}: {short(item, 80)}")
    else:
        _add_note(error, f"one of the {of} items {_HELD}: {short(item, 80)}")


def _noted(error: BaseException, text: str, anywhere: bool = False) -> bool:
    notes = getattr(error, "__notes__", ())
    return any((text in str(note)) if anywhere else str(note).startswith(text) for note in notes)


def _add_note(error: BaseException, note: str) -> None:
    if hasattr(error, "add_note"):
        error.add_note(note)
    else:  # Python 3.10
        error.__notes__ = [*getattr(error, "__notes__", []), note]  # type: ignore[attr-defined]


class _Here(Exception):
    """Raised at a chosen file and line to make a traceback entry for it."""


_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _rebuilt(frames: Sequence[tuple[str, int, str]]) -> types.TracebackType | None:
    """A traceback whose entries are ``(filename, line, function)`` of ``frames``, in order.

    Each entry is a real frame of a tiny code object compiled under the
    frame's file name and line, so any traceback display shows the source
    line it can read there.  The runtime's own frames that called the
    stage are left out, as a local traceback would not have them.
    """
    shown = list(frames)
    while shown and shown[0][0].startswith(_PACKAGE):
        shown.pop(0)
    tb = None
    for filename, line, name in reversed(shown):
        code = compile(_source(filename, line), filename, "exec")
        try:
            exec(code.replace(co_name=name), {"_Here": _Here, "__name__": "<worker>"})
        except _Here as here:
            entry = here.__traceback__.tb_next if here.__traceback__ else None
            if entry is not None:
                tb = types.TracebackType(tb, entry.tb_frame, entry.tb_lasti, entry.tb_lineno)
    return tb


def _source(filename: str, line: int) -> str:
    """Code raising ``_Here`` at ``line``, indented and as wide as the real line
    there, so that no display underlines a part of it."""
    real = linecache.getline(filename, line).rstrip()
    stripped = real.lstrip()
    indent = real[: len(real) - len(stripped)] if line > 1 else ""
    statement = f"{indent}raise _Here({' ' * max(0, len(stripped) - len('raise _Here()'))})"
    if indent:
        return "\n" * (line - 2) + "if 1:\n" + statement
    return "\n" * max(0, line - 1) + statement
