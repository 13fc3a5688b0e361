"""Branch blocks as data: one link of a chain that holds several branches.

::

    read | parse | Block(tee: (index | write_index), (thumbs | write_thumbs)) | ...
                   a part of the chain, like a stage; each branch is a chain of parts

A ``Block`` is what ``sf.tee``, ``sf.route``, ``sf.zip`` and ``sf.merge``
build (``_branches``), what composition checks (``_compose``) and what the
plan turns into nodes and links (``_plan``).  It holds no behaviour of its
own: a branch is a tuple of parts (stages, and blocks for nested ones).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Hashable
from typing import Any, Literal

__all__ = ["Block", "BlockKind"]

BlockKind = Literal["tee", "route", "zip", "merge"]


@dataclasses.dataclass(frozen=True)
class Block:
    """Several branches in one link of a chain.

    ``tee``: every item to every branch; ``route``: each item to the branch
    ``keys`` names for ``key(item)`` (else ``default``); ``zip``: every item to
    every branch, one tuple of their outputs out; ``merge``: sources' streams
    into one.  ``types``: each branch's output type (a closed branch's: its
    result's), filled in when the block is composed.
    """

    kind: BlockKind
    branches: tuple[tuple[Any, ...], ...]
    keys: tuple[Hashable, ...] = ()  # route: each branch's key
    key: Callable[[Any], Any] | None = None  # route
    default: int | None = None  # route: the branch of items whose key has none
    on_error: Literal["raise", "skip"] = "raise"  # route: what an unrouted item does
    ordered: bool = False  # tee, route: outputs leave in their inputs' order
    packets_in_flight: int | None = None  # the packets each branch's input edge holds

    @property
    def name(self) -> str:
        """How messages name the block."""
        return f"sf.{self.kind}"
