"""Fixtures shared by the suite: the backend matrix and the leak guard."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from typing import Any

import psutil
import pytest

# Every behavioural test runs on each of these; ids read like run options.
# "warm" is the process backend's default start method (its fork server).
BACKENDS: dict[str, dict[str, Any]] = {
    "inline": {"backend": "inline"},
    "thread": {"backend": "thread"},
    "warm": {"backend": "process"},
    "fork": {"backend": "process", "start_method": "fork"},
}
try:
    import ray
except ImportError:  # the ray extra is not installed: its tests are not collected
    ray = None
else:
    BACKENDS["ray"] = {"backend": "ray"}
PARALLEL = [name for name in BACKENDS if name != "inline"]
# Process-only tests also run under spawn and forkserver (a worker imports its stages afresh).
PROCESS_BACKENDS = {
    **BACKENDS,
    "spawn": {"backend": "process", "start_method": "spawn"},
    "forkserver": {"backend": "process", "start_method": "forkserver"},
}
PROCESS = ["warm", "fork", "spawn"]

# Long-lived helpers that are not a run's to clean up: multiprocessing's
# (its fork server, its resource tracker) and streamflow's fork server
# (whose children are workers, and are counted), and Ray with all it starts.
_HELPERS = ("forkserver", "resource_tracker", "streamflow._backends._warm")
_HELPER_TREES = ("/ray/", "ray::", "raylet", "gcs_server")


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A local Ray cluster for the whole session: 2 CPUs, no dashboard."""
    assert ray is not None
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        _temp_dir=str(tmp_path_factory.mktemp("ray")),
    )
    yield
    ray.shutdown()


def _backend(request: pytest.FixtureRequest, name: str) -> dict[str, Any]:
    if name == "ray":
        request.getfixturevalue("ray_cluster")
        request.node.add_marker(pytest.mark.foreign_fds)  # Ray's client keeps sockets open
    return dict(BACKENDS[name])


def _live_actors() -> int:
    """Actors alive on the cluster, less the ones streamflow keeps for the session."""
    if ray is None or not ray.is_initialized():
        return 0
    return sum(
        1
        for actor in ray._private.state.actors().values()
        if actor["State"] != "DEAD" and not (actor.get("Name") or "").startswith("streamflow-")
    )


def scaled(opts: dict[str, Any], n: int) -> int:
    """``n`` items, or a tenth of them on Ray, where a packet costs milliseconds."""
    return n if opts["backend"] != "ray" else max(20, n // 10)


def mp_context(opts: dict[str, Any]) -> Any:
    """The multiprocessing context whose primitives can reach these workers."""
    import multiprocessing

    if opts["backend"] == "ray":
        pytest.skip("multiprocessing objects cannot reach Ray actors")
    if opts["backend"] == "process" and opts.get("start_method") in (None, "warm"):
        return multiprocessing.get_context("spawn")  # the warm server's workers open them by name
    return multiprocessing.get_context(opts.get("start_method") or "fork")


@pytest.fixture(params=list(BACKENDS))
def opts(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Run options selecting one backend (and start method)."""
    return _backend(request, request.param)


@pytest.fixture(params=PARALLEL)
def parallel_opts(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Run options for the backends that really run workers concurrently."""
    return _backend(request, request.param)


@pytest.fixture(params=PROCESS)
def process_opts(request: pytest.FixtureRequest) -> dict[str, Any]:
    return dict(PROCESS_BACKENDS[request.param])


@pytest.fixture(scope="session", autouse=True)
def _multiprocessing_helpers() -> None:
    """Start what lives for the whole session (spawn's tracker, the shared heap
    behind Value, the fork servers), so their fds are not counted as leaks."""
    import multiprocessing
    from multiprocessing import forkserver, resource_tracker

    from streamflow._backends import _warm
    from streamflow._backends._process import _without_main

    resource_tracker.ensure_running()
    with _without_main():
        forkserver.ensure_running()
    multiprocessing.Value("i", 0)
    _warm.preload_nothing()  # streamflow's fork server, kept for the session


def _children() -> set[int]:
    """Our descendants, less the long-lived helpers (and all that Ray starts)."""
    trees: set[int] = set()
    found = set()
    for child in psutil.Process().children(recursive=True):  # parents come first
        try:
            cmdline = " ".join(child.cmdline())
            if child.status() == psutil.STATUS_ZOMBIE:
                continue
            parent = child.ppid()
        except psutil.Error:
            continue
        if parent in trees or any(helper in cmdline for helper in _HELPER_TREES):
            trees.add(child.pid)
        elif not any(helper in cmdline for helper in _HELPERS) or parent != os.getpid():
            found.add(child.pid)  # a worker, even one a fork server started
    return found


def _describe(pids: set[int]) -> list[str]:
    out = []
    for pid in pids:
        try:
            out.append(f"{pid}: {' '.join(psutil.Process(pid).cmdline())[:120]}")
        except psutil.Error:
            out.append(f"{pid}: gone")
    return out


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
    assert not alive, f"threads left running: {alive}"
    left = _children() - children
    assert not left, f"worker processes left running: {_describe(left)}"
    assert _segments() - segments == set(), "shared-memory segments left behind"
    if request.node.get_closest_marker("foreign_fds") is None:
        assert _fds() <= fds, f"file descriptors leaked: {fds} before, {_fds()} after"
    assert _live_actors() == 0, "Ray actors left on the cluster"
