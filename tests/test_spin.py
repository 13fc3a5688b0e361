"""Spinning before sleeping (``streamflow._transport._spin``) changes timing, nothing else.

A waiter retries for its edge's spin budget before it blocks.  These pin
that lockstep and ``packets_in_flight`` stay exact, that abort and a closed
downstream wake spinning and sleeping waiters at once, that a zero budget
never spins, and that workers spin for the budget the caller had.  The
waiter's state is made certain, not hoped for: a spinning child reports its
first yield of the CPU, and a sleeping one is seen asleep in ``/proc``.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from multiprocessing.connection import Connection
from typing import Any

import pytest

import streamflow as sf
from streamflow._transport import _spin
from streamflow._transport._memory import new_run_id, sweep
from streamflow._transport._serialize import Reader
from streamflow._transport._shm import ShmEdge
from streamflow._transport._spin import DEFAULT_SPIN_US, SPIN_ENV, spin_budget
from tests.conftest import PROCESS_BACKENDS, mp_context

pytestmark = pytest.mark.timeout(60)

LONG = 30_000_000  # microseconds: a budget no test outlasts, so its waiters are surely spinning
_fork = multiprocessing.get_context("fork")


# -- helpers ---------------------------------------------------------------------


@pytest.fixture
def shm() -> Iterator[Callable[..., ShmEdge]]:
    """A factory of shared-memory edges, each closed (and its segments swept) afterwards."""
    made: list[ShmEdge] = []

    def make(capacity: int, producers: int = 1, consumers: int = 1, *, spin: float | None, forked: bool = True) -> ShmEdge:
        edge = ShmEdge(
            name="edge", capacity=capacity, producers=producers, consumers=consumers,
            max_message_size=4096, shared_buffer=False, run_id=new_run_id(), forked=forked,
            reader=Reader.CALLER, spin=spin,
        )
        made.append(edge)
        return edge

    yield make
    for edge in made:
        edge.close()
        sweep(edge.run_id)


def _until(holds: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Look until ``holds()``, yielding the CPU between looks; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not holds():
        assert time.monotonic() < deadline, f"still not {what} after {timeout:g} s"
        os.sched_yield()


def _stat(pid: int, tid: int | None = None) -> list[str]:
    """Fields of /proc/<pid>[/task/<tid>]/stat after the command name: state first."""
    path = f"/proc/{pid}/stat" if tid is None else f"/proc/{pid}/task/{tid}/stat"
    with open(path) as stat:
        return stat.read().rsplit(")", 1)[1].split()


def _asleep(pid: int, tid: int | None = None) -> bool:
    return _stat(pid, tid)[0] == "S"


def _cpu_seconds(pid: int, tid: int) -> float:
    fields = _stat(pid, tid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- the budget -------------------------------------------------------------------


def test_the_budget_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SPIN_ENV, raising=False)
    assert spin_budget() == DEFAULT_SPIN_US * 1000
    monkeypatch.setenv(SPIN_ENV, "0")
    assert spin_budget() == 0
    monkeypatch.setenv(SPIN_ENV, " 20 ")
    assert spin_budget() == 20_000
    assert spin_budget(7.5) == 7_500  # an explicit budget wins over the environment
    for bad in ("abc", "-1", "inf", "nan"):
        monkeypatch.setenv(SPIN_ENV, bad)
        with pytest.raises(sf.OptionError, match=rf"STREAMFLOW_SPIN_US='{bad}' is not a spin budget; give microseconds >= 0"):
            spin_budget()
    with pytest.raises(sf.OptionError, match=r"spin=-5 is not a spin budget; .*\(0 turns spinning off"):
        spin_budget(-5)


@pytest.mark.parametrize("budget", [0, LONG])
def test_a_waiter_spins_only_with_a_budget(monkeypatch: pytest.MonkeyPatch, shm: Callable[..., ShmEdge], budget: int) -> None:
    yields = 0
    spinning = threading.Event()
    real = os.sched_yield

    def counted() -> None:
        nonlocal yields
        yields += 1
        spinning.set()
        real()

    monkeypatch.setattr(_spin, "_yield", counted)
    edge = shm(1, spin=budget)
    receiver = edge.receiver(0)
    got: list[Any] = []
    started = threading.Event()
    tid = 0

    def receive() -> None:
        nonlocal tid
        tid = threading.get_native_id()
        started.set()
        got.append(next(receiver))

    consumer = threading.Thread(target=receive, daemon=True)
    consumer.start()
    assert started.wait(10)
    if budget:
        assert spinning.wait(10)
    else:
        _until(lambda: _asleep(os.getpid(), tid), "asleep")
    sender = edge.sender(0)
    sender.reserve()
    sender.send("item")
    consumer.join(10)
    assert got == ["item"]
    assert (yields > 0) if budget else (yields == 0)
    sender.close()
    receiver.finish()


def test_a_long_wait_turns_spinning_off_until_a_short_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a clock of our own: each try takes 1 us, and the producer comes after ``length`` us."""
    clock = 0
    tries = 0
    budget = 50_000

    def tick() -> None:
        nonlocal clock, tries
        clock += 1_000
        tries += 1

    monkeypatch.setattr(_spin, "_now", lambda: clock)
    monkeypatch.setattr(_spin, "_yield", tick)
    monkeypatch.setattr(_spin, "_crowding", _spin._Crowding())  # what real waits saw is on another clock

    def wait(length: int, spin: bool) -> tuple[bool, int]:
        nonlocal clock, tries
        tries = 0
        arrives = clock + length * 1_000

        def acquire(block: bool) -> bool:
            nonlocal clock
            if block:
                clock = max(clock, arrives)
            return block or clock >= arrives

        return _spin.wait(acquire, budget, spin), tries

    assert wait(20, spin=True) == (True, 20)  # caught while spinning
    assert wait(1_000, spin=True) == (False, 50)  # spun the budget in vain: sleep at once next time
    assert wait(1_000, spin=False) == (False, 0)
    assert wait(150, spin=False) == (True, 0)  # short enough to have been worth a spin: spin again
    assert _spin.wait(lambda block: block, 0, True) is False  # no budget, no tries


def test_a_yield_that_loses_the_core_stops_spinning_for_a_while(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a clock of our own: a yield that takes a time slice means someone busy had the core."""
    clock = 0
    slice_at: set[int] = set()  # the tries (counted over the whole test) whose yield loses a slice
    tries = 0
    budget = 50_000

    def tick() -> None:
        nonlocal clock, tries
        tries += 1
        clock += 4_000_000 if tries in slice_at else 1_000

    monkeypatch.setattr(_spin, "_now", lambda: clock)
    monkeypatch.setattr(_spin, "_yield", tick)
    monkeypatch.setattr(_spin, "_crowding", _spin._Crowding())

    def wait(length_us: int) -> int:
        """Wait for a producer ``length_us`` away; how many tries it made."""
        before = tries
        arrives = clock + length_us * 1_000

        def acquire(block: bool) -> bool:
            nonlocal clock
            if block:
                clock = max(clock, arrives)
            return block or clock >= arrives

        _spin.wait(acquire, budget)
        return tries - before

    for _ in range(3000):  # a hand-off flow: every wait is caught while spinning
        assert wait(5) == 5
    slice_at.add(tries + 1)  # once, the core goes to someone else for 4 ms
    assert wait(5) == 1
    # A rare loss: no spinning for ten times what it lost (40 ms), then spinning as before.
    assert wait(5) == 0
    clock += 41_000_000
    assert wait(5) == 5
    # Around CPU-bound stages: the yields of a new process keep losing slices.
    monkeypatch.setattr(_spin, "_crowding", _spin._Crowding())
    slice_at.add(tries + 1)
    assert wait(5) == 1  # lost once: maybe the start-up; 40 ms without spinning
    clock += 41_000_000
    slice_at.add(tries + 1)
    assert wait(5) == 1  # twice in two waits: the cores are crowded
    clock += 41_000_000
    assert wait(5) == 0  # half a second without spinning
    clock += 500_000_000
    assert wait(5) == 5


# -- exactness ------------------------------------------------------------------


@sf.stage
def counted_source(n: int, asked: Any, tokens: Any) -> Iterator[int]:
    for i in range(n):
        asked.value = i + 1  # the runtime reserved item i's slot before it asked for it
        tokens.release()
        yield i


@sf.stage
def holding_sink(items: Iterable[int], asked: Any, tokens: Any, ahead: int, n: int) -> list[str]:
    """Hold each item until the source is as far ahead as it may go; return what went wrong."""
    problems = []
    seen = 0
    for k, item in enumerate(items):
        # Holding item k, the edge has freed k slots: the source may have asked for k + ahead items.
        bound = min(k + ahead, n)
        while seen < bound:
            if not tokens.acquire(timeout=10):
                problems.append(f"holding {k}: the source stopped at {asked.value}, short of {bound}")
                break
            seen += 1
        if asked.value > k + ahead:
            problems.append(f"holding {k}: the source asked for {asked.value} items, over {k + ahead}")
        if item != k:
            problems.append(f"got {item} for {k}")
    return problems


@pytest.mark.parametrize("pif", [1, 8])
@pytest.mark.parametrize("backend", ["warm", "fork", "spawn"])
def test_lockstep_and_packets_in_flight_stay_exact(monkeypatch: pytest.MonkeyPatch, backend: str, pif: int) -> None:
    monkeypatch.setenv(SPIN_ENV, "2000")  # long enough that most waits end while spinning
    opts = dict(PROCESS_BACKENDS[backend])
    ctx = mp_context(opts)
    asked, tokens = ctx.Value("q", 0, lock=False), ctx.Semaphore(0)
    n = 60
    flow = counted_source(n=n, asked=asked, tokens=tokens).options(packets_in_flight=pif) | holding_sink(
        asked=asked, tokens=tokens, ahead=pif, n=n
    )
    assert flow.run(**opts) == []
    assert asked.value == n


# -- prompt wake-ups ---------------------------------------------------------------


def _wait_on(edge: ShmEdge, role: str, endpoint: int, conn: Connection) -> None:
    """In a forked child: wait on ``edge`` as ``role``, saying when it first spins and how it ended."""
    real = os.sched_yield

    def reporting() -> None:
        if _spin._yield is reporting:
            _spin._yield = real
            conn.send("spinning")
        real()

    _spin._yield = reporting  # this child's copy of the module only
    try:
        if role == "sender":
            sender = edge.sender(endpoint)
            while True:  # fill the edge, then wait for a free slot
                sender.reserve()
                sender.send(endpoint)
        else:
            next(edge.receiver(endpoint))
        conn.send("returned")
    except BaseException as exc:  # noqa: BLE001 - reported to the test
        conn.send(type(exc).__name__)
    finally:
        conn.close()


@pytest.mark.parametrize("waiters", [1, 2])
@pytest.mark.parametrize(("role", "how"), [("sender", "abort"), ("receiver", "abort"), ("sender", "finish")])
@pytest.mark.parametrize("budget", [0, LONG], ids=["asleep", "spinning"])
def test_waiters_wake_at_once(shm: Callable[..., ShmEdge], role: str, how: str, waiters: int, budget: int) -> None:
    """Abort wakes every sender and receiver; a finished downstream, every sender."""
    edge = shm(1, waiters if role == "sender" else 1, waiters if role == "receiver" else 1, spin=budget)
    children = []
    for endpoint in range(waiters):
        ours, theirs = _fork.Pipe(duplex=False)
        child = _fork.Process(target=_wait_on, args=(edge, role, endpoint, theirs), daemon=True)
        child.start()
        theirs.close()
        children.append((child, ours))
    try:
        for child, conn in children:
            if budget:
                assert conn.poll(10) and conn.recv() == "spinning"
            else:
                _until(lambda: _asleep(child.pid or 0), f"{role} {child.pid} asleep")
        started = time.monotonic()
        if how == "abort":
            edge.abort()
        else:
            edge.receiver(0).finish()
        expected = "Aborted" if how == "abort" else "DownstreamClosed"
        for child, conn in children:
            assert conn.poll(10), f"a {role} still waits {time.monotonic() - started:.1f} s after {how}"
            assert conn.recv() == expected
        assert time.monotonic() - started < 2.0
    finally:
        for child, conn in children:
            conn.close()
            child.join(10)
            if child.is_alive():  # only when the test failed
                child.kill()
                child.join(10)


# -- the budget reaches every worker ------------------------------------------------


def _report_budget(edge: ShmEdge, conn: Connection) -> None:
    conn.send((edge.spin, edge.sender(0)._spin, edge.receiver(0)._spin))
    conn.close()


def test_a_spawned_worker_gets_the_budget_inside_the_edge(
    monkeypatch: pytest.MonkeyPatch, shm: Callable[..., ShmEdge]
) -> None:
    monkeypatch.setenv(SPIN_ENV, "123")
    edge = shm(1, spin=None, forked=False)  # read here, once
    monkeypatch.setenv(SPIN_ENV, "7")  # what the worker's own environment says does not matter
    spawn = multiprocessing.get_context("spawn")
    ours, theirs = spawn.Pipe(duplex=False)
    child = spawn.Process(target=_report_budget, args=(edge, theirs))
    child.start()
    theirs.close()
    assert ours.poll(30)
    assert ours.recv() == (123_000, 123_000, 123_000)
    ours.close()
    child.join(10)


@sf.stage
def pause_after_first(n: int, go: Any) -> Iterator[int]:
    yield 0
    if not go.wait(30):
        raise RuntimeError("never told to go on")
    yield from range(1, n)


@sf.stage
def report_waiter(items: Iterable[int], where: Any) -> int:
    count = 0
    for _ in items:
        if count == 0:
            where.put((os.getpid(), threading.get_native_id()))  # then it waits for item 1
        count += 1
    return count


@pytest.mark.parametrize("given", ["environment", "run option"])
@pytest.mark.parametrize("backend", ["warm", "spawn"])
def test_workers_spin_for_the_callers_budget(monkeypatch: pytest.MonkeyPatch, backend: str, given: str) -> None:
    """The warm server started before the variable was set: its workers can only get it from the edge.
    ``spin_us`` wins over the variable."""
    opts = dict(PROCESS_BACKENDS[backend])
    if given == "environment":
        monkeypatch.setenv(SPIN_ENV, str(LONG))
    else:
        monkeypatch.setenv(SPIN_ENV, "0")
        opts["spin_us"] = LONG
    ctx = mp_context(opts)
    go, where = ctx.Event(), ctx.Queue()
    flow = pause_after_first(n=3, go=go).options(packets_in_flight=1) | report_waiter(where=where)
    outcome: list[Any] = []
    runner = threading.Thread(target=lambda: outcome.append(flow.run(**opts)), daemon=True)
    runner.start()
    try:
        pid, tid = where.get(timeout=30)
        # A sink asleep on the edge would use no CPU: this much shows it spinning.
        _until(lambda: _cpu_seconds(pid, tid) >= 0.05, "spinning for 50 ms of CPU", timeout=20)
    finally:
        go.set()
        runner.join(30)
        where.close()
        where.join_thread()
    assert outcome == [3]
