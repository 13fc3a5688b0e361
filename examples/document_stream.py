"""A document pipeline: bz2-compressed XML -> documents -> similarity search -> top hits.

The corpus is generated locally (a few thousand short articles on a handful
of topics), compressed with bz2 like a Wikipedia dump, then streamed:
decompressed in chunks, split into documents without loading the whole
file, scored against a query by two workers (hashed bag-of-words vectors,
cosine similarity), and the best hits collected.

Run it with ``python -m examples.document_stream``.
"""

from __future__ import annotations

import bz2
import dataclasses
import heapq
import random
import re
import tempfile
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


def make_corpus(path: Path, documents: int = 3000, seed: int = 7) -> Path:
    """Write a bz2-compressed XML corpus of short articles."""
    rnd = random.Random(seed)
    filler = FILLER.split()
    with bz2.open(path, "wt", encoding="utf-8") as out:
        out.write("<corpus>\n")
        for i in range(documents):
            topic = rnd.choice(list(TOPICS))
            words = [rnd.choice(TOPICS[topic].split()) if rnd.random() < 0.4 else rnd.choice(filler) for _ in range(80)]
            out.write(f'<doc id="{i}"><title>{escape(topic.title())} note {i}</title>')
            out.write(f"<text>{escape(' '.join(words))}</text></doc>\n")
        out.write("</corpus>\n")
    return path


@sf.stage(packets_in_flight=4)
def decompress(path: str, chunk_size: int = 64 * 1024) -> Iterator[bytes]:
    """Stream the decompressed bytes of a bz2 file, a chunk at a time."""
    decompressor = bz2.BZ2Decompressor()
    with open(path, "rb") as compressed:
        while block := compressed.read(chunk_size):
            data = decompressor.decompress(block)
            if data:
                yield data


_DOC = re.compile(rb'<doc id="(\d+)"><title>(.*?)</title><text>(.*?)</text></doc>', re.S)


@sf.stage(packets_in_flight=16)
def split(chunks: Iterable[bytes]) -> Iterator[Document]:
    """Cut the byte stream into documents; a document may span chunks."""
    pending = b""
    for chunk in chunks:
        pending += chunk
        end = 0
        for match in _DOC.finditer(pending):
            doc_id, title, text = match.groups()
            yield Document(int(doc_id), unescape(title.decode()), unescape(text.decode()))
            end = match.end()
        pending = pending[end:]


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


def main(documents: int = 3000, **options: object) -> list[Hit]:
    with tempfile.TemporaryDirectory() as folder:
        corpus = make_corpus(Path(folder) / "corpus.xml.bz2", documents)
        flow = decompress(path=str(corpus)) | split | score(query="telescope orbit of a comet") | top(k=5)
        print(f"flow: {flow!r}")
        hits = flow.run(**options)  # type: ignore[arg-type]
    for hit in hits:
        print(f"  {hit.score:.3f}  #{hit.id:<5} {hit.title}")
    return hits


if __name__ == "__main__":
    main()
