"""Run options, each defined and validated here once.

``StageOptions``: how one stage runs (workers, buffers, resources), set with
``@stage(...)`` or ``.options(...)``.  ``RunConfig``: how one run goes
(backend, timeouts, progress), from the keywords of ``run()``/``iter()``.
Each comes as a ``TypedDict`` of keywords, the public spelling that mypy
checks, and a frozen record of resolved values that the rest of the
library reads; ``_check_same_names`` ties the two together at import.
Unknown names and values out of range raise ``OptionError`` naming the
option, the value and what to do.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Mapping
from typing import Any, Literal, Protocol

from typing_extensions import Never, TypedDict

from ._errors import OptionError

__all__ = ["RunConfig", "RunOptions", "StageArgs", "StageOptions", "StartMethod"]

OnError = Literal["raise", "skip"]


class Branch(Protocol):
    """A stage or flow that can follow ``|``: a dead-letter branch for ``on_error``."""

    def __ror__(self, other: Never, /) -> object: ...


def is_branch(value: object) -> bool:
    """Whether ``value`` is a stage or flow (not one of ``on_error``'s words)."""
    return not isinstance(value, (str, bytes)) and hasattr(value, "__ror__")
StartMethod = Literal["warm", "spawn", "fork", "forkserver"]
START_METHODS: tuple[StartMethod, ...] = ("warm", "spawn", "fork", "forkserver")


# -- a stage's options ------------------------------------------------------------


class StageArgs(TypedDict, total=False):
    """The keywords of ``@stage(...)`` and ``Stage.options(...)``.

    ``workers``: workers running the stage (default 1).
    ``packets_in_flight``: packets on the stage's output edge at most, being
    built, buffered or consumed (default ``2 * workers``; ``64 * workers`` on Ray).
    ``max_message_size``: bytes of one message between processes; fixed
    shared-memory slots of that size (default: unset, any size).
    ``shared_buffer``: consumers read arrays in place, without a copy
    (requires ``max_message_size``).
    ``name``: the stage's name in errors, reports and pictures.
    ``resources``: per worker, for cluster backends (``num_cpus``,
    ``num_gpus``, ``memory`` in bytes, or custom resources).

    Failure policy (processors and map stages only):
    ``retries``: more attempts at an item whose processing raised (default 0).
    ``retry_delay``: seconds before the first retry, doubling after each (default 0.1).
    ``retry_on``: the exception types that are retried (default ``Exception``).
    ``on_error``: after the last attempt, ``"raise"`` ends the run (default),
    ``"skip"`` records the failure in ``Run.failures`` and goes on; a branch
    (a stage or flow ending in a sink) also gets each failed item there, as
    a ``Failure`` record (dead letters).
    ``timeout``: seconds one item may take before it fails with ``ItemTimeout``
    (process and ray backends; default: none).

    ``ordered``: outputs leave in the order the inputs arrived, whatever the
    number of workers (processors and map stages; default False).

    ``concurrency``: calls each worker of an ``async def`` map stage keeps in
    flight on its event loop (default 1); ``packets_in_flight`` then defaults
    to ``2 * workers * concurrency`` and may not be below ``workers * concurrency``.
    """

    workers: int
    packets_in_flight: int | None
    max_message_size: int | None
    shared_buffer: bool
    name: str | None
    resources: Mapping[str, float] | None
    retries: int
    retry_delay: float
    retry_on: type[BaseException] | tuple[type[BaseException], ...]
    on_error: OnError | Branch
    timeout: float | None
    ordered: bool
    concurrency: int


@dataclasses.dataclass(frozen=True)
class StageOptions:
    """A stage's run options as set (see ``StageArgs``); ``resolved`` fills in defaults."""

    workers: int = 1
    packets_in_flight: int | None = None
    max_message_size: int | None = None
    shared_buffer: bool = False
    name: str | None = None
    resources: tuple[tuple[str, float], ...] | None = None
    retries: int = 0
    retry_delay: float = 0.1
    retry_on: tuple[type[BaseException], ...] = (Exception,)
    on_error: OnError | Branch = "raise"
    timeout: float | None = None
    ordered: bool = False
    concurrency: int = 1

    @property
    def skips(self) -> bool:
        """Whether an item that failed its last attempt is skipped (into dead letters, if a branch)."""
        return self.on_error == "skip" or is_branch(self.on_error)

    @property
    def dead_letters(self) -> Any:
        """The branch that failed items enter, if ``on_error`` is one."""
        return self.on_error if is_branch(self.on_error) else None

    @property
    def has_policy(self) -> bool:
        """Whether a failure policy is set: anything but the first error ending the run."""
        return self.retries > 0 or self.skips or self.timeout is not None

    @property
    def keeps_order(self) -> bool:
        """Whether its workers keep their inputs' order between them: ordered, with several."""
        return self.ordered and self.workers > 1

    @property
    def replaces_crashed(self) -> bool:
        """Whether a worker that dies is replaced: under a policy that retries or skips."""
        return self.retries > 0 or self.skips

    def replaced(self, args: Mapping[str, Any]) -> StageOptions:
        """These options with ``args`` (keywords of ``StageArgs``) applied; not yet checked."""
        _reject_unknown(args, StageArgs, "stage option")
        changes = dict(args)
        resources = changes.get("resources")
        if isinstance(resources, Mapping):
            changes["resources"] = tuple(sorted(resources.items()))
        retry_on = changes.get("retry_on")
        if isinstance(retry_on, type):
            changes["retry_on"] = (retry_on,)
        elif isinstance(retry_on, list):
            changes["retry_on"] = tuple(retry_on)
        return dataclasses.replace(self, **changes)

    def check(self, stage: str, kind: str = "processor", *, async_map: bool = False) -> None:
        """Raise ``OptionError`` for a value out of range, naming ``stage`` (of ``kind``;
        ``async_map``: an ``async def`` under ``@sf.map``, which alone takes ``concurrency``)."""
        where = f"for stage '{stage}'"
        if not _is_int(self.workers) or self.workers < 1:
            raise OptionError(f"workers={self.workers!r} {where} must be an int >= 1")
        if not _is_int(self.concurrency) or self.concurrency < 1:
            raise OptionError(f"concurrency={self.concurrency!r} {where} must be an int >= 1")
        if self.concurrency > 1 and not async_map:
            raise OptionError(
                f"concurrency={self.concurrency} {where}: only an async def under @sf.map keeps several "
                "calls in flight; for a sync stage, set workers (threads or processes) instead"
            )
        pif = self.packets_in_flight
        if pif is not None and (not _is_int(pif) or pif < 1):
            raise OptionError(f"packets_in_flight={pif!r} {where} must be an int >= 1")
        if pif is not None and pif < self.workers * self.concurrency:
            if self.concurrency == 1:
                raise OptionError(
                    f"packets_in_flight={pif} is below workers={self.workers} {where}; "
                    "set packets_in_flight >= workers"
                )
            raise OptionError(
                f"packets_in_flight={pif} is below workers={self.workers} x concurrency={self.concurrency} "
                f"{where}; set packets_in_flight >= {self.workers * self.concurrency} (each call in "
                "flight is a packet being built)"
            )
        size = self.max_message_size
        if size is not None and (not _is_int(size) or size <= 0):
            raise OptionError(f"max_message_size={size!r} {where} must be None or an int > 0 (bytes)")
        if not isinstance(self.shared_buffer, bool):
            raise OptionError(f"shared_buffer={self.shared_buffer!r} {where} must be True or False")
        if self.shared_buffer and size is None:
            raise OptionError(
                f"shared_buffer=True {where} requires max_message_size; "
                "set max_message_size to the largest message in bytes"
            )
        if self.name is not None and (not isinstance(self.name, str) or not self.name):
            raise OptionError(f"name={self.name!r} {where} must be a non-empty str")
        for key, amount in self.resources or ():
            if not isinstance(key, str) or not _is_number(amount) or amount < 0:
                raise OptionError(
                    f"resources={dict(self.resources or ())!r} {where} must map names (num_cpus, "
                    "num_gpus, memory, or a custom resource) to amounts >= 0"
                )
        self._check_policy(where, kind)

    def _check_policy(self, where: str, kind: str) -> None:
        if not _is_int(self.retries) or self.retries < 0:
            raise OptionError(f"retries={self.retries!r} {where} must be an int >= 0")
        delay = self.retry_delay
        if not (_is_number(delay) and 0 <= delay < math.inf):
            raise OptionError(f"retry_delay={delay!r} {where} must be seconds >= 0")
        if not isinstance(self.retry_on, tuple) or not self.retry_on or not all(
            isinstance(kind_, type) and issubclass(kind_, BaseException) for kind_ in self.retry_on
        ):
            raise OptionError(
                f"retry_on={self.retry_on!r} {where} must be an exception class or a tuple of them"
            )
        if self.on_error not in ("raise", "skip") and not is_branch(self.on_error):
            raise OptionError(
                f"on_error={self.on_error!r} {where} must be 'raise', 'skip' or a branch (a stage or "
                "flow ending in a sink) that gets each failed item"
            )
        timeout = self.timeout
        if timeout is not None and not (_is_number(timeout) and 0 < timeout < math.inf):
            raise OptionError(f"timeout={timeout!r} {where} must be None or seconds > 0")
        if not isinstance(self.ordered, bool):
            raise OptionError(f"ordered={self.ordered!r} {where} must be True or False")
        if self.ordered and kind != "processor":
            raise OptionError(
                f"ordered=True {where}: a {kind} has no outputs to order; set it on the "
                "processor (or map stage) whose outputs should keep their inputs' order"
            )
        if kind != "processor" and (self.has_policy or self.retry_on != (Exception,)):
            set_ = [name for name in ("retries", "on_error", "timeout") if getattr(self, name) != _DEFAULT_POLICY[name]]
            raise OptionError(
                f"{', '.join(set_) or 'retry_on'} {where}: a {kind} takes no failure policy, since "
                f"it has no items of its own to retry or skip; handle errors inside the {kind}, "
                f"or move the work that can fail into a processor or an @sf.map stage"
            )

    def resolved(self, packets_per_worker: int = 2) -> StageOptions:
        """These options with every default filled in: ``packets_in_flight``, ``packets_per_worker``
        times the workers (the backend's default; at least two for each call an async map keeps
        in flight)."""
        if self.packets_in_flight is not None:
            return self
        most = max(packets_per_worker, 2 * self.concurrency) * self.workers
        return dataclasses.replace(self, packets_in_flight=most)

    def changed(self) -> dict[str, Any]:
        """The options that differ from their defaults, in field order."""
        defaults = StageOptions()
        return {
            field.name: getattr(self, field.name)
            for field in dataclasses.fields(self)
            if getattr(self, field.name) != getattr(defaults, field.name)
        }


# -- a run's options -----------------------------------------------------------------


class RunOptions(TypedDict, total=False):
    """How to run a flow: the keywords of ``run()``, ``iter()`` and ``start()``.

    ``backend``: ``"process"`` (default), ``"thread"``, ``"inline"`` or ``"ray"``.
    ``start_method``: ``"warm"`` (default: workers forked from a fork server
    kept for the session), ``"spawn"``, ``"fork"`` or ``"forkserver"``, for
    the process backend.
    ``inactivity_timeout``: seconds without any packet moving before
    ``InactivityError`` (default: none).
    ``shutdown_timeout``: seconds workers get to finish their packet after a
    failure, before they are terminated, then killed (default 5).
    ``progress``: show live per-stage counts on stderr (default False).
    ``ray_address``: the Ray cluster to connect to (backend ``"ray"``),
    unless the application already called ``ray.init``.
    ``max_failures``: items the run may skip (``on_error="skip"``) before it
    fails with ``TooManyFailures`` (default: no limit).
    ``spin_us``: microseconds a worker process waiting for a slot, a packet
    or its turn retries before it sleeps (default: ``STREAMFLOW_SPIN_US``,
    else 50; 0: it sleeps at once, for machines where idle CPU matters).
    """

    backend: str
    start_method: StartMethod | None
    inactivity_timeout: float | None
    shutdown_timeout: float
    progress: bool
    ray_address: str | None
    max_failures: int | None
    spin_us: float | None


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """A run's options (see ``RunOptions``), checked; build it with ``RunConfig.of``."""

    backend: str = "process"
    start_method: StartMethod | None = None
    inactivity_timeout: float | None = None
    shutdown_timeout: float = 5.0
    progress: bool = False
    ray_address: str | None = None
    max_failures: int | None = None
    spin_us: float | None = None

    @classmethod
    def of(cls, options: Mapping[str, Any]) -> RunConfig:
        """The config for ``options``; raises ``OptionError`` naming what is wrong.

        The backend's name is checked by the backend registry, which knows them.
        """
        _reject_unknown(options, RunOptions, "run option")
        config = cls(**options)
        if not isinstance(config.backend, str):
            raise OptionError(f"backend={config.backend!r} must be the name of a backend")
        if config.start_method not in (None, *START_METHODS):
            raise OptionError(
                f"start_method={config.start_method!r} must be one of "
                + ", ".join(repr(method) for method in START_METHODS)
            )
        timeout = config.inactivity_timeout
        if timeout is not None and not (_is_number(timeout) and 0 < timeout < math.inf):
            raise OptionError(f"inactivity_timeout={timeout!r} must be None or seconds > 0")
        grace = config.shutdown_timeout
        if not (_is_number(grace) and 0 <= grace < math.inf):
            raise OptionError(f"shutdown_timeout={grace!r} must be seconds >= 0")
        if not isinstance(config.progress, bool):
            raise OptionError(f"progress={config.progress!r} must be True or False")
        most = config.max_failures
        if most is not None and (not _is_int(most) or most < 0):
            raise OptionError(f"max_failures={most!r} must be None or an int >= 0")
        spin = config.spin_us
        if spin is not None and not (_is_number(spin) and 0 <= spin < math.inf):
            raise OptionError(f"spin_us={spin!r} must be None or microseconds >= 0 (0 turns spinning off)")
        return config


# -- shared checks ----------------------------------------------------------------


def _reject_unknown(given: Mapping[str, Any], declared: Any, what: str) -> None:
    known = list(declared.__annotations__)
    for name in given:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise OptionError(
                f"{name!r} is not a {what}; {hint}the {what}s are: {', '.join(known)}"
            )


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_same_names(keywords: Any, record: Any) -> None:
    names = [field.name for field in dataclasses.fields(record)]
    if list(keywords.__annotations__) != names:  # pragma: no cover - caught by any import
        raise AssertionError(f"{keywords.__name__} and {record.__name__} must name the same options")


_DEFAULT_POLICY = {"retries": 0, "on_error": "raise", "timeout": None}
_check_same_names(StageArgs, StageOptions)
_check_same_names(RunOptions, RunConfig)
