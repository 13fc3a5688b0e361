"""Order and batches (SPEC section 10): ``ordered=True``, ``sf.batch``, ``sf.unbatch``, on every backend."""

from __future__ import annotations

import random
import time
import warnings
from collections.abc import Iterable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import streamflow as sf

from .conftest import BACKENDS, PROCESS_BACKENDS, _backend, mp_context

ORDERING = list(BACKENDS)
EXAMPLES = {"inline": 30, "thread": 40, "warm": 15, "fork": 15, "ray": 6}

# What the hypothesis tests draw: inputs, per-item delays, workers, packets_in_flight
# over workers, and the places of the items that fail.
ITEMS = st.lists(st.integers(0, 10_000), max_size=50, unique=True)
DELAYS = st.lists(st.sampled_from([0.0, 0.0, 0.0005, 0.002]), min_size=1, max_size=4).map(tuple)
WORKERS = st.integers(1, 4)
EXTRA = st.integers(0, 3)
PICKS = st.lists(st.integers(0, 49), max_size=4)


def _examples(backend: str) -> settings:
    return settings(max_examples=EXAMPLES[backend], deadline=None, suppress_health_check=list(HealthCheck))


@sf.stage
def fan(items: Iterable[int], outputs: tuple[int, ...], delays: tuple[float, ...], bad: frozenset[int]) -> Iterator[int]:
    """Item ``x`` gives ``outputs[x % len]`` outputs after a delay; a bad item raises midway."""
    for x in items:
        time.sleep(delays[x % len(delays)])
        count = outputs[x % len(outputs)]
        for k in range(count):
            if x in bad and k == count // 2:
                raise ValueError(x)
            yield 1000 * x + k
        if x in bad and count == 0:
            raise ValueError(x)


@sf.stage
def collect(xs: Iterable[int]) -> list[int]:
    return list(xs)


def _expected(items: list[int], outputs: tuple[int, ...], bad: frozenset[int]) -> list[int]:
    """What one worker gives under on_error="skip": a bad item's outputs before it raised."""
    out = []
    for x in items:
        count = outputs[x % len(outputs)]
        given = count // 2 if x in bad else count
        out += [1000 * x + k for k in range(given)]
    return out


@pytest.mark.parametrize("backend", ORDERING)
@pytest.mark.timeout(300)
def test_ordered_gives_what_one_worker_gives(backend: str, request: pytest.FixtureRequest) -> None:
    options = _backend(request, backend)

    @_examples(backend)
    @given(
        items=ITEMS,
        outputs=st.lists(st.integers(0, 3), min_size=1, max_size=5).map(tuple),
        delays=DELAYS,
        workers=WORKERS,
        extra=EXTRA,
        picks=PICKS,
    )
    def check(
        items: list[int], outputs: tuple[int, ...], delays: tuple[float, ...], workers: int, extra: int, picks: list[int]
    ) -> None:
        bad = frozenset(items[i] for i in picks if i < len(items))
        stage = fan(outputs=outputs, delays=delays, bad=bad).options(
            workers=workers, packets_in_flight=workers + extra, ordered=True, on_error="skip"
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", sf.FailuresWarning)
            run = (sf.source(items) | stage | collect).start(**options, inactivity_timeout=60)
            assert run.result() == _expected(items, outputs, bad)
        assert sorted(f.item for f in run.failures) == sorted(bad)

    check()


@sf.map
def square_unless_bad(x: int, delays: tuple[float, ...], bad: frozenset[int]) -> int:
    time.sleep(delays[x % len(delays)])
    if x in bad:
        raise ValueError(x)
    return x * x


@pytest.mark.parametrize("backend", ORDERING)
@pytest.mark.timeout(300)
def test_ordered_map_stage_gives_what_one_worker_gives(backend: str, request: pytest.FixtureRequest) -> None:
    """A map stage's input is done as its output leaves; a skipped one's, at its worker's next pull."""
    options = _backend(request, backend)

    @_examples(backend)
    @given(items=ITEMS, delays=DELAYS, workers=WORKERS, extra=EXTRA, picks=PICKS)
    def check(items: list[int], delays: tuple[float, ...], workers: int, extra: int, picks: list[int]) -> None:
        bad = frozenset(items[i] for i in picks if i < len(items))
        stage = square_unless_bad(delays=delays, bad=bad).options(
            workers=workers, packets_in_flight=workers + extra, ordered=True, on_error="skip"
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", sf.FailuresWarning)
            got = (sf.source(items) | stage | collect).run(**options, inactivity_timeout=60)
        assert got == [x * x for x in items if x not in bad]

    check()


@pytest.mark.parametrize("backend", ORDERING)
def test_ordered_map_stage_with_random_delays(backend: str, request: pytest.FixtureRequest) -> None:
    options = _backend(request, backend)
    stage = sleepy_square.options(workers=3, packets_in_flight=3, ordered=True)
    assert (range(120) | stage | collect).run(**options) == [x * x for x in range(120)]


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_ordered_under_spawn_and_forkserver(method: str) -> None:
    """The turnstile travels to workers that import their stages afresh."""
    options = {"backend": "process", "start_method": method}
    items, outputs, bad = list(range(60)), (0, 1, 3), frozenset({7, 31})
    stage = fan(outputs=outputs, delays=(0.0, 0.002, 0.001), bad=bad).options(workers=3, ordered=True, on_error="skip")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sf.FailuresWarning)
        assert (items | stage | collect).run(**options) == _expected(items, outputs, bad)


@sf.map
def sleepy_square(x: int) -> int:
    time.sleep(random.random() * 0.003)
    return x * x


@sf.stage
def with_trailer(items: Iterable[int]) -> Iterator[int]:
    """Yields its items, then, after its input ended, one trailer of its own: -1 - items it saw
    (a worker may see none)."""
    seen = 0
    for x in items:
        time.sleep(0.001 * (x % 3))
        seen += 1
        yield x
    yield -1 - seen


@pytest.mark.parametrize("backend", ORDERING)
def test_outputs_after_the_input_ended_leave_after_every_item(backend: str, request: pytest.FixtureRequest) -> None:
    options = _backend(request, backend)
    workers = 1 if backend == "inline" else 3
    got = (range(60) | with_trailer.options(workers=workers, ordered=True) | collect).run(**options)
    assert got[:60] == list(range(60))
    trailers = got[60:]
    assert len(trailers) == workers and all(x < 0 for x in trailers)
    assert -sum(trailers) == 60 + workers


@pytest.mark.parametrize("backend", ORDERING)
def test_ordered_stage_stops_cleanly_on_an_error_and_on_break(backend: str, request: pytest.FixtureRequest) -> None:
    options = _backend(request, backend)
    stage = fan(outputs=(2,), delays=(0.0, 0.001), bad=frozenset({37})).options(workers=3, ordered=True)
    with pytest.raises(ValueError):
        (range(100) | stage | collect).run(**options)
    with (range(10_000) | sleepy_square.options(workers=3, ordered=True)).iter(**options) as run:
        assert [next(run) for _ in range(20)] == [x * x for x in range(20)]


@sf.stage
def sparse(items: Iterable[int]) -> Iterator[int]:
    """Item 0 is slow; of the rest, one in 50 gives an output: the others run far ahead of it."""
    for x in items:
        if x == 0:
            time.sleep(0.05)
        if x % 50 == 0:
            yield x


@pytest.mark.parametrize("backend", ORDERING)
def test_workers_far_ahead_of_a_slow_input_wait_for_it(backend: str, request: pytest.FixtureRequest) -> None:
    """More inputs than the turnstile's window go by while the oldest is worked on."""
    options = _backend(request, backend)
    got = (range(1000) | sparse.options(workers=3, ordered=True) | collect).run(**options)
    assert got == list(range(0, 1000, 50))


@pytest.mark.parametrize("backend", ORDERING)
def test_ordered_stage_reads_an_ordered_stage(backend: str, request: pytest.FixtureRequest) -> None:
    """Its producers end one by one, each giving back a slot it reserved, while others still send."""
    options = _backend(request, backend)
    first = fan(outputs=(1, 0, 2), delays=(0.0, 0.001), bad=frozenset()).options(workers=3, ordered=True)
    then = sleepy_square.options(workers=2, ordered=True)
    expected = [y * y for y in _expected(list(range(90)), (1, 0, 2), frozenset())]
    assert (range(90) | first | then | collect).run(**options) == expected


@sf.map
def first_waits_for_second(x: int, taken: Any) -> int:
    """Input 0 is worked on until the other worker has taken input 1."""
    if x == 1:
        taken.set()
    elif x == 0:
        taken.wait(30)
    return x


@sf.stage
def hold_first_until_second(xs: Iterable[int], arrived: Any) -> Iterator[int]:
    """Output 0 is held (its slot with it) until the other worker has output 1 (-1: it never came)."""
    for x in xs:
        if x == 1:
            arrived.set()
        yield -1 if x == 0 and not arrived.wait(10) else x


@pytest.mark.parametrize("backend", [name for name in PROCESS_BACKENDS if name != "inline"])
def test_a_map_input_is_done_as_its_output_leaves(backend: str, request: pytest.FixtureRequest) -> None:
    """The worker that sent output 0 then waits for a slot, held downstream until output 1
    arrives: output 1 must not wait for that worker's next pull to take its turn."""
    parallel_opts = _backend(request, backend) if backend in BACKENDS else dict(PROCESS_BACKENDS[backend])
    context = mp_context(parallel_opts)
    taken, arrived = context.Event(), context.Event()
    flow = (
        range(4)
        | first_waits_for_second(taken=taken).options(workers=2, packets_in_flight=2, ordered=True)
        | hold_first_until_second(arrived=arrived).options(workers=2)
        | collect
    )
    assert sorted(flow.run(**parallel_opts)) == [0, 1, 2, 3]


def test_ordered_is_for_processors() -> None:
    with pytest.raises(sf.OptionError, match="ordered=True"):
        collect.options(ordered=True)


# -- batches -----------------------------------------------------------------------------------


@sf.stage
def lists(batches: Iterable[list[int]]) -> list[list[int]]:
    return list(batches)


def test_batch_groups_by_size_and_unbatch_undoes_it(opts: dict[str, Any]) -> None:
    assert (range(7) | sf.batch(3) | lists).run(**opts) == [[0, 1, 2], [3, 4, 5], [6]]
    assert (range(7) | sf.batch(3) | sf.unbatch() | collect).run(**opts) == list(range(7))
    assert (range(0) | sf.batch(3) | lists).run(**opts) == []


@sf.stage
def trickle(n: int, pause_after: int, pause: float) -> Iterator[int]:
    for i in range(n):
        yield i
        if i == pause_after:
            time.sleep(pause)


@sf.stage
def arrivals(batches: Iterable[list[int]]) -> list[tuple[list[int], float]]:
    started = time.monotonic()
    return [(group, time.monotonic() - started) for group in batches]


def test_batch_flushes_after_max_wait_while_upstream_is_quiet(opts: dict[str, Any]) -> None:
    flow = trickle(n=6, pause_after=2, pause=1.5) | sf.batch(10, max_wait=0.2) | arrivals
    got = flow.run(**opts)
    assert [group for group, _ in got] == ([[0, 1, 2, 3], [4, 5]] if opts["backend"] == "inline" else [[0, 1, 2], [3, 4, 5]])
    if opts["backend"] != "inline":  # no clock runs in the inline chain: checked as items arrive
        assert got[0][1] < 1.0 <= got[1][1]  # the first list left long before the pause ended


def test_batch_options_are_checked() -> None:
    with pytest.raises(sf.OptionError, match="size"):
        sf.batch(0)
    with pytest.raises(sf.OptionError, match="max_wait"):
        sf.batch(2, max_wait=0)


def test_batch_is_generic_at_composition() -> None:
    with pytest.raises(sf.FlowTypeError, match="list\\[list\\[int\\]\\]"):
        range(3) | sf.batch(2) | sf.batch(2) | lists  # noqa: B018
    with pytest.raises(sf.FlowTypeError):
        range(3) | sf.unbatch()  # noqa: B018 - an int is not iterable
    assert (["a", "b", "c"] | sf.batch(2)).run(backend="inline") == [["a", "b"], ["c"]]
