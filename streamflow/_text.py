"""How values read in messages: errors, notes, reprs."""

from __future__ import annotations

from typing import Any

__all__ = ["short"]


def short(value: Any, limit: int = 40) -> str:
    """``repr(value)``, cut to ``limit`` characters; a repr that raises is described instead."""
    try:
        text = repr(value)
    except Exception as exc:  # noqa: BLE001 - a message must not fail
        text = f"<{type(value).__name__} whose repr raised {type(exc).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."
