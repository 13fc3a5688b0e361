"""How runs fail: first error, its type, notes and traceback; timeouts; Ctrl-C (SPEC 7)."""

from __future__ import annotations

import os
import select
import signal
import threading
import time
import traceback
from collections.abc import Iterable, Iterator
from typing import Any

import pytest

import streamflow as sf
from tests.conftest import scaled
from tests.stages import (
    count_to,
    fail_at,
    forever,
    sink_failing_at,
    source_failing_at,
    square,
    total,
)


def _text(error: BaseException) -> str:
    """Everything a user would see printed for ``error``."""
    return "".join(traceback.format_exception(type(error), error, error.__traceback__))


def test_error_in_a_middle_stage(opts: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="bad item 7") as caught:
        (count_to(n=100) | fail_at(at=7) | total).run(**opts)
    assert "raised in stage 'fail_at' (worker 1 of 1)" in caught.value.__notes__
    assert 'raise {"ValueError"' in _text(caught.value)  # where it was raised


def test_error_in_the_source(opts: dict[str, Any]) -> None:
    with pytest.raises(RuntimeError, match="source broke at 3") as caught:
        (source_failing_at(at=3) | square | total).run(**opts)
    assert "raised in stage 'source_failing_at' (worker 1 of 1)" in caught.value.__notes__
    assert "source_failing_at" in _text(caught.value)


def test_error_in_the_sink(opts: dict[str, Any]) -> None:
    with pytest.raises(ZeroDivisionError, match="sink broke at 5") as caught:
        (count_to(n=100) | sink_failing_at(at=5)).run(**opts)
    assert "raised in stage 'sink_failing_at' (worker 1 of 1)" in caught.value.__notes__


def test_a_processor_that_returns_a_value_is_told_to_yield(opts: dict[str, Any]) -> None:
    from tests.stages import returns_instead

    with pytest.raises(TypeError, match=r"stage 'returns_instead' returned 6 instead of yielding .* 'yield'"):
        (count_to(n=4) | returns_instead | total).run(**opts)


def test_error_in_one_of_several_workers(parallel_opts: dict[str, Any]) -> None:
    n = scaled(parallel_opts, 1000)
    flow = count_to(n=n) | fail_at(at=n // 2, error="KeyError").options(workers=3) | total
    with pytest.raises(KeyError) as caught:
        flow.run(**parallel_opts)
    item, note = caught.value.__notes__
    assert item.startswith("the last item this worker received was its #") and item.endswith(f": {n // 2}")
    assert note.startswith("raised in stage 'fail_at' (worker ") and note.endswith(" of 3)")


def test_error_while_iterating_an_open_flow(opts: dict[str, Any]) -> None:
    seen = []
    with pytest.raises(ValueError, match="bad item 4"):
        for x in (count_to(n=10) | fail_at(at=4)).iter(**opts):
            seen.append(x)
    assert seen == [0, 1, 2, 3]


def test_an_error_stops_an_infinite_source(opts: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        (forever() | fail_at(at=1000) | total).run(**opts)


def test_process_errors_carry_the_remote_traceback(process_opts: dict[str, Any]) -> None:
    with pytest.raises(ValueError) as caught:
        (count_to(n=10) | fail_at(at=2) | total).run(**process_opts)
    cause = caught.value.__cause__
    assert isinstance(cause, sf.RemoteTraceback)
    assert "ValueError: bad item 2" in cause.text  # as the worker formatted it
    shown = _text(caught.value)  # as the caller shows it: the worker's frames, with source
    assert shown.index("in fail_at") < shown.index("The above exception was the direct cause")
    assert 'raise {"ValueError": ValueError' in shown
    assert "_worker.py" not in shown.split("The above exception")[0]  # the runtime's frames left out


@sf.stage
def swallow_errors(xs: Iterable[int]) -> int:
    seen = 0
    try:
        for _ in xs:
            seen += 1
    except Exception:  # noqa: BLE001 - what the test is about
        return -1
    return seen


def test_an_upstream_error_cannot_be_swallowed_downstream(opts: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="bad item 3") as caught:
        (count_to(n=10) | fail_at(at=3) | swallow_errors).run(**opts)
    assert "raised in stage 'fail_at' (worker 1 of 1)" in caught.value.__notes__
    with pytest.raises(ValueError, match="bad item 3"):
        list((count_to(n=10) | fail_at(at=3) | square).iter(**opts))


class Unpicklable(Exception):
    def __init__(self, message: str, handle: Any) -> None:
        super().__init__(message)
        self.handle = handle

    def __reduce__(self) -> Any:
        raise TypeError("cannot pickle a handle")


@sf.stage
def raise_unpicklable(xs: Iterable[int]) -> Iterator[int]:
    for x in xs:
        raise Unpicklable(f"lost handle at {x}", handle=lambda: None)
        yield x


def test_an_exception_that_cannot_be_pickled_arrives_as_stage_error(process_opts: dict[str, Any]) -> None:
    with pytest.raises(sf.StageError, match="Unpicklable: lost handle at 0") as caught:
        (count_to(n=3) | raise_unpicklable | total).run(**process_opts)
    assert caught.value.type_name == "Unpicklable"
    assert "raise Unpicklable" in caught.value.remote_traceback
    assert "raised in stage 'raise_unpicklable' (worker 1 of 1)" in caught.value.__notes__


def _block(release: threading.Event | None) -> None:
    """Stop moving packets: until released (threads cannot be killed) or for good."""
    if release is not None:
        release.wait(30)
    else:
        select.select([], [], [], 30)  # a worker process is terminated out of this


def _releaser(opts: dict[str, Any]) -> threading.Event | None:
    return threading.Event() if opts["backend"] == "thread" else None


@sf.stage
def stall(xs: Iterable[int], release: Any) -> Iterator[int]:
    for x in xs:
        _block(release)
        yield x


def test_inactivity_timeout(parallel_opts: dict[str, Any]) -> None:
    release = _releaser(parallel_opts)
    flow = count_to(n=10) | stall(release=release) | total
    started = time.monotonic()
    try:
        with pytest.raises(sf.InactivityError, match="no packet moved for 0.5 s") as caught:
            flow.run(inactivity_timeout=0.5, shutdown_timeout=0.2, **parallel_opts)
    finally:
        if release is not None:
            release.set()
    assert isinstance(caught.value, TimeoutError)
    assert time.monotonic() - started < 10


def test_a_slow_but_moving_flow_is_not_inactive(parallel_opts: dict[str, Any]) -> None:
    n = scaled(parallel_opts, 2000)
    assert (count_to(n=n) | square | total).run(inactivity_timeout=5, **parallel_opts) > 0


@sf.stage
def trickle(n: int, every: float) -> Iterator[int]:
    """``n`` items, ``every`` seconds apart: a flow that moves, slowly."""
    for i in range(n):
        if i:
            time.sleep(every)
        yield i


def test_a_trickle_that_outlasts_its_timeout_is_not_inactive() -> None:
    """Edges between processes count the packets they move only when an inactivity timeout is set:
    a flow that keeps moving for longer than its timeout must be seen moving."""
    flow = trickle(n=6, every=0.5) | square | total
    assert flow.run(backend="process", start_method="fork", inactivity_timeout=2.0) == sum(i * i for i in range(6))


@sf.stage
def interrupt_caller(xs: Iterable[int], release: Any) -> Iterator[int]:
    for x in xs:
        if x == 5:
            os.kill(int(os.environ["STREAMFLOW_TEST_PARENT"]), signal.SIGINT)  # the caller
            _block(release)
        yield x


def test_ctrl_c_in_the_caller_stops_every_worker(parallel_opts: dict[str, Any]) -> None:
    if parallel_opts["backend"] == "ray":
        pytest.skip("a Ray actor's parent is the raylet, not the caller (see test_ray.py)")
    os.environ["STREAMFLOW_TEST_PARENT"] = str(os.getpid())
    release = _releaser(parallel_opts)
    flow = forever() | interrupt_caller(release=release) | total
    try:
        with pytest.raises(KeyboardInterrupt):
            flow.run(shutdown_timeout=0.5, **parallel_opts)
    finally:
        if release is not None:
            release.set()


def test_run_options_are_validated() -> None:
    flow = count_to(n=3) | total
    with pytest.raises(sf.OptionError, match="backend='gpu' is not known"):
        flow.run(backend="gpu")
    with pytest.raises(sf.OptionError, match="start_method"):
        flow.run(start_method="vfork")  # type: ignore[arg-type]
    for backend in ("thread", "inline", "ray"):
        with pytest.raises(sf.OptionError, match=rf"start_method='spawn' does not apply to backend='{backend}'"):
            flow.run(backend=backend, start_method="spawn")
    with pytest.raises(sf.OptionError, match="inactivity_timeout"):
        flow.run(inactivity_timeout=0)
    with pytest.raises(sf.OptionError, match="shutdown_timeout"):
        flow.run(shutdown_timeout=-1)
    with pytest.raises(sf.OptionError, match="spin_us=-1 must be None or microseconds >= 0"):
        flow.run(spin_us=-1)
    with pytest.raises(sf.OptionError, match="spin_us"):
        flow.run(spin_us="50")  # type: ignore[arg-type]
