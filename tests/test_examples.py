"""The examples run, as a user would run them (issue 5)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_quickstart_runs_as_a_module() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "examples.quickstart"],
        capture_output=True, text=True, timeout=60, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr
    assert "sum of squares below 1000: 332833500" in done.stdout
    assert "caught at composition: cannot connect 'labels' -> 'total'" in done.stdout


def _not_ray(opts: dict[str, Any]) -> None:
    if opts["backend"] == "ray":
        pytest.skip("smoke-tested on one machine; Ray's per-packet cost makes it minutes")


def test_image_batch(parallel_opts: dict[str, Any]) -> None:
    _not_ray(parallel_opts)
    pytest.importorskip("sklearn")
    from examples import image_batch

    summary = image_batch.main(count=40, **parallel_opts)
    assert summary.images == 40 and sum(summary.counts.values()) == 40
    assert summary.accuracy > 0.7


def test_document_stream(opts: dict[str, Any]) -> None:
    _not_ray(opts)
    from examples import document_stream

    hits, failures = document_stream.search(documents=1200, **opts)
    assert len(failures) == document_stream.malformed(1200) == 3
    assert {type(f.error) for f in failures} == {ValueError, UnicodeDecodeError}
    assert all(f.stage == "parse" and isinstance(f.item, bytes) for f in failures)
    assert len(hits) == 5
    assert all(hit.title.startswith("Astronomy") for hit in hits)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
