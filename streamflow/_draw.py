"""Pictures of flows: Graphviz text, and SVG drawn here (no Graphviz needed).

One box a stage (name, kind, workers), one arrow a link from each node
that writes it to the node that reads it (its ``packets_in_flight`` and
message size); after a run, each box also shows the stage's rate and how
busy it was, and the bottleneck is highlighted.  Boxes stand in columns by
their depth in the graph (the longest path to them from a source), in plan
order within a column.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from ._plan import Link, Node, Plan
from ._stats import StageStats, bottleneck

__all__ = ["to_dot", "to_svg"]

_BOX_W, _BOX_H, _GAP, _ROW_GAP, _PAD = 170, 84, 74, 26, 16
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


def _arrows(plan: Plan) -> list[tuple[Node, Node, Link]]:
    """(writer, reader, link) for every link a node reads: what the pictures draw as arrows."""
    return [
        (plan.node(writer), plan.node(link.reader), link)
        for link in plan.links
        if link.reader is not None
        for writer in link.writers
    ]


def _places(plan: Plan) -> dict[int, tuple[int, int]]:
    """(column, row) of each node: its depth from the sources, then a row near its upstream's.

    Within a column, nodes are ordered by the mean row of the nodes they read
    (plan order for ties), so that branches stay in their rows and joins sit
    between them.
    """
    depth: dict[int, int] = {}
    for node in plan.nodes:  # every node comes after those it reads
        depth[node.index] = max((depth[up.index] + 1 for up in plan.upstream(node)), default=0)
    columns: dict[int, list[Node]] = {}
    for node in plan.nodes:
        columns.setdefault(depth[node.index], []).append(node)
    places: dict[int, tuple[int, int]] = {}
    for column in sorted(columns):
        def mean_row(node: Node) -> float:
            rows = [places[up.index][1] for up in plan.upstream(node)]
            return sum(rows) / len(rows) if rows else 0.0

        nodes = sorted(columns[column], key=mean_row)  # stable: plan order for ties
        taken: set[int] = set()
        for node in nodes:
            row = max(round(mean_row(node)), 0)
            while row in taken:
                row += 1
            taken.add(row)
            places[node.index] = (column, row)
    return places


def to_dot(plan: Plan, stats: Sequence[StageStats] = ()) -> str:
    """The flow as a Graphviz digraph (``dot -Tsvg`` renders it)."""
    measured = {s.stage: s for s in stats}
    slowest = bottleneck(stats) if stats else None
    lines = ["digraph flow {", "  rankdir=LR;", '  node [shape=box, style="rounded,filled", fontname="Helvetica"];']
    for node in plan.nodes:
        label = f"{node.stage}\\n{node.kind}, workers={node.workers}"
        stage = measured.get(node.name)
        if stage is not None:
            label += f"\\n{stage.rate:,.0f}/s, {stage.busy_share:.0%} busy"
        color = "#f8d0c8" if slowest is not None and stage is slowest else _COLORS[node.kind]
        lines.append(f'  s{node.index} [label="{label}", fillcolor="{color}"];')
    for writer, reader, link in _arrows(plan):
        lines.append(f'  s{writer.index} -> s{reader.index} [label="{_edge_label(link)}"];')
    lines.append("}")
    return "\n".join(lines)


def to_svg(plan: Plan, stats: Sequence[StageStats] = ()) -> str:
    """The flow as a self-contained SVG image."""
    measured = {s.stage: s for s in stats}
    slowest = bottleneck(stats) if stats else None
    places = _places(plan)
    columns = 1 + max((column for column, _ in places.values()), default=0)
    rows = 1 + max((row for _, row in places.values()), default=0)

    def corner(node: Node) -> tuple[float, float]:
        column, row = places[node.index]
        return _PAD + column * (_BOX_W + _GAP), _PAD + row * (_BOX_H + _ROW_GAP)

    width = _PAD * 2 + columns * _BOX_W + (columns - 1) * _GAP
    height = _PAD * 2 + rows * _BOX_H + (rows - 1) * _ROW_GAP + (24 if slowest is not None else 0)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="Helvetica, Arial, sans-serif" font-size="12">',
        '<defs><marker id="sf-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker></defs>',
    ]
    for node in plan.nodes:
        x, y = corner(node)
        stage = measured.get(node.name)
        hot = slowest is not None and stage is slowest
        fill = "#fde3dd" if hot else _COLORS[node.kind]
        stroke = "#d9534f" if hot else "#888"
        parts.append(
            f'<rect x="{x}" y="{y}" width="{_BOX_W}" height="{_BOX_H}" rx="9" fill="{fill}" '
            f'stroke="{stroke}" stroke-width="{3 if hot else 1.2}"/>'
        )
        center = x + _BOX_W / 2
        parts.append(
            f'<text x="{center}" y="{y + 22}" text-anchor="middle" font-weight="bold" '
            f'font-size="14">{escape(node.stage)}</text>'
        )
        parts.append(
            f'<text x="{center}" y="{y + 40}" text-anchor="middle" fill="#444">'
            f"{node.kind} &#xd7; {node.workers} worker{'s' if node.workers > 1 else ''}</text>"
        )
        if stage is not None:
            parts.append(
                f'<text x="{center}" y="{y + 58}" text-anchor="middle" fill="#222">'
                f"{stage.rate:,.0f} items/s</text>"
            )
            parts.append(
                f'<text x="{center}" y="{y + 74}" text-anchor="middle" fill="#666">'
                f"{stage.busy_share:.0%} busy</text>"
            )
    for writer, reader, link in _arrows(plan):
        (x1, y1), (x2, y2) = corner(writer), corner(reader)
        start, end = (x1 + _BOX_W + 2, y1 + _BOX_H / 2), (x2 - 2, y2 + _BOX_H / 2)
        # An arrow past the next column runs along its own row to the last gap, then turns.
        bend = (x2 - _GAP / 2, start[1]) if x2 - x1 > _BOX_W + _GAP else start
        parts.append(
            f'<polyline points="{start[0]},{start[1]} {bend[0]},{bend[1]} {end[0]},{end[1]}" fill="none" '
            f'stroke="#555" stroke-width="1.5" marker-end="url(#sf-arrow)"/>'
        )
        parts.append(
            f'<text x="{start[0] + 6}" y="{start[1] - 6 if end[1] >= start[1] else start[1] + 14}" '
            f'fill="#555" font-size="10">{escape(_edge_label(link))}</text>'
        )
    if slowest is not None:
        parts.append(
            f'<text x="{_PAD}" y="{height - 10}" fill="#d9534f">bottleneck: '
            f"{escape(slowest.stage)} ({slowest.busy_share:.0%} busy)</text>"
        )
    parts.append("</svg>")
    return "".join(parts)
