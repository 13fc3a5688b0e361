"""Every exception streamflow raises.

::

    StreamflowError
     +-- FlowTypeError (TypeError)         a flow that cannot be composed
     +-- OptionError (ValueError)          a run option out of range
     +-- StageError                        a stage raised something unpicklable
     +-- WorkerCrashed                     a worker died without finishing
     +-- InactivityError (TimeoutError)    no packet moved for too long
     +-- ItemTimeout (TimeoutError)        one item took longer than ``timeout``
     +-- TooManyFailures                   more items skipped than ``max_failures``
     +-- MessageTooLarge (ValueError)      a message exceeded its slot
     +-- UnpicklableMessage (TypeError)    a stage yielded what cannot travel
     +-- UnroutedItem (KeyError)           sf.route has no branch for an item's key

Exceptions raised by user code are re-raised with their own type; these are
for what streamflow itself detects. All of them survive pickling, so they
cross process boundaries unchanged.  ``FailuresWarning`` is the warning
``run()`` issues when stages skipped items under ``on_error="skip"``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._failures import Failure

__all__ = [
    "FailuresWarning",
    "FlowTypeError",
    "InactivityError",
    "ItemTimeout",
    "MessageTooLarge",
    "OptionError",
    "StageError",
    "StreamflowError",
    "TooManyFailures",
    "UnpicklableMessage",
    "UnroutedItem",
    "WorkerCrashed",
]


class StreamflowError(Exception):
    """Root of the errors streamflow raises itself."""


class FlowTypeError(StreamflowError, TypeError):
    """A stage or flow was composed, bound or annotated inconsistently."""


class OptionError(StreamflowError, ValueError):
    """A run option is out of its range."""


class StageError(StreamflowError):
    """A stage raised an exception that could not be sent back as itself.

    ``type_name`` and ``remote_traceback`` keep what is known of it.
    """

    def __init__(self, message: str, type_name: str = "", remote_traceback: str = "") -> None:
        super().__init__(message)
        self.type_name = type_name
        self.remote_traceback = remote_traceback

    def __reduce__(self) -> tuple[type[StageError], tuple[str, str, str]]:
        return (type(self), (str(self), self.type_name, self.remote_traceback))


class WorkerCrashed(StreamflowError):
    """A worker ended without finishing its stream (signal, exit, fault)."""


class InactivityError(StreamflowError, TimeoutError):
    """No packet moved anywhere in the flow for ``inactivity_timeout`` seconds."""


class ItemTimeout(StreamflowError, TimeoutError):
    """One item took longer than its stage's ``timeout``; its failure policy decides what follows."""


class TooManyFailures(StreamflowError):
    """More items were skipped in one run than ``max_failures``; ``failures`` lists them."""

    def __init__(self, message: str, failures: Sequence[Failure] = ()) -> None:
        super().__init__(message)
        self.failures = list(failures)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (str(self), self.failures))


class FailuresWarning(UserWarning):
    """Stages skipped items under ``on_error="skip"``; ``Run.failures`` lists them."""


class MessageTooLarge(StreamflowError, ValueError):
    """A message did not fit in its edge's ``max_message_size`` slot."""


class UnpicklableMessage(StreamflowError, TypeError):
    """A stage yielded a value that cannot be pickled to the next process."""


class UnroutedItem(StreamflowError, KeyError):
    """``sf.route`` found no branch for an item's key, and has no ``default``."""

    def __str__(self) -> str:  # a KeyError would show its message quoted
        return str(self.args[0]) if self.args else ""
