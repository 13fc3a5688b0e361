"""The default start method: workers forked from streamflow's own fork server (issue 12)."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import psutil
import pytest

import streamflow as sf
from streamflow._backends import _warm
from streamflow._plan import build_plan
from tests.stages import count_to, square, total

ROOT = Path(__file__).resolve().parent.parent


def _server_pid() -> int:
    pid = _warm._server.pid
    assert pid is not None
    return pid


def test_the_default_start_method_is_the_warm_server_and_it_is_kept() -> None:
    assert (count_to(n=10) | square.options(workers=2) | total).run() == 285
    first = _server_pid()
    workers_parent = set()

    @sf.stage(workers=2)
    def parent(xs: Iterable[int]) -> Iterator[int]:
        for x in xs:
            yield os.getppid()

    for pid in (count_to(n=10) | parent).run():
        workers_parent.add(pid)
    assert workers_parent == {first}  # forked by the server, not by us
    assert _server_pid() == first  # and the same server served both runs


def test_the_modules_of_the_stages_are_imported_ahead() -> None:
    plan_modules = _warm.modules_for(build_plan((count_to(n=1) | square | total).stages))
    assert "tests.stages" in plan_modules
    assert "__main__" not in plan_modules


MODULE = '''
from collections.abc import Iterable, Iterator
import streamflow as sf

@sf.stage(workers=2)
def version(xs: Iterable[int]) -> Iterator[str]:
    for x in xs:
        yield "{version}"
'''


def test_a_changed_and_reloaded_module_is_not_served_stale(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = tmp_path / "changing_stage.py"
    module.write_text(MODULE.format(version="v1"))
    monkeypatch.syspath_prepend(str(tmp_path))
    import changing_stage  # type: ignore[import-not-found]

    assert set((count_to(n=4) | changing_stage.version).run()) == {"v1"}
    before = _server_pid()
    module.write_text(MODULE.format(version="v2"))
    os.utime(module, (time.time() + 5, time.time() + 5))  # a new mtime, whatever the clock's grain
    importlib.reload(changing_stage)
    assert set((count_to(n=4) | changing_stage.version).run()) == {"v2"}
    assert _server_pid() != before  # the server that had v1 imported was replaced
    sys.modules.pop("changing_stage", None)


SCRIPT = """
    import os, sys, threading
    from collections.abc import Iterable, Iterator
    import streamflow as sf
    from streamflow._backends import _warm

    @sf.stage(workers=2)
    def double(xs: Iterable[int]) -> Iterator[int]:
        for x in xs:
            yield 2 * x

    # A thread of the caller's own, busy while the flow starts: fork would copy
    # the process mid-way through it; the server does not care.
    stop = threading.Event()
    threading.Thread(target=stop.wait, daemon=True).start()
    print(sum((sf.source(range(10)) | double).run()), flush=True)
    print(_warm._server.pid, flush=True)
    stop.set()
"""


def test_a_script_leaves_no_server_behind(tmp_path: Path) -> None:
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(SCRIPT))
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    total_line, server_line = done.stdout.split()
    assert total_line == "90"
    server = int(server_line)
    deadline = time.monotonic() + 10
    while psutil.pid_exists(server) and psutil.Process(server).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, "the fork server outlived its caller"
        time.sleep(0.05)


def test_shutdown_stops_the_fork_server_and_the_next_run_starts_one() -> None:
    assert (count_to(n=4) | square | total).run() == 14
    server = _server_pid()
    assert server in {child.pid for child in psutil.Process().children()}
    sf.shutdown()
    assert _warm._server.pid is None
    assert not psutil.pid_exists(server)  # ended and reaped: not even a zombie of ours
    sf.shutdown()  # again: nothing to stop
    assert (count_to(n=4) | square | total).run() == 14
    assert _server_pid() != server
