"""The classic image pipeline: load | model | remap | aggregate.

Images are the handwritten digits that ship with scikit-learn (no download);
the model is a real classifier, trained once per worker when the stage
starts, then run on every image that reaches that worker.

Run it with ``python -m examples.image_batch`` (needs ``pip install -e '.[examples]'``).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable, Iterator

import numpy as np

import streamflow as sf


@dataclasses.dataclass
class Image:
    index: int
    pixels: np.ndarray  # 8 x 8, grey levels 0..16
    truth: int


@dataclasses.dataclass
class Prediction:
    index: int
    digit: int
    confidence: float
    truth: int


@dataclasses.dataclass
class Summary:
    counts: dict[str, int]
    accuracy: float
    images: int


@sf.stage(packets_in_flight=8)
def load(indices: list[int]) -> Iterator[Image]:
    """Read images from the digits data set that scikit-learn ships."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    for index in indices:
        yield Image(index, digits.images[index], int(digits.target[index]))


@sf.stage(workers=2, packets_in_flight=8)
def model(images: Iterable[Image], name: str = "logistic", train_size: int = 900) -> Iterator[Prediction]:
    """Classify images with a model set up once per worker."""
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import SVC

    digits = load_digits()
    features, targets = digits.data[:train_size], digits.target[:train_size]
    classifier = (
        LogisticRegression(max_iter=2000) if name == "logistic" else SVC(gamma=0.001, probability=True)
    ).fit(features, targets)
    for image in images:
        probabilities = classifier.predict_proba(image.pixels.reshape(1, -1))[0]
        digit = int(np.argmax(probabilities))
        yield Prediction(image.index, digit, float(probabilities[digit]), image.truth)


@sf.stage
def remap(predictions: Iterable[Prediction], classmap: dict[int, str]) -> Iterator[tuple[str, bool]]:
    """Turn model classes into the application's labels."""
    for p in predictions:
        yield classmap[p.digit], p.digit == p.truth


@sf.stage
def aggregate(labels: Iterable[tuple[str, bool]]) -> Summary:
    counts: Counter[str] = Counter()
    right = total = 0
    for label, correct in labels:
        counts[label] += 1
        right += correct
        total += 1
    return Summary(dict(counts), right / total if total else 0.0, total)


CLASSMAP = {d: ("even" if d % 2 == 0 else "odd") + f"-{d}" for d in range(10)}


def main(count: int = 897, **options: object) -> Summary:
    flow = (
        load(indices=list(range(900, 900 + count)))
        | model(name="logistic")
        | remap(classmap=CLASSMAP)
        | aggregate
    )
    print(f"flow: {flow!r}")
    run = flow.start(**options)  # type: ignore[arg-type]
    summary = run.result()
    print(f"classified {summary.images} held-out images, accuracy {summary.accuracy:.1%}")
    for label, n in sorted(summary.counts.items()):
        print(f"  {label:8} {n}")
    print(run.report())
    return summary


if __name__ == "__main__":
    main()
