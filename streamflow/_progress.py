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
        names: list[str],
        stream: TextIO | None = None,
        *,
        bars: bool = True,
    ) -> None:
        """Draw ``stats()`` of the stages ``names`` until ``done()``.

        ``bars``: use tqdm when it is installed.  Times and rates count from
        now, the start of the run.
        """
        self._stats = stats
        self._done = done
        self._stream = stream or sys.stderr
        self._started = time.perf_counter()
        self._bars = _tqdm_bars(names, self._stream) if bars else []
        self._drawn = False
        self._stopped = threading.Event()
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
        try:
            while not self._stopped.wait(_REFRESH) and not self._done():
                self._draw(time.perf_counter() - self._started)
            self._draw(time.perf_counter() - self._started)
        finally:
            self._close()

    def _draw(self, elapsed: float) -> None:
        stages = self._stats()
        if not stages:
            return
        self._drawn = True
        if self._bars:
            for bar, stage in zip(self._bars, stages):
                bar.update((stage.items_out or stage.items_in) - bar.n)  # tqdm times the updates
            return
        parts = [
            f"{s.stage} {s.items_out or s.items_in} ({(s.items_out or s.items_in) / elapsed:.0f}/s)"
            for s in stages
        ]
        self._stream.write("\r" + " | ".join(parts) + f" [{elapsed:.0f} s]")
        self._stream.flush()

    def _close(self) -> None:
        for bar in self._bars:
            bar.close()
        if not self._bars and self._drawn:
            self._stream.write("\n")
            self._stream.flush()


def _tqdm_bars(names: list[str], stream: TextIO) -> list[Any]:
    try:
        from tqdm import tqdm
    except ImportError:
        return []
    return [tqdm(desc=name, position=i, file=stream, unit="it", leave=True) for i, name in enumerate(names)]
