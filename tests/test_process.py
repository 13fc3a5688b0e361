"""The process backend: crashes, transport, start methods, signals (SPEC 4, 6, 7)."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import psutil
import pytest

import streamflow as sf
from tests.process_stages import (
    array_sums,
    arrays,
    check_shared,
    crash_at,
    ignore_sigterm,
    modify_first,
    odd_arrays,
    passthrough,
    slow_to_finish,
    twice_referenced,
    use_primitives,
    yield_bytes,
    yield_unpicklable,
)
from tests.conftest import mp_context
from tests.stages import add, collect, count_to, forever, square, total

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("how", "expected"),
    [
        ("sigkill", "was killed by SIGKILL"),
        ("os_exit", "exited with code 3"),
        ("sys_exit", "called sys.exit(0)"),
        ("segfault", "was killed by SIGSEGV"),
    ],
)
def test_a_crashed_worker_raises_worker_crashed(process_opts: dict[str, Any], how: str, expected: str) -> None:
    flow = forever() | crash_at(at=50, how=how).options(workers=2) | total
    started = time.monotonic()
    with pytest.raises(sf.WorkerCrashed, match="worker [12] of 2 of stage 'crash_at'") as caught:
        flow.run(**process_opts)
    assert expected in str(caught.value)
    assert time.monotonic() - started < 5  # a second to notice, plus teardown of a spawn run


def test_an_unpicklable_output_names_stage_and_type(process_opts: dict[str, Any]) -> None:
    with pytest.raises(sf.UnpicklableMessage, match="stage 'yield_unpicklable' yielded a tuple"):
        (count_to(n=5) | yield_unpicklable | collect).run(**process_opts)


def test_a_message_over_max_message_size(process_opts: dict[str, Any]) -> None:
    flow = count_to(n=3) | yield_bytes(size=5000).options(max_message_size=4096) | collect
    with pytest.raises(sf.MessageTooLarge, match=r"stage 'yield_bytes' yielded a message of 5,\d+ bytes, over its max_message_size=4,096"):
        flow.run(**process_opts)


@pytest.mark.parametrize("shared_buffer", [False, True])
def test_large_arrays_with_max_message_size(process_opts: dict[str, Any], shared_buffer: bool) -> None:
    shape = (1000, 1000)  # 4 MB
    source = arrays(n=6, shape=shape).options(max_message_size=5_000_000, shared_buffer=shared_buffer)
    base = np.arange(1_000_000, dtype=np.int32).sum()
    sums = (source | array_sums).run(**process_opts)
    assert sums == [int(base) + i * 1_000_000 for i in range(6)]


def test_large_arrays_without_max_message_size(process_opts: dict[str, Any]) -> None:
    sums = (arrays(n=4, shape=(2000, 1000)) | array_sums).run(**process_opts)
    base = int(np.arange(2_000_000, dtype=np.int32).sum())
    assert sums == [base + i * 2_000_000 for i in range(4)]


def test_arrays_reach_the_caller_writable(process_opts: dict[str, Any]) -> None:
    for big in (False, True):
        got = (arrays(n=2, shape=(300, 300) if big else (3, 3)) | passthrough).run(**process_opts)
        assert all(a.flags.writeable for a in got)
        got[0][0, 0] = 7


def test_the_same_array_twice_in_a_message_arrives_once(process_opts: dict[str, Any]) -> None:
    for size, limit in ((10, None), (1_000_000, None), (1000, 100_000)):
        source = twice_referenced(n=5, size=size)
        if limit:
            source = source.options(max_message_size=limit)
        assert (source | modify_first | check_shared).run(**process_opts) == [True] * 5


def test_zero_size_and_non_contiguous_arrays(process_opts: dict[str, Any]) -> None:
    for limit in (None, 10_000):
        stage = odd_arrays if limit is None else odd_arrays.options(max_message_size=limit)
        (message,) = (sf.source([1]) | stage).run(**process_opts)
        grid = np.arange(24, dtype=np.float64).reshape(4, 6) + 1
        assert message["empty"].shape == (0, 3)
        np.testing.assert_array_equal(message["strided"], grid[:, ::2])
        np.testing.assert_array_equal(message["transposed"], grid.T)
        assert message["fortran"].flags.f_contiguous
        assert message["scalar"] == np.float32(1)


def test_thirty_thousand_packets_through_many_workers(process_opts: dict[str, Any]) -> None:
    flow = (
        count_to(n=30_000)
        | square.options(workers=16, packets_in_flight=32)
        | add(k=1).options(workers=4)
        | collect.options(workers=2)
    )
    parts = flow.run(**process_opts)
    assert Counter(x for part in parts for x in part) == Counter(x * x + 1 for x in range(30_000))


def test_multiprocessing_primitives_as_constants(process_opts: dict[str, Any]) -> None:
    ctx = mp_context(process_opts)
    value, array, lock = ctx.Value("q", 0, lock=False), ctx.Array("i", 4, lock=False), ctx.Lock()
    event, queue = ctx.Event(), ctx.Queue()
    sink = use_primitives(value=value, array=array, lock=lock, event=event, queue=queue)
    assert (count_to(n=100) | sink.options(workers=2)).run(**process_opts) and event.is_set()
    assert value.value == sum(range(100))
    assert list(array) == [25, 25, 25, 25]
    assert queue.get(timeout=10) + queue.get(timeout=10) == 100  # each sink worker put its count
    queue.close()
    queue.join_thread()


@pytest.mark.parametrize(("method", "context"), [("spawn", "spawn"), ("warm", "spawn")])
def test_primitives_from_another_context_get_a_clear_error(method: str, context: str) -> None:
    event = multiprocessing.get_context("fork").Event()
    with pytest.raises(sf.StreamflowError, match=rf"can hand them to {method} workers: multiprocessing.get_context\('{context}'\)"):
        (count_to(n=3) | use_primitives(value=1, array=[0], lock=event, event=event, queue=None)).run(
            backend="process", start_method=method
        )


def test_closures_and_lambdas_travel_by_value(process_opts: dict[str, Any]) -> None:
    offset = 100

    @sf.stage
    def shift(xs: Any, fn: Any) -> Any:
        for x in xs:
            yield fn(x) + offset

    shift_typed = sf.stage(_annotate(shift.fn))
    assert (count_to(n=3) | shift_typed(fn=lambda x: x * 2) | collect).run(**process_opts) == [100, 102, 104]


def _annotate(fn: Any) -> Any:
    from collections.abc import Iterable, Iterator

    fn.__annotations__ = {"xs": Iterable[int], "fn": Any, "return": Iterator[int]}
    return fn


def test_forkserver_runs_a_flow() -> None:
    assert (count_to(n=100) | square | total).run(start_method="forkserver") == sum(x * x for x in range(100))


def test_shutdown_timeout_grace_then_kill() -> None:
    flow = count_to(n=10) | slow_to_finish.options(workers=2) | ignore_sigterm_sink()
    started = time.monotonic()
    with pytest.raises(ValueError, match="stop the flow"):
        flow.run(start_method="fork", shutdown_timeout=0.3)
    assert time.monotonic() - started < 5  # 0.3 s grace, SIGTERM ignored, then SIGKILL


def ignore_sigterm_sink() -> Any:
    return ignore_sigterm | total


# -- whole programs: scripts without a main guard, signals to the caller --------------


def _run_script(tmp_path: Path, body: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(body))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=tmp_path
    )


SCRIPT = """
    from __future__ import annotations  # string annotations must resolve in workers too
    import dataclasses, sys
    from collections.abc import Iterable, Iterator
    import streamflow as sf

    print("module level ran", flush=True)   # must print once: workers never re-run it

    @dataclasses.dataclass
    class Point:
        x: int
        y: int

    @sf.stage
    def points(n: int) -> Iterator[Point]:
        for i in range(n):
            yield Point(i, -i)

    @sf.stage(workers=2)
    def flip(ps: Iterable[Point]) -> Iterator[Point]:
        for p in ps:
            assert isinstance(p, Point)
            yield Point(p.y, p.x)

    @sf.stage
    def total_x(ps: Iterable[Point]) -> int:
        return sum(p.x for p in ps)

    result = (points(n=10) | flip | total_x).run(start_method=sys.argv[1])
    items = list((points(n=3) | flip).iter(start_method=sys.argv[1]))
    assert all(type(p) is Point for p in items), items
    print("result", result, sorted(p.x for p in items))
"""


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_a_script_without_main_guard_and_its_own_message_class(tmp_path: Path, method: str) -> None:
    done = _run_script(tmp_path, SCRIPT, method)
    assert done.returncode == 0, done.stderr
    assert "leaked" not in done.stderr  # no resource_tracker warning about semaphores
    assert done.stdout.count("module level ran") == 1
    assert "result -45 [-2, -1, 0]" in done.stdout


NESTED = """
import dataclasses
from collections.abc import Iterable, Iterator
import streamflow as sf

class Outer:
    @dataclasses.dataclass
    class Inner:
        label: str

@sf.stage
def inners(n: int) -> Iterator[Outer.Inner]:
    for i in range(n):
        yield Outer.Inner(str(i))

@sf.stage
def kept(xs: Iterable[Outer.Inner]) -> list:
    return [(x, repr(x)) for x in xs]
"""


def test_a_class_nested_in_one_of_main_keeps_its_name(process_opts: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """Built in a worker and sent to the caller: by the name ``Outer.Inner``, not ``Inner``."""
    import types

    main = types.ModuleType("__main__")
    exec(compile(textwrap.dedent(NESTED), "<cell>", "exec"), main.__dict__)
    monkeypatch.setitem(sys.modules, "__main__", main)
    out = (main.inners(n=2) | main.kept).run(**process_opts)
    assert out == [(main.Outer.Inner("0"), "Outer.Inner(label='0')"), (main.Outer.Inner("1"), "Outer.Inner(label='1')")]
    assert all(type(x) is main.Outer.Inner for x, _ in out)


KILL_SCRIPT = """
    import sys
    from collections.abc import Iterable, Iterator
    import streamflow as sf
    from tests.stages import forever

    @sf.stage
    def big(xs: Iterable[int]) -> Iterator[bytes]:
        for x in xs:
            if x == 20:
                print("workers", flush=True)
            yield bytes(3_000_000)  # over the default slot: one segment a message

    @sf.stage
    def drop(xs: Iterable[bytes]) -> int:
        return sum(len(x) for x in xs)

    (forever() | big.options(workers=2) | drop).run(start_method=sys.argv[1])
"""


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_a_killed_caller_leaves_no_worker_and_no_segment(tmp_path: Path, method: str) -> None:
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(KILL_SCRIPT))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, str(script), method], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "workers"
        workers = psutil.Process(proc.pid).children(recursive=True)
        proc.kill()
        proc.wait(30)
    finally:
        proc.kill()
        proc.stdout.close()  # type: ignore[union-attr]
    gone, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive, f"workers survived: {alive}"
    leftovers = [n for n in os.listdir("/dev/shm") if f"sf-{proc.pid}-" in n]
    assert not leftovers


def test_messages_of_growing_size_without_max_message_size(process_opts: dict[str, Any]) -> None:
    flow = sf.source([10, 200_000, 3_000_000, 50, 5_000_000, 1_000_000]) | sized_bytes | lengths
    assert flow.run(**process_opts) == [10, 200_000, 3_000_000, 50, 5_000_000, 1_000_000]


@sf.stage
def sized_bytes(sizes: Iterable[int]) -> Iterator[bytes]:
    for size in sizes:
        yield bytes(range(256)) * (size // 256) + bytes(size % 256)


@sf.stage
def lengths(chunks: Iterable[bytes]) -> list[int]:
    out = []
    for chunk in chunks:
        assert chunk[:256] == bytes(range(256))[: len(chunk)] or len(chunk) < 256
        out.append(len(chunk))
    return out


def test_too_little_shared_memory_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    def no_space(fd: int, offset: int, length: int) -> None:
        if length > 1_000_000:
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", no_space)
    with pytest.raises(sf.StreamflowError, match=r"not enough shared memory for a 3,000,\d+-byte message of stage 'sized_bytes': it needs 3,145,728 bytes"):
        (sf.source([3_000_000]) | sized_bytes | lengths).run(start_method="fork")
    with pytest.raises(sf.StreamflowError, match=r"not enough shared memory for edge 'sized_bytes' \(packets_in_flight=2 x max_message_size=4,000,000 bytes\)"):
        (sf.source([1]) | sized_bytes.options(max_message_size=4_000_000) | lengths).run(start_method="fork")
