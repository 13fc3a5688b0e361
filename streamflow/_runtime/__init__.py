"""How a plan runs, whatever the backend: the policy above the backends' mechanism.

``start(plan, config)`` loads the backend named in ``config`` and runs the
plan: through an ``Engine`` and a ``Supervisor`` on workers, or chained in
the caller for the inline backend.  The worker loop (``_worker``), the
supervisor's rules (``_supervisor``) and how errors arrive (``_remote``)
are the same for every backend.
"""

from __future__ import annotations

from .. import _backends
from .._options import RunConfig
from .._plan import Plan
from ._chain import Chained
from ._engine import Engine
from ._supervisor import Execution, Supervisor
from ._current import WorkerInfo, worker_info
from ._remote import RemoteTraceback
from ._signals import deferred_interrupts

__all__ = ["Execution", "RemoteTraceback", "WorkerInfo", "deferred_interrupts", "start", "worker_info"]


def start(plan: Plan, config: RunConfig) -> Execution:
    """Start running ``plan`` as ``config`` says; raises ``OptionError`` for an unknown backend."""
    backend = _backends.load(config.backend)
    if backend.runs_in_caller:
        return Chained(plan)
    return Supervisor(plan, config, Engine(plan, backend(plan, config)))
