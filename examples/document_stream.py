"""A document pipeline: bz2-compressed XML -> records -> documents -> similarity search -> top hits.

The corpus is generated locally (a few thousand short articles on a handful
of topics, one in 400 malformed, as real dumps have), compressed with bz2
like a Wikipedia dump, then streamed: decompressed in chunks, cut into
records without loading the whole file, parsed by two workers (a malformed
record is skipped and listed in ``run.failures``, not the end of the run),
scored against a query (hashed bag-of-words vectors, cosine similarity),
and the best hits collected.

Run it with ``python -m examples.document_stream``.
"""

from __future__ import annotations

import bz2
import dataclasses
import heapq
import random
import re
import tempfile
import warnings
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from xml.sax.saxutils import escape, unescape

import numpy as np

import streamflow as sf

TOPICS = {
    "astronomy": "star galaxy telescope orbit planet comet nebula light year",
    "cooking": "recipe oven flour butter sugar simmer spice garlic onion",
    "sailing": "boat wind sail harbour mast keel tide knot anchor",
    "music": "melody chord rhythm guitar piano tempo harmony concert",
}
FILLER = "the a of and to in is was for on with as by at from that this it"


@dataclasses.dataclass
class Document:
    id: int
    title: str
    text: str


@dataclasses.dataclass(order=True)
class Hit:
    score: float
    id: int
    title: str


MALFORMED_EVERY = 400  # one record in this many is broken, in one of three ways


def make_corpus(path: Path, documents: int = 3000, seed: int = 7) -> Path:
    """Write a bz2-compressed XML corpus of short articles, a few of them malformed."""
    rnd = random.Random(seed)
    filler = FILLER.split()
    with bz2.open(path, "wb") as out:
        out.write(b"<corpus>\n")
        for i in range(documents):
            topic = rnd.choice(list(TOPICS))
            words = [rnd.choice(TOPICS[topic].split()) if rnd.random() < 0.4 else rnd.choice(filler) for _ in range(80)]
            title = f"<title>{escape(topic.title())} note {i}</title>".encode()
            text = f"<text>{escape(' '.join(words))}</text>".encode()
            doc_id = str(i).encode()
            if i % MALFORMED_EVERY == MALFORMED_EVERY - 1:  # broken: a bad id, no title, or not UTF-8
                broken = (i // MALFORMED_EVERY) % 3
                doc_id, title, text = (
                    (doc_id + b"?", title, text),
                    (doc_id, b"", text),
                    (doc_id, title, text.replace(b"<text>", b"<text>\xff\xfe")),
                )[broken]
            out.write(b'<doc id="' + doc_id + b'">' + title + text + b"</doc>\n")
        out.write(b"</corpus>\n")
    return path


def malformed(documents: int) -> int:
    """How many records of a corpus of ``documents`` are malformed."""
    return (documents + 1) // MALFORMED_EVERY


@sf.stage(packets_in_flight=4)
def decompress(path: str, chunk_size: int = 64 * 1024) -> Iterator[bytes]:
    """Stream the decompressed bytes of a bz2 file, a chunk at a time."""
    decompressor = bz2.BZ2Decompressor()
    with open(path, "rb") as compressed:
        while block := compressed.read(chunk_size):
            data = decompressor.decompress(block)
            if data:
                yield data


_RECORD = re.compile(rb"<doc .*?</doc>", re.S)
_DOC = re.compile(rb'<doc id="([^"]*)"><title>(.*?)</title><text>(.*?)</text></doc>', re.S)


@sf.stage(packets_in_flight=16)
def split(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Cut the byte stream into records, one ``<doc>`` each; a record may span chunks."""
    pending = b""
    for chunk in chunks:
        pending += chunk
        end = 0
        for match in _RECORD.finditer(pending):
            yield match.group()
            end = match.end()
        pending = pending[end:]


@sf.map(workers=2, packets_in_flight=16, on_error="skip")
def parse(record: bytes) -> Document:
    """One record as a ``Document``; raises ``ValueError`` for a malformed one (skipped)."""
    match = _DOC.fullmatch(record)
    if match is None:
        raise ValueError(f"not a <doc> with an id, a title and a text: {record[:60]!r}")
    doc_id, title, text = match.groups()
    return Document(int(doc_id), unescape(title.decode()), unescape(text.decode()))


def embed(text: str, dimensions: int) -> np.ndarray:
    """A hashed bag-of-words vector, normalised."""
    vector = np.zeros(dimensions)
    for word in text.lower().split():
        vector[zlib.crc32(word.encode()) % dimensions] += 1.0
    norm = np.linalg.norm(vector)
    return vector / norm if norm else vector


@sf.stage(workers=2, packets_in_flight=16)
def score(documents: Iterable[Document], query: str, dimensions: int = 512) -> Iterator[Hit]:
    """Cosine similarity of every document to the query."""
    target = embed(query, dimensions)
    for doc in documents:
        yield Hit(float(embed(doc.text, dimensions) @ target), doc.id, doc.title)


@sf.stage
def top(hits: Iterable[Hit], k: int = 5) -> list[Hit]:
    """The ``k`` best hits, best first."""
    return sorted(heapq.nlargest(k, hits), reverse=True)


def search(documents: int = 3000, **options: object) -> tuple[list[Hit], list[sf.Failure]]:
    """The top hits of a generated corpus, and the records that could not be parsed."""
    with tempfile.TemporaryDirectory() as folder:
        corpus = make_corpus(Path(folder) / "corpus.xml.bz2", documents)
        flow = decompress(path=str(corpus)) | split | parse | score(query="telescope orbit of a comet") | top(k=5)
        print(f"flow: {flow!r}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", sf.FailuresWarning)  # listed below instead
            run = flow.start(**options)  # type: ignore[arg-type]
            hits = run.result()
    return hits, run.failures


def main(documents: int = 3000, **options: object) -> list[Hit]:
    hits, failures = search(documents, **options)
    for hit in hits:
        print(f"  {hit.score:.3f}  #{hit.id:<5} {hit.title}")
    print(f"skipped {len(failures)} malformed record(s):")
    for failure in failures:
        print(f"  {type(failure.error).__name__}: {failure.error}")
    return hits


if __name__ == "__main__":
    main()
