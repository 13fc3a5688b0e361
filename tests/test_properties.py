"""Property tests: a random flow gives what plain Python gives (STYLE 7)."""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import streamflow as sf
from tests.conftest import BACKENDS, _backend
from tests.stages import collect

EXAMPLES = {"inline": 60, "thread": 40, "warm": 20, "fork": 20, "ray": 3}


@sf.stage
def apply(xs: Iterable[int], op: str, arg: int) -> Iterator[int]:
    for x in xs:
        if op == "map":
            yield (x * arg + 1) % 1000
        elif op == "filter":
            if x % arg:
                yield x
        else:  # flat-map: each item arg times
            for _ in range(arg):
                yield x


def _plain(items: list[int], ops: list[tuple[str, int]]) -> list[int]:
    for op, arg in ops:
        if op == "map":
            items = [(x * arg + 1) % 1000 for x in items]
        elif op == "filter":
            items = [x for x in items if x % arg]
        else:
            items = [x for x in items for _ in range(arg)]
    return items


operations = st.one_of(
    st.tuples(st.just("map"), st.integers(1, 7)),
    st.tuples(st.just("filter"), st.integers(2, 5)),
    st.tuples(st.just("flat"), st.integers(0, 3)),
)
layouts = st.tuples(st.integers(1, 3), st.integers(0, 3))  # workers, extra packets in flight
chains = st.lists(st.tuples(operations, layouts), min_size=1, max_size=4)


def _build(chain: list[tuple[tuple[str, int], tuple[int, int]]], one_worker: bool) -> list[Any]:
    stages = []
    for (op, arg), (workers, extra) in chain:
        workers = 1 if one_worker else workers
        stages.append(apply(op=op, arg=arg).options(workers=workers, packets_in_flight=workers + extra))
    return stages


@pytest.mark.parametrize("backend", list(BACKENDS))
@pytest.mark.timeout(300)
def test_random_flows_match_plain_python(backend: str, request: pytest.FixtureRequest) -> None:
    options = _backend(request, backend)

    @settings(max_examples=EXAMPLES[backend], deadline=None, suppress_health_check=list(HealthCheck))
    @given(items=st.lists(st.integers(0, 999), max_size=60), chain=chains, one_worker=st.booleans())
    def check(items: list[int], chain: list[Any], one_worker: bool) -> None:
        flow: Any = sf.source(items)
        for stage in _build(chain, one_worker):
            flow = flow | stage
        expected = _plain(items, [op for op, _ in chain])
        got = (flow | collect).run(**options)
        if one_worker or backend == "inline":
            assert got == expected  # one worker a stage keeps the order
        else:
            assert Counter(got) == Counter(expected)

    check()


@sf.stage
def apply_failing(xs: Iterable[int], op: str, arg: int, bad: frozenset[int]) -> Iterator[int]:
    """``apply``, raising on an item of ``bad`` once its outputs are half given."""
    for x in xs:
        outputs = [(x * arg + 1) % 1000] if op == "map" else [x] if op == "filter" and x % arg else []
        if op == "flat":
            outputs = [x] * arg
        half = len(outputs) // 2
        yield from outputs[:half]
        if x in bad:
            raise ValueError(x)
        yield from outputs[half:]


def _plain_skipping(items: list[int], op: str, arg: int, bad: frozenset[int]) -> list[int]:
    """What a skipping stage delivers: an item in ``bad`` gives only its first half."""
    out: list[int] = []
    for x in items:
        outputs = _plain([x], [(op, arg)])
        out += outputs[: len(outputs) // 2] if x in bad else outputs
    return out


@pytest.mark.parametrize("backend", list(BACKENDS))
@pytest.mark.timeout(300)
def test_skipping_matches_plain_python(backend: str, request: pytest.FixtureRequest) -> None:
    """Under on_error="skip", a flow gives what plain Python gives without the bad items' rest,
    and lists each bad item once."""
    options = _backend(request, backend)

    @settings(max_examples=EXAMPLES[backend], deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        items=st.lists(st.integers(0, 999), max_size=60, unique=True),
        op=operations,
        layout=layouts,
        picks=st.lists(st.integers(0, 59), max_size=6),
        retries=st.integers(0, 1),
    )
    def check(items: list[int], op: tuple[str, int], layout: tuple[int, int], picks: list[int], retries: int) -> None:
        bad = frozenset(items[i] for i in picks if i < len(items))
        workers, extra = layout
        stage = apply_failing(op=op[0], arg=op[1], bad=bad).options(
            workers=workers, packets_in_flight=workers + extra, on_error="skip", retries=retries, retry_delay=0
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", sf.FailuresWarning)
            run = (sf.source(items) | stage | collect).start(**options)
            got = run.result()
        # a retry delivers the first half again before it fails again
        expected = _plain_skipping(items, op[0], op[1], bad)
        expected += [v for x in items if x in bad for v in _plain([x], [op])[: len(_plain([x], [op])) // 2]] * retries
        assert Counter(got) == Counter(expected)
        if workers == 1 and not retries:
            assert got == expected
        assert sorted(f.item for f in run.failures) == sorted(bad)
        assert all(f.attempts == 1 + retries for f in run.failures)

    check()
