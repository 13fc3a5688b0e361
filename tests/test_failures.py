"""Per-item stages, class stages and failure policies (SPEC sections 8 and 9), on every backend."""

from __future__ import annotations

import os
import pickle
import re
import signal
import sys
import threading
import time
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

import streamflow as sf

from .conftest import BACKENDS, PROCESS_BACKENDS, scaled

# -- stages -------------------------------------------------------------------------


@sf.map
def double(x: int) -> int:
    return 2 * x


@sf.map
def scale(x: int, factor: int = 1, offset: int = 0) -> int:
    return x * factor + offset


@sf.map
def fail_on(x: int, bad: frozenset[int] = frozenset()) -> int:
    if x in bad:
        raise ValueError(f"bad item {x}")
    return x


@sf.stage
def total(xs: Iterable[int]) -> int:
    return sum(xs)


@sf.stage
def collect(xs: Iterable[int]) -> list[int]:
    return list(xs)


@sf.stage
def each_twice(xs: Iterable[int], bad: frozenset[int] = frozenset()) -> Iterator[int]:
    """A generator stage: two outputs an item, the second one after a failure check."""
    for x in xs:
        yield 10 * x
        if x in bad:
            raise KeyError(x)
        yield 10 * x + 1


class Flaky:
    """Fails each item's first ``failures`` attempts: state kept across restarts."""

    def __init__(self, failures: int = 1, kind: type[Exception] = ConnectionError) -> None:
        self.failures = failures
        self.kind = kind
        self.attempts: dict[int, int] = {}

    def __call__(self, x: int) -> int:
        self.attempts[x] = self.attempts.get(x, 0) + 1
        if self.attempts[x] <= self.failures:
            raise self.kind(f"attempt {self.attempts[x]} at {x}")
        return x


flaky = sf.map(Flaky)


class Tagged:
    """A class stage that tags items with its instance; counts builds and closes in files."""

    def __init__(self, marks: str) -> None:
        self.marks = Path(marks)
        self.tag = f"{os.getpid()}-{id(self)}"
        (self.marks / f"built-{self.tag}").touch()

    def __call__(self, xs: Iterable[int]) -> Iterator[tuple[int, str]]:
        for x in xs:
            if x < 0:
                raise ValueError("negative")
            yield x, self.tag

    def close(self) -> None:
        (self.marks / f"closed-{self.tag}").touch()


tagged = sf.stage(Tagged)


@sf.map
def sleepy(x: int, slow: frozenset[int] = frozenset()) -> int:
    if x in slow:
        time.sleep(30)
    return x


@sf.map
def unpicklable_input(x: Any) -> int:
    raise ValueError("cannot handle it")


class OneWay:
    """Travels from the process that made it, and from nowhere else."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.made_in = os.getpid()

    def __reduce__(self) -> tuple[Any, ...]:
        if os.getpid() != self.made_in:
            raise TypeError("this item cannot travel on")
        return (_one_way, (self.n, self.made_in))

    def __repr__(self) -> str:
        return f"OneWay({self.n})"


def _one_way(n: int, made_in: int) -> OneWay:
    item = OneWay(n)
    item.made_in = made_in
    return item


@sf.stage
def one_way(n: int) -> Iterator[OneWay]:
    for i in range(n):
        yield OneWay(i)


# -- map stages ------------------------------------------------------------------------


def test_map_stage_gives_one_output_an_item(opts: dict[str, Any]) -> None:
    n = scaled(opts, 200)
    assert (range(n) | double | collect).run(**opts) == [2 * x for x in range(n)]


def test_map_stage_binds_constants_and_options(opts: dict[str, Any]) -> None:
    stage = scale(factor=3, offset=1).options(workers=2)
    assert sorted((range(20) | stage | collect).run(**opts)) == [3 * x + 1 for x in range(20)]


def test_map_stage_is_typed_at_composition() -> None:
    @sf.map
    def upper(s: str) -> str:
        return s.upper()

    with pytest.raises(sf.FlowTypeError, match="str"):
        double | upper  # noqa: B018 - int into str
    assert (["a", "b"] | upper).run(backend="inline") == ["A", "B"]


def test_map_needs_an_item_parameter() -> None:
    def nothing() -> int:
        return 1

    with pytest.raises(sf.FlowTypeError, match="item"):
        sf.map(nothing)


def test_map_rejects_a_generator_function_where_it_is_decorated() -> None:
    with pytest.raises(sf.FlowTypeError, match=r"'pairs' .* is a generator function: .* make it an @sf.stage"):

        @sf.map
        def pairs(x: int) -> Iterator[int]:
            yield x
            yield x

    class Splits:
        def __call__(self, x: int) -> Iterator[int]:
            yield x

    with pytest.raises(sf.FlowTypeError, match="generator function"):
        sf.map(workers=2)(Splits)


# -- class stages -------------------------------------------------------------------


@pytest.mark.parametrize("ending", ["ends", "raises", "cancelled"])
def test_class_stage_builds_one_instance_per_worker_and_closes_it(
    opts: dict[str, Any], tmp_path: Path, ending: str
) -> None:
    workers = 1 if opts["backend"] == "inline" else 2
    stage = tagged(marks=str(tmp_path)).options(workers=workers)
    items = list(range(30)) + ([-1] if ending == "raises" else [])
    if ending == "cancelled":
        with (items | stage).iter(**opts) as run:
            next(run)
    elif ending == "raises":
        with pytest.raises(ValueError, match="negative"):
            (items | stage).run(**opts)
    else:
        rows = (items | stage).run(**opts)
        assert sorted(x for x, _ in rows) == items
        assert len({tag for _, tag in rows}) <= workers
    built = {p.name.split("-", 1)[1] for p in tmp_path.glob("built-*")}
    closed = {p.name.split("-", 1)[1] for p in tmp_path.glob("closed-*")}
    assert len(built) == workers
    assert closed == built


def test_class_stage_takes_constants_in_init() -> None:
    with pytest.raises(sf.FlowTypeError, match="marks"):
        (range(3) | tagged).run(backend="inline")
    with pytest.raises(sf.FlowTypeError, match="no constant"):
        tagged(nope=1)


def test_a_class_without_call_is_not_a_stage() -> None:
    class Plain:
        pass

    with pytest.raises(sf.FlowTypeError, match="__call__"):
        sf.stage(Plain)


# -- retries --------------------------------------------------------------------------


def test_retries_make_flaky_items_succeed(opts: dict[str, Any]) -> None:
    n = scaled(opts, 40)
    stage = flaky(failures=2).options(retries=2, retry_delay=0.001, workers=2)
    run = (range(n) | stage | collect).start(**opts)
    assert sorted(run.result()) == list(range(n))
    assert run.failures == []
    if opts["backend"] != "inline":
        assert next(s for s in run.stats() if s.stage == "Flaky").retries == 2 * n


def test_retries_run_out_and_raise_naming_the_item(opts: dict[str, Any]) -> None:
    stage = flaky(failures=3).options(retries=2, retry_delay=0.001)
    with pytest.raises(ConnectionError, match="attempt 3 at 0") as caught:
        (range(5) | stage | collect).run(**opts)
    assert any("#1: 0" in note for note in caught.value.__notes__)


def test_retry_on_limits_what_is_retried(opts: dict[str, Any]) -> None:
    stage = flaky(failures=1, kind=KeyError).options(retries=3, retry_on=ConnectionError, retry_delay=0)
    with pytest.raises(KeyError):
        (range(3) | stage | collect).run(**opts)


def test_retry_delay_doubles() -> None:
    stage = flaky(failures=3).options(retries=3, retry_delay=0.02)
    started = time.perf_counter()
    assert (range(1) | stage | collect).run(backend="inline") == [0]
    assert time.perf_counter() - started >= 0.02 + 0.04 + 0.08


# -- skips ------------------------------------------------------------------------------


def test_skip_goes_on_and_records_every_failure(opts: dict[str, Any]) -> None:
    n = scaled(opts, 100)
    bad = frozenset(range(3, n, 7))
    stage = fail_on(bad=bad).options(on_error="skip", workers=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = (range(n) | stage | collect).start(**opts)
        result = run.result()
    assert sorted(result) == [x for x in range(n) if x not in bad]
    assert sorted(f.item for f in run.failures) == sorted(bad)
    for failure in run.failures:
        assert failure.stage == "fail_on" and failure.attempts == 1
        assert isinstance(failure.error, ValueError) and f"bad item {failure.item}" in str(failure.error)
        assert "ValueError" in failure.traceback
    warned = [w for w in caught if issubclass(w.category, sf.FailuresWarning)]
    assert len(warned) == 1 and f"'fail_on' skipped {len(bad)} items" in str(warned[0].message)
    if opts["backend"] != "inline":
        assert next(s for s in run.stats() if s.stage == "fail_on").skips == len(bad)
        assert "skips" in run.report()


def test_generator_stage_restarts_after_the_failed_item(opts: dict[str, Any]) -> None:
    stage = each_twice(bad=frozenset({2, 5})).options(on_error="skip")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sf.FailuresWarning)
        run = (range(8) | stage | collect).start(**opts)
        result = run.result()
    # what it yielded before raising stays delivered; the rest of the item is skipped
    expected = [v for x in range(8) for v in ((10 * x,) if x in (2, 5) else (10 * x, 10 * x + 1))]
    assert result == expected
    assert [f.item for f in run.failures] == [2, 5]
    assert all(isinstance(f.error, KeyError) for f in run.failures)


def test_generator_stage_retry_starts_again_with_the_item(opts: dict[str, Any]) -> None:
    class Once:
        def __init__(self) -> None:
            self.failed = False

        def __call__(self, xs: Iterable[int]) -> Iterator[int]:
            for x in xs:
                if x == 3 and not self.failed:
                    self.failed = True
                    raise RuntimeError("once")
                yield x

    if opts["backend"] in ("process", "ray"):
        pytest.skip("a class defined in a test function cannot travel by reference")
    stage = sf.stage(Once).options(retries=1, retry_delay=0)
    assert (range(6) | stage | collect).run(**opts) == list(range(6))


def test_max_failures_ends_the_run(opts: dict[str, Any]) -> None:
    stage = fail_on(bad=frozenset(range(0, 40, 2))).options(on_error="skip")
    with pytest.raises(sf.TooManyFailures, match="max_failures=3") as caught:
        (range(40) | stage | collect).run(max_failures=3, **opts)
    assert len(caught.value.failures) == 4


def test_unpicklable_failed_item_is_kept_as_its_repr(opts: dict[str, Any]) -> None:
    stage = unpicklable_input.options(on_error="skip")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sf.FailuresWarning)
        run = (one_way(n=2) | stage | collect).start(**opts)
        assert run.result() == []
    items = [failure.item for failure in run.failures]
    if opts["backend"] in ("inline", "thread"):  # nothing had to travel
        assert [item.n for item in items] == [0, 1]
    else:
        assert items == ["OneWay(0)", "OneWay(1)"]


# -- the failing item is named, whatever the policy ------------------------------------------


def test_an_error_names_the_last_item_its_worker_received(opts: dict[str, Any]) -> None:
    with pytest.raises(ValueError) as caught:
        (range(10) | fail_on(bad=frozenset({6})) | collect).run(**opts)
    notes = caught.value.__notes__
    assert "the last item this worker received was its #7: 6" in notes
    assert any("raised in stage 'fail_on'" in note for note in notes)


# -- timeouts -------------------------------------------------------------------------------

STOPPABLE = [name for name, o in BACKENDS.items() if o["backend"] in ("process", "ray")]


@pytest.mark.parametrize("name", STOPPABLE)
def test_timeout_stops_a_slow_item_and_the_policy_handles_it(name: str, request: pytest.FixtureRequest) -> None:
    opts = _opts(request, name)
    stage = sleepy(slow=frozenset({2})).options(timeout=0.5, on_error="skip")
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sf.FailuresWarning)
        run = (range(5) | stage | collect).start(**opts)
        assert run.result() == [0, 1, 3, 4]
    assert time.perf_counter() - started < 20
    (failure,) = run.failures
    assert failure.item == 2 and isinstance(failure.error, sf.ItemTimeout)
    assert isinstance(failure.error, TimeoutError)
    assert next(s for s in run.stats() if s.stage == "sleepy").timeouts == 1


@pytest.mark.parametrize("name", STOPPABLE)
def test_timeout_does_not_count_time_blocked_downstream(name: str, request: pytest.FixtureRequest) -> None:
    @sf.stage
    def slow_sink(xs: Iterable[int]) -> int:
        n = 0
        for _ in xs:
            time.sleep(0.05)
            n += 1
        return n

    opts = _opts(request, name)
    stage = double.options(timeout=0.2, packets_in_flight=1)
    assert (range(10) | stage | slow_sink).run(**opts) == 10


def _run_for(alarm: Any, seconds: float) -> float:
    """Seconds the stage's code ran (in ``sleep``s of 10 ms) before ``seconds`` or its timeout."""
    started = time.perf_counter()
    alarm.start()
    try:
        while time.perf_counter() - started < seconds:
            time.sleep(0.01)
    finally:
        alarm.stop()
    return time.perf_counter() - started


def test_timeout_costs_no_system_call_an_item(monkeypatch: pytest.MonkeyPatch) -> None:
    from streamflow._runtime._policy import Alarm

    calls = []
    setitimer = signal.setitimer
    monkeypatch.setattr(signal, "setitimer", lambda *args: calls.append(args) or setitimer(*args))
    alarm = Alarm(10.0, None)
    try:
        for _ in range(1000):
            alarm.renew()
            alarm.start()
            alarm.stop()
    finally:
        alarm.close()
    assert len(calls) == 2  # set once, cleared at the end


def test_timeout_counts_only_the_items_own_time() -> None:
    from streamflow._runtime._policy import Alarm

    alarm = Alarm(0.3, None)
    try:
        alarm.renew()
        _run_for(alarm, 0.2)
        time.sleep(0.3)  # waiting for input: the clock is stopped
        _run_for(alarm, 0.05)
        alarm.renew()
        _run_for(alarm, 0.2)  # a new item: the timer set for the last one rings early, and is set again
        with pytest.raises(sf.ItemTimeout):
            alarm.renew()
            _run_for(alarm, 5.0)
    finally:
        alarm.close()


def test_timeout_rings_at_the_items_deadline_not_before() -> None:
    from streamflow._runtime._policy import Alarm

    alarm = Alarm(0.3, None)
    try:
        alarm.renew()
        _run_for(alarm, 0.2)
        alarm.renew()
        started = time.perf_counter()
        with pytest.raises(sf.ItemTimeout):
            _run_for(alarm, 5.0)
        assert 0.3 <= time.perf_counter() - started < 1.3
        alarm.renew()
        assert _run_for(alarm, 0.1) >= 0.1  # the next item starts afresh
    finally:
        alarm.close()


@pytest.mark.parametrize("backend", ["thread", "inline"])
def test_timeout_is_rejected_where_a_call_cannot_be_stopped(backend: str) -> None:
    with pytest.raises(sf.OptionError, match="cannot stop a sync call"):
        (range(3) | double.options(timeout=1) | collect).run(backend=backend)


# -- options -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [{"retries": 1}, {"on_error": "skip"}, {"timeout": 1.0}],
)
def test_sources_and_sinks_take_no_failure_policy(options: dict[str, Any]) -> None:
    with pytest.raises(sf.OptionError, match="sink takes no failure policy"):
        total.options(**options)

    @sf.stage
    def numbers() -> Iterator[int]:
        yield 1

    with pytest.raises(sf.OptionError, match="source takes no failure policy"):
        numbers.options(**options)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"retries": -1}, "retries=-1"),
        ({"retry_delay": -1}, "retry_delay=-1"),
        ({"retry_on": "ValueError"}, "retry_on="),
        ({"on_error": "ignore"}, "on_error='ignore'"),
        ({"timeout": 0}, "timeout=0"),
    ],
)
def test_policy_options_out_of_range(options: dict[str, Any], message: str) -> None:
    with pytest.raises(sf.OptionError, match=message):
        double.options(**options)


def test_max_failures_must_be_a_count() -> None:
    with pytest.raises(sf.OptionError, match="max_failures"):
        (range(3) | double | collect).run(backend="inline", max_failures=-1)  # type: ignore[arg-type]


def test_failures_pickle() -> None:
    error = sf.TooManyFailures("x", [sf.Failure("s", 0, 1, ValueError("v"), "tb", 1)])
    again = pickle.loads(pickle.dumps(error))
    assert again.failures[0].item == 1 and str(again) == "x"


def _opts(request: pytest.FixtureRequest, name: str) -> dict[str, Any]:
    if name in ("spawn", "forkserver"):
        return dict(PROCESS_BACKENDS[name])
    from .conftest import _backend

    return _backend(request, name)


# -- workers that die ---------------------------------------------------------------------------

RECOVERING = [name for name, o in PROCESS_BACKENDS.items() if o["backend"] == "process"] + [
    name for name in BACKENDS if name == "ray"
]


@sf.map
def dies_on(x: int, bad: frozenset[int] = frozenset(), how: str = "kill") -> int:
    if x in bad:
        if how == "kill":
            os.kill(os.getpid(), 9)
        elif how == "exit":
            os._exit(3)
        elif how == "sys.exit":
            sys.exit(3)
        elif how == "segfault":
            import ctypes

            ctypes.string_at(0)
    return x


class DiesOnce:
    """Dies on ``bad`` the first time it sees it: files remember across processes."""

    def __init__(self, marks: str, bad: int) -> None:
        self.marks = Path(marks)
        self.bad = bad
        (self.marks / f"built-{os.getpid()}").touch()

    def __call__(self, x: int) -> int:
        mark = self.marks / f"seen-{x}"
        if x == self.bad and not mark.exists():
            mark.touch()
            os.kill(os.getpid(), 9)
        return x


dies_once = sf.map(DiesOnce)


@pytest.mark.parametrize("name", RECOVERING)
@pytest.mark.parametrize("how", ["kill", "exit", "sys.exit", "segfault"])
def test_a_worker_that_dies_on_an_item_is_replaced_and_the_item_skipped(
    name: str, how: str, request: pytest.FixtureRequest
) -> None:
    opts = _opts(request, name)
    bad = frozenset({5, 17})
    stage = dies_on(bad=bad, how=how).options(on_error="skip", workers=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sf.FailuresWarning)
        run = (range(40) | stage | collect).start(**opts)
        result = run.result()
    assert sorted(result) == [x for x in range(40) if x not in bad]
    assert sorted(f.item for f in run.failures) == sorted(bad)
    for failure in run.failures:
        assert isinstance(failure.error, sf.WorkerCrashed) and failure.attempts == 1
    (stats,) = [s for s in run.stats() if s.stage == "dies_on"]
    assert stats.replaced == 2 and stats.skips == 2


@pytest.mark.parametrize("name", RECOVERING)
def test_a_worker_that_dies_is_replaced_and_the_item_retried(
    name: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    opts = _opts(request, name)
    stage = dies_once(marks=str(tmp_path), bad=7).options(retries=1, packets_in_flight=2)
    run = (range(20) | stage | collect).start(**opts)
    assert run.result() == list(range(20))
    assert run.failures == []
    assert len(list(tmp_path.glob("built-*"))) == 2  # the class is built again in the new worker
    (stats,) = [s for s in run.stats() if s.stage == "DiesOnce"]
    assert stats.replaced == 1 and stats.retries == 1


@pytest.mark.parametrize("name", RECOVERING)
def test_retries_run_out_on_an_item_that_always_kills_its_worker(name: str, request: pytest.FixtureRequest) -> None:
    opts = _opts(request, name)
    stage = dies_on(bad=frozenset({3})).options(retries=2)
    with pytest.raises(sf.WorkerCrashed) as caught:
        (range(10) | stage | collect).run(**opts)
    assert any("held as it died: 3" in note for note in caught.value.__notes__)


@pytest.mark.parametrize("name", RECOVERING)
@pytest.mark.parametrize("how", ["kill", "sys.exit", "segfault"])
def test_without_a_policy_a_dead_worker_ends_the_run_naming_its_item(
    name: str, how: str, request: pytest.FixtureRequest
) -> None:
    opts = _opts(request, name)
    with pytest.raises(sf.WorkerCrashed) as caught:
        (range(10) | dies_on(bad=frozenset({3}), how=how) | collect).run(**opts)
    notes = "\n".join(caught.value.__notes__)
    if name == "ray" and how != "sys.exit":  # took several items at once: one of them
        assert re.search(r"one of the \d+ items its worker held as it died: \[.*\b3\b.*\]", notes), notes
    else:
        assert "the item its worker held as it died: 3" in notes


@pytest.mark.parametrize("name", ["thread", "inline"])
def test_sys_exit_in_a_stage_is_a_crash_naming_its_item(name: str, request: pytest.FixtureRequest) -> None:
    """Threads cannot be replaced: the run ends, with the item named, whatever the policy."""
    opts = _opts(request, name)
    stage = dies_on(bad=frozenset({3}), how="sys.exit").options(on_error="skip")
    with pytest.raises((sf.WorkerCrashed, SystemExit)) as caught:
        (range(10) | stage | collect).run(**opts)
    if name == "thread":
        assert "held as it died: 3" in "\n".join(caught.value.__notes__)


@pytest.mark.parametrize("name", RECOVERING)
def test_replacement_keeps_packets_in_flight_exact_and_leaks_nothing(
    name: str, request: pytest.FixtureRequest
) -> None:
    opts = _opts(request, name)
    bad = frozenset(range(3, 300, 29))
    stage = dies_on(bad=bad).options(on_error="skip", workers=2, packets_in_flight=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sf.FailuresWarning)
        run = (range(300) | stage | double | collect).start(**opts)
        assert sorted(run.result()) == [2 * x for x in range(300) if x not in bad]
    assert len(run.failures) == len(bad)


@pytest.mark.parametrize("name", RECOVERING)
@pytest.mark.parametrize("packets_in_flight", [1, 4])
def test_replacement_in_the_last_stage_of_an_open_flow_keeps_its_order(
    name: str, packets_in_flight: int, request: pytest.FixtureRequest
) -> None:
    """The caller reads the edge of a worker that dies: the new worker goes on where it stopped."""
    opts = _opts(request, name)
    bad = frozenset({5, 17, 30})
    stage = dies_on(bad=bad).options(on_error="skip", packets_in_flight=packets_in_flight)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sf.FailuresWarning)
        assert list((range(40) | stage).iter(**opts)) == [x for x in range(40) if x not in bad]


@sf.map
def stuck_in_native_code(x: int) -> int:
    if x == 2:
        import signal

        # As native code that never returns to Python: no signal handler can run.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
        time.sleep(30)
    return x


@pytest.mark.parametrize("name", RECOVERING)
def test_without_retries_or_skip_an_item_stuck_in_native_code_raises_item_timeout(
    name: str, request: pytest.FixtureRequest
) -> None:
    opts = _opts(request, name)
    with pytest.raises(sf.ItemTimeout, match="could not be interrupted"):
        (range(5) | stuck_in_native_code.options(timeout=0.3) | collect).run(**opts)


@pytest.mark.parametrize("name", RECOVERING)
def test_an_item_stuck_past_its_timeout_in_native_code_ends_its_worker(
    name: str, request: pytest.FixtureRequest
) -> None:
    opts = _opts(request, name)
    stage = stuck_in_native_code.options(timeout=0.3, on_error="skip")
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sf.FailuresWarning)
        run = (range(5) | stage | collect).start(**opts)
        assert run.result() == [0, 1, 3, 4]
    assert time.perf_counter() - started < 15
    (failure,) = run.failures
    assert failure.item == 2 and isinstance(failure.error, sf.ItemTimeout)
    assert "could not be interrupted" in str(failure.error)  # ended by the supervisor, and replaced


