"""How a plan runs, whatever the backend: the policy above the backends' mechanism.

``start(plan, config)`` loads the backend named in ``config`` and runs the
plan: through an ``Engine`` and a ``Supervisor`` on workers, or chained in
the caller for the inline backend.  The worker loop (``_worker``), the
supervisor's rules (``_supervisor``) and how errors arrive (``_remote``)
are the same for every backend.
"""

from __future__ import annotations

from .. import _backends
from .._backends import WorkerBackend
from .._errors import OptionError
from .._options import RunConfig
from .._plan import Plan
from ._chain import Chained
from ._engine import Engine
from ._supervisor import Execution, Supervisor
from ._current import WorkerInfo, worker_info
from ._remote import RemoteTraceback
from ._signals import deferred_interrupts

__all__ = ["Execution", "RemoteTraceback", "WorkerInfo", "deferred_interrupts", "packets_per_worker", "shutdown", "start", "worker_info"]


def packets_per_worker(config: RunConfig) -> int:
    """The default ``packets_in_flight`` a worker of the backend ``config`` names (for its plan)."""
    return _backends.load(config.backend).packets_per_worker


def start(plan: Plan, config: RunConfig) -> Execution:
    """Start running ``plan`` as ``config`` says; raises ``OptionError`` for an unknown backend."""
    backend = _backends.load(config.backend)
    if config.start_method is not None and config.start_method not in backend.start_methods:
        raise OptionError(
            f"start_method={config.start_method!r} does not apply to backend={config.backend!r}, "
            "which starts no processes of its own; it is an option of backend='process'"
        )
    if not backend.stops_calls:
        _reject_timeouts(plan, config.backend)
    if not issubclass(backend, WorkerBackend):
        return Chained(plan, config)  # no workers: the stages run in the caller
    return Supervisor(plan, config, Engine(plan, backend(plan, config), config.shutdown_timeout, config.spin_us))


def shutdown() -> None:
    """Stop what streamflow keeps running between runs: the fork server of the default start method.

    Call it when no run is active (a test suite that checks for child
    processes, an application shutting down); the next run starts what it
    needs again.
    """
    _backends.shutdown()


def _reject_timeouts(plan: Plan, backend: str) -> None:
    for node in plan.nodes:
        if node.options.timeout is not None and not node.is_async:  # async calls are cancelled instead
            raise OptionError(
                f"timeout={node.options.timeout:g} for stage '{node.name}' cannot be kept on the "
                f"{backend} backend: it cannot stop a sync call that is running; use the process "
                "or ray backend, or a timeout inside the stage's own code (a socket timeout, say)"
            )
