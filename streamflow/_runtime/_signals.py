"""Signals to the caller while runs are active: no Ctrl-C lost, no worker orphaned.

- Starting a run takes a while (processes fork or spawn); a Ctrl-C that
  lands in the middle of a fork can be swallowed by Python's at-fork
  handlers.  While a run starts, the main thread's SIGINT handler is held:
  a Ctrl-C is recorded, the start-up stops at the next worker, and the
  caller's own handler (``KeyboardInterrupt``) runs once everything
  started is cleaned up.
- SIGTERM with no handler of the application's would end the caller at
  once and leave its workers behind.  While runs are active, streamflow's
  handler first stops and reaps every worker of every run, then ends the
  process the default way (exit status -15).  An application that installed
  its own SIGTERM handler keeps it.
- At interpreter exit, runs still active are cancelled.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any, Protocol

__all__ = ["StartInterrupted", "check_interrupt", "deferred_interrupts", "run_ended", "run_started"]


class _Cancellable(Protocol):
    def cancel(self) -> None: ...


_active: set[_Cancellable] = set()
_lock = threading.Lock()
_pending: list[int] = []  # a Ctrl-C held back while a run starts
_handler_installed = False


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


# -- Ctrl-C during start-up ---------------------------------------------------------


class StartInterrupted(BaseException):
    """A held-back Ctrl-C stops a run's start-up (``deferred_interrupts`` ends it)."""


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Hold back SIGINT within this block; at its end, run the held-back handler.

    Code inside calls ``check_interrupt()`` where stopping is safe.  Only in
    the main thread, and only over a Python-level handler (SIG_IGN and
    SIG_DFL are left alone).
    """
    previous = signal.getsignal(signal.SIGINT) if _main_thread() else None
    if not callable(previous) or _pending:
        yield
        return

    def hold(signum: int, frame: FrameType | None) -> None:
        _pending.append(signum)

    signal.signal(signal.SIGINT, hold)
    try:
        yield
    except StartInterrupted:
        pass  # cleaned up; the handler below says why
    finally:
        signal.signal(signal.SIGINT, previous)
        if _pending:
            _pending.clear()
            previous(signal.SIGINT, None)  # raises KeyboardInterrupt, for the default handler


def check_interrupt() -> None:
    """Raise ``StartInterrupted`` if a Ctrl-C was held back."""
    if _pending:
        raise StartInterrupted


# -- SIGTERM while runs are active -----------------------------------------------


def run_started(run: _Cancellable) -> None:
    """Track ``run`` until ``run_ended``; a SIGTERM stops it first."""
    global _handler_installed
    with _lock:
        _active.add(run)
    if not _handler_installed and _main_thread() and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _on_sigterm)
        _handler_installed = True


def run_ended(run: _Cancellable) -> None:
    """Stop tracking ``run``; the last one gives SIGTERM back to its default, from the main thread."""
    global _handler_installed
    with _lock:
        _active.discard(run)
        idle = not _active
    if idle and _handler_installed and _main_thread() and signal.getsignal(signal.SIGTERM) is _on_sigterm:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        _handler_installed = False


def _cancel_all() -> None:
    with _lock:
        runs = list(_active)
    for run in runs:
        with contextlib.suppress(Exception):
            run.cancel()


def _on_sigterm(signum: int, frame: Any) -> None:
    _cancel_all()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


def _forget_in_child() -> None:
    """A forked worker has copies of the caller's runs: they are not its to stop."""
    global _handler_installed
    _active.clear()
    _pending.clear()
    if _handler_installed:
        with contextlib.suppress(ValueError):
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
        _handler_installed = False


os.register_at_fork(after_in_child=_forget_in_child)
atexit.register(_cancel_all)
