"""One decision per failure: retry, skip or raise an item whose attempt failed.

::

    an attempt at an item failed with ``error``  -->  decide(error, attempts, options)
        sync map call, generator stage (``_policy``)        retry after ``delay``: the caller waits, tries again
        async map call (``_calls``)                          skip: the caller records the item and goes on
        a worker that died holding it (``_supervisor``)      raise: the run ends with ``error``

Every path that settles a failed item asks here, so the rule is written
once: an error of a ``retry_on`` type is retried while attempts are left,
each retry after ``retry_delay`` doubled per earlier retry; after the last
attempt, ``on_error`` says skip or raise.  The callers count what the
decision says (``timed_out`` included) and do the waiting, each in its own
way (a sleep, an ``await``, a new worker).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Literal

from .._errors import ItemTimeout, WorkerCrashed
from .._options import StageOptions
from .._plan import Node
from .._records import Outcome
from .._stats import OVERRUN_AT

__all__ = ["Decision", "crash_error", "decide"]


@dataclasses.dataclass(frozen=True)
class Decision:
    """What to do with an item whose attempt failed."""

    action: Literal["retry", "skip", "raise"]
    delay: float = 0.0  # seconds before the retry
    timed_out: bool = False  # the attempt overran the stage's ``timeout``


def decide(error: BaseException, attempts: int, options: StageOptions) -> Decision:
    """The decision for an item whose ``attempts``-th attempt (from 1) raised ``error``."""
    timed_out = isinstance(error, ItemTimeout)
    if isinstance(error, options.retry_on) and attempts <= options.retries:
        return Decision("retry", options.retry_delay * 2 ** (attempts - 1), timed_out)
    return Decision("skip" if options.skips else "raise", 0.0, timed_out)


def crash_error(outcome: Outcome, node: Node, row: Any) -> Exception:
    """What ended a dead worker: ``ItemTimeout`` if it overran its deadline, else its ``WorkerCrashed``."""
    overrun_at = row[OVERRUN_AT]
    if overrun_at and time.perf_counter() >= overrun_at:
        return ItemTimeout(
            f"an item of stage '{node.name}' took longer than timeout={node.options.timeout:g} s in "
            f"code that could not be interrupted (native code?); its worker was ended"
        )
    assert outcome.error is not None
    error = outcome.error.unwrap()
    return error if isinstance(error, Exception) else WorkerCrashed(str(error))
