"""How a plan runs: one module per backend, loaded by the name users pass.

Each module exposes ``start(plan, config) -> Execution`` (see
``streamflow._execution``).  The front end only ever calls ``load``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .._execution import Execution
    from .._plan import Plan, RunConfig

__all__ = ["BACKENDS", "load"]

BACKENDS = ("inline", "thread", "process", "ray")


def load(name: str) -> "Start":
    """The ``start`` function of backend ``name`` (validated by ``RunConfig``)."""
    module = importlib.import_module(f"{__name__}._{name}")
    start: Start = module.start
    return start


if TYPE_CHECKING:
    from typing import Callable

    Start = Callable[[Plan, RunConfig], Execution]
