"""Reliability: many randomized flows with injected faults (marker ``stress``).

Run with ``python3 -m pytest -m stress`` (``STREAMFLOW_STRESS_RUNS`` sets how
many scenarios; default 240; ``STREAMFLOW_POLICY_RUNS``,
``STREAMFLOW_RAY_POLICY_RUNS``, ``STREAMFLOW_HANDOFF_RUNS`` and
``STREAMFLOW_ORDER_RUNS`` those of the other kinds).  Each scenario is its own test, so the leak guard checks every
run, and each is bounded by a timeout: a hang fails.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import warnings
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

import pytest

import streamflow as sf

from .conftest import BACKENDS, _backend
from .test_order import _expected, collect, fan

pytestmark = [pytest.mark.stress, pytest.mark.timeout(120)]

RUNS = int(os.environ.get("STREAMFLOW_STRESS_RUNS", "240"))
SETUPS: list[dict[str, Any]] = [
    {"backend": "inline"},
    {"backend": "thread"},
    {"backend": "process", "start_method": "fork"},
    {"backend": "process", "start_method": "spawn"},
    {"backend": "process", "start_method": "forkserver"},
]
LIMIT = 16 * 1024


@sf.stage
def numbers(values: list[int], size: int) -> Iterator[tuple[int, bytes]]:
    for value in values:
        yield value, bytes(size)


@sf.stage
def step(items: Iterable[tuple[int, bytes]], op: str, arg: int, fault: str, at: int) -> Iterator[tuple[int, Any]]:
    for value, payload in items:
        if value == at:
            if fault == "raise":
                raise ValueError(f"injected at {value}")
            if fault == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            if fault == "exit":
                os._exit(9)
            if fault == "oversize":
                payload = bytes(2 * LIMIT)
            if fault == "unpicklable":
                payload = threading.Lock()
        if op == "map":
            yield (value * arg + 1) % 997, payload
        elif op == "filter":
            if value % arg:
                yield value, payload
        else:
            for _ in range(arg):
                yield value, payload


@sf.stage
def values_only(items: Iterable[tuple[int, Any]]) -> list[int]:
    return [value for value, _ in items]


def _plain(values: list[int], ops: list[tuple[str, int]]) -> list[list[int]]:
    """The values reaching each stage, and (last) the output."""
    seen = [values]
    for op, arg in ops:
        if op == "map":
            values = [(v * arg + 1) % 997 for v in values]
        elif op == "filter":
            values = [v for v in values if v % arg]
        else:
            values = [v for v in values for _ in range(arg)]
        seen.append(values)
    return seen


def _scenario(seed: int) -> tuple[dict[str, Any], Any, Any, list[int]]:
    """Run options, the flow, the expected error type (or None) and the expected output."""
    rnd = random.Random(seed)
    setup = dict(SETUPS[seed % len(SETUPS)])
    process = setup["backend"] == "process"
    values = [rnd.randrange(997) for _ in range(rnd.randrange(0, 400))]
    ops = [
        rnd.choice([("map", rnd.randint(1, 9)), ("filter", rnd.randint(2, 4)), ("flat", rnd.randint(0, 2))])
        for _ in range(rnd.randint(1, 3))
    ]
    seen = _plain(values, ops)
    size = rnd.choice([0, 100, 4000, 12000])
    limited = process and rnd.random() < 0.5
    faults = ["none", "none", "raise"] + (["kill", "exit", "unpicklable"] + (["oversize"] if limited else []) if process else [])
    fault = rnd.choice(faults)
    where = rnd.randrange(len(ops))
    reach = seen[where]
    at = rnd.choice(reach) if reach and fault != "none" else -1
    op, arg = ops[where]
    emitted = op == "map" or (op == "filter" and at % arg != 0) or (op == "flat" and arg > 0)
    if fault in ("oversize", "unpicklable") and not emitted:
        at = -1  # the bad payload is dropped by the stage itself: nothing to detect
    expected_error = None if at < 0 else {
        "raise": ValueError,
        "kill": sf.WorkerCrashed,
        "exit": sf.WorkerCrashed,
        "oversize": sf.MessageTooLarge,
        "unpicklable": sf.UnpicklableMessage,
    }[fault]
    source = numbers(values=values, size=size)
    if limited:
        source = source.options(max_message_size=LIMIT)
    flow: Any = source
    for index, (op, arg) in enumerate(ops):
        workers = rnd.randint(1, 3)
        stage = step(op=op, arg=arg, fault=fault if index == where else "none", at=at)
        stage = stage.options(workers=workers, packets_in_flight=workers + rnd.randint(0, 4))
        if limited:
            stage = stage.options(max_message_size=LIMIT)
        flow = flow | stage
    sink_workers = rnd.randint(1, 2)
    flow = flow | values_only.options(workers=sink_workers)
    setup["shutdown_timeout"] = 2.0
    setup["inactivity_timeout"] = 30.0
    return setup, flow, expected_error, seen[-1]


@pytest.mark.parametrize("seed", range(RUNS))
def test_random_flow_with_faults(seed: int) -> None:
    setup, flow, expected_error, expected = _scenario(seed)
    if expected_error is not None:
        with pytest.raises(expected_error):
            flow.run(**setup)
        return
    result = flow.run(**setup)
    got = result if flow.stages[-1].workers == 1 else [v for part in result for v in part]
    if all(stage.workers == 1 for stage in flow.stages):
        assert got == expected
    else:
        assert Counter(got) == Counter(expected)


# -- long streams of small messages: every hand-off intact ---------------------------------------

HANDOFF_RUNS = int(os.environ.get("STREAMFLOW_HANDOFF_RUNS", "60"))


@sf.stage
def records(n: int) -> Iterator[dict[str, Any]]:
    for index in range(n):
        yield {"index": index, "name": "item", "pad": "x" * (index % 50)}


@sf.stage
def intact(items: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for item in items:
        assert item["name"] == "item" and item["pad"] == "x" * (item["index"] % 50), item
        yield item


@sf.stage
def indexes(items: Iterable[dict[str, Any]]) -> list[int]:
    out = []
    for item in items:
        assert item["name"] == "item" and item["pad"] == "x" * (item["index"] % 50), item
        out.append(item["index"])
    return out


@pytest.mark.parametrize("seed", range(HANDOFF_RUNS))
def test_long_streams_of_small_messages_arrive_intact(seed: int) -> None:
    """Thousands of hand-offs a run, where a race on the per-packet path would show: every
    message is checked where it arrives, none is lost or doubled, and one worker keeps order."""
    rnd = random.Random(seed)
    setup = dict(SETUPS[1 + seed % (len(SETUPS) - 1)])  # every backend with edges
    n = rnd.choice([2_000, 20_000])
    workers = rnd.choice([1, 1, 2, 3])
    options = {"packets_in_flight": workers * rnd.choice([1, 2, 8]), "max_message_size": rnd.choice([4096, None])}
    if setup["backend"] == "thread":
        options.pop("max_message_size")
    flow = records(n=n).options(**options) | intact.options(workers=workers, **options) | indexes
    got = flow.run(**setup)
    assert got == list(range(n)) if workers == 1 else sorted(got) == list(range(n))


# -- ordered stages: what one worker gives, whatever the workers' timing -------------------------

ORDER_RUNS = int(os.environ.get("STREAMFLOW_ORDER_RUNS", "100"))


@sf.map
def plus_one(x: int) -> int:
    return x + 1


@pytest.mark.parametrize("seed", range(ORDER_RUNS))
def test_random_ordered_flows_give_what_one_worker_gives(seed: int) -> None:
    """Up to 2,000 items, 0-3 outputs each, skipped failures, tight ``packets_in_flight``, ordered
    stages read by and reading ordered stages (their edges end one producer at a time)."""
    rnd = random.Random(seed)
    setup = dict(SETUPS[1 + seed % (len(SETUPS) - 1)])  # every backend with edges
    n = rnd.choice([0, 1, 5, 50, 300, 2_000])
    outputs = tuple(rnd.choice([0, 1, 1, 2, 3]) for _ in range(rnd.randint(1, 5)))
    delays = tuple(rnd.choice([0.0, 0.0, 0.0, 0.0002, 0.001]) for _ in range(rnd.randint(1, 4))) if n <= 300 else (0.0,)
    bad = frozenset(rnd.sample(range(n), min(n, rnd.randint(0, 3))))
    workers = rnd.randint(2, 4)
    stage = fan(outputs=outputs, delays=delays, bad=bad).options(
        workers=workers, packets_in_flight=workers + rnd.choice([0, 0, 1, 4]), ordered=True, on_error="skip"
    )
    flow: Any = sf.source(range(-1, n - 1)) | plus_one.options(workers=rnd.randint(1, 3), ordered=True) | stage
    expected = _expected(list(range(n)), outputs, bad)
    if rnd.random() < 0.3:
        flow = flow | plus_one.options(workers=rnd.randint(2, 3), ordered=True)
        expected = [y + 1 for y in expected]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sf.FailuresWarning)
        assert (flow | collect).run(**setup, inactivity_timeout=60) == expected


# -- failure policies: bad items that raise, time out or kill their worker ------------------------

POLICY_RUNS = int(os.environ.get("STREAMFLOW_POLICY_RUNS", "1000"))


@sf.stage
def faulty(
    items: Iterable[int], op: str, arg: int, bad: frozenset[int], fault: str, transient: bool, marks: str
) -> Iterator[int]:
    """``step`` on plain ints; an item in ``bad`` fails (once, if ``transient``) before any output."""
    for value in items:
        if value in bad:
            mark = os.path.join(marks, str(value))
            if not (transient and os.path.exists(mark)):
                if transient:
                    open(mark, "w").close()
                if fault == "raise":
                    raise ValueError(f"bad {value}")
                if fault == "kill":
                    os.kill(os.getpid(), signal.SIGKILL)
                if fault == "exit":
                    os._exit(9)
                if fault == "slow":
                    import time

                    time.sleep(20)
        if op == "map":
            yield (value * arg + 1) % 997
        elif op == "filter":
            if value % arg:
                yield value
        else:
            for _ in range(arg):
                yield value


@sf.stage
def ints(values: list[int]) -> Iterator[int]:
    yield from values


@sf.stage
def gather(items: Iterable[int]) -> list[int]:
    return list(items)


def _apply(values: list[int], op: str, arg: int) -> list[int]:
    return _plain(values, [(op, arg)])[-1]


@pytest.mark.parametrize("seed", range(POLICY_RUNS))
def test_random_flow_with_failure_policies(seed: int, tmp_path: Any) -> None:
    """Every item is accounted for: delivered, or listed in ``Run.failures`` once."""
    _policy_scenario(seed, dict(SETUPS[seed % len(SETUPS)]), tmp_path)


RAY_POLICY_RUNS = int(os.environ.get("STREAMFLOW_RAY_POLICY_RUNS", "60"))


@pytest.mark.skipif("ray" not in BACKENDS, reason="the ray extra is not installed")
@pytest.mark.parametrize("seed", range(RAY_POLICY_RUNS))
def test_random_flow_with_failure_policies_on_ray(seed: int, tmp_path: Any, request: pytest.FixtureRequest) -> None:
    """The same on Ray, whose dead workers are replaced through the hub."""
    _policy_scenario(seed, _backend(request, "ray"), tmp_path)


def _policy_scenario(seed: int, setup: dict[str, Any], tmp_path: Any) -> None:
    rnd = random.Random(10_000 + seed)
    process = setup["backend"] in ("process", "ray")  # workers can die alone
    values = rnd.sample(range(997), rnd.randrange(0, 200))
    ops = [rnd.choice([("map", rnd.randint(1, 9)), ("filter", rnd.randint(2, 4)), ("flat", rnd.randint(0, 2))]) for _ in range(rnd.randint(1, 3))]
    where = rnd.randrange(len(ops))
    fault = rnd.choice(["raise", "raise"] + (["kill", "exit", "slow"] if process else []))
    transient = rnd.random() < 0.4
    reaching = values
    for op, arg in ops[:where]:
        reaching = _apply(reaching, op, arg)
    bad = frozenset(rnd.sample(sorted(set(reaching)), min(len(set(reaching)), rnd.randint(0, 4))))
    flow: Any = ints(values=values)
    for index, (op, arg) in enumerate(ops):
        workers = rnd.randint(1, 3)
        options: dict[str, Any] = {"workers": workers, "packets_in_flight": workers + rnd.randint(0, 3)}
        if index == where:
            options.update(retries=1 if transient else rnd.choice([0, 1]), retry_delay=0.0, on_error="skip")
            if fault == "slow":
                options["timeout"] = 0.3
            stage = faulty(op=op, arg=arg, bad=bad, fault=fault, transient=transient, marks=str(tmp_path))
        else:
            stage = faulty(op=op, arg=arg, bad=frozenset(), fault="none", transient=False, marks=str(tmp_path))
        flow = flow | stage.options(**options)
    flow = flow | gather
    setup.update(shutdown_timeout=2.0, inactivity_timeout=30.0)
    expected = values
    for index, (op, arg) in enumerate(ops):
        if index == where and not transient:
            expected = [v for v in expected if v not in bad]
        expected = _apply(expected, op, arg)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sf.FailuresWarning)
        run = flow.start(**setup)
        got = run.result()
    assert Counter(got) == Counter(expected)
    failed = Counter(f.item for f in run.failures)
    if transient:
        assert failed == Counter()
    else:
        assert failed == Counter(v for v in reaching if v in bad)
