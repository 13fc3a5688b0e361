"""``ShmEdge``: a segment with its two ends, and the take-over of a dead worker's.

Build it in the parent; hand it to workers (inherited under fork, pickled
with its file descriptor under spawn/forkserver); each worker takes a
``sender()`` or ``receiver()`` end.  A worker that takes an end of an edge
to a fresh interpreter first installs the caller's ``__main__`` classes.
"""

from __future__ import annotations

import pickle
from typing import Any

from .. import Held
from .._serialize import HEAD, read
from ._layout import OVERFLOW, Segment
from ._overflow import Overflow
from ._receiver import RingReceiver, ShmReceiver
from ._sender import ShmSender
from ._takeover import Replaying

__all__ = ["ShmEdge"]

_loads = pickle.loads


class ShmEdge(Segment):
    """One edge of a process flow (see ``Segment`` for its memory); picklable only while spawning workers."""

    def sender(self, endpoint: int) -> ShmSender:
        if self.shipped is not None:
            self.shipped.install()
        return ShmSender(self, endpoint)

    def receiver(self, endpoint: int) -> ShmReceiver | Replaying:
        if self.shipped is not None:
            self.shipped.install()
        if self.ring and not self.recoverable:
            return RingReceiver(self)
        receiver = ShmReceiver(self, endpoint)
        if self.recoverable and receiver._held >= 0 and self.ctrl[self.again_base + endpoint] > 0:
            return Replaying(receiver, receiver._held)
        return receiver

    # -- taking over the ends of a dead worker (recoverable edges) --

    def held(self, endpoint: int) -> Held | None:
        """The packet consumer ``endpoint`` held as its worker died (read in the caller); on an edge
        that is not ``recoverable``, the attempts at it are not kept (0)."""
        index = int(self.ctrl[self.held_base + endpoint])
        if index < 0:
            return None
        return Held(self._peek(index), int(self.ctrl[self.again_base + endpoint]) if self.recoverable else 0)

    def again(self, endpoint: int, attempts: int) -> None:
        """The next receiver of ``endpoint`` takes its held packet first (0 or -1, skipped: it frees it)."""
        self.ctrl[self.again_base + endpoint] = attempts

    def _peek(self, index: int) -> Any:
        """A copy of the packet in slot ``index``, or what can be said of it."""
        size, count, flags = HEAD.unpack_from(self.slots[index], 0)
        try:
            if not (count or flags):
                return _loads(self.payloads[index])
            if flags == OVERFLOW:
                overflow = Overflow(self)
                try:
                    with overflow.view(index, size, grow=False) as view:
                        return read(view, copy=True)
                finally:
                    overflow.close()
            return read(self.slots[index], True)
        except Exception as exc:  # noqa: BLE001 - described instead
            what = f"an item of {size:,} bytes" if count or flags else "an item"  # a plain pickle's size is not written
            return f"<{what} that cannot be read in the caller: {exc}>"
