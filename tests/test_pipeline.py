"""The classic image-batch pipeline, load | model | remap | aggregate, on every backend."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import pytest

import streamflow as sf


@sf.stage
def load(seeds: list[int], size: int = 16) -> Iterator[np.ndarray]:
    for seed in seeds:
        yield np.random.default_rng(seed).random((size, size, 3), dtype=np.float32)


@sf.stage(workers=2)
def model(images: Iterable[np.ndarray], name: str, classes: int = 4) -> Iterator[tuple[int, float]]:
    weights = np.random.default_rng(len(name)).random((16 * 16 * 3, classes), dtype=np.float32)
    for image in images:
        scores = image.reshape(-1) @ weights
        yield int(scores.argmax()), float(scores.max())


@sf.stage
def remap(predictions: Iterable[tuple[int, float]], classmap: dict[int, str]) -> Iterator[str]:
    for label, _ in predictions:
        yield classmap[label]


@sf.stage
def aggregate(labels: Iterable[str]) -> dict[str, int]:
    return dict(Counter(labels))


CLASSMAP = {0: "cat", 1: "dog", 2: "bird", 3: "fish"}


def test_image_batch_pipeline(opts: dict[str, Any]) -> None:
    seeds = list(range(40))
    flow = load(seeds=seeds) | model(name="small") | remap(classmap=CLASSMAP) | aggregate
    counts = flow.run(**opts)
    assert sum(counts.values()) == 40
    assert counts == (load(seeds=seeds) | model(name="small") | remap(classmap=CLASSMAP) | aggregate).run(
        backend="inline"
    )


def test_image_batch_pipeline_rejects_a_wrong_link() -> None:
    with pytest.raises(sf.FlowTypeError, match="cannot connect 'load' -> 'remap': 'load' yields ndarray"):
        load(seeds=[1]) | remap(classmap=CLASSMAP)
    with pytest.raises(sf.FlowTypeError, match=r"constant classmap=\[1, 2\] of stage 'remap' is list"):
        remap(classmap=[1, 2])  # type: ignore[arg-type]
