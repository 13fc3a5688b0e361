"""What the caller sees, from scripts run as users run them (SPEC 7, issue 10).

Classes, stages, logging and warning settings defined in the script's own
``__main__``; errors, results, log records and warnings coming back as if
the stages had run in the script; signals to the script stopping every
worker, on every backend and start method.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.conftest import ray

ROOT = Path(__file__).resolve().parent.parent

SETUPS: dict[str, dict[str, Any]] = {
    "inline": {"backend": "inline"},
    "thread": {"backend": "thread"},
    "warm": {"backend": "process"},
    "fork": {"backend": "process", "start_method": "fork"},
    "spawn": {"backend": "process", "start_method": "spawn"},
    "forkserver": {"backend": "process", "start_method": "forkserver"},
}
if ray is not None:
    SETUPS["ray"] = {"backend": "ray"}
PROCESS_METHODS = ["warm", "fork", "spawn", "forkserver"]


def _script(tmp_path: Path, body: str) -> Path:
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(body))
    return script


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def _run(script: Path, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True, text=True, timeout=timeout, env=_env(), cwd=script.parent,
    )


MAIN_SCRIPT = """
    import dataclasses, io, json, logging, sys, traceback, warnings
    from collections.abc import Iterable, Iterator
    import streamflow as sf

    class MyError(ValueError):
        pass

    class NeedsTwo(Exception):
        def __init__(self, code, detail):
            super().__init__(f"{code}: {detail}")

    class Noisy(UserWarning):
        pass

    @dataclasses.dataclass(frozen=True)
    class Point:
        x: int
        y: int

    log = logging.getLogger("app")

    @sf.stage(workers=2)
    def points(xs: Iterable[int]) -> Iterator[Point]:
        for x in xs:
            log.info("point %d", x)
            log.debug("hidden %d", x)
            warnings.warn("noisy", Noisy)  # the same place, every item
            yield Point(x, x)

    @sf.stage
    def keep(ps: Iterable[Point]) -> list[Point]:
        return list(ps)

    @sf.stage
    def explode(xs: Iterable[int], kind: str) -> Iterator[int]:
        for x in xs:
            if x == 2:
                raise MyError("bad 2") if kind == "mine" else NeedsTwo(7, "detail")
            yield x

    @sf.stage
    def total(xs: Iterable[int]) -> int:
        return sum(xs)

    options = json.loads(sys.argv[1])
    if options["backend"] == "ray":
        import ray
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    lines = io.StringIO()
    handler = logging.StreamHandler(lines)
    handler.setFormatter(logging.Formatter("%(levelname)s|%(streamflow_stage)s|%(message)s"))
    logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel(logging.INFO)

    report = {}
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("default")
        result = (sf.source(range(6)) | points | keep).run(**options)
        items = list((sf.source(range(3)) | points).iter(**options))
    report["sink_result"] = all(type(p) is Point for p in result) and Point(1, 1) in result
    report["open_items"] = all(isinstance(p, Point) for p in items) and Point(2, 2) in items
    report["warnings"] = [
        [str(w.message), w.category is Noisy, w.filename == __file__, w.lineno] for w in shown
    ]
    try:
        (sf.source(range(5)) | explode(kind="mine") | total).run(**options)
    except MyError as error:
        report["mine"] = {
            "same_type": type(error) is MyError,
            "notes": error.__notes__,
            "shown": "".join(traceback.format_exception(error)),
        }
    try:
        (sf.source(range(5)) | explode(kind="two") | total).run(**options)
    except sf.StageError as error:
        report["two"] = str(error)
    except NeedsTwo:
        report["two"] = "itself"
    report["log"] = lines.getvalue().splitlines()
    print(json.dumps(report))
"""


@pytest.mark.parametrize("setup", list(SETUPS))
def test_main_classes_logs_and_warnings_come_back_as_local_ones(tmp_path: Path, setup: str) -> None:
    if setup == "ray":
        pytest.importorskip("ray")
    done = _run(_script(tmp_path, MAIN_SCRIPT), json.dumps(SETUPS[setup]), timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["sink_result"] and report["open_items"]
    # Shown once per place, however many workers and runs, with the script's file and line.
    line = textwrap.dedent(MAIN_SCRIPT).splitlines().index('        warnings.warn("noisy", Noisy)  # the same place, every item') + 1
    assert report["warnings"] == [["noisy", True, True, line]]
    mine = report["mine"]
    assert mine["same_type"]
    assert mine["notes"] == ["the last item this worker received was its #3: 2", "raised in stage 'explode' (worker 1 of 1)"]
    assert 'raise MyError("bad 2") if kind == "mine" else NeedsTwo(7, "detail")' in mine["shown"]
    assert "<dynamic-code>" not in mine["shown"]
    if setup in ("inline", "thread"):
        assert report["two"] == "itself"
    else:
        assert report["two"].startswith("NeedsTwo: 7: detail (it cannot be rebuilt in the caller: ")
        assert "missing 1 required positional argument: 'detail'" in report["two"]
    expected = [f"INFO|points|point {x}" for x in range(6)] + [f"INFO|points|point {x}" for x in range(3)]
    assert sorted(report["log"]) == sorted(expected)  # each once, nothing below INFO


SIGNAL_SCRIPT = """
    import multiprocessing, os, sys
    from collections.abc import Iterable, Iterator
    import streamflow as sf

    @sf.stage
    def forever() -> Iterator[int]:
        i = 0
        while True:
            yield i
            i += 1

    @sf.stage(workers=2, packets_in_flight=2)
    def consume(xs: Iterable[int]) -> Iterator[int]:
        for x in xs:
            if x == 100:
                print("running", os.getpid(), flush=True)
            yield x

    @sf.stage
    def drop(xs: Iterable[int]) -> None:
        for _ in xs:
            pass

    (forever() | consume | drop).run(start_method=sys.argv[1])
"""


@pytest.mark.parametrize("method", PROCESS_METHODS)
@pytest.mark.parametrize(("sig", "status"), [(signal.SIGTERM, -signal.SIGTERM), (signal.SIGINT, -signal.SIGINT)])
def test_a_signal_to_the_caller_reaps_every_worker_before_it_ends(
    tmp_path: Path, method: str, sig: signal.Signals, status: int
) -> None:
    script = _script(tmp_path, SIGNAL_SCRIPT)
    proc = subprocess.Popen(
        [sys.executable, str(script), method], stdout=subprocess.PIPE, text=True, env=_env(), cwd=tmp_path
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("running")
        workers = _workers(proc.pid)
        assert len(workers) >= 4  # forever, two of consume, drop
        proc.send_signal(sig)
        proc.wait(30)
    finally:
        proc.kill()
        proc.stdout.close()  # type: ignore[union-attr]
    assert proc.returncode == status
    # At once: the caller reaped them before it ended, no zombie is left to anyone.
    assert [w.pid for w in workers if psutil.pid_exists(w.pid)] == []
    assert not [n for n in os.listdir("/dev/shm") if f"sf-{proc.pid}-" in n]


_HELPERS = ("forkserver", "resource_tracker", "streamflow._backends._warm")


def _workers(pid: int) -> list[psutil.Process]:
    """The processes under ``pid``, less multiprocessing's own helpers (not a run's to stop);
    under forkserver, workers are the server's children."""
    helpers = {
        child.pid
        for child in psutil.Process(pid).children()
        if any(name in " ".join(child.cmdline()) for name in _HELPERS)
    }
    return [child for child in psutil.Process(pid).children(recursive=True) if child.pid not in helpers]


HANDLER_SCRIPT = textwrap.dedent(SIGNAL_SCRIPT).replace(
    "(forever()", "import signal\nsignal.signal(signal.SIGTERM, lambda *a: sys.exit(7))\n(forever()"
)


def test_an_applications_own_sigterm_handler_runs_instead(tmp_path: Path) -> None:
    script = _script(tmp_path, HANDLER_SCRIPT)
    proc = subprocess.Popen(
        [sys.executable, str(script), "fork"], stdout=subprocess.PIPE, text=True, env=_env(), cwd=tmp_path
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("running")
        workers = _workers(proc.pid)
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    finally:
        proc.kill()
        proc.stdout.close()  # type: ignore[union-attr]
    assert proc.returncode == 7  # its sys.exit(7) ended the run like any error would
    assert [w.pid for w in workers if psutil.pid_exists(w.pid)] == []


STARTUP_SCRIPT = """
    import json, os, sys, threading, time
    from collections.abc import Iterable, Iterator
    import psutil
    import streamflow as sf

    @sf.stage
    def count(n: int) -> Iterator[int]:
        yield from range(n)

    @sf.stage
    def forever() -> Iterator[int]:
        while True:
            yield 1

    @sf.stage(workers=4)
    def double(xs: Iterable[int]) -> Iterator[int]:
        for x in xs:
            yield 2 * x

    @sf.stage
    def total(xs: Iterable[int]) -> int:
        return sum(xs)

    # Python runs at-fork handlers (logging has some) after each fork: a
    # Ctrl-C that lands in one is "ignored" by Python.  Make them slow.
    os.register_at_fork(after_in_parent=lambda: time.sleep(0.002))
    method = sys.argv[1]
    me = psutil.Process()
    began = time.perf_counter()
    (count(n=1) | double | total).run(start_method=method)  # how long a start and an end take
    startup = time.perf_counter() - began
    helpers = {c.pid for c in me.children(recursive=True)}  # multiprocessing's, kept for good
    flow = forever() | double | total
    outcomes = []
    for step in range(int(sys.argv[2])):
        delay = 1.5 * startup * step / int(sys.argv[2])
        timer = threading.Timer(delay, os.kill, (os.getpid(), 2))
        again = threading.Timer(delay + 4, os.kill, (os.getpid(), 2))  # if the first was lost
        began = time.perf_counter()
        try:
            timer.start()
            again.start()
            flow.run(start_method=method, shutdown_timeout=1)
            outcome = "finished"
        except KeyboardInterrupt:
            outcome = "interrupted"
        timer.join()
        again.cancel()
        took = time.perf_counter() - began
        left = [c.pid for c in me.children(recursive=True) if c.pid not in helpers and c.status() != "zombie"]
        shm = [n for n in os.listdir("/dev/shm") if n.startswith((f"sf-{os.getpid()}-", f"sem.sf-{os.getpid()}-"))]
        outcomes.append([round(delay, 3), outcome, round(took, 3), left, shm])
    print(json.dumps(outcomes))
"""


@pytest.mark.timeout(180)
@pytest.mark.parametrize("method", PROCESS_METHODS)
def test_ctrl_c_at_any_moment_of_start_up_stops_the_run(tmp_path: Path, method: str) -> None:
    done = _run(_script(tmp_path, STARTUP_SCRIPT), method, "16", timeout=170)
    assert done.returncode == 0, done.stderr
    outcomes = json.loads(done.stdout.strip().splitlines()[-1])
    for delay, outcome, took, left, shm in outcomes:
        assert outcome == "interrupted", (delay, outcome)
        assert took < delay + 4, (delay, took)  # not stopped by the second Ctrl-C
        assert left == [] and shm == [], (delay, left, shm)
    assert "Exception ignored" not in done.stderr
