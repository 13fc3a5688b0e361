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
from ._flow import ClosedFlow, Flow, RunOptions
from ._run import Run
from ._stats import StageStats, WorkerStats
from ._stage import Processor, Sink, Source, Stage, StageOptions, source, stage
from ._worker import WorkerInfo, worker_info

__all__ = [
    "ClosedFlow",
    "Flow",
    "FlowTypeError",
    "InactivityError",
    "MessageTooLarge",
    "OptionError",
    "Processor",
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
