"""Live progress of a run on stderr: tqdm bars if tqdm is installed, else one line."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TextIO

from ._stats import StageStats

__all__ = ["Progress"]

_REFRESH = 0.5  # seconds between redraws


class Progress:
    """Redraw a run's per-stage counts and rates until it ends."""

    def __init__(
        self,
        stats: Callable[[], list[StageStats]],
        done: Callable[[], bool],
        stream: TextIO | None = None,
        *,
        bars: bool = True,
    ) -> None:
        """Draw ``stats()`` until ``done()``; ``bars``: use tqdm when it is installed."""
        self._stats = stats
        self._done = done
        self._stream = stream or sys.stderr
        self._use_tqdm = bars
        self._stopped = threading.Event()
        self._bars: list[Any] | None = None
        self._thread = threading.Thread(target=self._loop, name="streamflow-progress", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Draw the final counts and end the display; idempotent."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        if self._thread is not threading.current_thread():
            self._thread.join()

    def _loop(self) -> None:
        started = time.perf_counter()
        try:
            while not self._stopped.wait(_REFRESH) and not self._done():
                self._draw(time.perf_counter() - started)
            self._draw(time.perf_counter() - started)
        finally:
            self._close()

    def _draw(self, elapsed: float) -> None:
        stages = self._stats()
        if not stages:
            return
        if self._bars is None:
            self._bars = _tqdm_bars([s.stage for s in stages], self._stream) if self._use_tqdm else []
        if self._bars:
            for bar, stage in zip(self._bars, stages):
                bar.n = stage.items_out or stage.items_in
                bar.refresh()
            return
        parts = [
            f"{s.stage} {s.items_out or s.items_in} ({(s.items_out or s.items_in) / elapsed:.0f}/s)"
            for s in stages
        ]
        self._stream.write("\r" + " | ".join(parts) + f" [{elapsed:.0f} s]")
        self._stream.flush()

    def _close(self) -> None:
        if self._bars:
            for bar in self._bars:
                bar.close()
        elif self._bars is not None:
            self._stream.write("\n")
            self._stream.flush()


def _tqdm_bars(names: list[str], stream: TextIO) -> list[Any]:
    try:
        from tqdm import tqdm
    except ImportError:
        return []
    return [tqdm(desc=name, position=i, file=stream, unit="it", leave=True) for i, name in enumerate(names)]
