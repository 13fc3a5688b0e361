"""streamflow: parallel stream processing with plain Python generators.

Annotate generator functions with ``@stage`` (or per-item functions with
``@map``), compose them with ``|`` into a
lazy, type-checked ``Flow``, and run it on threads or processes with
bounded buffers and errors that never hang.
"""

from ._errors import (
    FailuresWarning,
    FlowTypeError,
    InactivityError,
    ItemTimeout,
    MessageTooLarge,
    OptionError,
    StageError,
    StreamflowError,
    TooManyFailures,
    UnpicklableMessage,
    UnroutedItem,
    WorkerCrashed,
)
from ._batch import batch, unbatch
from ._branches import merge, route, tee, zip
from ._failures import Failure
from ._flow import ClosedFlow, Flow
from ._map import map
from ._options import RunOptions, StageOptions
from ._run import Run
from ._runtime import RemoteTraceback, WorkerInfo, shutdown, worker_info
from ._stage import Processor, Sink, Source, Stage, source, stage
from ._stats import StageStats, WorkerStats

__all__ = [
    "ClosedFlow",
    "Failure",
    "FailuresWarning",
    "Flow",
    "FlowTypeError",
    "InactivityError",
    "ItemTimeout",
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
    "TooManyFailures",
    "UnpicklableMessage",
    "UnroutedItem",
    "WorkerCrashed",
    "WorkerInfo",
    "WorkerStats",
    "batch",
    "map",
    "merge",
    "route",
    "shutdown",
    "source",
    "stage",
    "tee",
    "unbatch",
    "worker_info",
    "zip",
]

__version__ = "0.1.0"
