"""Message classes of the caller's ``__main__``: shipped once a run, then named by every message.

The flows here are defined in a module that stands for a user's script or
notebook (``__main__``), built with ``exec`` and put in ``sys.modules`` for
the test: classes and stage functions defined in it are ``__main__``'s, as
a notebook's cells are.
"""

from __future__ import annotations

import dataclasses
import datetime
import io
import os
import pickle
import subprocess
import sys
import textwrap
import types
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import streamflow as sf
from streamflow._transport import _main_classes
from streamflow._transport._main_classes import MainClasses
from tests.conftest import BACKENDS, PROCESS_BACKENDS, _backend

FRESH = ["warm", "fork", "spawn", "forkserver", *(["ray"] if "ray" in BACKENDS else [])]

EVENT = """
@dataclasses.dataclass
class Event:
    index: int
    color: Color
    inner: Outer.Inner
    tags: list = dataclasses.field(default_factory=list)

    def version(self) -> str:
        return "first"
"""

MAIN = """
import dataclasses, enum, threading
from collections.abc import Iterable, Iterator
from typing import Any
import cloudpickle
import streamflow as sf

class Color(enum.Enum):
    RED = 1
    BLUE = 2

class Outer:
    @dataclasses.dataclass
    class Inner:
        label: str

""" + EVENT + """
class Unshippable:  # cloudpickle cannot copy a lock: left out, and the run goes on
    lock = threading.Lock()

def helper(x):
    return x

def counting():
    '''Count cloudpickle's by-value pickles in this process from now on: (count, undo).'''
    count = [0]
    original = cloudpickle.Pickler.dump

    def dump(self, obj):
        count[0] += 1
        return original(self, obj)

    cloudpickle.Pickler.dump = dump
    return count, lambda: setattr(cloudpickle.Pickler, "dump", original)

@sf.stage
def events(n: int) -> Iterator[Any]:
    '''n events, then how many messages this worker pickled by value.'''
    count, undo = counting()
    try:
        for i in range(n):
            yield Event(i, Color.RED if i % 2 else Color.BLUE, Outer.Inner(f"e{i}"), [str(i)])
        yield count[0]
    finally:
        undo()

@sf.stage(workers=2)
def recolor(items: Iterable[Any]) -> Iterator[Any]:
    '''Each event with the other color and its class's version; its input's counts, then its own.'''
    count, undo = counting()
    try:
        for item in items:
            if isinstance(item, int):
                yield item
                continue
            assert type(item) is Event and type(item.inner) is Outer.Inner, type(item)
            other = Color.BLUE if item.color is Color.RED else Color.RED
            yield Event(item.index, other, item.inner, item.tags + [item.version()])
        yield count[0]
    finally:
        undo()

@sf.stage
def unchanged(items: Iterable[Any]) -> Iterator[Any]:
    class Local:  # no worker can have it but by value
        pass

    for item in items:
        yield Local() if item == "local" else item

@sf.stage
def collect(items: Iterable[Any]) -> list:
    return list(items)

@sf.stage
def gather(items: Iterable[Any]) -> tuple[list, list]:
    events, counts = [], []
    for item in items:
        (counts if isinstance(item, int) else events).append(item)
    return events, counts
"""

LATER = EVENT.replace('"first"', '"second"')  # the same cell, edited and run again


def _module(source: str) -> types.ModuleType:
    module = types.ModuleType("__main__")
    module.__dict__["__builtins__"] = __builtins__
    exec(compile(textwrap.dedent(source), "<notebook cell>", "exec"), module.__dict__)
    return module


@pytest.fixture
def main(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """A ``__main__`` that defines message classes and stages, as a user's script does."""
    module = _module(MAIN)
    monkeypatch.setitem(sys.modules, "__main__", module)
    return module


@pytest.fixture(params=FRESH)
def fresh_opts(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Every start method, and Ray: most start workers with no ``__main__`` of the caller."""
    if request.param == "ray":
        return _backend(request, "ray")
    return dict(PROCESS_BACKENDS[request.param])


# -- whole runs ------------------------------------------------------------------


def _check(main: types.ModuleType, result: tuple[list[Any], list[int]], n: int, version: str) -> None:
    events, counts = result
    assert sorted(e.index for e in events) == list(range(n))
    assert all(type(e) is main.Event and type(e.inner) is main.Outer.Inner for e in events)
    assert all(e.color is (main.Color.BLUE if e.index % 2 else main.Color.RED) for e in events)
    assert all(e.tags == [str(e.index), version] and e.inner.label == f"e{e.index}" for e in events)
    # No message went by value: its class travelled once, with the run.
    assert counts == [0, 0, 0]


def test_main_classes_arrive_as_the_callers_own_and_by_name(main: types.ModuleType, fresh_opts: dict[str, Any]) -> None:
    n = 30
    _check(main, (main.events(n=n) | main.recolor | main.gather).run(**fresh_opts), n, "first")
    items = list((main.events(n=4) | main.recolor).iter(**fresh_opts))
    assert sorted(type(x).__name__ for x in items) == ["Event"] * 4 + ["int"] * 3
    assert all(type(x) is main.Event for x in items if not isinstance(x, int))


def test_a_class_redefined_between_runs_is_the_new_one(main: types.ModuleType, fresh_opts: dict[str, Any]) -> None:
    """A notebook re-runs a cell: the next run's workers have the new class (Ray's reused ones too)."""
    (main.events(n=3) | main.recolor | main.gather).run(**fresh_opts)
    exec(compile(textwrap.dedent(LATER), "<notebook cell>", "exec"), main.__dict__)
    _check(main, (main.events(n=10) | main.recolor | main.gather).run(**fresh_opts), 10, "second")


def test_messages_the_run_did_not_ship_still_travel(main: types.ModuleType, fresh_opts: dict[str, Any]) -> None:
    """A function of ``__main__`` and a class local to a stage go by value, ``__main__`` as mere data
    goes plain; each arrives as it left."""
    event = main.Event(1, main.Color.RED, main.Outer.Inner("x"))
    items = [main.helper, event, {"module": "__main__"}, main.Color.BLUE, "local"]
    out = (sf.source(items) | main.unchanged | main.collect).run(**fresh_opts)
    assert out[0](3) == 3 and out[1] == event and out[2] == {"module": "__main__"}
    assert out[3] is main.Color.BLUE and type(out[4]).__qualname__ == "unchanged.<locals>.Local"


# -- covers: the sender's test, against what unpickling looks up -------------------


class _Lookups(pickle.Unpickler):
    """Unpickles, noting the ``__main__`` names it looks up."""

    def __init__(self, data: bytes) -> None:
        super().__init__(io.BytesIO(data))
        self.names: list[str] = []

    def find_class(self, module: str, name: str) -> Any:
        if module == "__main__":
            self.names.append(name)
        return super().find_class(module, name)


def _reads_as_shipped(shipped: MainClasses, main: types.ModuleType, data: bytes) -> bool:
    """Whether every ``__main__`` name ``data`` looks up is a shipped class, as shipped."""
    lookups = _Lookups(data)
    lookups.load()
    for name in lookups.names:
        target: Any = main
        for part in name.split("."):
            target = getattr(target, part)
        if name not in shipped.names or not isinstance(target, type):
            return False
    return True


def _pool(main: types.ModuleType) -> list[Any]:
    event = main.Event(1, main.Color.BLUE, main.Outer.Inner("x"))
    return [
        event, event, main.Color.RED, main.Outer.Inner("y"), main.Event, main.Outer.Inner, main.helper,
        "__main__", "Event", "Inner", b"h\x00", b"\x8c\x08__main__\x94", 7, 2.5, None, datetime.date(2024, 1, 2),
        datetime.datetime(2024, 1, 2, 3), "x" * 300, pickle.dumps(event, protocol=5),
    ]


def _messages(main: types.ModuleType) -> st.SearchStrategy[Any]:
    leaves = st.sampled_from(_pool(main))
    return st.recursive(
        leaves,
        lambda inner: st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(st.sampled_from(["a", "__main__", "Event"]), inner, max_size=3),
        max_leaves=12,
    )


def test_covers_only_what_the_workers_have(monkeypatch: pytest.MonkeyPatch) -> None:
    main = _module(MAIN)
    monkeypatch.setitem(sys.modules, "__main__", main)
    shipped = MainClasses.collect()
    exec("class Later:\n    pass\n", main.__dict__)  # defined after the run started
    assert shipped.names == {"Color", "Outer", "Outer.Inner", "Event"}

    @settings(max_examples=300, deadline=None)
    @given(_messages(main) | st.builds(main.Later))
    def check(message: Any) -> None:
        data = pickle.dumps(message, protocol=5)
        if b"__main__" not in data:
            return
        expected = _reads_as_shipped(shipped, main, data)
        assert (shipped._by_bytes(data) or False) <= expected  # it may leave a message to ``_by_memo``
        assert shipped._by_memo(message) == expected  # exact for these
        assert shipped.covers(message, data) == expected

    check()


def test_covers_what_messages_usually_are(main: types.ModuleType) -> None:
    """The shapes messages take pass by their bytes alone (no second pickling)."""
    shipped = MainClasses.collect()
    event = main.Event(1, main.Color.BLUE, main.Outer.Inner("x"), ["a"])
    for message in (event, [event, event], {"event": event, "n": 3}, (main.Color.RED, main.Outer.Inner("y")),
                    [main.Event(i, main.Color.RED, main.Outer.Inner("z")) for i in range(100)]):
        assert shipped._by_bytes(pickle.dumps(message, protocol=5)) is True, message
    for message in (main.helper, [event, main.helper], {"f": main.helper}):
        data = pickle.dumps(message, protocol=5)
        assert not shipped.covers(message, data)


def test_a_redefined_class_is_not_covered(main: types.ModuleType) -> None:
    shipped = MainClasses.collect()
    old = main.Event(1, main.Color.BLUE, main.Outer.Inner("x"))
    exec(compile(textwrap.dedent(LATER), "<notebook cell>", "exec"), main.__dict__)
    new = main.Event(1, main.Color.BLUE, main.Outer.Inner("x"))
    assert not shipped.covers(new, pickle.dumps(new, protocol=5))
    with pytest.raises(pickle.PicklingError):
        pickle.dumps(old, protocol=5)  # plain pickle refuses it: it goes by value


def test_a_worker_installs_the_run_s_classes_only(main: types.ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    """In a process that serves several runs (Ray's), what an earlier run installed goes first."""
    shipped = pickle.loads(pickle.dumps(MainClasses.collect()))  # as a worker receives it
    worker_main = types.ModuleType("__main__")
    worker_main.Stale = type("Stale", (), {})
    monkeypatch.setitem(sys.modules, "__main__", worker_main)
    monkeypatch.setattr(_main_classes, "_installed", {"Stale"})
    shipped.install()
    assert not hasattr(worker_main, "Stale")
    assert {"Event", "Color", "Outer"} <= set(vars(worker_main))
    assert worker_main.Outer.Inner.__qualname__ == "Outer.Inner"
    event = worker_main.Event(1, worker_main.Color.RED, worker_main.Outer.Inner("x"))
    data = pickle.dumps(event, protocol=5)
    assert shipped.covers(event, data) and pickle.loads(data) == event


def _dataclass(index: int) -> type:
    cls = dataclasses.make_dataclass(f"C{index}", [("a", int), ("b", str)])
    cls.__module__ = "__main__"
    return cls


def test_too_much_stays_out(monkeypatch: pytest.MonkeyPatch) -> None:
    main = types.ModuleType("__main__")
    for index in range(5):
        setattr(main, f"C{index}", _dataclass(index))
    main.Big = type("Big", (), {"table": bytes(2 << 20), "__module__": "__main__"})
    monkeypatch.setitem(sys.modules, "__main__", main)
    assert MainClasses.collect().names == {"C0", "C1", "C2", "C3", "C4"}  # not what holds 2 MiB
    monkeypatch.setattr(_main_classes, "_MOST_IN_ALL", 6_000)  # then each class that fits, up to that
    assert 0 < len(MainClasses.collect().names) < 5


# -- a real script: its classes are __main__'s, and no worker runs it ---------------

SCRIPT = MAIN + """
import sys
print("module level ran", flush=True)  # once: workers never run the script
options = {"backend": "ray"} if sys.argv[1] == "ray" else {"start_method": sys.argv[1]}
if sys.argv[1] == "ray":
    import ray
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
events, counts = (events(n=20) | recolor | gather).run(**options)
assert sorted(e.index for e in events) == list(range(20))
assert all(type(e) is Event and type(e.inner) is Outer.Inner and isinstance(e.color, Color) for e in events)
print("counts", sorted(counts), flush=True)
"""


@pytest.mark.timeout(180)
@pytest.mark.parametrize("method", ["warm", "fork", "spawn", "forkserver", *(["ray"] if "ray" in BACKENDS else [])])
def test_a_script_s_message_classes_travel_once(tmp_path: Path, method: str) -> None:
    root = Path(__file__).resolve().parent.parent
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(SCRIPT))
    done = subprocess.run(
        [sys.executable, str(script), method], capture_output=True, text=True, timeout=170, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("module level ran") == 1
    assert "counts [0, 0, 0]" in done.stdout
