"""Pictures of flows: Graphviz text and the notebook's SVG (issue 5)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from tests.stages import add, count_to, square, total

SVG = "{http://www.w3.org/2000/svg}"


def test_to_dot_shows_stages_workers_and_buffers() -> None:
    flow = count_to(n=3) | square.options(workers=4, packets_in_flight=8, max_message_size=2**20) | total
    dot = flow.to_dot()
    assert dot.startswith("digraph flow {") and dot.rstrip().endswith("}")
    assert 's1 [label="square\\nprocessor, workers=4"' in dot
    assert 's1 -> s2 [label="pif=8, 1 MiB"]' in dot
    assert 's0 -> s1 [label="pif=2"]' in dot


def test_svg_is_well_formed_and_names_every_stage() -> None:
    flow = count_to(n=3) | add(k=1) | add(k=2) | total
    root = ET.fromstring(flow._repr_svg_())
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert [t for t in texts if t in {"count_to", "add", "total"}] == ["count_to", "add", "add", "total"]
    assert len(list(root.iter(f"{SVG}rect"))) == 4
    assert len(list(root.iter(f"{SVG}polyline"))) == 3


def test_after_a_run_the_picture_shows_rates_and_the_bottleneck() -> None:
    from tests.test_run import slow

    run = (count_to(n=200) | slow | total).start(backend="thread")
    run.result()
    svg = run._repr_svg_()
    root = ET.fromstring(svg)
    texts = [t.text or "" for t in root.iter(f"{SVG}text")]
    assert any(t.endswith("items/s") for t in texts)
    assert "bottleneck: slow" in " ".join(texts)
    assert 'stroke="#d9534f"' in svg  # the slow stage's box is highlighted
    assert "/s, " in run.to_dot()
