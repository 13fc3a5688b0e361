"""Run handles: result, done, cancel, stats, report and progress (issue 5)."""

from __future__ import annotations

import io
import re
import select
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

import pytest

import streamflow as sf
from streamflow._progress import Progress
from streamflow._stats import StageStats, report
from tests.conftest import scaled
from tests.stages import count_to, forever, square, total


def test_start_then_result(opts: dict[str, Any]) -> None:
    run = (count_to(n=100) | square | total).start(**opts)
    assert run.result() == sum(x * x for x in range(100))
    assert run.done()
    assert run.result() == sum(x * x for x in range(100))  # asking again is fine


def test_an_open_run_iterates_and_its_result_is_the_rest(opts: dict[str, Any]) -> None:
    with (count_to(n=10) | square).start(**opts) as run:
        assert next(run) == 0
        assert next(run) == 1
        assert run.result() == [x * x for x in range(2, 10)]


def test_a_closed_run_is_not_iterable() -> None:
    run = (count_to(n=3) | total).start(backend="thread")
    with pytest.raises(TypeError, match="call result"):
        next(run)
    assert run.result() == 3


@sf.stage
def hold(xs: Iterable[int], release: Any) -> Iterator[int]:
    for x in xs:
        if release is not None:
            release.wait(30)
        else:
            select.select([], [], [], 30)
        yield x


def test_result_with_a_timeout_and_cancel(parallel_opts: dict[str, Any]) -> None:
    release = threading.Event() if parallel_opts["backend"] == "thread" else None
    run = (count_to(n=3) | hold(release=release) | total).start(shutdown_timeout=0.2, **parallel_opts)
    with pytest.raises(TimeoutError, match="still running after 0.2 s"):
        run.result(timeout=0.2)
    assert not run.done()
    if release is not None:
        release.set()
    run.cancel()
    assert run.done()
    run.cancel()  # again: nothing happens


def test_cancel_an_infinite_open_flow(parallel_opts: dict[str, Any]) -> None:
    run = (forever() | square).start(**parallel_opts)
    assert next(run) == 0
    run.cancel()
    assert run.done()


def test_stats_count_every_stage(parallel_opts: dict[str, Any]) -> None:
    run = (count_to(n=500) | square.options(workers=2) | total).start(**parallel_opts)
    assert run.result() == sum(x * x for x in range(500))
    stages = {s.stage: s for s in run.stats()}
    assert list(stages) == ["count_to", "square", "total"]
    assert stages["count_to"].items_out == 500
    assert stages["square"].items_in == stages["square"].items_out == 500
    assert stages["square"].workers == 2
    assert stages["total"].items_in == 500
    for stage in stages.values():
        assert stage.elapsed > 0
        assert stage.busy >= 0 and stage.waiting >= 0 and stage.blocked >= 0
    workers = run.worker_stats()
    assert sum(w.items_in for w in workers if w.stage == "square") == 500
    assert {w.worker for w in workers if w.stage == "square"} == {0, 1}


@sf.stage
def slow(xs: Iterable[int]) -> Iterator[int]:
    for x in xs:
        sum(range(20_000))  # the obvious bottleneck
        yield x


def test_report_names_the_bottleneck(parallel_opts: dict[str, Any]) -> None:
    run = (count_to(n=200) | slow | total).start(**parallel_opts)
    run.result()
    text = run.report()
    assert "<- bottleneck" in text.splitlines()[2]  # the 'slow' row
    assert "bottleneck: 'slow'" in text
    if parallel_opts["backend"] != "ray":  # on Ray, moving 200 small packets costs more than the work
        assert "more workers" in text


def test_the_inline_backend_reports_no_stats() -> None:
    run = (count_to(n=3) | total).start(backend="inline")
    assert run.result() == 3
    assert run.stats() == [] and "inline" in run.report()


def test_progress_draws_a_line_per_refresh_and_ends_it() -> None:
    run = (count_to(n=2000) | square | total).start(backend="thread")
    stream = io.StringIO()
    progress = Progress(run.stats, run.done, ['count_to', 'square', 'total'], stream, bars=False)
    run.result()
    progress.stop()
    text = stream.getvalue()
    assert "count_to 2000" in text and "square 2000" in text and "total 2000" in text
    assert text.endswith("\n")


def test_progress_with_tqdm_bars() -> None:
    pytest.importorskip("tqdm")
    run = (count_to(n=300) | square | total).start(backend="thread")
    stream = io.StringIO()
    progress = Progress(run.stats, run.done, ['count_to', 'square', 'total'], stream)
    run.result()
    progress.stop()
    text = stream.getvalue()
    assert "count_to" in text and "square" in text and "300" in text


def test_progress_option_writes_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    assert (count_to(n=50) | total).run(backend="thread", progress=True) == sum(range(50))
    assert "count_to" in capsys.readouterr().err


def test_result_of_a_cancelled_run_raises_cancelled_error(parallel_opts: dict[str, Any]) -> None:
    from concurrent.futures import CancelledError

    run = (forever() | total).start(**parallel_opts)
    run.cancel()
    with pytest.raises(CancelledError):
        run.result()


def test_the_first_error_is_raised_by_every_result_call(opts: dict[str, Any]) -> None:
    from tests.stages import fail_at

    run = (count_to(n=10) | fail_at(at=3) | total).start(**opts)
    for _ in range(2):
        with pytest.raises(ValueError, match="bad item 3"):
            run.result()


# -- live numbers (issue 11) -------------------------------------------------------------


def _eventually(check: Any, timeout: float = 10.0) -> None:
    """Poll ``check()`` until it holds (the property under test is "within a time")."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.02)


@sf.stage
def one_then_hold(n: int, release: Any) -> Iterator[int]:
    """Yields one item, then stops until released (threads) or for good (processes)."""
    yield 0
    if release is not None:
        release.wait(30)
    else:
        select.select([], [], [], 30)
    yield from range(1, n)


def test_counts_and_waits_reach_the_caller_by_time(parallel_opts: dict[str, Any]) -> None:
    release = threading.Event() if parallel_opts["backend"] == "thread" else None
    run = (one_then_hold(n=5, release=release) | square.options(workers=2) | total).start(
        shutdown_timeout=0.5, **parallel_opts
    )
    try:
        def by_name() -> dict[str, Any]:
            return {s.stage: s for s in run.stats()}

        # Far fewer items than any batch of counts: they show by time.
        _eventually(lambda: by_name()["square"].items_out == 1 and by_name()["total"].items_in == 1)
        # Both stages then wait for input, and that shows too, while they wait.
        _eventually(lambda: all(by_name()[s].waiting > 0.3 for s in ("square", "total")))
        stages = by_name()
        assert stages["square"].busy_share < 0.5 and stages["total"].busy_share < 0.5
    finally:
        if release is not None:
            release.set()
        run.cancel()


def test_a_producer_waiting_for_room_shows_blocked_while_it_waits(parallel_opts: dict[str, Any]) -> None:
    """Waits are timed by the edges, only when they block: a blocked producer still shows."""
    release = threading.Event() if parallel_opts["backend"] == "thread" else None
    run = (
        count_to(n=100).options(packets_in_flight=1) | hold(release=release) | total
    ).start(shutdown_timeout=0.5, **parallel_opts)
    try:
        def by_name() -> dict[str, Any]:
            return {s.stage: s for s in run.stats()}

        _eventually(lambda: by_name()["count_to"].blocked > 0.3)
        stages = by_name()
        assert stages["count_to"].busy_share < 0.5 and stages["count_to"].waiting == 0
    finally:
        if release is not None:
            release.set()
        run.cancel()


def test_rates_are_per_second_of_the_run_for_every_stage(parallel_opts: dict[str, Any]) -> None:
    run = (count_to(n=scaled(parallel_opts, 500)) | square | total).start(**parallel_opts)
    run.result()
    rates = {round(s.rate, 6) for s in run.stats()}
    assert len(rates) == 1 and rates.pop() > 0
    assert len({s.run_elapsed for s in run.stats()}) == 1


def _stage(name: str, workers: int, busy: float) -> StageStats:
    return StageStats(name, workers, 100, 100, busy * workers, (1 - busy) * workers, 0.0, 1.0, 1.0)


def test_advice_knows_the_machine() -> None:
    stages = [_stage("read", 1, 0.1), _stage("parse", 2, 1.0), _stage("save", 1, 0.1)]
    two = report(stages, backend="process", cores=2)
    assert "bottleneck: 'parse'" in two
    assert "2 cores already run 2 busy workers, so more workers will not help 'parse'" in " ".join(two.split())
    eight = report(stages, backend="process", cores=8)
    assert "give 'parse' more workers (workers=8)" in " ".join(eight.split())
    threads = report(stages, backend="thread", cores=8)
    assert "threads share one core" in " ".join(threads.split())


@sf.stage
def paced(xs: Iterable[int]) -> Iterator[int]:
    for x in xs:
        time.sleep(0.004)  # a steady pace, to compare rates with (not to synchronise)
        yield x


def test_progress_rates_are_right_from_the_first_refresh() -> None:
    pytest.importorskip("tqdm")
    stream = io.StringIO()
    started = time.perf_counter()
    run = (count_to(n=300) | paced | total).start(backend="thread")
    progress = Progress(run.stats, run.done, [s.name for s in (count_to, paced, total)], stream)
    run.result()
    progress.stop()
    true_rate = 300 / (time.perf_counter() - started)
    rates = [float(r) for r in re.findall(r"([\d.]+)it/s", stream.getvalue())]
    assert rates and max(rates) < 3 * true_rate, (rates, true_rate)
