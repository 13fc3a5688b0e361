"""The default start method: workers forked from streamflow's own fork server (issue 12)."""

from __future__ import annotations

import decimal
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
from streamflow._backends._imports import modules_for
from streamflow._plan import build_plan
from tests.stages import count_to, square, total

ROOT = Path(__file__).resolve().parent.parent


def _server_pid() -> int:
    pid = _warm.server_pid()
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
    plan_modules = modules_for(build_plan((count_to(n=1) | square | total).stages))
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
    print(_warm.server_pid(), flush=True)
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
    assert _warm.server_pid() is None
    assert not psutil.pid_exists(server)  # ended and reaped: not even a zombie of ours
    sf.shutdown()  # again: nothing to stop
    assert (count_to(n=4) | square | total).run() == 14
    assert _server_pid() != server


# -- what a __main__ stage needs: imported by the server, once ----------------------------
#
# Each script runs a flow twice with PYTHONPROFILEIMPORTTIME set, which makes
# every process (the caller, the server, the workers) report each module it
# actually imports on stderr.  The module the stage needs, ``fractions``,
# which streamflow never imports, must not be imported again after the first
# run: the server has it, so the second run's workers inherit it.

HEAD = """
    import sys
    from collections.abc import Iterable, Iterator
    import streamflow as sf
"""
RUN_TWICE = """
    for _ in range(2):
        assert sorted(flow.run()) == ["0", "1", "1/2", "3/2"], "the flow's outputs"
        print("-- a run ended", file=sys.stderr, flush=True)
"""
NEEDS_FRACTIONS = {
    "a class stage whose __init__ uses a module": """
        import fractions

        @sf.map(workers=2)
        class Halve:
            def __init__(self) -> None:
                self.half = fractions.Fraction(1, 2)

            def __call__(self, x: int) -> str:
                return str(self.half * x)

        flow = sf.source(range(4)) | Halve()
    """,
    "a closure": """
        import fractions

        def make_halve():
            Fraction = fractions.Fraction

            @sf.map(workers=2)
            def halve(x: int) -> str:
                return str(Fraction(x, 2))
            return halve

        flow = sf.source(range(4)) | make_halve()
    """,
    "a method other than __call__": """
        import fractions

        @sf.map(workers=2)
        class Halve:
            def __call__(self, x: int) -> str:
                return self.halve(x)

            def halve(self, x: int) -> str:
                return str(fractions.Fraction(x, 2))

        flow = sf.source(range(4)) | Halve()
    """,
    "a base class": """
        import fractions

        class Halving:
            @property
            def half(self) -> fractions.Fraction:
                return fractions.Fraction(1, 2)

        @sf.map(workers=2)
        class Halve(Halving):
            def __call__(self, x: int) -> str:
                return str(self.half * x)

        flow = sf.source(range(4)) | Halve()
    """,
    "a module imported inside a method": """
        import fractions as loaded_elsewhere  # the caller has it, under another name

        @sf.map(workers=2)
        class Halve:
            def __call__(self, x: int) -> str:
                import fractions
                return str(fractions.Fraction(x, 2))

        flow = sf.source(range(4)) | Halve()
    """,
    "a constant, an instance of a __main__ class": """
        import fractions

        class Halver:
            def halve(self, x: int) -> str:
                return str(fractions.Fraction(x, 2))

        @sf.map(workers=2)
        def halve(x: int, halver: Halver) -> str:
            return halver.halve(x)

        flow = sf.source(range(4)) | halve(halver=Halver())
    """,
}


def _imported(stderr: str, module: str) -> list[int]:
    """The runs (0: before the first had ended) during which some process imported ``module``."""
    runs, seen = 0, []
    for line in stderr.splitlines():
        if line.startswith("-- a run ended"):
            runs += 1
        elif line.startswith("import time:") and line.rsplit("|", 1)[-1].strip() == module:
            seen.append(runs)
    return seen


@pytest.mark.parametrize("shape", list(NEEDS_FRACTIONS))
def test_what_a_main_stage_needs_is_imported_by_the_server(shape: str, tmp_path: Path) -> None:
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(HEAD) + textwrap.dedent(NEEDS_FRACTIONS[shape]) + textwrap.dedent(RUN_TWICE))
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONPROFILEIMPORTTIME": "1"}, cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert _imported(done.stderr, "streamflow")  # what PYTHONPROFILEIMPORTTIME shows is there
    assert set(_imported(done.stderr, "fractions")) == {0}  # by the caller; never again after the first run


def test_the_modules_a_main_stage_refers_to_are_found() -> None:
    namespace: dict[str, object] = {"__name__": "__main__"}
    exec(  # noqa: S102 - a stage defined the way a script defines it
        textwrap.dedent("""
            import xml.dom.minidom
            from decimal import Decimal
            import streamflow as sf

            @sf.map
            def parse(text: str) -> str:
                return xml.dom.minidom.parseString(text).documentElement.tagName + str(Decimal(1))
        """),
        namespace,
    )
    found = modules_for(build_plan((sf.source(["<a/>"]) | namespace["parse"]).stages))  # type: ignore[operator]
    assert "xml.dom.minidom" in found  # through the chain xml.dom.minidom.parseString
    assert "decimal" in found  # where the class imported by name comes from
    assert "__main__" not in found


PICKY = """
import os
if os.environ.get("PICKY_CALLER") != str(os.getpid()):  # imports in the caller only, exits elsewhere
    raise SystemExit(3)
"""


@sf.map(workers=2)
def maybe_picky(x: int) -> int:
    if x < 0:
        import picky  # type: ignore[import-not-found]  # noqa: F401 - never reached: the server is asked to import it
    return x


def test_a_module_that_exits_on_import_in_the_server_does_not_break_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "picky.py").write_text(PICKY)
    monkeypatch.setenv("PICKY_CALLER", str(os.getpid()))
    monkeypatch.syspath_prepend(str(tmp_path))
    import picky  # noqa: F401

    assert "picky" in modules_for(build_plan((sf.source(range(4)) | maybe_picky).stages))
    assert sorted((sf.source(range(4)) | maybe_picky).run()) == [0, 1, 2, 3]
    assert sorted((sf.source(range(4)) | maybe_picky).run()) == [0, 1, 2, 3]
    sys.modules.pop("picky", None)


def test_the_look_at_a_long_chain_of_constants_stops_within_its_budget() -> None:
    class Link:  # a class of a function's own travels by value, as one of __main__ does
        def __init__(self, rest: object) -> None:
            self.rest = rest

        def decimal(self) -> object:
            return decimal.Decimal(1)

    chain: object = None
    for _ in range(100_000):  # far deeper than the interpreter's recursion limit
        chain = Link(chain)

    @sf.map
    def keep(x: int, chain: object) -> int:
        return x

    started = time.perf_counter()
    found = modules_for(build_plan((sf.source(range(2)) | keep(chain=chain)).stages))
    assert time.perf_counter() - started < 1.0
    assert "decimal" in found
