"""Pictures of flows: Graphviz text, and SVG drawn here (no Graphviz needed).

One box a stage (name, kind, workers), one arrow an edge (its
``packets_in_flight`` and message size); after a run, each box also shows
the stage's rate and how busy it was, and the bottleneck is highlighted.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from ._plan import Link, Node, Plan
from ._stats import StageStats, bottleneck

__all__ = ["to_dot", "to_svg"]

_BOX_W, _BOX_H, _GAP, _PAD = 170, 84, 74, 16
_COLORS = {"source": "#e8f1fb", "processor": "#eef7ee", "sink": "#fbf1e6"}


def _edge_label(link: Link) -> str:
    label = f"pif={link.capacity}"
    if link.max_message_size is not None:
        label += f", {_size(link.max_message_size)}"
        if link.shared_buffer:
            label += ", shared"
    return label


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:g} {unit}" if unit == "B" else f"{n:.3g} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def _measured(nodes: Sequence[Node], stats: Sequence[StageStats]) -> list[StageStats | None]:
    """Each node's stats, by name."""
    by_name = {s.stage: s for s in stats}
    return [by_name.get(node.name) for node in nodes]


def to_dot(plan: Plan, stats: Sequence[StageStats] = ()) -> str:
    """The flow as a Graphviz digraph (``dot -Tsvg`` renders it)."""
    stages = plan.nodes
    measures = _measured(stages, stats)
    slowest = bottleneck(stats) if stats else None
    lines = ["digraph flow {", "  rankdir=LR;", '  node [shape=box, style="rounded,filled", fontname="Helvetica"];']
    for index, stage in enumerate(stages):
        label = f"{stage.stage}\\n{stage.kind}, workers={stage.workers}"
        measured = measures[index]
        if measured is not None:
            label += f"\\n{measured.rate:,.0f}/s, {measured.busy_share:.0%} busy"
        color = "#f8d0c8" if slowest is not None and measured is slowest else _COLORS[stage.kind]
        lines.append(f'  s{index} [label="{label}", fillcolor="{color}"];')
    for index, stage in enumerate(stages[:-1]):
        link = plan.links[stage.outputs[0]]
        lines.append(f'  s{index} -> s{index + 1} [label="{_edge_label(link)}"];')
    lines.append("}")
    return "\n".join(lines)


def to_svg(plan: Plan, stats: Sequence[StageStats] = ()) -> str:
    """The flow as a self-contained SVG image."""
    stages = plan.nodes
    measures = _measured(stages, stats)
    slowest = bottleneck(stats) if stats else None
    width = _PAD * 2 + len(stages) * _BOX_W + (len(stages) - 1) * _GAP
    height = _PAD * 2 + _BOX_H + (24 if slowest is not None else 0)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="Helvetica, Arial, sans-serif" font-size="12">',
        '<defs><marker id="sf-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker></defs>',
    ]
    for index, stage in enumerate(stages):
        x = _PAD + index * (_BOX_W + _GAP)
        measured = measures[index]
        hot = slowest is not None and measured is slowest
        fill = "#fde3dd" if hot else _COLORS[stage.kind]
        stroke = "#d9534f" if hot else "#888"
        parts.append(
            f'<rect x="{x}" y="{_PAD}" width="{_BOX_W}" height="{_BOX_H}" rx="9" fill="{fill}" '
            f'stroke="{stroke}" stroke-width="{3 if hot else 1.2}"/>'
        )
        center = x + _BOX_W / 2
        parts.append(
            f'<text x="{center}" y="{_PAD + 22}" text-anchor="middle" font-weight="bold" '
            f'font-size="14">{escape(stage.stage)}</text>'
        )
        parts.append(
            f'<text x="{center}" y="{_PAD + 40}" text-anchor="middle" fill="#444">'
            f"{stage.kind} &#xd7; {stage.workers} worker{'s' if stage.workers > 1 else ''}</text>"
        )
        if measured is not None:
            parts.append(
                f'<text x="{center}" y="{_PAD + 58}" text-anchor="middle" fill="#222">'
                f"{measured.rate:,.0f} items/s</text>"
            )
            parts.append(
                f'<text x="{center}" y="{_PAD + 74}" text-anchor="middle" fill="#666">'
                f"{measured.busy_share:.0%} busy</text>"
            )
        if index < len(stages) - 1:
            start, end, y = x + _BOX_W, x + _BOX_W + _GAP, _PAD + _BOX_H / 2
            parts.append(
                f'<line x1="{start + 2}" y1="{y}" x2="{end - 2}" y2="{y}" stroke="#555" '
                f'stroke-width="1.5" marker-end="url(#sf-arrow)"/>'
            )
            parts.append(
                f'<text x="{(start + end) / 2}" y="{y - 8}" text-anchor="middle" fill="#555" '
                f'font-size="10">{escape(_edge_label(plan.links[stage.outputs[0]]))}</text>'
            )
    if slowest is not None:
        parts.append(
            f'<text x="{_PAD}" y="{height - 10}" fill="#d9534f">bottleneck: '
            f"{escape(slowest.stage)} ({slowest.busy_share:.0%} busy)</text>"
        )
    parts.append("</svg>")
    return "".join(parts)
