"""Random branch blocks give what plain Python gives (SPEC 12), on every backend.

A flow is drawn as plain data (``Spec``): chains of map stages, filters,
stages of many outputs and batches, and blocks (tee, route, zip) nested
in them, each stage with random workers and ``packets_in_flight``; the
same data is evaluated in plain Python.  Unordered blocks give the same
multiset, a zip the same sequence of tuples.
"""

from __future__ import annotations

import collections
import warnings
from collections.abc import Callable
from typing import Any, Union

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import streamflow as sf

from .branch_stages import added, collect, double, evens, fail_skip, inc, neg, parity, thrice
from .conftest import BACKENDS, _backend

EXAMPLES = {"inline": 40, "thread": 30, "warm": 12, "fork": 12, "ray": 4}

# A chain is a list of steps; a step is a stage name with its (workers, extra packets), or a block.
Step = Union[tuple[str, int, int], tuple[str, list["Chain"]]]
Chain = list[Step]

_MAPS: dict[str, tuple[Any, Callable[[int], int]]] = {
    "double": (double, lambda x: 2 * x),
    "neg": (neg, lambda x: -x),
    "inc": (inc, lambda x: x + 1),
}
_BAD = frozenset({3, 17, 40})  # where a "skip" stage fails


def _stage(name: str, workers: int, extra: int) -> Any:
    shape = {"workers": workers, "packets_in_flight": workers + extra}
    if name in _MAPS:
        return _MAPS[name][0].options(**shape)
    if name == "skip":
        return fail_skip(bad=_BAD).options(on_error="skip", **shape)
    if name == "evens":
        return evens.options(**shape)
    if name == "thrice":
        return thrice.options(**shape)
    return sf.batch(4).options(**shape) | sf.unbatch()


def _python(name: str, items: list[int]) -> list[int]:
    if name in _MAPS:
        return [_MAPS[name][1](x) for x in items]
    if name == "skip":
        return [x for x in items if x not in _BAD]
    if name == "evens":
        return [x for x in items if x % 2 == 0]
    if name == "thrice":
        return [x for x in items for _ in range(3)]
    return list(items)  # a batch, then unbatched


def _build(chain: Chain) -> Any:
    flow: Any = None
    for step in chain:
        if len(step) == 3:
            part = _stage(*step)  # type: ignore[misc]
        else:
            kind, branches = step
            built = [_build(branch) for branch in branches]
            if kind == "tee":
                part = sf.tee(*built)
            elif kind == "route":
                part = sf.route(parity, {0: built[0], 1: built[1]})
            else:
                part = sf.zip(*built) | added
        flow = part if flow is None else flow | part
    return flow


def _evaluate(chain: Chain, items: list[int]) -> list[int]:
    for step in chain:
        if len(step) == 3:
            items = _python(step[0], items)  # type: ignore[misc]
            continue
        kind, branches = step
        if kind == "tee":
            items = [y for branch in branches for y in _evaluate(branch, items)]
        elif kind == "route":
            items = _evaluate(branches[0], [x for x in items if x % 2 == 0]) + _evaluate(
                branches[1], [x for x in items if x % 2 == 1]
            )
        else:
            rows = []
            for x in items:
                outs = [_evaluate(branch, [x]) for branch in branches]
                if all(outs):  # a branch that skipped the input: no tuple
                    rows.append(sum(out[0] for out in outs))
            items = rows
    return items


SHAPE = st.tuples(st.integers(1, 2), st.integers(0, 2))
STAGE = st.tuples(st.sampled_from(["double", "neg", "inc", "skip", "evens", "thrice", "batch"]), *[st.integers(1, 2), st.integers(0, 2)])
MAP = st.tuples(st.sampled_from(["double", "neg", "inc", "skip"]), st.integers(1, 2), st.integers(0, 2))


def _chains(depth: int) -> st.SearchStrategy[Chain]:
    steps: st.SearchStrategy[Any] = STAGE
    if depth > 0:
        inner = _chains(depth - 1)
        blocks = st.one_of(
            st.tuples(st.just("tee"), st.lists(inner, min_size=2, max_size=3)),
            st.tuples(st.just("route"), st.lists(inner, min_size=2, max_size=2)),
            st.tuples(st.just("zip"), st.lists(st.lists(MAP, min_size=1, max_size=2), min_size=2, max_size=3)),
        )
        steps = st.one_of(STAGE, blocks)
    return st.lists(steps, min_size=1, max_size=3)


@pytest.mark.parametrize("backend", list(BACKENDS))
@pytest.mark.timeout(600)
def test_random_blocks_give_what_plain_python_gives(backend: str, request: pytest.FixtureRequest) -> None:
    options = _backend(request, backend)

    @settings(max_examples=EXAMPLES[backend], deadline=None, suppress_health_check=list(HealthCheck))
    @given(chain=_chains(2), items=st.lists(st.integers(0, 60), max_size=40))
    def check(chain: Chain, items: list[int]) -> None:
        flow = sf.source(items) | _build(chain) | collect
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", sf.FailuresWarning)
            got = flow.run(**options, inactivity_timeout=60)
        assert collections.Counter(got) == collections.Counter(_evaluate(chain, items)), repr(flow)

    check()
