"""What a flow computes, on every backend (SPEC 2, 4, 5)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

import pytest

import streamflow as sf
from tests.conftest import mp_context, scaled
from tests.stages import (
    add,
    collect,
    count_to,
    forever,
    keep_even,
    repeat,
    square,
    total,
    whoami,
)


def test_closed_flow_returns_the_sink_value(opts: dict[str, Any]) -> None:
    flow = count_to(n=100) | square | keep_even | total
    assert flow.run(**opts) == sum(x * x for x in range(100) if x * x % 2 == 0)


def test_open_flow_iterates_in_the_caller(opts: dict[str, Any]) -> None:
    flow = count_to(n=50) | add(k=3)
    with flow.iter(**opts) as items:
        assert list(items) == [x + 3 for x in range(50)]


def test_open_flow_run_returns_a_list(opts: dict[str, Any]) -> None:
    assert (count_to(n=5) | repeat(times=2)).run(**opts) == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]


def test_a_flow_runs_twice_from_the_start(opts: dict[str, Any]) -> None:
    flow = count_to(n=10) | square | total
    assert flow.run(**opts) == flow.run(**opts) == 285


def test_many_workers_lose_nothing(parallel_opts: dict[str, Any]) -> None:
    flow = (
        count_to(n=scaled(parallel_opts, 2000))
        | square.options(workers=3)
        | add(k=1).options(workers=2, packets_in_flight=2)
        | collect
    )
    n = scaled(parallel_opts, 2000)
    assert Counter(flow.run(**parallel_opts)) == Counter(x * x + 1 for x in range(n))


def test_sink_with_several_workers_returns_their_values_in_order(parallel_opts: dict[str, Any]) -> None:
    n = scaled(parallel_opts, 1000)
    results = (count_to(n=n) | total.options(workers=3)).run(**parallel_opts)
    assert isinstance(results, list) and len(results) == 3
    assert sum(results) == sum(range(n))


def test_iterable_sources(opts: dict[str, Any]) -> None:
    assert (sf.source([1, 2, 3]) | square | total).run(**opts) == 14
    assert ([1, 2, 3] | square | total).run(**opts) == 14
    assert (range(4) | square).run(**opts) == [0, 1, 4, 9]


def test_a_generator_source_is_read_in_the_caller(opts: dict[str, Any]) -> None:
    produced = (x for x in range(20))
    assert (sf.source(produced) | square | total).run(**opts) == sum(x * x for x in range(20))


def test_a_flow_without_source_runs_on_an_input(opts: dict[str, Any]) -> None:
    flow = square | add(k=1)
    assert flow.run(range(5), **opts) == [1, 2, 5, 10, 17]
    assert (square | total).run([1, 2], **opts) == 5
    with flow.iter(iter([3]), **opts) as items:
        assert list(items) == [10]


def test_input_and_source_are_exclusive() -> None:
    with pytest.raises(sf.FlowTypeError, match="takes no input"):
        (count_to(n=3) | total).run([1], backend="inline")
    with pytest.raises(sf.FlowTypeError, match="needs an input"):
        (square | total).run(backend="inline")


def test_the_same_stage_twice(opts: dict[str, Any]) -> None:
    assert (count_to(n=4) | add(k=1) | add(k=10) | collect).run(**opts) == [11, 12, 13, 14]


def test_worker_info_names_stage_and_worker(parallel_opts: dict[str, Any]) -> None:
    rows = (count_to(n=scaled(parallel_opts, 300)) | whoami.options(workers=2) | collect).run(**parallel_opts)
    assert {(stage, workers) for stage, _, workers, _ in rows} == {("whoami", 2)}
    assert {index for _, index, _, _ in rows} <= {0, 1}
    assert sf.worker_info() is None


def test_breaking_out_stops_an_infinite_flow(opts: dict[str, Any]) -> None:
    seen = []
    with (forever() | square).iter(**opts) as items:
        for x in items:
            seen.append(x)
            if len(seen) == 5:
                break
    assert seen == [0, 1, 4, 9, 16]


def test_for_loop_over_a_flow_with_default_options_and_break() -> None:
    for x in forever() | square:
        if x > 100:
            break
    assert x == 121


def test_an_exception_in_the_callers_loop_stops_the_flow(opts: dict[str, Any]) -> None:
    with pytest.raises(LookupError):
        with (forever() | square).iter(**opts) as items:
            for x in items:
                if x > 10:
                    raise LookupError("caller gave up")


def test_a_sink_that_stops_early_ends_the_flow(opts: dict[str, Any]) -> None:
    @sf.stage
    def first_three(xs: Iterable[int]) -> list[int]:
        out = []
        for x in xs:
            out.append(x)
            if len(out) == 3:
                break
        return out

    if opts["backend"] == "process" and opts.get("start_method") != "fork":
        pytest.skip("local stage functions are pickled by value; covered by test_process")
    assert (forever() | square | first_three).run(**opts) == [0, 1, 4]


def test_a_processor_that_stops_early_ends_upstream(opts: dict[str, Any]) -> None:
    flow = forever() | take(n=4) | total
    assert flow.run(**opts) == 6


@sf.stage
def take(xs: Iterable[int], n: int) -> Iterator[int]:
    for i, x in enumerate(xs):
        if i == n:
            return
        yield x


# -- packets_in_flight (SPEC 5) ---------------------------------------------------


def _enter(active: Any, overlaps: Any) -> None:
    with active.get_lock():
        active.value += 1
        if active.value > 1:
            overlaps.value += 1


def _leave(active: Any) -> None:
    with active.get_lock():
        active.value -= 1


def _work() -> int:
    return sum(range(3000))  # widen the window in which an overlap would show


@sf.stage(packets_in_flight=1)
def lock_source(n: int, active: Any, overlaps: Any) -> Iterator[int]:
    for i in range(n):
        _enter(active, overlaps)
        _work()
        _leave(active)
        yield i


@sf.stage(packets_in_flight=1)
def lock_middle(xs: Iterable[int], active: Any, overlaps: Any) -> Iterator[int]:
    for x in xs:
        _enter(active, overlaps)
        _work()
        _leave(active)
        yield x


@sf.stage
def lock_sink(xs: Iterable[int], active: Any, overlaps: Any) -> int:
    count = 0
    for _ in xs:
        _enter(active, overlaps)
        _work()
        _leave(active)
        count += 1
    return count


def test_one_packet_in_flight_runs_in_strict_lockstep(opts: dict[str, Any]) -> None:
    """Like pipeline-lib's full-synchronization test: any overlap is counted."""
    ctx = mp_context(opts)
    active, overlaps = ctx.Value("i", 0), ctx.Value("i", 0)
    shared = dict(active=active, overlaps=overlaps)
    flow = lock_source(n=300, **shared) | lock_middle(**shared) | lock_middle(**shared) | lock_sink(**shared)
    assert flow.run(**opts) == 300
    assert overlaps.value == 0


@sf.stage(packets_in_flight=2)
def eager_source(started: Any) -> Iterator[int]:
    yield 0
    started.set()  # building packet 1 while packet 0 is downstream
    yield 1


@sf.stage
def wait_for_source(xs: Iterable[int], started: Any) -> Iterator[bool]:
    for x in xs:
        yield started.wait(30) if x == 0 else True


def test_a_free_slot_lets_the_producer_run_ahead(parallel_opts: dict[str, Any]) -> None:
    started = mp_context(parallel_opts).Event()
    assert (eager_source(started=started) | wait_for_source(started=started)).run(**parallel_opts) == [True, True]


@sf.stage(packets_in_flight=3)
def tracked_source(n: int, built: Any) -> Iterator[int]:
    for i in range(n):
        with built.get_lock():
            built.value += 1
        yield i


@sf.stage
def check_bound(xs: Iterable[int], built: Any) -> Iterator[int]:
    for consumed, x in enumerate(xs):
        # Packets built so far minus those finished downstream never exceed 3.
        yield built.value - consumed


def test_packets_in_flight_bounds_the_edge(parallel_opts: dict[str, Any]) -> None:
    built = mp_context(parallel_opts).Value("i", 0)
    spans = (tracked_source(n=200, built=built) | check_bound(built=built)).run(**parallel_opts)
    assert max(spans) <= 3
    assert len(spans) == 200


def test_a_generator_source_used_up_by_an_earlier_run_says_so(opts: dict[str, Any]) -> None:
    flow = sf.source(x for x in range(5)) | square
    assert flow.run(**opts) == [0, 1, 4, 9, 16]
    with pytest.raises(sf.StreamflowError, match=r"reads a generator, which an earlier run of this flow already used up"):
        flow.run(**opts)
    again = sf.source([1, 2]) | square  # a list is read again by every run
    assert again.run(**opts) == again.run(**opts) == [1, 4]


def test_a_source_alone_is_a_flow(opts: dict[str, Any]) -> None:
    assert count_to(n=4).run(**opts) == [0, 1, 2, 3]
    with count_to(n=3).iter(**opts) as items:
        assert list(items) == [0, 1, 2]
    assert list(count_to(n=2)) == [0, 1]
    assert sf.source(["a", "b"]).run(**opts) == ["a", "b"]
