"""The smallest complete streamflow program: read, transform in parallel, sum.

Run it with ``python -m examples.quickstart``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import streamflow as sf


@sf.stage
def numbers(count: int) -> Iterator[int]:
    """A source: yields the stream."""
    yield from range(count)


@sf.stage(workers=2, packets_in_flight=4)
def slow_square(xs: Iterable[int]) -> Iterator[int]:
    """A processor run by two worker processes."""
    for x in xs:
        yield sum(x for _ in range(1000)) * x // 1000


@sf.stage
def total(xs: Iterable[int]) -> int:
    """A sink: consumes the stream and returns a value."""
    return sum(xs)


@sf.stage
def labels(xs: Iterable[int], prefix: str) -> Iterator[str]:
    for x in xs:
        yield f"{prefix}{x}"


def main() -> None:
    flow = numbers(count=1000) | slow_square | total
    print(f"flow: {flow!r}")
    print(f"sum of squares below 1000: {flow.run()}")

    # An open flow is iterated in the caller; leaving the loop stops the workers.
    for label in numbers(count=10) | labels(prefix="item-"):
        print(label, end=" ")
    print()

    # Mismatched stages fail at the `|`, before anything runs.
    try:
        numbers(count=3) | labels(prefix="x") | total
    except sf.FlowTypeError as error:
        print(f"caught at composition: {error}")


if __name__ == "__main__":
    main()
