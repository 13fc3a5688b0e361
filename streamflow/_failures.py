"""What a run keeps of the items its stages skipped: nothing is lost silently.

A worker that gives up on an item under ``on_error="skip"`` reports a
``FailureEvent`` (``_records``); the supervisor turns it into a ``Failure`` the caller reads
as ``Run.failures``, counts it against ``max_failures`` and names the stage
in the ``FailuresWarning`` that ``run()`` issues at its end.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence
from typing import Any

from ._text import short

__all__ = ["Failure", "summary"]


@dataclasses.dataclass(frozen=True)
class Failure:
    """One item a stage skipped: where, which, why, after how many attempts.

    ``item`` is the item as it entered the stage, or its ``repr`` when it
    could not be copied back to the caller; ``traceback`` is the error's
    traceback as formatted where it was raised.
    """

    stage: str
    worker: int
    item: Any
    error: BaseException
    traceback: str
    attempts: int

    def __repr__(self) -> str:
        return (
            f"Failure(stage={self.stage!r}, worker={self.worker}, item={short(self.item, 60)}, "
            f"error={type(self.error).__name__}({str(self.error)!r}), attempts={self.attempts})"
        )


def summary(failures: Sequence[Failure]) -> str:
    """``'parse' skipped 3 items, 'fetch' 1``: for warnings and errors."""
    counts = Counter(failure.stage for failure in failures)
    parts = [f"'{stage}' skipped {n} item{'s' if n != 1 else ''}" for stage, n in counts.items()]
    return ", ".join(parts)
