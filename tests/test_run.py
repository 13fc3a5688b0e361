"""Run handles: result, done, cancel, stats, report and progress (issue 5)."""

from __future__ import annotations

import io
import select
import threading
from collections.abc import Iterable, Iterator
from typing import Any

import pytest

import streamflow as sf
from streamflow._progress import Progress
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
    progress = Progress(run.stats, run.done, stream, bars=False)
    run.result()
    progress.stop()
    text = stream.getvalue()
    assert "count_to 2000" in text and "square 2000" in text and "total 2000" in text
    assert text.endswith("\n")


def test_progress_with_tqdm_bars() -> None:
    pytest.importorskip("tqdm")
    run = (count_to(n=300) | square | total).start(backend="thread")
    stream = io.StringIO()
    progress = Progress(run.stats, run.done, stream)
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
