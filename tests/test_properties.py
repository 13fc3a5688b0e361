"""Property tests: a random flow gives what plain Python gives (STYLE 7)."""

from __future__ import annotations

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
