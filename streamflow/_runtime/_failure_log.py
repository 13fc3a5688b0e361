"""The caller's record of the items a run skipped, and its ``max_failures`` rule."""

from __future__ import annotations

from .._errors import TooManyFailures
from .._failures import Failure, summary
from .._plan import Plan
from .._records import FailureEvent
from ._remote import arrived

__all__ = ["FailureLog"]


class FailureLog:
    """Every item the run skipped, in the order the caller heard of them."""

    def __init__(self, plan: Plan, most: int | None) -> None:
        self._plan = plan
        self._most = most
        self.failures: list[Failure] = []
        self._lettered: set[int] = set()  # ids of those that also went into a dead-letter branch

    @property
    def unlettered(self) -> list[Failure]:
        """The failures that went into no dead-letter branch: what ``FailuresWarning`` tells of."""
        return [failure for failure in self.failures if id(failure) not in self._lettered]

    def add(self, event: FailureEvent) -> None:
        """Keep ``event`` as a ``Failure``; raises ``TooManyFailures`` past ``max_failures``."""
        node = self._plan.node(event.node)
        stage = event.where or node.name
        error = arrived(event.error, stage, event.worker, node.workers)
        failure = Failure(stage, event.worker, event.item, error, event.error.text, event.attempts)
        self.failures.append(failure)
        if event.lettered:
            self._lettered.add(id(failure))
        if self._most is not None and len(self.failures) > self._most:
            raise TooManyFailures(
                f"{len(self.failures)} items were skipped, more than max_failures={self._most} "
                f"({summary(self.failures)}); the first: {self.failures[0]!r}",
                self.failures,
            )
