"""One parse, two tables, and a dead-letter table: a JSON-lines ingest into SQLite with branches.

::

    read lines | parse (2 workers, on_error=dead_letters) | tee( store_articles, words | store_words )
                                  \\--> dead_letters: the malformed lines, with their errors

A file of JSON lines (a few of them malformed, as real exports have) is
read once and parsed by two workers; every parsed record goes both to the
``articles`` table and, cut into words, to the ``words`` table (a tee of
two sinks: ``run()`` returns both row counts).  A line that does not parse
does not end the run: it enters the dead-letter branch as a ``Failure``
record and lands in the ``dead_letters`` table, with the error that
rejected it.  Each sink writes with an upsert keyed on the record's id, so
running the ingest again leaves the tables as they were.

Run it with ``python -m examples.ingest_tables``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import random
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import streamflow as sf

MALFORMED_EVERY = 97  # one line in this many is broken


@dataclasses.dataclass(frozen=True)
class Article:
    id: int
    title: str
    body: str


def make_export(path: Path, lines: int = 2000, seed: int = 3) -> Path:
    """Write ``lines`` JSON lines of articles, one in ``MALFORMED_EVERY`` broken."""
    rnd = random.Random(seed)
    words = "river stone cloud lantern harbour meadow copper whistle orchard ember".split()
    with path.open("w") as out:
        for i in range(lines):
            record = {"id": i, "title": f"article {i}", "body": " ".join(rnd.choices(words, k=12))}
            line = json.dumps(record)
            if i % MALFORMED_EVERY == MALFORMED_EVERY - 1:
                line = line[: len(line) // 2]  # cut short, as a truncated export is
            out.write(line + "\n")
    return path


def malformed(lines: int) -> int:
    return sum(1 for i in range(lines) if i % MALFORMED_EVERY == MALFORMED_EVERY - 1)


@sf.stage
def read_lines(path: str) -> Iterator[str]:
    with open(path) as lines:
        yield from lines


@sf.map(workers=2)
def parse(line: str) -> Article:
    record = json.loads(line)
    return Article(int(record["id"]), str(record["title"]), str(record["body"]))


@sf.stage
def words(articles: Iterable[Article]) -> Iterator[tuple[int, str, int]]:
    for article in articles:
        for position, word in enumerate(article.body.split()):
            yield article.id, word, position


CHUNK = 256  # rows a transaction: three sinks share the database, and a writer holds it while it commits


@contextlib.contextmanager
def _connect(database: str) -> Iterator[sqlite3.Connection]:
    db = sqlite3.connect(database, timeout=30)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        yield db
    finally:
        db.close()


def _upsert(database: str, statement: str, rows: Iterable[tuple[Any, ...]]) -> int:
    """Write ``rows`` with ``statement``, a transaction every ``CHUNK`` rows; the rows written.

    Not one transaction for the whole stream: the three sinks of the flow
    run at once, and one that kept the database locked while it waited for
    its next row would keep the others from writing theirs, and the tee
    that feeds them all from going on.
    """
    written = 0
    with _connect(database) as db:
        chunk: list[tuple[Any, ...]] = []
        for row in rows:
            chunk.append(row)
            if len(chunk) == CHUNK:
                with db:
                    db.executemany(statement, chunk)
                written, chunk = written + len(chunk), []
        with db:
            db.executemany(statement, chunk)
        return written + len(chunk)


@sf.stage
def store_articles(articles: Iterable[Article], database: str) -> int:
    return _upsert(
        database,
        "INSERT INTO articles (id, title, body) VALUES (?, ?, ?) "
        "ON CONFLICT (id) DO UPDATE SET title = excluded.title, body = excluded.body",
        ((a.id, a.title, a.body) for a in articles),
    )


@sf.stage
def store_words(rows: Iterable[tuple[int, str, int]], database: str) -> int:
    return _upsert(
        database,
        "INSERT INTO words (article, word, position) VALUES (?, ?, ?) "
        "ON CONFLICT (article, position) DO UPDATE SET word = excluded.word",
        rows,
    )


@sf.stage
def dead_letters(failures: Iterable[sf.Failure], database: str) -> int:
    return _upsert(
        database,
        "INSERT INTO dead_letters (line, error) VALUES (?, ?) ON CONFLICT (line) DO UPDATE SET error = excluded.error",
        ((str(f.item), f"{type(f.error).__name__}: {f.error}") for f in failures),
    )


def create_tables(database: str) -> None:
    with _connect(database) as db, db:
        db.executescript(
            """
            CREATE TABLE IF NOT EXISTS articles (id INTEGER PRIMARY KEY, title TEXT, body TEXT);
            CREATE TABLE IF NOT EXISTS words (article INTEGER, word TEXT, position INTEGER,
                                              PRIMARY KEY (article, position));
            CREATE TABLE IF NOT EXISTS dead_letters (line TEXT PRIMARY KEY, error TEXT);
            """
        )


def ingest(export: str, database: str, **options: Any) -> tuple[sf.Run[Any, Any], tuple[int, int]]:
    """Run the ingest; the run (for its results and failures) and the row counts of both tables."""
    create_tables(database)
    flow = (
        read_lines(path=export)
        | parse.options(on_error=dead_letters(database=database))
        | sf.tee(store_articles(database=database), words | store_words(database=database))
    )
    run = flow.start(**options)
    written = run.result()
    return run, written


def count_rows(database: str) -> dict[str, int]:
    with _connect(database) as db:
        return {table: db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] for table in ("articles", "words", "dead_letters")}


def main(lines: int = 2000, **options: Any) -> dict[str, int]:
    with tempfile.TemporaryDirectory() as tmp:
        export = str(make_export(Path(tmp) / "export.jsonl", lines))
        database = str(Path(tmp) / "ingest.db")
        run, (articles, words_written) = ingest(export, database, **options)
        print(f"articles written: {articles}, words written: {words_written}")
        print(f"malformed lines: {len(run.failures)}, in the dead-letter table: {run.results['dead_letters']}")
        first = run.failures[0]
        print(f"the first: {first.item.strip()[:40]!r} ({type(first.error).__name__})")
        ingest(export, database, **options)  # again: the upserts leave the tables as they were
        rows = count_rows(database)
        print(f"rows after a second ingest: {rows}")
        return rows


if __name__ == "__main__":
    main()
