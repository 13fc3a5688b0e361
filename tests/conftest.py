"""Fixtures shared by the suite: the backend matrix and the leak guard."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from typing import Any

import psutil
import pytest

# Every behavioural test runs on each of these; ids read like run options.
BACKENDS: dict[str, dict[str, Any]] = {
    "inline": {"backend": "inline"},
    "thread": {"backend": "thread"},
    "fork": {"backend": "process", "start_method": "fork"},
    "spawn": {"backend": "process", "start_method": "spawn"},
}
PARALLEL = [name for name in BACKENDS if name != "inline"]
PROCESS = ["fork", "spawn"]

# multiprocessing's own long-lived helpers are not a run's to clean up.
_HELPERS = ("forkserver", "resource_tracker")


def mp_context(opts: dict[str, Any]) -> Any:
    """The multiprocessing context whose primitives can reach these workers."""
    import multiprocessing

    return multiprocessing.get_context(opts.get("start_method") or "fork")


@pytest.fixture(params=list(BACKENDS))
def opts(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Run options selecting one backend (and start method)."""
    return dict(BACKENDS[request.param])


@pytest.fixture(params=PARALLEL)
def parallel_opts(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Run options for the backends that really run workers concurrently."""
    return dict(BACKENDS[request.param])


@pytest.fixture(params=PROCESS)
def process_opts(request: pytest.FixtureRequest) -> dict[str, Any]:
    return dict(BACKENDS[request.param])


@pytest.fixture(scope="session", autouse=True)
def _multiprocessing_helpers() -> None:
    """Start what multiprocessing keeps for the whole session (spawn's tracker,
    the shared heap behind Value), so their fds are not counted as leaks."""
    import multiprocessing
    from multiprocessing import forkserver, resource_tracker

    from streamflow._backends._process import _without_main

    resource_tracker.ensure_running()
    with _without_main():
        forkserver.ensure_running()
    multiprocessing.Value("i", 0)


def _children() -> set[int]:
    found = set()
    for child in psutil.Process().children(recursive=True):
        try:
            cmdline = " ".join(child.cmdline())
            if child.status() == psutil.STATUS_ZOMBIE:
                continue
        except psutil.Error:
            continue
        if not any(helper in cmdline for helper in _HELPERS):
            found.add(child.pid)
    return found


def _segments() -> set[str]:
    try:
        mine = (f"sf-{os.getpid()}-", f"sem.sf-{os.getpid()}-")  # other test runs may share /dev/shm
        return {n for n in os.listdir("/dev/shm") if n.startswith(mine)}
    except FileNotFoundError:
        return set()


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture(autouse=True)
def no_leaks(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test that leaves a worker process, thread, segment or fd behind.

    ``@pytest.mark.foreign_fds`` skips the fd count for tests whose own tools
    keep descriptors open (a Jupyter client's zmq context).
    """
    children, segments, fds = _children(), _segments(), _fds()
    yield
    for thread in threading.enumerate():
        if thread.name.startswith("streamflow-"):
            thread.join(5)  # a run ends its threads; give the last instants to exit
    alive = [t.name for t in threading.enumerate() if t.name.startswith("streamflow-") and t.is_alive()]
    if alive:
        import sys, traceback
        frames = sys._current_frames()
        for t in threading.enumerate():
            if t.name.startswith("streamflow-") and t.ident in frames:
                print("=== ", t.name, "".join(traceback.format_stack(frames[t.ident])))
    assert not alive, f"threads left running: {alive}"
    assert _children() - children == set(), "worker processes left running"
    assert _segments() - segments == set(), "shared-memory segments left behind"
    if request.node.get_closest_marker("foreign_fds") is None:
        assert _fds() <= fds, f"file descriptors leaked: {fds} before, {_fds()} after"
