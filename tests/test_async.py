"""Async stages (SPEC section 11), on every backend: async generators, async sources
and sinks, ``@sf.map`` on ``async def`` with ``concurrency``, their order, policies,
timeouts that cancel the call, and clean stops that cancel the calls in flight."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import threading
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

import streamflow as sf

from .conftest import BACKENDS, PROCESS_BACKENDS, _backend, scaled

# -- stages -------------------------------------------------------------------------


@sf.stage
def numbers(n: int) -> Iterator[int]:
    yield from range(n)


@sf.stage
async def anumbers(n: int) -> AsyncIterator[int]:
    for i in range(n):
        await asyncio.sleep(0)
        yield i


@sf.stage
async def plus_one_twice(stream: AsyncIterable[int]) -> AsyncIterator[int]:
    async for x in stream:
        await asyncio.sleep(0)
        yield x + 1
        yield x + 1


@sf.stage
async def asum(stream: AsyncIterable[int]) -> int:
    total = 0
    async for x in stream:
        total += x
    return total


@sf.stage
def collect(xs: Iterable[Any]) -> list[Any]:
    return list(xs)


@sf.map
async def adouble(x: int) -> int:
    await asyncio.sleep(0)
    return 2 * x


_crowds: dict[str, tuple[asyncio.Event, dict[str, int]]] = {}


@sf.map(concurrency=4)
async def crowd(x: int, key: str = "", size: int = 4, wait: float = 10) -> tuple[int, int]:
    """Wait until ``size`` calls are in flight on this worker (or ``wait`` seconds), then
    report the most seen in flight at once (per ``key``: one a test)."""
    if key not in _crowds:
        _crowds[key] = asyncio.Event(), {"now": 0, "most": 0}
    full, active = _crowds[key]
    active["now"] += 1
    active["most"] = max(active["most"], active["now"])
    if active["now"] >= size:
        full.set()
    try:
        await asyncio.wait_for(full.wait(), wait)
    except asyncio.TimeoutError:
        pass
    active["now"] -= 1
    return x, active["most"]


@sf.map
async def jitter(x: int, seed: int = 0) -> int:
    """``x`` after a random few milliseconds: outputs finish out of order."""
    await asyncio.sleep(random.Random(seed * 1_000_003 + x).random() * 0.004)
    return x


@sf.map
async def fail_on(x: int, bad: frozenset[int] = frozenset()) -> int:
    await asyncio.sleep(0)
    if x in bad:
        raise ValueError(f"bad item {x}")
    return x


@sf.map
async def flaky(x: int, marks: str = "") -> int:
    """Fails the first attempt at each odd item: a file per item remembers the attempt."""
    mark = Path(marks) / str(x)
    if x % 2 and not mark.exists():
        mark.touch()
        raise ConnectionError(f"flaky {x}")
    return x


@sf.map
async def hang_on(x: int, bad: int | None = None, marks: str = "", cleanup: float = 0.1) -> int:
    """Hangs on ``bad`` (on every item if None) until cancelled; records the start and the
    cancel in ``marks``."""
    if bad is not None and x != bad:
        return x
    (Path(marks) / f"started-{x}").touch()
    try:
        await asyncio.sleep(60)
    except asyncio.CancelledError:
        await asyncio.sleep(cleanup)  # a cleanup that awaits, as closing a connection does
        (Path(marks) / f"cancelled-{x}").touch()
        raise
    return x


@sf.map
async def sleeper(x: int, marks: str = "") -> int:
    """Says it started, sleeps until cancelled, then says so in ``marks`` (its ``finally``)."""
    (Path(marks) / f"started-{x}").touch()
    try:
        await asyncio.sleep(60)
    finally:
        (Path(marks) / f"finally-{x}").touch()
    return x


def _wait_for(marks: Path, pattern: str, count: int) -> None:
    """Until ``count`` files match ``pattern`` (the test's timeout bounds it)."""
    while len(list(marks.glob(pattern))) < count:
        os.sched_yield()


@sf.stage
def slow_numbers(n: int, marks: str = "") -> Iterator[int]:
    """``n`` items, then waits (until cancelled) for the calls downstream to be in flight."""
    yield from range(n)
    while len(list(Path(marks).glob("started-*"))) < n:
        os.sched_yield()
    raise RuntimeError("the source failed")


@sf.stage
async def tens(stream: AsyncIterable[int], bad: frozenset[int] = frozenset(), hang: int = -1) -> AsyncIterator[int]:
    """An async generator stage: raises on ``bad`` items, hangs on ``hang``."""
    async for x in stream:
        if x in bad:
            raise ValueError(f"bad item {x}")
        if x == hang:
            await asyncio.sleep(60)
        yield 10 * x


@sf.map
async def exit_on(x: int, bad: int = -1) -> int:
    if x == bad:
        os._exit(3)
    await asyncio.sleep(0)
    return x


class Scaled:
    """A class async map stage: built once per worker, ``close()`` awaited."""

    def __init__(self, factor: int, marks: str = "") -> None:
        self.factor = factor
        self.marks = marks

    async def __call__(self, x: int) -> int:
        await asyncio.sleep(0)
        return x * self.factor

    async def close(self) -> None:
        await asyncio.sleep(0)
        (Path(self.marks) / f"closed-{os.getpid()}-{id(self)}").touch()


scaled_stage = sf.map(Scaled)


@sf.map
async def who(x: int) -> str:
    info = sf.worker_info()
    return "none" if info is None else f"{info.stage}/{info.index}"


# -- what a flow gives -------------------------------------------------------------------


def test_async_source_processor_and_sink(opts: dict[str, Any]) -> None:
    n = scaled(opts, 50)
    assert sorted((anumbers(n=n) | plus_one_twice).run(**opts)) == sorted([x + 1 for x in range(n)] * 2)
    assert (anumbers(n=n) | plus_one_twice | asum).run(**opts) == 2 * sum(x + 1 for x in range(n))
    assert (numbers(n=n) | adouble | asum).run(**opts) == 2 * sum(range(n))


def test_async_stages_mix_with_sync_ones(opts: dict[str, Any]) -> None:
    n = scaled(opts, 40)
    flow = numbers(n=n) | adouble.options(workers=2) | plus_one_twice | collect
    assert sorted(flow.run(**opts)) == sorted([2 * x + 1 for x in range(n)] * 2)


def test_concurrency_keeps_calls_in_flight_on_one_worker(opts: dict[str, Any], tmp_path: Path) -> None:
    results = (numbers(n=8) | crowd(key=str(tmp_path))).run(**opts)
    assert sorted(x for x, _ in results) == list(range(8))
    assert max(most for _, most in results) == 4


def test_concurrency_is_bounded(opts: dict[str, Any], tmp_path: Path) -> None:
    # No crowd of 100 ever gathers: each call gives up after 0.3 s, having seen the most it could.
    stage = crowd(key=str(tmp_path), size=100, wait=0.3).options(concurrency=3)
    results = (numbers(n=6) | stage).run(**opts)
    assert max(most for _, most in results) == 3


def test_worker_info_inside_async_calls(opts: dict[str, Any]) -> None:
    names = set((numbers(n=6) | who.options(workers=2)).run(**opts))
    assert names <= {"who/0", "who/1"} and names


def test_class_async_stage_is_built_and_closed_per_worker(opts: dict[str, Any], tmp_path: Path) -> None:
    flow = numbers(n=10) | scaled_stage(factor=3, marks=str(tmp_path)).options(workers=2)
    assert sorted(flow.run(**opts)) == [3 * x for x in range(10)]
    closed = list(tmp_path.glob("closed-*"))
    assert len(closed) == (1 if opts["backend"] == "inline" else 2)


# -- order ---------------------------------------------------------------------------------


@pytest.mark.parametrize("workers,concurrency", [(1, 8), (2, 4), (3, 1)])
def test_ordered_async_map_gives_input_order(opts: dict[str, Any], workers: int, concurrency: int) -> None:
    n = scaled(opts, 120)
    for seed in range(3):
        stage = jitter(seed=seed).options(workers=workers, concurrency=concurrency, ordered=True)
        assert (numbers(n=n) | stage).run(**opts) == list(range(n))


def test_ordered_async_map_skips_in_order(opts: dict[str, Any]) -> None:
    workers = 1 if opts["backend"] == "ray" else 2
    stage = fail_on(bad=frozenset({3, 7, 8})).options(
        workers=workers, concurrency=3, ordered=True, on_error="skip"
    )
    with pytest.warns(sf.FailuresWarning):
        out = (numbers(n=20) | stage).run(**opts)
    assert out == [x for x in range(20) if x not in {3, 7, 8}]


def test_unordered_async_map_finishes_out_of_order() -> None:
    out = (numbers(n=60) | jitter(seed=1).options(concurrency=20)).run(backend="thread")
    assert sorted(out) == list(range(60)) and out != list(range(60))


# -- failures -------------------------------------------------------------------------------


def test_failing_call_is_named_and_ends_the_run(opts: dict[str, Any]) -> None:
    stage = fail_on(bad=frozenset({5})).options(concurrency=4)
    with pytest.raises(ValueError, match="bad item 5") as caught:
        (numbers(n=20) | stage).run(**opts)
    notes = "\n".join(getattr(caught.value, "__notes__", []))
    assert "#6: 5" in notes and "fail_on" in notes


def test_skipped_calls_are_recorded(opts: dict[str, Any]) -> None:
    stage = fail_on(bad=frozenset({2, 9})).options(concurrency=4, on_error="skip", workers=2)
    run = (numbers(n=20) | stage).start(**opts)
    with pytest.warns(sf.FailuresWarning):
        out = run.result()
    assert sorted(out) == [x for x in range(20) if x not in {2, 9}]
    assert sorted(f.item for f in run.failures) == [2, 9]
    assert all(isinstance(f.error, ValueError) and f.attempts == 1 for f in run.failures)
    if opts["backend"] != "inline":
        assert next(s for s in run.stats() if s.stage == "fail_on").skips == 2


def test_retried_calls_succeed(opts: dict[str, Any], tmp_path: Path) -> None:
    stage = flaky(marks=str(tmp_path)).options(concurrency=4, retries=1, retry_delay=0)
    run = (numbers(n=10) | stage).start(**opts)
    assert sorted(run.result()) == list(range(10))
    assert run.failures == []
    if opts["backend"] != "inline":
        assert next(s for s in run.stats() if s.stage == "flaky").retries == 5


def test_timeout_cancels_the_call_on_every_backend(opts: dict[str, Any], tmp_path: Path) -> None:
    stage = hang_on(bad=3, marks=str(tmp_path)).options(concurrency=4, timeout=0.2, on_error="skip")
    run = (numbers(n=8) | stage).start(**opts)
    with pytest.warns(sf.FailuresWarning):
        out = run.result()
    assert sorted(out) == [x for x in range(8) if x != 3]
    (failure,) = run.failures
    assert failure.item == 3 and isinstance(failure.error, sf.ItemTimeout)
    assert (tmp_path / "cancelled-3").exists()  # CancelledError inside the user's coroutine


def test_timeout_without_skip_raises_item_timeout(opts: dict[str, Any], tmp_path: Path) -> None:
    stage = hang_on(bad=1, marks=str(tmp_path)).options(timeout=0.2)
    with pytest.raises(sf.ItemTimeout):
        (numbers(n=4) | stage).run(**opts)


def test_async_generator_under_a_policy_restarts_after_the_item(opts: dict[str, Any]) -> None:
    stage = tens(bad=frozenset({2, 5})).options(on_error="skip")
    run = (numbers(n=8) | stage).start(**opts)
    with pytest.warns(sf.FailuresWarning):
        out = run.result()
    assert sorted(out) == [10 * x for x in range(8) if x not in {2, 5}]
    assert sorted(f.item for f in run.failures) == [2, 5]


def test_async_generator_step_times_out_on_every_backend(opts: dict[str, Any]) -> None:
    stage = tens(hang=3).options(timeout=0.2, on_error="skip")
    run = (numbers(n=6) | stage).start(**opts)
    with pytest.warns(sf.FailuresWarning):
        out = run.result()
    assert sorted(out) == [10 * x for x in range(6) if x != 3]
    (failure,) = run.failures
    assert failure.item == 3 and isinstance(failure.error, sf.ItemTimeout)


DYING = ["warm", "fork", "spawn"] + [name for name in BACKENDS if name == "ray"]  # workers die alone


def _dying(request: pytest.FixtureRequest, name: str) -> dict[str, Any]:
    return _backend(request, name) if name == "ray" else dict(PROCESS_BACKENDS[name])


@pytest.mark.parametrize("name", DYING)
def test_crash_with_calls_in_flight_ends_the_run(name: str, request: pytest.FixtureRequest) -> None:
    stage = exit_on(bad=4).options(concurrency=3, on_error="skip")
    with pytest.raises(sf.WorkerCrashed):
        (numbers(n=10) | stage).run(**_dying(request, name))


@pytest.mark.parametrize("name", DYING)
def test_crash_with_one_call_in_flight_is_replaced(name: str, request: pytest.FixtureRequest) -> None:
    stage = exit_on(bad=4).options(on_error="skip")
    run = (numbers(n=10) | stage).start(**_dying(request, name))
    with pytest.warns(sf.FailuresWarning):
        out = run.result()
    assert sorted(out) == [x for x in range(10) if x != 4]
    (failure,) = run.failures
    assert failure.item == 4 and isinstance(failure.error, sf.WorkerCrashed)


# -- clean stops ------------------------------------------------------------------------------


def test_an_error_elsewhere_cancels_the_calls_in_flight(opts: dict[str, Any], tmp_path: Path) -> None:
    flow = slow_numbers(n=5, marks=str(tmp_path)) | hang_on(marks=str(tmp_path)).options(concurrency=8)
    with pytest.raises(RuntimeError, match="the source failed"):
        flow.run(**opts, shutdown_timeout=10)
    assert sorted(p.name for p in tmp_path.glob("cancelled-*")) == [f"cancelled-{x}" for x in range(5)]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", ["thread", "fork"])
def test_cancelled_calls_get_shutdown_timeout_to_clean_up(name: str, tmp_path: Path) -> None:
    """A cleanup longer than the default 5 s completes when ``shutdown_timeout`` allows it."""
    stage = hang_on(marks=str(tmp_path), cleanup=5.5).options(concurrency=2)
    run = (numbers(n=2) | stage).start(**BACKENDS[name], shutdown_timeout=15)
    _wait_for(tmp_path, "started-*", 2)
    run.cancel()
    assert sorted(p.name for p in tmp_path.glob("cancelled-*")) == ["cancelled-0", "cancelled-1"]


def test_cancel_cancels_the_calls_in_flight(parallel_opts: dict[str, Any], tmp_path: Path) -> None:
    flow = numbers(n=3) | adouble | sleeper(marks=str(tmp_path)).options(concurrency=3)
    run = flow.start(**parallel_opts, shutdown_timeout=10)
    _wait_for(tmp_path, "started-*", 3)
    run.cancel()
    assert sorted(p.name for p in tmp_path.glob("finally-*")) == [f"finally-{x}" for x in (0, 2, 4)]


def test_break_cancels_the_calls_in_flight(opts: dict[str, Any], tmp_path: Path) -> None:
    stage = hang_on(bad=2, marks=str(tmp_path)).options(concurrency=4)
    with (numbers(n=6) | stage).iter(**opts, shutdown_timeout=10) as items:
        for _ in items:
            _wait_for(tmp_path, "started-2", 1)
            break
    assert (tmp_path / "cancelled-2").exists()


def test_ctrl_c_cancels_the_calls_in_flight(parallel_opts: dict[str, Any], tmp_path: Path) -> None:
    if parallel_opts["backend"] == "ray":
        pytest.skip("Ctrl-C under Ray is Ray's to deliver (see test_ray.py)")

    def interrupt() -> None:
        _wait_for(tmp_path, "started-*", 3)
        os.kill(os.getpid(), signal.SIGINT)

    interrupter = threading.Thread(target=interrupt)
    interrupter.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            (numbers(n=3) | sleeper(marks=str(tmp_path)).options(concurrency=3)).run(**parallel_opts, shutdown_timeout=10)
    finally:
        interrupter.join()
    assert sorted(p.name for p in tmp_path.glob("finally-*")) == [f"finally-{x}" for x in range(3)]


# -- what is checked before a run --------------------------------------------------------------


def test_concurrency_is_for_async_map_stages() -> None:
    @sf.map
    def sync_double(x: int) -> int:
        return 2 * x

    with pytest.raises(sf.OptionError, match="concurrency=4.*only an async def under @sf.map"):
        sync_double.options(concurrency=4)
    with pytest.raises(sf.OptionError, match="concurrency=4"):
        plus_one_twice.options(concurrency=4)


def test_packets_in_flight_follows_concurrency() -> None:
    assert adouble.options(workers=2, concurrency=5).packets_in_flight == 20
    with pytest.raises(sf.OptionError, match="packets_in_flight=4 is below workers=2 x concurrency=3"):
        adouble.options(workers=2, concurrency=3, packets_in_flight=4)


def test_sync_and_async_annotations_must_agree() -> None:
    with pytest.raises(sf.FlowTypeError, match="must be annotated AsyncIterable"):

        @sf.stage
        async def wrong(stream: Iterable[int]) -> AsyncIterator[int]:
            async for x in stream:  # type: ignore[attr-defined]
                yield x

    with pytest.raises(sf.FlowTypeError, match="must be annotated Iterable"):

        @sf.stage
        def wrong_too(stream: AsyncIterable[int]) -> Iterator[int]:
            yield from ()

    with pytest.raises(sf.FlowTypeError, match="async generator"):

        @sf.map
        async def not_one_output(x: int) -> AsyncIterator[int]:
            yield x


def test_timeout_on_sync_stages_still_needs_a_stopping_backend() -> None:
    @sf.map(timeout=1)
    def sync_double(x: int) -> int:
        return 2 * x

    with pytest.raises(sf.OptionError, match="timeout"):
        (numbers(n=2) | sync_double).run(backend="thread")
    assert (numbers(n=2) | adouble.options(timeout=1)).run(backend="thread") == [0, 2]


@pytest.mark.parametrize("name", ["spawn", "forkserver"])
def test_async_map_under_spawn_and_forkserver(name: str) -> None:
    opts = PROCESS_BACKENDS[name]
    assert sorted((numbers(n=30) | adouble.options(concurrency=5, workers=2)).run(**opts)) == [
        2 * x for x in range(30)
    ]


assert set(BACKENDS) >= {"inline", "thread", "warm", "fork"}


def test_an_async_caller_runs_async_stages_while_its_loop_ticks(opts: dict[str, Any]) -> None:
    async def main() -> tuple[int, int]:
        ticks = 0
        done = False

        async def tick() -> None:
            nonlocal ticks
            while not done:
                ticks += 1
                await asyncio.sleep(0.001)

        ticker = asyncio.ensure_future(tick())
        total = await (anumbers(n=20) | jitter.options(concurrency=5) | asum).run_async(**opts)
        done = True
        await ticker
        return total, ticks

    total, ticks = asyncio.run(main())
    assert total == sum(range(20)) and ticks > 1
