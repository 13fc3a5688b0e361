"""streamflow: parallel stream processing with plain Python generators.

Annotate generator functions with ``@stage``, compose them with ``|`` into a
lazy, type-checked ``Flow``, and run it on threads or processes with
bounded buffers and errors that never hang.
"""

from ._errors import (
    FlowTypeError,
    InactivityError,
    MessageTooLarge,
    OptionError,
    StageError,
    StreamflowError,
    UnpicklableMessage,
    WorkerCrashed,
)
from ._flow import ClosedFlow, Flow
from ._options import RunOptions, StageOptions
from ._run import Run
from ._runtime import RemoteTraceback, WorkerInfo, worker_info
from ._stage import Processor, Sink, Source, Stage, source, stage
from ._stats import StageStats, WorkerStats

__all__ = [
    "ClosedFlow",
    "Flow",
    "FlowTypeError",
    "InactivityError",
    "MessageTooLarge",
    "OptionError",
    "Processor",
    "RemoteTraceback",
    "Run",
    "RunOptions",
    "Sink",
    "Source",
    "Stage",
    "StageError",
    "StageOptions",
    "StageStats",
    "StreamflowError",
    "UnpicklableMessage",
    "WorkerCrashed",
    "WorkerInfo",
    "WorkerStats",
    "source",
    "stage",
    "worker_info",
]

__version__ = "0.1.0"
