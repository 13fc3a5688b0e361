"""The examples run, as a user would run them (issue 5)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import streamflow as sf

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


def test_api_fetch(opts: dict[str, Any]) -> None:
    pytest.importorskip("aiohttp")
    from examples import api_fetch

    count = 120 if opts["backend"] != "ray" else 100
    with pytest.warns(sf.FailuresWarning, match="'Fetch' skipped"):
        summary = api_fetch.main(count=count, **opts)
    missing = [i for i in range(count) if i % api_fetch.MISSING_EVERY == api_fetch.MISSING_EVERY - 1]
    assert summary.products == count - len(missing)
    assert sorted(f.item for f in summary.failures) == missing
    assert all(isinstance(f.error, LookupError) for f in summary.failures)
    assert sum(n for n, _ in summary.by_category.values()) == summary.products


def test_api_fetch_times_out_the_stuck_request() -> None:
    pytest.importorskip("aiohttp")
    from examples import api_fetch

    with pytest.warns(sf.FailuresWarning, match="'Fetch' skipped"):
        summary = api_fetch.main(count=api_fetch.STUCK + 1, backend="thread")
    (stuck,) = [f for f in summary.failures if f.item == api_fetch.STUCK]
    assert isinstance(stuck.error, sf.ItemTimeout)
    busy = [i for i in range(api_fetch.STUCK + 1) if i % api_fetch.BUSY_EVERY == 7]
    assert busy and not any(f.item in busy for f in summary.failures)  # retried, not skipped


def test_ingest_tables(opts: dict[str, Any], tmp_path: Path) -> None:
    from examples import ingest_tables

    export = str(ingest_tables.make_export(tmp_path / "export.jsonl", 400))
    database = str(tmp_path / "ingest.db")
    run, (articles, words) = ingest_tables.ingest(export, database, **opts)
    bad = ingest_tables.malformed(400)
    assert (articles, words) == (400 - bad, 12 * (400 - bad))
    assert run.results["dead_letters"] == bad == len(run.failures)
    ingest_tables.ingest(export, database, **opts)  # again: nothing is written twice
    assert ingest_tables.count_rows(database) == {"articles": 400 - bad, "words": 12 * (400 - bad), "dead_letters": bad}
