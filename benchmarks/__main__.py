"""Benchmarks: ``python -m benchmarks [--quick] [--compare pipeline-lib] [--only NAME] [--spin 0,50] ...``.

Workloads (each on the thread backend and on processes under fork and spawn):

- small: small dicts through source -> pass-through -> sink, microseconds
  per message, for (workers, packets_in_flight) in (1,1), (1,8), (2,8), with
  and without ``max_message_size``; next to the wall time, the CPU time
  and voluntary context switches a message costs all the flow's processes
  (``getrusage`` in each, over the same stretch); with one worker on
  processes, a pure-Python reference ring (``ring.py``) as the floor, and
  the same ring with streamflow's backpressure (``strict``: a stage takes
  its next item only once a slot is free; at ``packets_in_flight=1`` the
  plain ring is not in lockstep);
- edges: the same flow over streamflow's shared-memory edges without the
  runtime (no worker loop, counters or supervisor), against the same ring:
  what the transport costs, apart from the runtime;
- large: 40 MB int32 arrays from a source that reuses one array to a sink,
  milliseconds per message, against the floor of one numpy memcpy per hop
  measured in the same run;
- cpu: a pure-Python stage of about 2 ms per item, 1 and 2 workers;
- branches: a tee, a route and a merge of two branches against one hop,
  and a zip of two map stages against a chain through one, microseconds an
  input item (``branches.py``);
- cpu-flow: a 2-worker stage of 1 ms an item between five light stages
  (seven processes on two cores), whole runs against ``Pool(2).imap``:
  what waiting costs a CPU-bound flow (``cpu_flow.py``);
- idle: CPU milliseconds the flow's stages spend while a slow source makes
  them wait 10 s for its second item (what spinning costs an idle flow);
- startup: a trivial 3-stage flow, started and torn down, in milliseconds;
- startup-heavy: a 5-worker flow whose stage module imports scikit-learn,
  its first run in a new interpreter and its later runs, under each start
  method (the default, warm, against fork's time as its floor);
  startup-heavy-main: the same with the stages defined in a script run as
  ``__main__`` (``heavy_main.py``), a function stage and a class stage;
- main-class: a dataclass message defined in the script's ``__main__``
  (``main_class.py``, run as a script), microseconds a hop from worker to
  worker, under every start method against fork's (the floor: forked
  workers have the caller's ``__main__``);
- rss: peak resident memory of caller and workers over many small messages;
- policy: a map stage's cost per message with a failure policy set that
  never acts (skip, retries, timeout) against none, and the time a run
  loses when a worker is killed and replaced (on Ray too, in the ray rows);
- ordered: ``ordered=True`` against unordered with 2 workers (small
  messages, and about 200 us of work each), run in turns (at least 41
  pairs of small runs and 11 of medium ones; 5 and 3 with ``--quick``): the
  note gives the median of ordered over unordered across the pairs and
  their middle half; batch: the latency from an
  item's arrival to its batch's emission under ``max_wait`` with a slow source;
- io: 2,000 calls of 50 ms simulated I/O, on one worker of an ``async def``
  map stage at ``concurrency=100`` against a sync stage on 100 thread
  workers, wall time against the ideal (1 s) and CPU seconds.

Throughput is timed from the first to the last packet at the sink, so it
excludes start-up (measured on its own).  Each number is the best of a few
repeats.  ``--compare pipeline-lib`` runs the same workloads on pipeline-lib
in the same run and adds its number and the ratio (theirs / ours: above 1,
streamflow is faster).  ``--spin 0,50`` measures every streamflow row once
per spin budget (``STREAMFLOW_SPIN_US``), interleaved, so that the
budgets meet the same noise.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import multiprocessing
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any, cast

from streamflow._options import StartMethod
from streamflow._transport._spin import SPIN_ENV

from . import branches, cpu_flow, io, order, policies
from . import workloads as w
from .ring import run_edges, run_ring

__all__ = ["Row", "main", "run_benchmarks"]

METHODS: list[tuple[str, Any]] = [  # (backend, start method)
    ("thread", None),
    ("process", "fork"),
    ("process", "spawn"),
]
LARGE_MB = 40
LARGE_LIMIT = LARGE_MB * 1024 * 1024 + 64 * 1024  # the array plus pickle framing


@dataclasses.dataclass
class Row:
    """One measured configuration."""

    workload: str
    config: str
    unit: str
    ours: float
    theirs: float | None = None
    floor: float | None = None
    strict: float | None = None
    """The floor with streamflow's backpressure (``ring.py``, ``strict``)."""
    note: str = ""
    usage: dict[str, tuple[float, float]] = dataclasses.field(default_factory=dict)
    """(CPU us, voluntary context switches) per message, for "ours", "theirs", "floor", "strict"."""

    @property
    def ratio(self) -> float | None:
        """pipeline-lib's cost over ours (above 1: we are faster); speed-up for cpu rows."""
        if self.theirs is None or not self.ours:
            return None
        return self.theirs / self.ours

    @property
    def over_floor(self) -> float | None:
        return None if self.floor is None or not self.floor else self.ours / self.floor

    @property
    def over_strict(self) -> float | None:
        return None if self.strict is None or not self.strict else self.ours / self.strict


@dataclasses.dataclass
class Sample:
    """One measurement: the time per message, and what it cost in CPU and switches."""

    value: float
    cpu: float | None = None
    switches: float | None = None


Measure = Callable[[], "float | Sample"]


@dataclasses.dataclass
class Settings:
    quick: bool
    compare: bool
    only: str | None
    spins: list[str | None] = dataclasses.field(default_factory=lambda: [None])
    """Spin budgets to measure streamflow with (microseconds); None: as the environment says."""
    best_of: int | None = None

    @property
    def repeats(self) -> int:
        return self.best_of or (1 if self.quick else 3)


def _label(backend: str, method: str | None) -> str:
    return backend if method is None else f"{backend}/{method}"


def _stamps(method: str | None) -> Any:
    return multiprocessing.get_context(method or "fork").Array("d", 2, lock=False)


def _best(repeats: int, measure: Callable[[], float]) -> float:
    return min(measure() for _ in range(repeats))


@contextlib.contextmanager
def _spin(budget: str | None) -> Iterator[None]:
    """Run with ``STREAMFLOW_SPIN_US=budget`` (read where edges are built, in this process)."""
    old = os.environ.get(SPIN_ENV)
    if budget is not None:
        os.environ[SPIN_ENV] = budget
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(SPIN_ENV, None)
        else:
            os.environ[SPIN_ENV] = old


def _with_spin(config: str, budget: str | None) -> str:
    return config if budget is None else f"{config} spin={budget}"


def _pipeline_lib() -> Any:
    try:
        import pipeline_lib
    except ImportError:
        sys.exit("--compare pipeline-lib needs it installed: python3 -m pip install -e '.[dev]'")
    return pipeline_lib


def _pl_run(tasks: list[Any], backend: str, method: str | None) -> None:
    parallelism = "thread" if backend == "thread" else f"process-{method}"
    # Its checker cannot read postponed annotations; checking costs nothing at run time anyway.
    _pipeline_lib().execute(tasks, parallelism=parallelism, type_check_pipeline=False)


# -- small messages -----------------------------------------------------------------


def _meter(method: str | None) -> Any:
    return multiprocessing.get_context(method or "fork").Array("d", w.METER_SIZE)


def _small(settings: Settings) -> Iterator[Row]:
    n = 5_000 if settings.quick else 20_000
    for backend, method in METHODS:
        for workers, pif in ((1, 1), (1, 8), (2, 8)):
            for limit in (None, 4096):
                config = f"{_label(backend, method)} w={workers} pif={pif} mms={limit or '-'}"
                # On threads every stage shares the sink's process: its usage covers them all.
                each = backend != "thread"

                def ours() -> Sample:
                    meter = _meter(method)
                    opts: dict[str, Any] = {"packets_in_flight": pif, "max_message_size": limit}
                    flow = (
                        w.small_source(n=n, meter=meter if each else None).options(**opts)
                        | w.small_pass(meter=meter if each else None).options(workers=workers, **opts)
                        | w.small_sink(stamps=meter, metering=True)
                    )
                    flow.run(backend=backend, start_method=method)
                    return Sample(*w.per_message(meter, n))

                def theirs() -> Sample:
                    Task = _pipeline_lib().PipelineTask
                    meter = _meter(method)
                    opts = {"packets_in_flight": pif, "max_message_size": limit}
                    _pl_run(
                        [
                            Task(w.pl_small_source, {"n": n, "meter": meter if each else None}, **opts),
                            Task(w.pl_small_pass, {"meter": meter if each else None}, num_workers=workers, **opts),
                            Task(w.pl_small_sink, {"stamps": meter}),
                        ],
                        backend,
                        method,
                    )
                    return Sample(*w.per_message(meter, n))

                floors = _rings(n, pif) if backend == "process" and workers == 1 else (None, None)
                rows = _rows(settings, "small", config, "us/msg", ours, theirs, *floors)
                for row in rows:
                    if row.floor is not None:
                        row.note = "floor, strict = reference ring (fork), without and with backpressure"
                yield from rows


def _rings(n: int, pif: int) -> tuple[Measure, Measure]:
    """The reference ring's measures: as it is, and with streamflow's backpressure (``strict``)."""

    def ring(strict: bool) -> Sample:
        meter = _meter("fork")
        run_ring(n, pif, meter, strict)
        return Sample(*w.per_message(meter, n))

    return (lambda: ring(False)), (lambda: ring(True))


def _edges(settings: Settings) -> Iterator[Row]:
    """The small workload over streamflow's edges without its runtime, against the reference ring."""
    n = 5_000 if settings.quick else 20_000
    for pif in (1, 8):
        for limit in (None, 4096):

            def ours() -> Sample:
                meter = _meter("fork")
                run_edges(n, pif, limit, meter)
                return Sample(*w.per_message(meter, n))

            config = f"process/fork w=1 pif={pif} mms={limit or '-'}"
            for row in _rows(settings, "edges", config, "us/msg", ours, None, *_rings(n, pif)):
                row.note = "edges alone, no runtime; floor, strict = reference ring (fork), without and with backpressure"
                yield row


# -- large messages -----------------------------------------------------------------


def _copy_floor(repeats: int) -> float:
    """Milliseconds for one memcpy of a large message, measured with numpy."""
    import numpy as np

    source = np.ones(LARGE_MB * 1024 * 1024 // 4, dtype=np.int32)
    target = np.empty_like(source)
    np.copyto(target, source)  # fault the pages in first

    def copy() -> float:
        started = time.perf_counter()
        np.copyto(target, source)
        return (time.perf_counter() - started) * 1e3

    return _best(max(5, repeats), copy)


def _large(settings: Settings) -> Iterator[Row]:
    n = 8 if settings.quick else 30
    floor = _copy_floor(settings.repeats)
    for backend, method in METHODS:
        for limit, shared in ((None, False), (LARGE_LIMIT, False), (LARGE_LIMIT, True)):
            if backend == "thread" and limit is not None:
                continue  # threads pass references: there is nothing to copy
            mode = "mms=-" if limit is None else f"mms=42MB shared_buffer={shared}"
            config = f"{_label(backend, method)} {mode}"

            def ours() -> float:
                stamps = _stamps(method)
                source = w.large_source(n=n, megabytes=LARGE_MB).options(
                    packets_in_flight=2, max_message_size=limit, shared_buffer=shared
                )
                (source | w.large_sink(stamps=stamps)).run(backend=backend, start_method=method)
                return float(stamps[1] - stamps[0]) / (n - 1) * 1e3

            def theirs() -> float:
                Task = _pipeline_lib().PipelineTask
                stamps = _stamps(method)
                _pl_run(
                    [
                        Task(w.pl_large_source, {"n": n, "megabytes": LARGE_MB}, packets_in_flight=2,
                             max_message_size=limit, shared_buffer=shared),
                        Task(w.pl_large_sink, {"stamps": stamps}),
                    ],
                    backend,
                    method,
                )
                return float(stamps[1] - stamps[0]) / (n - 1) * 1e3

            for row in _rows(settings, "large", config, "ms/msg", ours, theirs):
                row.floor = None if backend == "thread" else floor
                yield row


# -- CPU-bound scaling ---------------------------------------------------------------


def _cpu(settings: Settings) -> Iterator[Row]:
    n = 40 if settings.quick else 100
    seconds = 0.002
    for backend, method in METHODS:
        rates: dict[tuple[str | None, int], float] = {}
        for workers in (1, 2):

            def ours() -> float:
                stamps = _stamps(method)
                flow = (
                    w.cpu_source(n=n)
                    | w.cpu_work(seconds=seconds).options(workers=workers)
                    | w.cpu_sink(stamps=stamps)
                )
                flow.run(backend=backend, start_method=method)
                return float(stamps[1] - stamps[0]) / (n - 1) * 1e3

            for _ in range(settings.repeats):
                for budget in settings.spins:
                    with _spin(budget):
                        rate = ours()
                    rates[budget, workers] = min(rates.get((budget, workers), rate), rate)
        for budget in settings.spins:
            yield Row(
                "cpu",
                _with_spin(f"{_label(backend, method)} 2 ms/item, 1 -> 2 workers", budget),
                "ms/item",
                rates[budget, 2],
                theirs=rates[budget, 1],
                note="theirs = 1 worker; ratio = speed-up",
            )


def _branches(settings: Settings) -> Iterator[Row]:
    n, rounds = (2000, 3) if settings.quick else (20_000, 5)
    for backend, method in METHODS[:2]:  # threads and fork: the shapes, not the start method
        options: dict[str, Any] = {"backend": backend, "start_method": method}
        cost = branches.costs(options, n, rounds)
        hop, chain = cost["one hop"], cost["chain of a map"]
        for name in ("tee of 2", "route to 2", "merge of 2"):
            yield Row(
                "branches", f"{_label(backend, method)} {name}", "us/item", cost[name], theirs=hop,
                note=f"theirs = one hop ({hop:.2f} us); {cost[name] / hop:.2f}x; median of {rounds}",
            )
        yield Row(
            "branches", f"{_label(backend, method)} zip of 2 maps", "us/item", cost["zip of 2 maps"], theirs=chain,
            note=f"theirs = a chain through one map ({chain:.2f} us); {cost['zip of 2 maps'] / chain:.2f}x",
        )


def _cpu_flow(settings: Settings) -> Iterator[Row]:
    n, rounds = (1000, 3) if settings.quick else (3000, 5)
    seconds = cpu_flow.against_pool(n, rounds)
    pool = seconds["Pool(2).imap"]
    for name in ("streamflow", "streamflow spin_us=0"):
        yield Row(
            "cpu-flow",
            f"fork {name}, 7 processes, {n} x 1 ms",
            "s",
            seconds[name],
            theirs=pool,
            note=f"theirs = Pool(2).imap(chunksize=32): {seconds[name] / pool - 1:+.1%}; median of {rounds}",
        )


# -- an idle flow ---------------------------------------------------------------------


def _idle(settings: Settings) -> Iterator[Row]:
    """CPU time of source -> pass-through -> sink while the source sleeps between two items."""
    seconds = 2.0 if settings.quick else 10.0
    for backend, method in METHODS[:2]:  # thread and fork: spawn would idle the same way
        for budget in settings.spins:
            with _spin(budget):
                meter = _meter(method)
                each = backend != "thread"
                flow = (
                    w.slow_source(seconds=seconds, meter=meter if each else None)
                    | w.small_pass(meter=meter if each else None)
                    | w.small_sink(stamps=meter, metering=True)
                )
                flow.run(backend=backend, start_method=method)
            cpu_us, switches = w.per_message(meter, 2)[1:]
            yield Row(
                "idle",
                _with_spin(f"{_label(backend, method)} a wait of {seconds:g} s", budget),
                "cpu ms",
                cpu_us * 2 / 1e3,
                note=f"{switches * 2:.0f} voluntary context switches",
            )


# -- start-up and tear-down ----------------------------------------------------------


def _startup(settings: Settings) -> Iterator[Row]:
    repeats = 3 if settings.quick else 10
    for backend, method in METHODS:

        def ours() -> float:
            started = time.perf_counter()
            (w.cpu_source(n=1) | w.cpu_work(seconds=0.0) | w.cpu_sink(stamps=[0.0, 0.0])).run(
                backend=backend, start_method=method
            )
            return (time.perf_counter() - started) * 1e3

        def theirs() -> float:
            Task = _pipeline_lib().PipelineTask
            started = time.perf_counter()
            _pl_run(
                [Task(w.pl_tiny_source, {"n": 1}), Task(w.pl_tiny_pass), Task(w.pl_tiny_sink)],
                backend,
                method,
            )
            return (time.perf_counter() - started) * 1e3

        yield from _rows(settings, "startup", f"{_label(backend, method)} 3 stages", "ms", ours, theirs, repeats=repeats)


def _startup_heavy(settings: Settings) -> Iterator[Row]:
    """A 5-worker flow whose stage module imports scikit-learn: first and later runs.

    Each start method is measured in a new interpreter (its first run pays
    for what that method imports afresh), then for later runs in the same
    one.  The default (warm) method's floor is fork's time for the same run.
    """
    later_runs = 2 if settings.quick else 5
    measured = {}
    for method in ("warm", "fork", "spawn", "forkserver"):
        measured[method] = _probe_startup(method, "streamflow", later_runs)
    theirs = {}
    if settings.compare:
        for method in ("fork", "spawn"):
            theirs[method] = _probe_startup(method, "pipeline-lib", later_runs)
    for method, (first, later) in measured.items():
        label = f"process/{method}" + (" (default)" if method == "warm" else "")
        comparable = theirs.get(method, theirs.get("spawn") if method != "fork" else None)
        for which, ours in (("first run", first), ("later runs", later)):
            row = Row("startup-heavy", f"{label} {which}", "ms", ours)
            if comparable is not None:
                row.theirs = comparable[0] if which == "first run" else comparable[1]
            if method == "warm":
                row.floor = measured["fork"][0 if which == "first run" else 1]
                row.note = "floor = fork"
            yield row


def _probe_startup(method: str, library: str, later_runs: int) -> tuple[float, float]:
    """(first run, best later run) in milliseconds, measured in a new interpreter."""
    probe = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--probe-startup", method, library, str(later_runs)],
        capture_output=True,
        text=True,
        check=True,
    )
    first, later = json.loads(probe.stdout.strip().splitlines()[-1])
    return float(first), float(later)


def _startup_heavy_main(settings: Settings) -> Iterator[Row]:
    """The heavy flow with its stages in a script's ``__main__``: a function stage, a class stage.

    One new interpreter per start method and shape, as for startup-heavy.
    """
    later_runs = 2 if settings.quick else 5
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "heavy_main.py")
    root = os.path.dirname(os.path.dirname(script))
    environ = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    for shape in ("function", "class"):
        measured = {}
        for method in ("warm", "fork", "spawn", "forkserver"):
            probe = subprocess.run(
                [sys.executable, script, method, shape, str(later_runs)],
                capture_output=True, text=True, check=True, env=environ,
            )
            measured[method] = json.loads(probe.stdout.strip().splitlines()[-1])
        for method, times in measured.items():
            label = f"process/{method}" + (" (default)" if method == "warm" else "")
            for index, which in enumerate(("first run", "later runs")):
                row = Row("startup-heavy-main", f"{label} {shape} {which}", "ms", float(times[index]))
                if method == "warm":
                    row.floor = float(measured["fork"][index])
                    row.note = "floor = fork"
                yield row


def _run_probe_startup(method: str, library: str, later_runs: int) -> None:
    from . import heavy_stages as h

    def once() -> float:
        started = time.perf_counter()
        if library == "streamflow":
            h.flow().run(start_method=cast(StartMethod, method))  # checked by the caller's choices
        else:
            Task = _pipeline_lib().PipelineTask
            _pl_run(
                [Task(h.pl_requests, {"n": 10}), Task(h.pl_predict, num_workers=3, packets_in_flight=6), Task(h.pl_collect)],
                "process",
                method,
            )
        return (time.perf_counter() - started) * 1e3

    first = once()
    later = min(once() for _ in range(later_runs))
    print(json.dumps([first, later]))


# -- a message class of __main__ ------------------------------------------------------


def _main_class(settings: Settings) -> Iterator[Row]:
    """A ``__main__`` dataclass, us a hop, under each start method; fork's is the floor.

    The methods take turns, a new interpreter a run, so that they meet the same noise.
    """
    n = 1_000 if settings.quick else 5_000
    methods = ("fork", "warm", "spawn", "forkserver")
    measured: dict[str, float] = {}
    for _ in range(max(2, settings.repeats)):
        for method in methods:
            probe = subprocess.run(
                [sys.executable, "-m", "benchmarks.main_class", method, str(n), "1"],
                capture_output=True,
                text=True,
                check=True,
            )
            hop = float(json.loads(probe.stdout.strip().splitlines()[-1]))
            measured[method] = min(measured.get(method, hop), hop)
    for method in methods:
        label = f"process/{method}" + (" (default)" if method == "warm" else "")
        yield Row("main-class", f"{label} __main__ dataclass", "us/hop", measured[method], floor=measured["fork"],
                  note="floor = fork")


# -- peak memory ---------------------------------------------------------------------


def _rss(settings: Settings) -> Iterator[Row]:
    counts = (20_000, 200_000) if settings.quick else (100_000, 1_000_000)
    peaks = {}
    for n in counts:
        probe = subprocess.run(
            [sys.executable, "-m", "benchmarks", "--probe-rss", str(n)],
            capture_output=True,
            text=True,
            check=True,
        )
        peaks[n] = json.loads(probe.stdout)
    low, high = counts
    for who in ("caller", "worker"):
        yield Row(
            "rss",
            f"process/spawn {who} peak, {low:,} -> {high:,} msgs",
            "MB",
            peaks[high][who],
            floor=peaks[low][who],
            note="floor = peak at the smaller count",
        )


def _probe_rss(n: int) -> None:
    import resource

    stamps = _stamps("spawn")
    (w.small_source(n=n) | w.small_pass | w.small_sink(stamps=stamps)).run(start_method="spawn")
    # VmHWM, not ru_maxrss: ru_maxrss survives exec, so it would include the
    # benchmark process this probe was started from.
    with open("/proc/self/status") as status:
        caller_kb = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    worker_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux
    print(json.dumps({"caller": caller_kb / 1024, "worker": worker_kb / 1024}))


# -- the cost of always-on statistics ---------------------------------------------


class _NullSender:
    def reserve(self) -> None:
        pass

    def unreserve(self) -> None:
        pass

    def send(self, item: Any) -> None:
        pass

    def close(self) -> None:
        pass


def _stats_cost(settings: Settings) -> Iterator[Row]:
    """Microseconds a packet costs a stage for its counters (in and out), in one process."""
    # The counters cannot be switched off through the public API: time the
    # worker loop's own pieces against a bare loop.
    from streamflow._runtime._counters import Counters
    from streamflow._runtime._worker import _Counted, _pump
    from streamflow._stats import WIDTH

    n = 100_000 if settings.quick else 500_000
    items = list(range(n))
    row = [0.0] * WIDTH

    def counted() -> float:
        counters = Counters(row)
        started = time.perf_counter()
        _pump(iter(_Counted(iter(items), counters)), _NullSender(), counters)  # type: ignore[arg-type]
        return (time.perf_counter() - started) / n * 1e6

    def plain() -> float:
        sender = _NullSender()
        started = time.perf_counter()
        for item in iter(items):
            sender.reserve()
            sender.send(item)
        return (time.perf_counter() - started) / n * 1e6

    with_stats, without = _best(max(3, settings.repeats), counted), _best(max(3, settings.repeats), plain)
    yield Row("stats", "counters per packet per stage", "us/msg", with_stats - without,
              note="with counters minus without, in one process")


# -- failure policies, order, batches ----------------------------------------------


def _policy(settings: Settings) -> Iterator[Row]:
    """A map stage's cost per message with a policy set that never acts; a dead worker's replacement."""
    n = 5_000 if settings.quick else 20_000
    for backend, method in [("thread", None), ("process", "fork")]:
        options = {"backend": backend, **({"start_method": method} if method else {})}
        costs = policies.per_message(options, n, max(2, settings.repeats))
        plain = costs.pop("none")
        yield Row("policy", f"{_label(backend, method)} none", "us/msg", plain)
        for name, cost in costs.items():
            yield Row("policy", f"{_label(backend, method)} {name}", "us/msg", cost,
                      note=f"{cost / plain - 1:+.0%} against none")
    for method in ("fork", "warm", "spawn"):
        clean, crashed = policies.replacement({"backend": "process", "start_method": method}, 200, settings.repeats)
        yield Row("policy", f"process/{method} replace a killed worker", "ms", (crashed - clean) * 1e3,
                  note=f"run with a kill {crashed * 1e3:.0f} ms, without {clean * 1e3:.0f} ms")


def _ordered(settings: Settings) -> Iterator[Row]:
    """ordered=True against unordered, 2 workers; batch latency under max_wait with a slow source."""
    # One pair's ratio moves by 10-20 points here (placement of 4 processes on 2 cores):
    # small runs are short, so they take more pairs.
    workloads = [("small", 20_000, 41), ("medium", 5_000, 11)]
    if settings.quick:
        workloads = [("small", 5_000, 5), ("medium", 2_000, 3)]
    for workload, n, pairs in workloads:
        for backend, method in [("thread", None), ("process", "fork")]:
            options = {"backend": backend, **({"start_method": method} if method else {})}
            unordered, ordered, ratios = order.ordered_cost(options, workload, n, max(pairs, settings.repeats))
            yield Row("ordered", f"{_label(backend, method)} {workload} unordered", "us/msg", unordered)
            yield Row("ordered", f"{_label(backend, method)} {workload} ordered", "us/msg", ordered,
                      note=order.against_unordered(ratios, unordered, ordered))
    for backend, method in [("thread", None), ("process", "fork")]:
        options = {"backend": backend, **({"start_method": method} if method else {})}
        median, worst = order.batch_latency(options, 0.05, 8 if settings.quick else 20)
        yield Row("batch", f"{_label(backend, method)} max_wait=50ms, slow source", "ms", median * 1e3,
                  note=f"arrival to emission, median; worst {worst * 1e3:.1f} ms")


def _io(settings: Settings) -> Iterator[Row]:
    """2,000 calls of 50 ms I/O: one async worker at concurrency=100, against 100 thread workers."""
    calls, latency, width = (1_000 if settings.quick else 2_000), 0.05, 100
    ideal = calls * latency / width
    configs = [
        ("thread async w=1 concurrency=100", {"backend": "thread"}, {"concurrency": width}),
        ("process/fork async w=1 concurrency=100", {"backend": "process", "start_method": "fork"}, {"concurrency": width}),
        ("thread sync w=100", {"backend": "thread"}, {"workers": width}),
    ]
    for config, options, shape in configs:
        wall, cpu = min(io.io_bound(options, calls, latency, **shape) for _ in range(max(1, settings.repeats)))
        note = f"{wall / ideal:.2f}x the ideal {ideal:.1f} s"
        if options["backend"] == "thread":
            note += f"; {cpu:.2f} CPU s"
        yield Row("io", f"{config}, {calls} x {latency * 1e3:.0f} ms", "s", wall, note=note)


# -- Ray -------------------------------------------------------------------------


def _ray(settings: Settings) -> Iterator[Row]:
    """Small and large messages and start-up on a local Ray cluster (2 CPUs)."""
    try:
        import ray
    except ImportError:
        return
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        n = 500 if settings.quick else 2_000

        def small() -> float:
            flow = w.small_source(n=n).options(packets_in_flight=64) | w.small_pass.options(
                packets_in_flight=64
            ) | w.ray_small_sink
            first, last = flow.run(backend="ray")
            return float(last - first) / (n - 1) * 1e6

        yield Row("ray", "small w=1 pif=64", "us/msg", _best(settings.repeats, small))
        big = 4 if settings.quick else 10

        def large() -> float:
            flow = w.large_source(n=big, megabytes=LARGE_MB).options(packets_in_flight=2) | w.ray_large_sink
            first, last = flow.run(backend="ray")
            return float(last - first) / (big - 1) * 1e3

        yield Row("ray", f"large {LARGE_MB} MB arrays", "ms/msg", _best(settings.repeats, large))

        def startup() -> float:
            began = time.perf_counter()
            (w.cpu_source(n=1) | w.cpu_work(seconds=0.0) | w.cpu_sink(stamps=[0.0, 0.0])).run(backend="ray")
            return (time.perf_counter() - began) * 1e3

        yield Row("ray", "startup 3 stages", "ms", _best(settings.repeats, startup))
        # A policy that retries or skips makes the stage's workers replaceable: one item a request.
        costs = policies.per_message({"backend": "ray"}, n // 4, settings.repeats)
        plain = costs.pop("none")
        yield Row("ray", "policy none", "us/msg", plain)
        for name, cost in costs.items():
            yield Row("ray", f"policy {name}", "us/msg", cost, note=f"{cost / plain - 1:+.0%} against none")
        unordered, ordered, ratios = order.ordered_cost({"backend": "ray"}, "medium", n // 4, settings.repeats)
        yield Row("ray", "medium w=2 unordered", "us/msg", unordered)
        yield Row("ray", "medium w=2 ordered", "us/msg", ordered, note=order.against_unordered(ratios, unordered, ordered))
        clean, crashed = policies.replacement({"backend": "ray"}, n // 4, settings.repeats)
        yield Row("ray", "replace a killed worker", "ms", (crashed - clean) * 1e3,
                  note=f"run with a kill {crashed * 1e3:.0f} ms, without {clean * 1e3:.0f} ms")
    finally:
        if started:
            ray.shutdown()


# -- driver --------------------------------------------------------------------------


def _rows(
    settings: Settings,
    workload: str,
    config: str,
    unit: str,
    ours: Measure,
    theirs: Measure | None,
    floor: Measure | None = None,
    strict: Measure | None = None,
    repeats: int | None = None,
) -> list[Row]:
    """A row per spin budget, each the best of ``repeats``; the contenders
    take turns within each repeat, so that they meet the same noise."""
    best: dict[str, Sample] = {}

    def keep(key: str, measure: Measure) -> None:
        sample = measure()
        if not isinstance(sample, Sample):
            sample = Sample(sample)
        if key not in best or sample.value < best[key].value:
            best[key] = sample

    for _ in range(repeats or settings.repeats):
        for budget in settings.spins:
            with _spin(budget):
                keep(f"ours {budget}", ours)
        if settings.compare and theirs is not None:
            keep("theirs", theirs)
        if floor is not None:
            keep("floor", floor)
        if strict is not None:
            keep("strict", strict)
    theirs_best, floor_best, strict_best = best.get("theirs"), best.get("floor"), best.get("strict")
    rows = []
    for budget in settings.spins:
        ours_best = best[f"ours {budget}"]
        row = Row(workload, _with_spin(config, budget), unit, ours_best.value)
        row.theirs = theirs_best.value if theirs_best else None
        row.floor = floor_best.value if floor_best else None
        row.strict = strict_best.value if strict_best else None
        for role, sample in (("ours", ours_best), ("theirs", theirs_best), ("floor", floor_best), ("strict", strict_best)):
            if sample and sample.cpu is not None and sample.switches is not None:
                row.usage[role] = (sample.cpu, sample.switches)
        rows.append(row)
    return rows


WORKLOADS: dict[str, Callable[[Settings], Iterator[Row]]] = {
    "small": _small,
    "edges": _edges,
    "large": _large,
    "cpu": _cpu,
    "branches": _branches,
    "cpu-flow": _cpu_flow,
    "idle": _idle,
    "startup": _startup,
    "startup-heavy": _startup_heavy,
    "startup-heavy-main": _startup_heavy_main,
    "main-class": _main_class,
    "rss": _rss,
    "stats": _stats_cost,
    "policy": _policy,
    "ordered": _ordered,
    "io": _io,
    "ray": _ray,
}


def run_benchmarks(settings: Settings) -> Iterator[Row]:
    """Measure every selected workload, yielding rows as they complete."""
    wanted = settings.only.split(",") if settings.only else None
    for name, workload in WORKLOADS.items():
        if wanted is None or any(part in name for part in wanted):
            yield from workload(settings)


def _format(row: Row, compare: bool) -> str:
    text = f"{row.workload:8} {row.config:44} {row.ours:10.2f} {row.unit:8}"
    if compare or row.workload in ("cpu", "cpu-flow", "branches"):
        theirs = "" if row.theirs is None else f"{row.theirs:10.2f}"
        ratio = "" if row.ratio is None else f"{row.ratio:7.2f}x"
        text += f" {theirs:>10} {ratio:>8}"
    if row.floor is not None:
        text += f"  floor {row.floor:.2f} ({row.over_floor:.2f}x)"
    if row.strict is not None:
        text += f"  strict {row.strict:.2f} ({row.over_strict:.2f}x)"
    if row.usage:
        text += "  cpu us/csw:" + "".join(
            f" {role} {cpu:.2f}/{switches:.2f}" for role, (cpu, switches) in row.usage.items()
        )
    if row.note:
        text += f"  ({row.note})"
    return text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer messages and repeats (under a minute)")
    parser.add_argument("--json", action="store_true", help="print rows as JSON")
    parser.add_argument("--compare", choices=["pipeline-lib"], help="also run pipeline-lib")
    parser.add_argument("--only", help="run workloads whose name contains this (small, large, ...; several: small,cpu)")
    parser.add_argument("--repeats", type=int, help="best of this many runs a row (default 3, --quick 1)")
    parser.add_argument(
        "--spin", help=f"measure streamflow once per spin budget, e.g. 0,50 (sets {SPIN_ENV}, microseconds)"
    )
    parser.add_argument("--probe-rss", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--probe-startup", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.probe_rss:
        _probe_rss(args.probe_rss)
        return
    if args.probe_startup:
        method, library, later_runs = args.probe_startup
        _run_probe_startup(method, library, int(later_runs))
        return
    settings = Settings(quick=args.quick, compare=args.compare is not None, only=args.only, best_of=args.repeats)
    if args.spin:
        settings.spins = [budget.strip() for budget in args.spin.split(",")]
    if settings.compare:
        _pipeline_lib()
    rows = []
    if not args.json:
        header = f"{'workload':8} {'config':44} {'streamflow':>10} {'unit':8}"
        if settings.compare:
            header += f" {'pipeline-lib':>10} {'ratio':>8}"
        print(f"# python -m benchmarks {' '.join(argv if argv is not None else sys.argv[1:])}")
        print(f"# {os.cpu_count()} cores, Python {sys.version.split()[0]}, {SPIN_ENV}={os.environ.get(SPIN_ENV, 'unset')}")
        print(header)
    for row in run_benchmarks(settings):
        rows.append(row)
        if not args.json:
            print(_format(row, settings.compare), flush=True)
    if args.json:
        print(json.dumps([{**dataclasses.asdict(r), "ratio": r.ratio, "over_floor": r.over_floor, "over_strict": r.over_strict} for r in rows], indent=2))


if __name__ == "__main__":
    main()
