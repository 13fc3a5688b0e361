"""The caller's side, for async code: ``await flow.run_async()`` and ``async for x in flow.aiter()``.

::

    event loop thread                         a thread of the loop's default executor
    -----------------                         -------------------------------------------
    await run_async()  --to_thread-->  flow.start(); run.result()   (the run's own workers run as ever)
    async for x in aiter()  --to_thread-->  next(run), one item at a time
    cancelled (task.cancel, Ctrl-C under asyncio.run)  -->  run.cancel()

A run started from async code is the same run as ``run()`` starts: same
backends, errors, statistics and clean-up.  Only the waiting moves off the
event loop's thread, so the loop keeps serving other tasks; each item of
``aiter`` costs one hop to a thread and back (tens of microseconds).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

from ._run import Run

__all__ = ["aiter_run", "run_async"]

T = TypeVar("T")
_END = object()


async def run_async(start: Callable[[], Run[Any, T]]) -> T:
    """``start()`` a run and wait for its result without blocking the event loop."""
    run = await asyncio.to_thread(start)
    try:
        return await asyncio.to_thread(run.result)
    except BaseException:  # cancelled, or the run failed: nothing may keep running
        await _shielded_cancel(run)
        raise


async def aiter_run(start: Callable[[], Run[T, Any]]) -> AsyncIterator[T]:
    """The items of the run ``start()`` begins, each awaited off the event loop."""
    run = await asyncio.to_thread(start)
    try:
        while True:
            item: Any = await asyncio.to_thread(next, run, _END)
            if item is _END:
                return
            yield item
    finally:
        await _shielded_cancel(run)


async def _shielded_cancel(run: Run[Any, Any]) -> None:
    """Stop ``run`` and wait for its workers, even while the task is being cancelled."""
    if not run.done():
        await asyncio.shield(asyncio.to_thread(run.cancel))
