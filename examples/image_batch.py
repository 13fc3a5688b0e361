"""The classic image pipeline: load | batch | model | unbatch | remap | aggregate.

Images are the handwritten digits that ship with scikit-learn (no download);
the model is a real classifier, a class stage: trained once per worker when
the worker builds it, then run on batches of images (one vectorised call a
batch), gathered by ``sf.batch`` by size, or after 50 ms if the images come
slowly.

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


@sf.map(workers=2, packets_in_flight=4)
class Model:
    """Classify batches of images with a model set up once per worker."""

    def __init__(self, name: str = "logistic", train_size: int = 900) -> None:
        from sklearn.datasets import load_digits
        from sklearn.linear_model import LogisticRegression
        from sklearn.svm import SVC

        digits = load_digits()
        features, targets = digits.data[:train_size], digits.target[:train_size]
        self.classifier = (
            LogisticRegression(max_iter=2000) if name == "logistic" else SVC(gamma=0.001, probability=True)
        ).fit(features, targets)

    def __call__(self, images: list[Image]) -> list[Prediction]:
        pixels = np.stack([image.pixels.reshape(-1) for image in images])
        probabilities = self.classifier.predict_proba(pixels)
        digits = probabilities.argmax(axis=1)
        return [
            Prediction(image.index, int(digit), float(p[digit]), image.truth)
            for image, digit, p in zip(images, digits, probabilities)
        ]



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
        | sf.batch(32, max_wait=0.05)
        | Model(name="logistic")
        | sf.unbatch()
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
